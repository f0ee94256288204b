package planner

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/cost"
)

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// ready returns n ready nodes "r0".. with the given active calls, old and
// heartbeating.
func readyNodes(prefix string, calls ...int) []NodeView {
	var ns []NodeView
	for i, c := range calls {
		ns = append(ns, NodeView{ID: fmt.Sprintf("%s%d", prefix, i), State: StateReady, ActiveCalls: c,
			LaunchedAt: t0.Add(-time.Hour), ReadyAt: t0.Add(-50 * time.Minute), LastHeartbeat: t0.Add(-5 * time.Second)})
	}
	return ns
}

func camp(id string, target int) CampaignView {
	return CampaignView{ID: id, Target: target, Callable: 1 << 20}
}

// fullWindow is planner memory saying the wish has been w slots for the
// whole stabilisation window, with no unannounced rise in it.
func fullWindow(w int) Memory {
	return Memory{Samples: []DemandSample{{At: t0.Add(-6 * time.Minute), Slots: w, Calls: w}, {At: t0.Add(-time.Minute), Slots: w, Calls: w}}}
}

func TestCampaignDemand(t *testing.T) {
	cfg := Config{}.WithDefaults()
	for _, tc := range []struct {
		name string
		c    CampaignView
		want int
	}{
		{"target", CampaignView{Target: 250, Callable: 1000}, 250},
		{"callable caps", CampaignView{Target: 250, Callable: 40, Active: 10}, 50},
		{"attempt rate caps", CampaignView{Target: 250, Callable: 1000, MaxCPS: 2, AvgAttemptSeconds: 40}, 80},
		{"default attempt duration", CampaignView{Target: 250, Callable: 1000, MaxCPS: 2}, 60},
		{"trunk channels cap", CampaignView{Target: 250, Callable: 1000, TrunkChannels: 120}, 120},
		{"trunk cps caps", CampaignView{Target: 250, Callable: 1000, TrunkCPS: 3, AvgAttemptSeconds: 20}, 60},
		{"upcoming within lead", CampaignView{Target: 0, Upcoming: []Upcoming{{At: t0.Add(2 * time.Minute), Target: 300}}}, 300},
		{"upcoming beyond lead", CampaignView{Target: 0, Upcoming: []Upcoming{{At: t0.Add(20 * time.Minute), Target: 300}}}, 0},
		{"upcoming capped by trunk", CampaignView{Upcoming: []Upcoming{{At: t0, Target: 300}}, TrunkChannels: 90}, 90},
		{"negative target", CampaignView{Target: -5, Callable: 10}, 0},
	} {
		if got := CampaignDemand(tc.c, t0, cfg); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestTotalDemandSharedTrunk(t *testing.T) {
	cfg := Config{}.WithDefaults()
	cs := []CampaignView{
		{ID: "a", Target: 200, Callable: 1000, Trunk: "t1", TrunkChannels: 300},
		{ID: "b", Target: 200, Callable: 1000, Trunk: "t1", TrunkChannels: 300},
		{ID: "c", Target: 50, Callable: 1000, Trunk: "t2", TrunkCPS: 1, AvgAttemptSeconds: 30},
		{ID: "d", Target: 70, Callable: 1000, Trunk: "t2", TrunkCPS: 1, AvgAttemptSeconds: 30},
		{ID: "e", Target: 10, Callable: 1000},
	}
	if got, want := TotalDemand(cs, t0, cfg), 300+30+10; got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

func kinds(p Plan) string {
	var s []string
	for _, a := range p.Actions {
		switch a.Kind {
		case ActLaunch:
			s = append(s, fmt.Sprintf("launch %d", a.Count))
		case ActCapacity:
			s = append(s, fmt.Sprintf("capacity %s=%d", a.NodeIDs[0], a.Count))
		default:
			s = append(s, fmt.Sprintf("%s %s", a.Kind, strings.Join(a.NodeIDs, ",")))
		}
	}
	return strings.Join(s, "; ")
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		obs    Observed
		want   string
		reason string // substring of a reason, if any
	}{
		{name: "idle, nothing", obs: Observed{}, want: ""},
		{name: "scale out at once in one batch",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 950)}},
			want: "launch 10"},
		{name: "coming nodes count",
			obs: Observed{Campaigns: []CampaignView{camp("a", 300)}, Nodes: []NodeView{
				{ID: "p0", State: StatePending, LaunchedAt: t0}, {ID: "p1", State: StateBooting, LaunchedAt: t0},
				{ID: "p2", State: StateSyncing, LaunchedAt: t0, LastHeartbeat: t0}, {ID: "p3", State: StateRequested, LaunchedAt: t0}}},
			want: ""},
		{name: "min nodes", cfg: Config{MinNodes: 2}, want: "launch 2"},
		{name: "max nodes caps and says so", cfg: Config{MaxNodes: 4},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: readyNodes("r", 100, 100)},
			want: "launch 2", reason: "max nodes 4"},
		{name: "batches split", cfg: Config{MaxLaunchBatch: 4},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 900)}},
			want: "launch 4; launch 4; launch 2"},
		{name: "budget cap holds capacity down", cfg: Config{BudgetPerHour: 0.30},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: readyNodes("r", 90)},
			want: "launch 2", reason: "budget cap $0.30/h"},
		{name: "budget cap prices from the configured table", cfg: Config{BudgetPerHour: 0.30,
			Pricing: cost.Pricing{OnDemand: map[string]map[string]float64{"us-east-1": {"c6i.large": 0.15}}}},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: readyNodes("r", 90)},
			want: "launch 1", reason: "budget cap $0.30/h"},
		{name: "budget cap prices spot as spot", cfg: Config{BudgetPerHour: 0.30, Spot: true,
			Pricing: cost.Pricing{}.WithSpot(map[string]float64{"c6i.large": 0.05})},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: readyNodes("r", 90)},
			want: "launch 5", reason: "budget cap $0.30/h"},
		{name: "budget cap counts a public IPv4", cfg: Config{BudgetPerHour: 0.26, Pricing: cost.Pricing{PublicIPv4: "auto"}},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: readyNodes("r", 90)},
			want: "launch 1", reason: "budget cap $0.26/h"},
		{name: "budget cap drains above it", cfg: Config{BudgetPerHour: 0.17},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 400)}, Nodes: readyNodes("r", 90, 20, 95)},
			want: "drain r1", reason: "above its cap"},
		{name: "cancel drain before launching",
			obs: Observed{Campaigns: []CampaignView{camp("a", 300)}, Nodes: append(readyNodes("r", 90),
				NodeView{ID: "d0", State: StateDraining, ActiveCalls: 10, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(10 * time.Minute)},
				NodeView{ID: "d1", State: StateDraining, ActiveCalls: 40, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(10 * time.Minute)})},
			want: "cancel-drain d1,d0; launch 1"},
		{name: "cancel drain alone when enough",
			obs: Observed{Campaigns: []CampaignView{camp("a", 150)}, Nodes: append(readyNodes("r", 90),
				NodeView{ID: "d0", State: StateDraining, ActiveCalls: 10, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(10 * time.Minute)})},
			want: "cancel-drain d0"},
		{name: "scale in waits for the window",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: readyNodes("r", 50, 40, 0)},
			want: ""},
		{name: "scale in emptiest first after the window",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: readyNodes("r", 50, 3, 40), Memory: fullWindow(95)},
			want: "drain r1,r2"},
		// Peak 190 plus the scale-in hysteresis (headroom once more) is 200:
		// one of three nodes can go.
		{name: "scale in keeps the window's peak",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: readyNodes("r", 50, 3, 40), Memory: fullWindow(190)},
			want: "drain r1"},
		{name: "scale in respects min nodes", cfg: Config{MinNodes: 3},
			obs:  Observed{Nodes: readyNodes("r", 0, 0, 0, 0), Memory: fullWindow(0)},
			want: "drain r0"},
		{name: "young node not drained",
			obs: Observed{Nodes: []NodeView{{ID: "y", State: StateReady, LaunchedAt: t0.Add(-30 * time.Second), LastHeartbeat: t0}},
				Memory: fullWindow(0)},
			want: ""},
		{name: "no drain of ready nodes for coming ones",
			obs: Observed{Campaigns: []CampaignView{camp("a", 200)}, Nodes: append(readyNodes("r", 50, 50, 3),
				NodeView{ID: "p", State: StateBooting, LaunchedAt: t0.Add(-time.Minute)}), Memory: fullWindow(210)},
			want: ""},
		{name: "less than a node of surplus stays",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 150)}, Nodes: readyNodes("r", 50, 50), Memory: fullWindow(158)},
			want: ""},
		{name: "struggling node counts less and is told",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 190)}, Nodes: []NodeView{readyNodes("r", 90)[0], {ID: "s", State: StateReady, CPU: 0.95, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0}}},
			want: "capacity s=75; launch 1"},
		{name: "no registration replaced",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 50)}, Nodes: []NodeView{{ID: "b", State: StateBooting, LaunchedAt: t0.Add(-6 * time.Minute)}}},
			want: "terminate b; launch 1", reason: "no registration"},
		{name: "silent node replaced",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 50)}, Nodes: []NodeView{{ID: "s", State: StateReady, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0.Add(-time.Minute)}}},
			want: "terminate s; launch 1", reason: "no heartbeat"},
		{name: "drained node terminated at zero calls",
			obs: Observed{Nodes: []NodeView{{ID: "d", State: StateDraining, NodeDrain: true, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(time.Minute)}},
				Memory: fullWindow(0)},
			want: "terminate d"},
		{name: "drained node with calls kept",
			obs: Observed{Nodes: []NodeView{{ID: "d", State: StateDraining, NodeDrain: true, ActiveCalls: 1, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(time.Minute)}},
				Memory: fullWindow(0)},
			want: ""},
		{name: "drained node with undelivered results kept",
			obs: Observed{Nodes: []NodeView{{ID: "d", State: StateDraining, NodeDrain: true, Pending: 2, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(time.Minute)}},
				Memory: fullWindow(0)},
			want: ""},
		{name: "drain not yet acknowledged kept",
			obs: Observed{Nodes: []NodeView{{ID: "d", State: StateDraining, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(time.Minute)}},
				Memory: fullWindow(0)},
			want: ""},
		{name: "drain deadline ends it",
			obs: Observed{Nodes: []NodeView{{ID: "d", State: StateDraining, NodeDrain: true, ActiveCalls: 7, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0}},
				Memory: fullWindow(0)},
			want: "terminate d"},
		{name: "spot notice drains and replaces",
			obs:  Observed{Campaigns: []CampaignView{camp("a", 80)}, Nodes: []NodeView{{ID: "s", State: StateReady, SpotNotice: true, ActiveCalls: 70, LaunchedAt: t0.Add(-time.Hour), LastHeartbeat: t0}}},
			want: "launch 1; drain s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.Plan(tc.obs, t0)
			if got := kinds(p); got != tc.want {
				t.Errorf("actions: got %q, want %q (reasons %q)", got, tc.want, p.Reasons)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(p.Reasons, "|"), tc.reason) {
				t.Errorf("reasons %q lack %q", p.Reasons, tc.reason)
			}
		})
	}
}

