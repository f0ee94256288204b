package controller

import (
	"strings"

	"github.com/elastidial/elastidial/controller/metrics"
)

// observeMetrics publishes the last plan and the registry's counts.
func (c *Controller) observeMetrics(p Plan) {
	if c.cfg.Metrics == nil {
		return
	}
	counts := map[string]int{}
	for _, s := range []NodeState{StateRequested, StatePending, StateBooting, StateRegistered, StateSyncing, StateReady, StateDraining, StateParking, StateParked, StateResuming, StateTerminating} {
		counts[string(s)] = 0
	}
	for _, v := range c.Observe().Nodes {
		counts[string(v.State)]++
	}
	c.cfg.Metrics.Observe(metrics.Fleet{DemandCalls: p.DemandCalls, WantedSlots: p.WantedSlots, ReadySlots: p.ReadySlots,
		ComingSlots: p.ComingSlots, DesiredNodes: p.DesiredNodes, BudgetHeld: budgetHeld(p), Nodes: counts, CostPerHour: c.CostPerHour()})
}

// budgetHeld reports whether the budget cap held capacity down in p.
func budgetHeld(p Plan) bool {
	for _, r := range p.Reasons {
		if strings.HasPrefix(r, "budget cap") {
			return true
		}
	}
	return false
}
