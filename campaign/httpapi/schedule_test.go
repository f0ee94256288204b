package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller/planner"
)

// A campaign started with a start_at ahead is scheduled: it dials nothing
// before then, the scaler's forecast warms nodes for it once its start is
// within the boot lead, and at start_at it is running and dials.
func TestScheduledStart(t *testing.T) {
	eachAPI(t, func(t *testing.T, c *client, s *sqlstore.Store) {
		ctx := context.Background()
		noon := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
		start := noon.Add(30 * time.Minute)
		c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
		var camp struct {
			ID, Status string
			StartAt    time.Time `json:"start_at"`
		}
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Morning", "trunk": "carrier", "caller_id": "+14155550100", "target": 20, "start_at": start}, 201, &camp)
		if st, b := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader("phone\n2125550101\n2125550102\n2125550103\n")); st != 200 {
			t.Fatalf("import: %d %s", st, b)
		}
		if st, b := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/start", "", nil); st != 409 || !strings.Contains(string(b), "flow") {
			t.Fatalf("scheduled without a flow: %d %s", st, b)
		}
		c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, &camp)
		if camp.Status != "scheduled" {
			t.Fatalf("started with start_at ahead: %q, want scheduled", camp.Status)
		}
		if ls, err := s.Lease(ctx, "n1", 10, noon); err != nil || len(ls) != 0 {
			t.Fatalf("leased %d before start_at (%v)", len(ls), err)
		}
		cfg := planner.Config{}.WithDefaults()
		wanted := func(at time.Time) int {
			ds, err := s.Demand(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, d := range ds {
				n += planner.CampaignDemand(planner.CampaignView{ID: d.CampaignID, Target: d.Target, Callable: d.Callable, Active: d.Active,
					MaxCPS: d.MaxCPS, Trunk: d.Trunk, TrunkChannels: d.TrunkChannels, TrunkCPS: d.TrunkCPS, AvgAttemptSeconds: d.AvgAttemptSeconds, Upcoming: d.Upcoming}, at, cfg)
			}
			return n
		}
		if n := wanted(noon); n != 0 {
			t.Errorf("demand half an hour before start: %d, want 0", n)
		}
		if n := wanted(start.Add(-cfg.BootLead + time.Minute)); n != 3 {
			t.Errorf("demand within the boot lead of start: %d, want the 3 contacts", n)
		}
		// Paused and resumed before its start, it is scheduled again.
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/pause", nil, 200, &camp)
		if n := wanted(start.Add(-time.Minute)); camp.Status != "paused" || n != 0 {
			t.Fatalf("paused: %q, demand %d", camp.Status, n)
		}
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/resume", nil, 200, &camp)
		if camp.Status != "scheduled" {
			t.Fatalf("resumed before start_at: %q", camp.Status)
		}
		if ls, err := s.Lease(ctx, "n1", 10, start); err != nil || len(ls) != 3 {
			t.Fatalf("leased %d at start_at (%v), want 3", len(ls), err)
		}
		c.json("GET", "/api/v1/campaigns/"+camp.ID, nil, 200, &camp)
		if camp.Status != "running" {
			t.Fatalf("after start_at: %q, want running", camp.Status)
		}

		// A draft with a start_at is not dialled nor forecast: only a
		// campaign someone started is.
		var draft struct{ ID string }
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Draft", "trunk": "carrier", "caller_id": "+14155550100", "target": 20, "start_at": start}, 201, &draft)
		ds, _ := s.Demand(ctx, start.Add(time.Minute))
		for _, d := range ds {
			if d.CampaignID == draft.ID {
				t.Fatalf("a draft asks for capacity: %+v", d)
			}
		}
	})
}