// TestPlanNoisyDemandNoChurn feeds ±10% noise every tick around 500 calls
// through plan→apply for two hours and wants no node launched and then
// drained, and every node launched only in the first ticks.
func TestPlanNoisyDemandNoChurn(t *testing.T) {
	cfg := Config{}
	rng := rand.New(rand.NewPCG(1, 2))
	var nodes []NodeView
	var mem Memory
	launches, drains := 0, 0
	now := t0
	for tick := 0; tick < 720; tick++ {
		now = now.Add(10 * time.Second)
		target := 500 + rng.IntN(101) - 50
		p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", target)}, Nodes: nodes, Memory: mem}, now)
		mem = p.Memory
		for _, a := range p.Actions {
			switch a.Kind {
			case ActLaunch:
				launches += a.Count
				for i := 0; i < a.Count; i++ {
					nodes = append(nodes, NodeView{ID: fmt.Sprint("n", len(nodes)), State: StateReady, LaunchedAt: now, LastHeartbeat: now})
				}
			case ActDrain:
				drains += len(a.NodeIDs)
			}
		}
		for i := range nodes {
			nodes[i].LastHeartbeat = now
		}
	}
	if launches != 6 || drains != 0 {
		t.Errorf("launches %d drains %d, want 6 and 0", launches, drains)
	}
}

