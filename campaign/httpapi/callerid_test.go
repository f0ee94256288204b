package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// A campaign manager gives a campaign a pool of local numbers and a dial
// list with some contacts' own caller IDs; each lease shows the right one.
func TestCallerIDThroughTheAPI(t *testing.T) {
	eachAPI(t, func(t *testing.T, c *client, s *sqlstore.Store) {
		c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
		var bad struct{ Error, Field string }
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Local", "trunk": "carrier", "caller_id": "4155550100", "target": 50,
			"caller_id_pool": []string{"212-555-0001", "0001"}}, 400, &bad)
		if bad.Field != "caller_id_pool[1]" || !strings.Contains(bad.Error, `"0001"`) {
			t.Fatalf("bad pool: %+v", bad)
		}
		var camp struct {
			ID       string
			CallerID string   `json:"caller_id"`
			Pool     []string `json:"caller_id_pool"`
			Cap      int      `json:"caller_id_daily_cap"`
		}
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Local", "trunk": "carrier", "caller_id": "4155550100", "target": 50,
			"caller_id_pool": []string{"212-555-0001"}, "caller_id_daily_cap": 1}, 201, &camp)
		if camp.CallerID != "+14155550100" || len(camp.Pool) != 1 || camp.Pool[0] != "+12125550001" || camp.Cap != 1 {
			t.Fatalf("campaign %+v", camp)
		}
		st, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?caller_id_column=shown", "text/csv",
			strings.NewReader("phone,shown\n2125550101,\n2125550102,\n2125550103,+1 617 555 0000\n2125550104,+1 900 555\n"))
		var rep struct {
			Rejections []struct {
				Line   int
				Reason string
			}
		}
		json.Unmarshal(body, &rep)
		if st != 200 || len(rep.Rejections) != 1 || rep.Rejections[0].Line != 5 || !strings.HasPrefix(rep.Rejections[0].Reason, `column "shown": "+1 900 555" is not a valid caller ID`) {
			t.Fatalf("import: %d %s", st, body)
		}
		c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
		ls, err := s.Lease(context.Background(), "n1", 10, time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		shown := map[string]int{}
		for _, l := range ls {
			shown[l.CallerID]++
		}
		if len(ls) != 3 || shown["+12125550001"] != 1 || shown["+14155550100"] != 1 || shown["+16175550000"] != 1 {
			t.Fatalf("caller IDs shown %v; want the pool number once (its cap), the campaign's, the contact's own", shown)
		}
	})
}
