package agenttest

import (
	"fmt"
	"testing"
)

// TestConformanceOnSimulator runs the conformance table on the simulated
// Asterisk. Two seeds: the simulator draws the order of OriginateResponse
// and Hangup per seed, and the agent must report the same either way.
func TestConformanceOnSimulator(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			Run(t, &SimEnv{Seed: seed}, Scenarios(), true)
		})
	}
}

func TestNumberPlanCoversEveryScenario(t *testing.T) {
	seen := map[string]bool{}
	for b, n := range NumberPlan {
		if seen[n] {
			t.Errorf("%s shares number %s", b, n)
		}
		seen[n] = true
	}
	for _, sc := range Scenarios() {
		if sc.Number() == "" {
			t.Errorf("%s: callee %q has no number", sc.Name, sc.Callee)
		}
		if _, ok := Flows[sc.Flow]; !ok {
			t.Errorf("%s: no flow %q", sc.Name, sc.Flow)
		}
	}
	if len(SimCallees(0)) != len(NumberPlan) {
		t.Errorf("simulator knows %d numbers of %d", len(SimCallees(0)), len(NumberPlan))
	}
}