func TestPlanMemoryPruned(t *testing.T) {
	cfg := Config{}
	var mem Memory
	now := t0
	for i := 0; i < 100; i++ {
		now = now.Add(10 * time.Second)
		mem = cfg.Plan(Observed{Memory: mem}, now).Memory
	}
	if n := len(mem.Samples); n != 32 {
		t.Errorf("samples kept %d, want 32 (5 min of 10 s ticks, both ends, and one older)", n)
	}
}

// TestPlanWindowOddTicks: with a tick that does not divide the window, the
// window still counts as covered on every tick once it has been.
func TestPlanWindowOddTicks(t *testing.T) {
	cfg := Config{}
	var mem Memory
	now := t0
	nodes := readyNodes("r", 0, 0, 0)
	drains := 0
	for i := 0; i < 60; i++ {
		now = now.Add(7 * time.Second)
		p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 150)}, Nodes: nodes, Memory: mem}, now)
		mem = p.Memory
		for _, a := range p.Actions {
			if a.Kind == ActDrain {
				drains++
				if now.Sub(t0) < 5*time.Minute {
					t.Fatalf("drain after %s, before the window", now.Sub(t0))
				}
				for _, id := range a.NodeIDs {
					for j := range nodes {
						if nodes[j].ID == id {
							nodes[j].State = StateDraining
						}
					}
				}
			}
		}
		for j := range nodes {
			nodes[j].LastHeartbeat = now
		}
	}
	if drains != 1 {
		t.Errorf("%d drains, want 1", drains)
	}
}

