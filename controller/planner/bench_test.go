package planner

import (
	"fmt"
	"testing"
	"time"
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
