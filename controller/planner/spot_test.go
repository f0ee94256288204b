package planner

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// markets sums a plan's launches by market and zone: "od 3 spot 3",
// "od b=1 c=2".
func markets(p Plan) string {
	n := map[string]int{}
	for _, a := range p.Actions {
		if a.Kind != ActLaunch {
			continue
		}
		k := "spot"
		if a.OnDemand {
			k = "od"
		}
		if a.Zone != "" {
			k += " " + a.Zone
		}
		n[k] += a.Count
	}
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range n {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(out, " ")
}

func spotNodes(prefix string, calls ...int) []NodeView {
	ns := readyNodes(prefix, calls...)
	for i := range ns {
		ns[i].Spot = true
	}
	return ns
}

func longCamp(id string, target int) CampaignView {
	c := camp(id, target)
	c.OnDemand = true
	return c
}

// TestPlanOnDemandForLongCalls: with spot launches, the plan keeps enough
// on-demand nodes for the demand of campaigns whose calls may outlast a
// spot notice (leasing gives those calls to on-demand nodes only), launches
// the rest as spot, never drains an on-demand node it needs, and launches
// on-demand while spot is short.
func TestPlanOnDemandForLongCalls(t *testing.T) {
	mixed := []CampaignView{longCamp("ivr", 250), camp("short", 300)}
	for _, tc := range []struct {
		name    string
		cfg     Config
		obs     Observed
		markets string // launches by market
		drains  string // node ids drained, in order
		odNodes int
	}{
		{name: "mixed demand from nothing: 3 on-demand for 250 long calls, 3 spot",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: mixed, Memory: fullWindow(550)},
			markets: "od=3 spot=3", odNodes: 3},
		{name: "a spot fleet large enough still gets its on-demand nodes",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: mixed, Nodes: spotNodes("s", 90, 90, 90, 90, 90, 90), Memory: fullWindow(550)},
			markets: "od=3", odNodes: 3},
		{name: "on-demand nodes already there count",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: mixed, Nodes: append(readyNodes("o", 90, 90), spotNodes("s", 90)...), Memory: fullWindow(550)},
			markets: "od=1 spot=2", odNodes: 3},
		{name: "surplus: spot nodes drain, the on-demand ones the long calls need stay",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: mixed, Nodes: append(readyNodes("o", 0, 0, 0), spotNodes("s", 0, 0, 0, 0, 0, 0)...), Memory: fullWindow(550)},
			drains: "s0,s1,s2", odNodes: 3},
		{name: "long demand gone: on-demand nodes drain first again",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: []CampaignView{camp("short", 300)}, Nodes: append(readyNodes("o", 0, 0, 0), spotNodes("s", 0, 0, 0)...), Memory: fullWindow(300)},
			drains: "o0,o1,o2"},
		{name: "long demand larger than all demand is capped by it",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: []CampaignView{{ID: "ivr", Target: 900, Callable: 120, OnDemand: true}}, Memory: fullWindow(120)},
			markets: "od=2", odNodes: 2},
		{name: "on-demand launches: nothing special without spot",
			cfg: Config{}, obs: Observed{Campaigns: mixed, Memory: fullWindow(550)},
			markets: "spot=6"}, // OnDemand unset: the cloud's own market, on-demand
		{name: "spot short: every launch on-demand",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: mixed, Memory: fullWindow(550), Short: Shortage{SpotUntil: t0.Add(time.Minute)}},
			markets: "od=6", odNodes: 3},
		{name: "spot shortage expired: spot again",
			cfg: Config{Spot: true}, obs: Observed{Campaigns: []CampaignView{camp("short", 300)}, Memory: fullWindow(300), Short: Shortage{SpotUntil: t0}},
			markets: "spot=3"},
		{name: "a short zone gets no launch until its time",
			cfg: Config{Zones: []string{"a", "b", "c"}}, obs: Observed{Campaigns: []CampaignView{camp("short", 400)}, Memory: fullWindow(400),
				Short: Shortage{Zones: map[string]time.Time{"a": t0.Add(time.Minute), "c": t0.Add(-time.Second)}}},
			markets: "spot b=2 spot c=2"},
		{name: "every zone short: launches anywhere configured",
			cfg: Config{Zones: []string{"a", "b"}}, obs: Observed{Campaigns: []CampaignView{camp("short", 200)}, Memory: fullWindow(200),
				Short: Shortage{Zones: map[string]time.Time{"a": t0.Add(time.Minute), "b": t0.Add(time.Minute)}}},
			markets: "spot a=1 spot b=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.Plan(tc.obs, t0)
			var drains []string
			for _, a := range p.Actions {
				if a.Kind == ActDrain {
					drains = append(drains, a.NodeIDs...)
				}
			}
			if got := markets(p); got != tc.markets {
				t.Errorf("launches %q, want %q (plan %s; %v)", got, tc.markets, kinds(p), p.Reasons)
			}
			if got := strings.Join(drains, ","); got != tc.drains {
				t.Errorf("drains %q, want %q (plan %s)", got, tc.drains, kinds(p))
			}
			if p.OnDemandNodes != tc.odNodes {
				t.Errorf("on-demand nodes %d, want %d", p.OnDemandNodes, tc.odNodes)
			}
		})
	}
}

// TestPlanOnDemandSpotNotice: a spot node carrying short calls still
// drains on its notice while on-demand nodes for the long calls are kept.
func TestPlanOnDemandSpotNotice(t *testing.T) {
	nodes := append(readyNodes("o", 90), spotNodes("s", 90)...)
	nodes[1].SpotNotice = true
	p := Config{Spot: true}.Plan(Observed{Campaigns: []CampaignView{longCamp("ivr", 90), camp("short", 90)}, Nodes: nodes, Memory: fullWindow(180)}, t0)
	var spot bool
	for _, a := range p.Actions {
		if a.Kind == ActDrain && a.Drain == DrainSpot && slices.Equal(a.NodeIDs, []string{"s0"}) {
			spot = true
		}
	}
	if !spot || markets(p) != "spot=1" {
		t.Fatalf("plan %s, launches %s: want s0 drained for its notice and one spot replacement", kinds(p), markets(p))
	}
}
