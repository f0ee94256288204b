package planner

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
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
		{name: "budget cap holds capacity down", cfg: Config{BudgetPerHour: 0.30, PricePerHour: 0.085},
			obs:  Observed{Campaigns: []CampaignView{camp("a", 1000)}, Nodes: readyNodes("r", 90)},
			want: "launch 2", reason: "budget cap $0.30/h"},
		{name: "budget cap drains above it", cfg: Config{BudgetPerHour: 0.17, PricePerHour: 0.085},
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