func TestPlanStaleDemandNeverScalesIn(t *testing.T) {
	p := Config{}.Plan(Observed{Nodes: readyNodes("r", 0, 0), Memory: fullWindow(0), DemandStale: true}, t0)
	if got := kinds(p); got != "" {
		t.Errorf("stale demand: %q", got)
	}
	if len(p.Memory.Samples) != len(fullWindow(0).Samples) {
		t.Errorf("stale demand added a sample: %+v", p.Memory.Samples)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{MinNodes: 5, MaxNodes: 2}, "MinNodes 5 above MaxNodes 2"},
		{Config{SlotsPerNode: -1}, "SlotsPerNode"},
		{Config{BudgetPerHour: -1}, "BudgetPerHour"},
		{Config{StruggleFactor: 2}, "StruggleFactor"},
		{Config{}, ""},
	} {
		err := tc.c.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) || (tc.want == "" && err != nil) {
			t.Errorf("%+v: got %q, want %q", tc.c, got, tc.want)
		}
	}
	_ = reflect.DeepEqual
}

// Demand wobbling just around a node boundary must not drain the top node
// after every quiet window and launch it again on the next peak.
func TestPlanHysteresisAtNodeBoundary(t *testing.T) {
	cfg := Config{}
	nodes := readyNodes("r", 90, 90, 90, 90, 90, 90, 90, 90, 90, 60)
	// Ten nodes, a window whose peak wanted 880 slots after an unannounced
	// rise of 80 calls: dropping one would leave 900, under 880 plus the
	// headroom once more (920), so nothing drains; without the hysteresis
	// the tenth node would go.
	wobble := Memory{Samples: []DemandSample{
		{At: t0.Add(-6 * time.Minute), Slots: 840, Calls: 800},
		{At: t0.Add(-3 * time.Minute), Slots: 880, Calls: 880, Surprise: 80},
		{At: t0.Add(-time.Minute), Slots: 840, Calls: 800}}}
	obs := Observed{Campaigns: []CampaignView{camp("a", 800)}, Nodes: nodes, Memory: wobble}
	if p := cfg.Plan(obs, t0); len(p.Actions) != 0 {
		t.Fatalf("drained at the boundary: %+v", p.Actions)
	}
	// The same fleet under demand that fell steadily, with no rise in the
	// window, does not wobble: the tenth node goes.
	obs.Memory = fullWindow(880)
	if p := cfg.Plan(obs, t0); kinds(p) != "drain r9" {
		t.Fatalf("steady fall: got %q, want drain r9", kinds(p))
	}
}

// Headroom covers demand that rose unannounced within the window and no
// other: steady or announced demand is held at exactly the nodes it needs.
func TestPlanHeadroomOnlyForSurprises(t *testing.T) {
	ten := readyNodes("r", 100, 100, 100, 100, 100, 100, 100, 100, 100, 100)
	for _, tc := range []struct {
		name      string
		c         CampaignView
		nodes     []NodeView
		mem       Memory
		want      string
		wantSlots int
	}{
		{"first tick: all demand is a surprise", camp("a", 1000), ten, Memory{}, "launch 1", 1050},
		{"unannounced rise gets headroom", camp("a", 1000), ten,
			Memory{Samples: []DemandSample{{At: t0.Add(-time.Minute), Slots: 945, Calls: 900}}}, "launch 1", 1050},
		{"headroom is at most the rise", camp("a", 1000), ten,
			Memory{Samples: []DemandSample{{At: t0.Add(-time.Minute), Slots: 990, Calls: 990}}}, "launch 1", 1010},
		{"a rise earlier in the window still counts", camp("a", 1000), ten,
			Memory{Samples: []DemandSample{{At: t0.Add(-4 * time.Minute), Slots: 1050, Calls: 1000, Surprise: 200},
				{At: t0.Add(-time.Minute), Slots: 1050, Calls: 1000}}}, "launch 1", 1050},
		{"steady demand held exactly", camp("a", 1000), ten, fullWindow(1000), "", 1000},
		{"steady demand drains the spare node", camp("a", 1000), append(ten, readyNodes("s", 0)...), fullWindow(1000), "drain s0", 1000},
		// Upcoming demand counted ahead through BootLead is planned for:
		// when it arrives, it is no surprise.
		{"announced start planned exactly",
			CampaignView{ID: "a", Callable: 1 << 20, Upcoming: []Upcoming{{At: t0.Add(2 * time.Minute), Target: 1000}}}, ten,
			fullWindow(0), "", 1000},
		{"announced start arrives", camp("a", 1000), ten,
			Memory{Samples: []DemandSample{{At: t0.Add(-time.Minute), Slots: 1000, Calls: 1000}}}, "", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Config{}.Plan(Observed{Campaigns: []CampaignView{tc.c}, Nodes: tc.nodes, Memory: tc.mem}, t0)
			if got := kinds(p); got != tc.want || p.WantedSlots != tc.wantSlots {
				t.Errorf("got %q wanting %d slots, want %q wanting %d", got, p.WantedSlots, tc.want, tc.wantSlots)
			}
		})
	}
}

