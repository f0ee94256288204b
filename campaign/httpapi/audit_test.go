package httpapi

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every change through the API is recorded with the name of the token
// that made it, what it was and when; reads are not.
func TestAuditLogNamesWhoChangedWhat(t *testing.T) {
	c, s := newAPI(t)
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	alice, err := s.CreateToken(context.Background(), "alice", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.token = alice
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Renewals", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	c.json("GET", "/api/v1/campaigns/"+camp.ID, nil, 200, nil)
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Bad", "trunk": "carrier", "caller_id": "+14155550100", "target": 5, "window": map[string]int{"start": 0, "end": 1440}}, 400, nil)
	if st, _ := c.do("DELETE", "/api/v1/dnc/+12125550100?reason=asked+by+phone", "", nil); st != 404 {
		t.Fatalf("delete: %d", st)
	}
	var log []struct {
		ID     int64
		At     time.Time
		Actor  string
		Method string
		Path   string
		Status int
		Detail string
	}
	c.json("GET", "/api/v1/audit", nil, 200, &log)
	var got []string
	for _, e := range log {
		got = append(got, e.Actor+" "+e.Method+" "+e.Path+" "+itoa(e.Status))
		if e.At.IsZero() {
			t.Errorf("entry %d has no time", e.ID)
		}
	}
	want := []string{
		"test PUT /api/v1/trunks/carrier 200",
		"alice POST /api/v1/campaigns 201",
		"alice POST /api/v1/campaigns 400",
		"alice DELETE /api/v1/dnc/+12125550100?reason=asked+by+phone 404",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(log[1].Detail, `"name":"Renewals"`) {
		t.Errorf("the change is not recorded: %q", log[1].Detail)
	}
	c.json("GET", "/api/v1/audit?after="+itoa(int(log[2].ID)), nil, 200, &log)
	if len(log) != 1 || log[0].Method != "DELETE" {
		t.Fatalf("after: %+v", log)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
