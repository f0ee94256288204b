package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// A token scoped to some campaigns changes and reads only their own
// do-not-call lists; it may add to the internal list (that only stops
// calls) but never take a number off it, which would let every campaign
// call it again.
func TestDNCListsAndScopedTokens(t *testing.T) {
	admin, s := newAPI(t)
	admin.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	ids := make([]string, 2)
	for i := range ids {
		var c struct{ ID string }
		admin.json("POST", "/api/v1/campaigns", map[string]any{"name": "C" + string(rune('A'+i)), "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &c)
		ids[i] = c.ID
		if st, b := admin.do("POST", "/api/v1/dnc?list="+c.ID+"&source=x&reason=r", "text/csv", strings.NewReader("2125550101\n")); st != 200 {
			t.Fatalf("admin upload: %d %s", st, b)
		}
	}
	if st, b := admin.do("POST", "/api/v1/dnc?source=x&version=1&reason=r", "text/csv", strings.NewReader("2125550102\n")); st != 200 {
		t.Fatalf("admin upload: %d %s", st, b)
	}
	tok, _, err := s.CreateAPIToken(context.Background(), campaign.Token{Name: "team a", Role: campaign.RoleManager, Campaigns: []string{ids[0]}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := &client{t: t, url: admin.url, token: tok}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/v1/dnc?list=" + ids[0], "", 200},
		{"GET", "/api/v1/dnc?list=" + ids[1], "", 404},
		{"POST", "/api/v1/dnc?list=" + ids[1] + "&source=x&reason=r", "2125550103\n", 404},
		{"DELETE", "/api/v1/dnc/+12125550101?reason=r&list=" + ids[1], "", 404},
		{"DELETE", "/api/v1/dnc/+12125550102?reason=r", "", 403},
		{"POST", "/api/v1/dnc?source=x&version=1&reason=r", "2125550104\n", 200},
		{"DELETE", "/api/v1/dnc/+12125550101?reason=r&list=" + ids[0], "", 204},
	} {
		if st, b := m.do(tc.method, tc.path, "text/csv", strings.NewReader(tc.body)); st != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, st, b, tc.want)
		}
	}
	var imports []struct{ List string }
	m.json("GET", "/api/v1/dnc/imports", nil, 200, &imports)
	for _, i := range imports {
		if i.List == ids[1] {
			t.Errorf("a scoped token sees the imports of another campaign's list: %+v", imports)
		}
	}
	if len(imports) != 3 {
		t.Errorf("imports seen: %+v, want its campaign's and the internal list's", imports)
	}
	if got, _ := s.SearchDNC(context.Background(), ids[1], "", "", 10); len(got) != 1 {
		t.Fatalf("the other campaign's list: %+v", got)
	}
	if got, _ := s.SearchDNC(context.Background(), "", "+12125550102", "", 10); len(got) != 1 {
		t.Fatalf("the internal list lost a number: %+v", got)
	}
}