// A node younger than MinLifetime (10 minutes by default) is not drained,
// whatever the surplus: that is what keeps noisy demand from launching a
// node and terminating it minutes later.
func TestPlanMinLifetimeGuardsChurn(t *testing.T) {
	young := []NodeView{{ID: "y", State: StateReady, LaunchedAt: t0.Add(-5 * time.Minute), LastHeartbeat: t0}}
	if p := (Config{}).Plan(Observed{Nodes: young, Memory: fullWindow(0)}, t0); len(p.Actions) != 0 {
		t.Fatalf("a 5-minute-old node was drained: %+v", p.Actions)
	}
	old := []NodeView{{ID: "o", State: StateReady, LaunchedAt: t0.Add(-11 * time.Minute), LastHeartbeat: t0}}
	if p := (Config{}).Plan(Observed{Nodes: old, Memory: fullWindow(0)}, t0); len(p.Actions) != 1 || p.Actions[0].Kind != ActDrain {
		t.Fatalf("an 11-minute-old idle node was kept: %+v", p.Actions)
	}
}

// Capacity reduced for CPU load is never a reason to keep a node with no
// work: a struggling node counts fewer than a whole node's slots, and with
// zero demand it must still drain (issue 15: a busy machine kept `demo`'s
// fleet up forever).
func TestPlanStrugglingNodesStillScaleIn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nodes  []NodeView
		demand int
		want   string
	}{
		{"one struggling idle node, no demand", []NodeView{{ID: "a", State: StateReady, CPU: 0.95}}, 0, "capacity a=75; drain a"},
		{"two struggling idle nodes, no demand", []NodeView{{ID: "a", State: StateReady, CPU: 0.95}, {ID: "b", State: StateReady, CPU: 0.9}}, 0, "capacity a=75; capacity b=75; drain a,b"},
		{"struggling pair, demand one node's worth fits the other", []NodeView{{ID: "a", State: StateReady, CPU: 0.95, ActiveCalls: 50}, {ID: "b", State: StateReady, CPU: 0.9}}, 60, "capacity a=75; capacity b=75; drain b"},
		{"struggling pair, demand needs both", []NodeView{{ID: "a", State: StateReady, CPU: 0.95, ActiveCalls: 50}, {ID: "b", State: StateReady, CPU: 0.9}}, 100, "capacity a=75; capacity b=75"},
	} {
		for i := range tc.nodes {
			tc.nodes[i].LaunchedAt, tc.nodes[i].LastHeartbeat = t0.Add(-time.Hour), t0.Add(-5*time.Second)
		}
		var cs []CampaignView
		if tc.demand > 0 {
			cs = []CampaignView{camp("c", tc.demand)}
		}
		p := (Config{}).Plan(Observed{Nodes: tc.nodes, Campaigns: cs, Memory: fullWindow(tc.demand)}, t0)
		if got := kinds(p); got != tc.want {
			t.Errorf("%s: got %q, want %q (reasons %q)", tc.name, got, tc.want, p.Reasons)
		}
	}
}

// parkedNodes returns n parked nodes "w0".. stopped at the given times.
func parkedNodes(n int) []NodeView {
	var ns []NodeView
	for i := range n {
		ns = append(ns, NodeView{ID: fmt.Sprintf("w%d", i), State: StateParked, LaunchedAt: t0.Add(-3 * time.Hour),
			ReadyAt: t0.Add(-170 * time.Minute), StoppedAt: t0.Add(-time.Duration(n-i) * time.Minute)})
	}
	return ns
}

