package controller

import (
	"strings"

	"github.com/elastidial/elastidial/controller/metrics"
	"github.com/elastidial/elastidial/controller/planner"
)

// observeMetrics publishes the last plan and the registry's counts.
func (c *Controller) observeMetrics(p planner.Plan) {
	if c.cfg.Metrics == nil {
		return
	}
	counts := map[string]int{}
	for _, s := range []planner.NodeState{planner.StateRequested, planner.StatePending, planner.StateBooting, planner.StateRegistered, planner.StateSyncing, planner.StateReady, planner.StateDraining, planner.StateParking, planner.StateParked, planner.StateResuming, planner.StateTerminating} {
		counts[string(s)] = 0
	}
	for _, v := range c.Observe().Nodes {
		counts[string(v.State)]++
	}
	c.cfg.Metrics.Observe(metrics.Fleet{DemandCalls: p.DemandCalls, WantedSlots: p.WantedSlots, ReadySlots: p.ReadySlots,
		ComingSlots: p.ComingSlots, DesiredNodes: p.DesiredNodes, BudgetHeld: budgetHeld(p), Nodes: counts, CostPerHour: c.CostPerHour()})
}

// budgetHeld reports whether the budget cap held capacity down in p.
func budgetHeld(p planner.Plan) bool {
	for _, r := range p.Reasons {
		if strings.HasPrefix(r, "budget cap") {
			return true
		}
	}
	return false
}
