package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testclock"
)

// benchWorld is 1,000 ready nodes and 200 campaigns over 40 trunks.
func benchWorld() ([]CampaignView, []NodeView) {
	cs := make([]CampaignView, 200)
	for i := range cs {
		cs[i] = CampaignView{ID: fmt.Sprint("c", i), Target: 400 + i, Callable: 100000, Active: 300, MaxCPS: 20,
			Trunk: fmt.Sprint("t", i%40), TrunkChannels: 3000, TrunkCPS: 100, AvgAttemptSeconds: 35,
			Upcoming: []Upcoming{{At: t0.Add(time.Duration(i) * time.Minute), Target: 600}}}
	}
	ns := make([]NodeView, 1000)
	for i := range ns {
		ns[i] = NodeView{ID: fmt.Sprintf("i-%05d", i), State: StateReady, Capacity: 100, ActiveCalls: i % 100, CPU: float64(i%90) / 100,
			LaunchedAt: t0.Add(-time.Hour), ReadyAt: t0.Add(-time.Hour), LastHeartbeat: t0}
	}
	return cs, ns
}

// BenchmarkPlan is the pure planner at 1,000 nodes and 200 campaigns.
func BenchmarkPlan(b *testing.B) {
	cs, ns := benchWorld()
	cfg := Config{MaxNodes: 1000}
	mem := fullWindow(50000)
	b.ReportAllocs()
	for b.Loop() {
		cfg.Plan(Observed{Campaigns: cs, Nodes: ns, Memory: mem}, t0)
	}
}

type benchDemand []Demand

func (d benchDemand) Demand(context.Context, time.Time) ([]Demand, error) { return d, nil }

// BenchmarkTick is one whole reconcile pass — observe demand, list and fold
// in 1,000 instances, build the planner's view from the registry, plan and
// act — with an in-memory cloud and no store.
func BenchmarkTick(b *testing.B) {
	cs, ns := benchWorld()
	ds := make(benchDemand, len(cs))
	for i, c := range cs {
		ds[i] = Demand{CampaignID: c.ID, Target: c.Target, Callable: c.Callable, Active: c.Active, MaxCPS: c.MaxCPS, Trunk: c.Trunk,
			TrunkChannels: c.TrunkChannels, TrunkCPS: c.TrunkCPS, AvgAttemptSeconds: c.AvgAttemptSeconds, Upcoming: c.Upcoming}
	}
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	c, err := New(context.Background(), cloud, ds, nil, Options{Plan: Config{MaxNodes: 1000}, Clock: clock, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range ns {
		cloud.insts[n.ID] = &Instance{ID: n.ID, State: InstanceRunning, Type: "c6i.large"}
		c.nodes[n.ID] = &node{rec: NodeRecord{ID: n.ID, State: StateReady, Capacity: 100, LaunchedAt: n.LaunchedAt, RunningAt: n.LaunchedAt,
			Load: readyHB(n.ActiveCalls), LastHeartbeat: t0}}
	}
	c.memory = fullWindow(50000)
	cloud.onTerm = nil
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
