package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
)

type benchDemand []Demand

func (d benchDemand) Demand(context.Context, time.Time) ([]Demand, error) { return d, nil }

// BenchmarkTick is one whole reconcile pass — observe demand, list and fold
// in 1,000 instances, build the planner's view from the registry, plan and
// act — with an in-memory cloud and no store. Its world is the one
// planner.BenchmarkPlan plans for: 1,000 ready nodes and 200 campaigns over
// 40 trunks.
func BenchmarkTick(b *testing.B) {
	ds := make(benchDemand, 200)
	for i := range ds {
		ds[i] = Demand{CampaignID: fmt.Sprint("c", i), Target: 400 + i, Callable: 100000, Active: 300, MaxCPS: 20,
			Trunk: fmt.Sprint("t", i%40), TrunkChannels: 3000, TrunkCPS: 100, AvgAttemptSeconds: 35,
			Upcoming: []campaign.Upcoming{{At: t0.Add(time.Duration(i) * time.Minute), Target: 600}}}
	}
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	c, err := New(context.Background(), cloud, ds, nil, Options{Plan: planner.Config{MaxNodes: 1000}, Clock: clock, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		id := fmt.Sprintf("i-%05d", i)
		cloud.insts[id] = &Instance{ID: id, State: InstanceRunning, Type: "c6i.large"}
		c.nodes[id] = &node{rec: NodeRecord{ID: id, State: planner.StateReady, Capacity: 100, LaunchedAt: t0.Add(-time.Hour), RunningAt: t0.Add(-time.Hour),
			Load: readyHB(i % 100), LastHeartbeat: t0}}
	}
	// The wish has been 50,000 slots for the whole stabilisation window.
	c.memory = planner.Memory{Samples: []planner.DemandSample{{At: t0.Add(-6 * time.Minute), Slots: 50000, Calls: 50000}, {At: t0.Add(-time.Minute), Slots: 50000, Calls: 50000}}}
	cloud.onTerm = nil
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