// spikeMemory is planner memory holding an unannounced rise of calls an
// hour ago, and a steady window since.
func spikeMemory(calls, w int) Memory {
	m := fullWindow(w)
	m.Spikes = []DemandSample{{At: t0.Add(-time.Hour), Surprise: calls}}
	return m
}

func TestPlanWarmPool(t *testing.T) {
	pool := Config{StartHedge: -1, WarmPool: true}
	for _, tc := range []struct {
		name        string
		cfg         Config
		obs         Observed
		want        string
		warm, after int
	}{
		{name: "start parked nodes before launching", cfg: pool,
			obs:  Observed{Campaigns: []CampaignView{camp("a", 500)}, Nodes: append(readyNodes("r", 90), parkedNodes(3)...), Memory: spikeMemory(300, 90)},
			want: "start w0,w1,w2; launch 2", warm: 5, after: 0},
		{name: "no pool: parked nodes are ended", cfg: Config{},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: append(readyNodes("r", 90), parkedNodes(2)...), Memory: fullWindow(90)},
			want: "terminate w0,w1", warm: 0, after: 0},
		{name: "surplus is parked while the pool is short of the risk", cfg: pool,
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: readyNodes("r", 90, 0, 0, 0), Memory: spikeMemory(250, 90)},
			want: "drain r1,r2,r3", warm: 3, after: 3},
		{name: "surplus beyond the pool's target is ended", cfg: pool,
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: append(readyNodes("r", 90, 0, 0), parkedNodes(1)...), Memory: spikeMemory(200, 90)},
			want: "drain r1; drain r2", warm: 2, after: 2},
		{name: "parking ignores the churn guard", cfg: Config{StartHedge: -1, WarmPool: true, MinLifetime: 24 * time.Hour},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: readyNodes("r", 90, 0), Memory: spikeMemory(100, 90)},
			want: "drain r1", warm: 1, after: 1},
		{name: "a drained parking node is stopped", cfg: pool,
			obs: Observed{Campaigns: []CampaignView{camp("a", 90)}, Memory: spikeMemory(100, 90), Nodes: append(readyNodes("r", 90),
				NodeView{ID: "d", State: StateDraining, DrainReason: DrainPark, NodeDrain: true, LaunchedAt: t0.Add(-time.Hour), ReadyAt: t0.Add(-time.Hour), LastHeartbeat: t0, DrainDeadline: t0.Add(time.Minute)})},
			want: "stop d", warm: 1, after: 1},
		{name: "the pool shrinks when the risk ages out", cfg: Config{StartHedge: -1, WarmPool: true, SpikeMemory: 30 * time.Minute},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: append(readyNodes("r", 90), parkedNodes(2)...), Memory: spikeMemory(200, 90)},
			want: "terminate w0,w1", warm: 0, after: 0},
		{name: "WarmPoolMin holds a pool without risk", cfg: Config{StartHedge: -1, WarmPool: true, WarmPoolMin: 2},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: append(readyNodes("r", 90), parkedNodes(3)...), Memory: fullWindow(90)},
			want: "terminate w0", warm: 2, after: 2},
		{name: "WarmPoolMin is filled by launching nodes to park", cfg: Config{StartHedge: -1, WarmPool: true, WarmPoolMin: 2},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: append(readyNodes("r", 90), parkedNodes(0)...), Memory: fullWindow(90)},
			want: "launch 2", warm: 2, after: 0},
		{name: "spare nodes count toward the fill", cfg: Config{StartHedge: -1, WarmPool: true, WarmPoolMin: 2},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: readyNodes("r", 90, 0), Memory: fullWindow(90)},
			want: "drain r1", warm: 2, after: 1},
		{name: "the pool's own budget caps it", cfg: Config{StartHedge: -1, WarmPool: true, WarmPoolBudget: 0.002},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: append(readyNodes("r", 90), parkedNodes(3)...), Memory: spikeMemory(500, 90)},
			want: "terminate w0", warm: 2, after: 2},
		{name: "the budget cap pays for the pool first", cfg: Config{StartHedge: -1, WarmPool: true, BudgetPerHour: 0.17 + 20*0.0009},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: append(readyNodes("r", 90), parkedNodes(20)...), Memory: spikeMemory(2000, 90)},
			want: "start w0", warm: 20, after: 19},
		{name: "a resumed node's deadlines count from its start", cfg: pool,
			obs: Observed{Campaigns: []CampaignView{camp("a", 90)}, Memory: spikeMemory(100, 90), Nodes: []NodeView{
				{ID: "s", State: StateSyncing, LaunchedAt: t0.Add(-5 * time.Hour), ResumedAt: t0.Add(-time.Minute), LastHeartbeat: t0}}},
			want: "", warm: 1, after: 0},
		{name: "a start that never registers is ended", cfg: pool,
			obs: Observed{Campaigns: []CampaignView{camp("a", 90)}, Memory: spikeMemory(100, 90), Nodes: append(readyNodes("r", 90),
				NodeView{ID: "s", State: StateResuming, LaunchedAt: t0.Add(-5 * time.Hour), ResumedAt: t0.Add(-6 * time.Minute)})},
			want: "terminate s", warm: 1, after: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.Plan(tc.obs, t0)
			if got := kinds(p); got != tc.want {
				t.Errorf("actions: got %q, want %q (reasons %q)", got, tc.want, p.Reasons)
			}
			if p.WarmTarget != tc.warm || p.Parked != tc.after {
				t.Errorf("pool target %d, parked after %d; want %d, %d", p.WarmTarget, p.Parked, tc.warm, tc.after)
			}
		})
	}
}

