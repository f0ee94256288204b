package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// The stats of a campaign whose flow transfers to people carry its
// 30-day abandon rate, its cap and the pace it dials at.
func TestAbandonRateInStats(t *testing.T) {
	eachAPI(t, func(t *testing.T, c *client, s *sqlstore.Store) {
		c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
		var bad struct{ Field string }
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Sales", "trunk": "carrier", "caller_id": "+14155550100", "target": 50, "abandon_cap": 0.5}, 400, &bad)
		if bad.Field != "abandon_cap" {
			t.Fatalf("abandon_cap 0.5: %+v", bad)
		}
		var camp struct{ ID string }
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Sales", "trunk": "carrier", "caller_id": "+14155550100", "target": 50, "abandon_cap": 0.02}, 201, &camp)
		if st, b := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader("phone\n2125550101\n2125550102\n")); st != 200 {
			t.Fatalf("import: %d %s", st, b)
		}
		var stats struct{ Abandon *campaign.AbandonStats }
		c.json("GET", "/api/v1/campaigns/"+camp.ID+"/stats", nil, 200, &stats)
		if stats.Abandon != nil {
			t.Fatalf("abandon stats before a transferring flow: %+v", stats.Abandon)
		}
		c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "agent", "states": map[string]any{
			"agent": map[string]any{"transfer": map[string]any{"to": "+14155550199", "timeout_seconds": 20}, "next": "bye", "failed": "sorry"},
			"sorry": map[string]any{"play": []string{"x/sorry"}, "next": "bye"}, "bye": map[string]any{"hangup": true}}}, 200, nil)
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
		ls, err := s.Lease(context.Background(), "n1", 10, time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
		if err != nil || len(ls) != 1 {
			t.Fatalf("slow start: leased %d (%v), want 1", len(ls), err)
		}
		if _, err := s.Record(context.Background(), "n1", campaign.Result{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Answered,
			Tags: map[string]string{campaign.TagTransfer: campaign.TransferNoOneFree}}, time.Date(2026, 3, 10, 16, 1, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		c.json("GET", "/api/v1/campaigns/"+camp.ID+"/stats", nil, 200, &stats)
		if a := stats.Abandon; a == nil || a.Live != 1 || a.Abandoned != 1 || a.Rate != 1 || a.Cap != 0.02 || a.Pace != 1 {
			t.Fatalf("abandon stats %+v", a)
		}
	})
}
