package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A campaign manager keeps a campaign's own do-not-call list beside the
// internal one: uploads it, searches it, takes a number off it; a number
// on it is not dialled by that campaign, and is by another.
func TestCampaignDNCList(t *testing.T) {
	c, s := newAPI(t)
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var ids []string
	for _, name := range []string{"Renewals", "Survey"} {
		var camp struct{ ID string }
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": name, "trunk": "carrier", "caller_id": "+14155550100", "target": 50}, 201, &camp)
		ids = append(ids, camp.ID)
		if st, b := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader("phone\n2125550101\n2125550102\n")); st != 200 {
			t.Fatalf("import: %d %s", st, b)
		}
		c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
	}
	if st, b := c.do("POST", "/api/v1/dnc?list="+ids[0]+"&source=renewals+opt-outs&reason=opted+out", "text/csv", strings.NewReader("phone\n212-555-0101\n212-555-0199\n")); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	if st, b := c.do("POST", "/api/v1/dnc?list=c_nope&source=x&reason=r", "text/csv", strings.NewReader("phone\n212-555-0101\n")); st != 404 {
		t.Fatalf("upload to an unknown campaign's list: %d %s", st, b)
	}
	var got []struct{ Phone, List, Source string }
	c.json("GET", "/api/v1/dnc?list="+ids[0]+"&prefix=%2B1212555010", nil, 200, &got)
	if len(got) != 1 || got[0].Phone != "+12125550101" || got[0].List != ids[0] || got[0].Source != "renewals opt-outs" {
		t.Fatalf("search: %+v", got)
	}
	c.json("GET", "/api/v1/dnc", nil, 200, &got)
	if len(got) != 0 {
		t.Fatalf("the internal list has %+v", got)
	}
	for _, id := range ids {
		c.json("POST", "/api/v1/campaigns/"+id+"/start", nil, 200, nil)
	}
	leases, err := s.Lease(context.Background(), "n1", 10, time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var dialled []string
	for _, l := range leases {
		dialled = append(dialled, l.CampaignID+" "+l.Number)
		if l.CampaignID == ids[0] && l.Number == "+12125550101" {
			t.Errorf("%s dialled %s from its own do-not-call list", l.CampaignID, l.Number)
		}
	}
	if len(leases) != 3 {
		t.Fatalf("leased %v, want all but the listed number", dialled)
	}
	if st, b := c.do("DELETE", "/api/v1/dnc/+12125550199?reason=mistake&list="+ids[0], "", nil); st != 204 {
		t.Fatalf("delete: %d %s", st, b)
	}
	if st, b := c.do("DELETE", "/api/v1/dnc/+12125550199?reason=mistake&list="+ids[0], "", nil); st != 404 {
		t.Fatalf("delete again: %d %s", st, b)
	}
	c.json("GET", "/api/v1/dnc?list="+ids[0], nil, 200, &got)
	if b, _ := json.Marshal(got); len(got) != 1 {
		t.Fatalf("after delete: %s", b)
	}
}