// TestPlanSpikeMemory: an unannounced rise sizes the pool, a later smaller
// one does not shrink it, and it ages out after SpikeMemory.
func TestPlanSpikeMemory(t *testing.T) {
	cfg := Config{StartHedge: -1, WarmPool: true, SpikeMemory: time.Hour}
	var mem Memory
	now := t0
	step := func(calls int, d time.Duration) Plan {
		now = now.Add(d)
		p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", calls)}, Memory: mem}, now)
		mem = p.Memory
		return p
	}
	step(300, 0)
	if p := step(1500, 10*time.Second); p.WarmTarget != 12 {
		t.Fatalf("after a rise of 1,200 calls: target %d, want 12", p.WarmTarget)
	}
	step(300, 20*time.Minute)
	if p := step(800, 10*time.Second); p.WarmTarget != 12 || len(mem.Spikes) != 2 {
		t.Fatalf("a smaller rise: target %d (want 12), %d spikes kept", p.WarmTarget, len(mem.Spikes))
	}
	if p := step(800, 45*time.Minute); p.WarmTarget != 5 {
		t.Fatalf("after the big rise aged out: target %d, want 5", p.WarmTarget)
	}
	if p := step(800, 2*time.Hour); p.WarmTarget != 0 || len(mem.Spikes) != 0 {
		t.Fatalf("after every rise aged out: target %d, %d spikes", p.WarmTarget, len(mem.Spikes))
	}
}

// TestPlanZones: launches go to the zones with the fewest serving nodes,
// drains come from the zone with the most, parked nodes start only where
// the fleet is short (else that zone gets a launch).
func TestPlanZones(t *testing.T) {
	zoned := func(ns []NodeView, zones ...string) []NodeView {
		for i := range ns {
			ns[i].Zone = zones[i]
		}
		return ns
	}
	cfg := Config{Zones: []string{"a", "b", "c"}}
	launches := func(p Plan) map[string]int {
		m := map[string]int{}
		for _, a := range p.Actions {
			if a.Kind == ActLaunch {
				m[a.Zone] += a.Count
			}
		}
		return m
	}
	p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("x", 590)}, Nodes: zoned(readyNodes("r", 90, 90, 90), "a", "a", "b")}, t0)
	if got := launches(p); got["a"] != 1 || got["b"] != 1 || got["c"] != 2 {
		t.Errorf("launches by zone %v, want a 1, b 1, c 2 (to 3, 2... within one)", got)
	}
	p = cfg.Plan(Observed{Campaigns: []CampaignView{camp("x", 150)}, Nodes: zoned(readyNodes("r", 0, 0, 50, 90), "b", "a", "a", "c"), Memory: fullWindow(150)}, t0)
	if got := kinds(p); got != "drain r1,r0" {
		t.Errorf("scale-in %q, want the emptiest node of the fullest zone (r1 in a), then the emptiest (r0)", got)
	}
	warm := Config{Zones: []string{"a", "b", "c"}, WarmPool: true, StartHedge: -1}
	nodes := append(zoned(readyNodes("r", 90, 90, 90), "a", "b", "c"), zoned(parkedNodes(3), "a", "a", "b")...)
	p = warm.Plan(Observed{Campaigns: []CampaignView{camp("x", 560)}, Nodes: nodes, Memory: spikeMemory(300, 290)}, t0)
	var started []string
	for _, a := range p.Actions {
		if a.Kind == ActStart {
			started = a.NodeIDs
		}
	}
	// Wanted 560+28 → 6 nodes: 3 more, one per zone: w0 (a), w2 (b), a
	// launch in c (no parked node there).
	if got := launches(p); strings.Join(started, ",") != "w0,w2" || got["c"] != 1 || len(got) != 1 {
		t.Errorf("started %v, launched %v; want w0,w2 and one launch in c", started, got)
	}
}

