package planner

import (
	"fmt"
	"strings"
	"testing"
)

func prio(id string, target, priority int) CampaignView {
	c := camp(id, target)
	c.Priority = priority
	return c
}

func TestSharesByPriority(t *testing.T) {
	cfg := Config{}.WithDefaults()
	for _, tc := range []struct {
		name  string
		cs    []CampaignView
		slots int
		want  string
	}{
		{"room for all", []CampaignView{prio("routine", 100, 0), prio("emergency", 150, 100)}, 300, "map[emergency:150 routine:100]"},
		{"emergency first", []CampaignView{prio("routine", 100, 0), prio("emergency", 150, 100)}, 200, "map[emergency:150 routine:50]"},
		{"emergency takes all", []CampaignView{prio("routine", 100, 0), prio("emergency", 250, 100)}, 200, "map[emergency:200 routine:0]"},
		{"three levels", []CampaignView{prio("low", 100, 0), prio("mid", 100, 50), prio("high", 100, 100)}, 250, "map[high:100 low:50 mid:100]"},
		{"one level splits by demand", []CampaignView{prio("a", 300, 0), prio("b", 100, 0)}, 200, "map[a:150 b:50]"},
		{"remainder in id order", []CampaignView{prio("a", 1, 0), prio("b", 1, 0), prio("c", 1, 0)}, 2, "map[a:1 b:1 c:0]"},
		{"no slots", []CampaignView{prio("a", 10, 5)}, 0, "map[a:0]"},
	} {
		if got := fmt.Sprint(Shares(tc.cs, tc.slots, t0, cfg)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestPlanLaunchesForPriorityFirst: with the fleet held by its node cap,
// the plan gives the emergency broadcast its whole demand and says which
// routine campaign waits; with room, everyone is served.
func TestPlanLaunchesForPriorityFirst(t *testing.T) {
	cfg := Config{SlotsPerNode: 100, MaxNodes: 3}
	obs := Observed{Nodes: readyNodes("r", 0), Campaigns: []CampaignView{prio("routine", 200, 0), prio("emergency", 250, 100)}, Memory: fullWindow(450)}
	p := cfg.Plan(obs, t0)
	if got := kinds(p); got != "launch 2" {
		t.Fatalf("actions %q, want launch 2", got)
	}
	if p.Shares["emergency"] != 250 || p.Shares["routine"] != 50 {
		t.Fatalf("shares %v: the emergency campaign first", p.Shares)
	}
	if !strings.Contains(strings.Join(p.Reasons, "\n"), "campaign routine (priority 0) gets 50 of the 200 slots") {
		t.Fatalf("reasons: %q", p.Reasons)
	}
	cfg.MaxNodes = 10
	p = cfg.Plan(obs, t0)
	if p.Shares["emergency"] != 250 || p.Shares["routine"] != 200 || strings.Contains(strings.Join(p.Reasons, "\n"), "higher priorities first") {
		t.Fatalf("with room: shares %v, reasons %q", p.Shares, p.Reasons)
	}
}
