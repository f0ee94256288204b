package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// TestResultSearchAndOutcomes: the dashboard's live view counts what the
// flow captured and finds attempts by phone as people type it, by tag or
// contact field, and by how the call ended, a page at a time.
func TestResultSearchAndOutcomes(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Search", "trunk": "carrier", "caller_id": "+14155550100", "target": 50}, 201, &camp)
	c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?region=US", "text/csv", strings.NewReader("phone,clinic\n212-555-0101,North\n212-555-0102,South\n212-555-0103,North\n"))
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "bye", "states": map[string]any{"bye": map[string]any{"hangup": true}}}, 200, nil)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
	noon := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	ls, err := s.Lease(ctx, "n1", 10, noon)
	if err != nil || len(ls) != 3 {
		t.Fatalf("lease: %d %v", len(ls), err)
	}
	outcome := map[string]campaign.Result{
		"+12125550101": {Disposition: campaign.Answered, AnsweredAt: noon.Add(time.Second), Tags: map[string]string{"result": "confirmed"}},
		"+12125550102": {Disposition: campaign.Answered, AnsweredAt: noon.Add(time.Second)}, // hung up before the menu
		"+12125550103": {Disposition: campaign.Busy},
	}
	for _, l := range ls {
		r := outcome[l.Number]
		r.CallID, r.Token, r.StartedAt, r.EndedAt = l.CallID, l.Token, noon, noon.Add(30*time.Second)
		if ok, err := s.Record(ctx, "n1", r, noon.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("record %s: %v %v", l.Number, ok, err)
		}
	}
	var o Outcomes
	c.json("GET", "/api/v1/campaigns/"+camp.ID+"/outcomes", nil, 200, &o)
	if o.Attempts != 3 || o.Answered != 2 || o.AnsweredWithoutOutcome != 1 || o.Tags["result"]["confirmed"] != 1 || o.ByDisposition["busy"] != 1 {
		t.Fatalf("outcomes: %+v", o)
	}
	for _, tc := range []struct {
		q      string
		phones []string
	}{
		{"", []string{"+12125550101", "+12125550102", "+12125550103"}},
		{"q=(212)+555-0102", []string{"+12125550102"}},
		{"q=CONFIRMED", []string{"+12125550101"}},
		{"q=north", []string{"+12125550101", "+12125550103"}},
		{"disposition=busy", []string{"+12125550103"}},
		{"q=north&disposition=answered", []string{"+12125550101"}},
		{"limit=1&offset=1", []string{"+12125550102"}},
	} {
		var page ResultPage
		c.json("GET", "/api/v1/campaigns/"+camp.ID+"/results?"+tc.q, nil, 200, &page)
		var got []string
		for _, r := range page.Rows {
			got = append(got, r.Phone)
		}
		if page.Total != 3 || (tc.q != "limit=1&offset=1" && fmt.Sprint(got) != fmt.Sprint(tc.phones)) || (tc.q == "limit=1&offset=1" && (page.Matched != 3 || len(got) != 1)) {
			t.Errorf("%q: total %d matched %d %v, want %v", tc.q, page.Total, page.Matched, got, tc.phones)
		}
	}
	for q, want := range map[string]string{"limit=0": "limit", "limit=9999": "limit", "offset=-1": "offset", "disposition=maybe": "disposition"} {
		status, body := c.do("GET", "/api/v1/campaigns/"+camp.ID+"/results?"+q, "", nil)
		if status != 400 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s", q, status, body)
		}
	}
}