// TestPlanSpot: a rebalance recommendation launches a replacement at once
// and drains the node once replacements are ready; at scale-in, on-demand
// nodes (a spot fallback) go before spot ones.
func TestPlanSpot(t *testing.T) {
	cfg := Config{Spot: true}
	nodes := readyNodes("r", 80, 80)
	nodes[1].Rebalance, nodes[1].Spot = true, true
	p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 160)}, Nodes: nodes, Memory: fullWindow(160)}, t0)
	if got := kinds(p); got != "launch 1" {
		t.Errorf("rebalance recommended: %q, want a replacement launched and nothing drained yet", got)
	}
	nodes = append(nodes, readyNodes("n", 0)...)
	p = cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 160)}, Nodes: nodes, Memory: fullWindow(160)}, t0)
	if got := kinds(p); got != "drain r1" || p.Actions[0].Drain != DrainRebalance {
		t.Errorf("replacement ready: %q, want the at-risk node drained", got)
	}
	mixed := readyNodes("r", 0, 0, 90)
	mixed[0].Spot, mixed[2].Spot = true, true
	p = cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 90)}, Nodes: mixed, Memory: fullWindow(90)}, t0)
	if got := kinds(p); got != "drain r1,r0" {
		t.Errorf("scale-in %q, want the on-demand node r1 first", got)
	}
}

// TestPlanStartHedge: a start from the pool asks for StartHedge more nodes
// than the shortfall (rounded up), from the pool only: the fastest serve
// it, the slowest come back as surplus. The pool holds the hedge too.
func TestPlanStartHedge(t *testing.T) {
	cfg := Config{WarmPool: true, StartHedge: 0.2}
	// Wanted 1,000+50 → 11 nodes: 10 more, 2 hedged; the pool has 12.
	p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: append(readyNodes("r", 90), parkedNodes(12)...), Memory: spikeMemory(1000, 90)}, t0)
	if got := kinds(p); got != "start w0,w1,w10,w11,w2,w3,w4,w5,w6,w7,w8,w9" {
		t.Errorf("actions %q, want all 12 parked nodes started (10 + 2 hedged), no launch", got)
	}
	if p.WarmTarget != 12 {
		t.Errorf("pool target %d for a risk of 10 nodes, want 12 (10 + 20%%)", p.WarmTarget)
	}
	// A pool short of the need: the hedge is never launched for.
	p = cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: append(readyNodes("r", 90), parkedNodes(4)...), Memory: spikeMemory(1000, 90)}, t0)
	if got := kinds(p); got != "start w0,w1,w2,w3; launch 6" {
		t.Errorf("actions %q, want 4 started and the 6 short launched", got)
	}
	// No hedge: exactly the shortfall.
	cfg.StartHedge = -1
	p = cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: append(readyNodes("r", 90), parkedNodes(12)...), Memory: spikeMemory(1000, 90)}, t0)
	if got := kinds(p); got != "start w0,w1,w10,w11,w2,w3,w4,w5,w6,w7" {
		t.Errorf("without a hedge: %q, want the 10 short started", got)
	}
	if err := (Config{StartHedge: 1.5}).Validate(); err == nil || !strings.Contains(err.Error(), "StartHedge") {
		t.Errorf("StartHedge 1.5: err %v, want one naming StartHedge", err)
	}
}

// TestPlanSpareNodes: SpareNodes are kept above any demand (none without
// demand), so a node that fails is absorbed while its replacement boots.
func TestPlanSpareNodes(t *testing.T) {
	cfg := Config{SpareNodes: 1}
	p := cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 150)}, Nodes: readyNodes("r", 90, 60), Memory: fullWindow(250)}, t0)
	if got := kinds(p); got != "launch 1" || p.WantedSlots != 250 {
		t.Errorf("150 calls on 2 nodes with 1 spare: %q, wanted %d slots; want launch 1, 250", got, p.WantedSlots)
	}
	p = cfg.Plan(Observed{Campaigns: []CampaignView{camp("a", 0)}, Nodes: readyNodes("r", 0), Memory: fullWindow(0)}, t0)
	if got := kinds(p); got != "drain r0" || p.WantedSlots != 0 {
		t.Errorf("no demand: %q, wanted %d slots; want the node drained, no spare", got, p.WantedSlots)
	}
	if err := (Config{SpareNodes: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "SpareNodes") {
		t.Errorf("SpareNodes -1: err %v, want one naming SpareNodes", err)
	}
}
