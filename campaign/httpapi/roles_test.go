package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// TestRolesOnEveryRoute: each role reaches exactly the routes its
// permissions allow; the others answer 403 naming the role.
func TestRolesOnEveryRoute(t *testing.T) {
	admin, s := newAPI(t)
	admin.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	admin.json("POST", "/api/v1/campaigns", map[string]any{"name": "X", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	var imp struct{ ID string }
	_, b := admin.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader("phone\n+12125550100\n"))
	json.Unmarshal(b, &imp)

	tokens := map[campaign.Role]*client{campaign.RoleAdmin: admin}
	for _, r := range []campaign.Role{campaign.RoleOps, campaign.RoleManager, campaign.RoleViewer} {
		tok, _, err := s.CreateAPIToken(context.Background(), campaign.Token{Name: string(r) + " token", Role: r}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = &client{t: t, url: admin.url, token: tok}
	}
	id := camp.ID
	for _, rt := range []struct {
		method, path, body string
		allowed            string // roles allowed, by initial: a o m v
	}{
		{"GET", "/api/v1/whoami", "", "aomv"},
		{"GET", "/api/v1/trunks", "", "aomv"},
		{"PUT", "/api/v1/trunks/carrier", `{"max_channels":100,"max_cps":10}`, "ao"},
		{"GET", "/api/v1/campaigns", "", "aomv"},
		{"POST", "/api/v1/campaigns", `{"name":"Y","trunk":"carrier","caller_id":"+14155550100","target":5}`, "am"},
		{"GET", "/api/v1/campaigns/" + id, "", "aomv"},
		{"PUT", "/api/v1/campaigns/" + id, `{"name":"X","trunk":"carrier","caller_id":"+14155550100","target":6}`, "am"},
		{"PUT", "/api/v1/campaigns/" + id + "/flow", `{"start":"bye"}`, "am"},
		{"GET", "/api/v1/campaigns/" + id + "/flow", "", "aomv"},
		{"POST", "/api/v1/campaigns/" + id + "/contacts", "phone\n+12125550199\n", "am"},
		{"GET", "/api/v1/campaigns/" + id + "/stats", "", "aomv"},
		{"GET", "/api/v1/campaigns/" + id + "/results.csv", "", "am"},
		{"GET", "/api/v1/campaigns/" + id + "/recordings", "", "am"},
		{"POST", "/api/v1/campaigns/" + id + "/recycle", `{"dispositions":["busy"],"dry_run":true}`, "am"},
		{"GET", "/api/v1/campaigns/" + id + "/webhook/deliveries", "", "aomv"},
		{"GET", "/api/v1/campaigns/" + id + "/webhook/deliveries/1", "", "am"},            // 404, but allowed
		{"POST", "/api/v1/campaigns/" + id + "/webhook/deliveries/1/redeliver", "", "am"}, // 404, but allowed
		{"GET", "/api/v1/imports/" + imp.ID + "/rejections.csv", "", "am"},
		{"POST", "/api/v1/campaigns/" + id + "/pause", "", "aom"}, // 409: not running, but allowed
		{"POST", "/api/v1/dnc?source=x&version=1&reason=r", "+12125550123\n", "am"},
		{"GET", "/api/v1/tokens", "", "a"},
		{"POST", "/api/v1/tokens", `{"name":"n","role":"viewer"}`, "a"},
	} {
		for role, c := range tokens {
			ctype := "text/csv"
			if strings.HasPrefix(rt.body, "{") {
				ctype = "application/json"
			}
			status, body := c.do(rt.method, rt.path, ctype, strings.NewReader(rt.body))
			allowed := strings.ContainsRune(rt.allowed, rune(role[0]))
			switch {
			case allowed && (status == 401 || status == 403):
				t.Errorf("%s %s as %s: %d %s", rt.method, rt.path, role, status, body)
			case !allowed && (status != 403 || !strings.Contains(string(body), "role "+string(role))):
				t.Errorf("%s %s as %s: %d %s, want 403", rt.method, rt.path, role, status, body)
			}
		}
	}
}

// TestCampaignScopedTokens: a token scoped to campaigns sees only those;
// the others are not found, and it cannot create campaigns.
func TestCampaignScopedTokens(t *testing.T) {
	admin, s := newAPI(t)
	admin.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	ids := make([]string, 2)
	imports := make([]string, 2)
	for i := range ids {
		var c struct{ ID string }
		admin.json("POST", "/api/v1/campaigns", map[string]any{"name": fmt.Sprint("C", i), "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &c)
		ids[i] = c.ID
		var imp struct{ ID string }
		_, b := admin.do("POST", "/api/v1/campaigns/"+c.ID+"/contacts", "text/csv", strings.NewReader("phone\n+1212555010"+fmt.Sprint(i)+"\n"))
		json.Unmarshal(b, &imp)
		imports[i] = imp.ID
	}
	tok, _, err := s.CreateAPIToken(context.Background(), campaign.Token{Name: "flu team", Role: campaign.RoleManager, Campaigns: []string{ids[0]}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := &client{t: t, url: admin.url, token: tok}
	var list []struct{ ID string }
	m.json("GET", "/api/v1/campaigns", nil, 200, &list)
	if len(list) != 1 || list[0].ID != ids[0] {
		t.Fatalf("scoped list: %+v", list)
	}
	m.json("GET", "/api/v1/campaigns/"+ids[0]+"/stats", nil, 200, nil)
	for _, path := range []string{"/api/v1/campaigns/" + ids[1], "/api/v1/campaigns/" + ids[1] + "/results.csv", "/api/v1/imports/" + imports[1] + "/rejections.csv"} {
		if status, body := m.do("GET", path, "", nil); status != 404 {
			t.Errorf("GET %s out of scope: %d %s", path, status, body)
		}
	}
	if status, _ := m.do("GET", "/api/v1/imports/"+imports[0]+"/rejections.csv", "", nil); status != 200 {
		t.Errorf("rejections in scope: %d", status)
	}
	if status, body := m.do("POST", "/api/v1/campaigns/"+ids[1]+"/start", "", nil); status != 404 {
		t.Errorf("start out of scope: %d %s", status, body)
	}
	if status, body := m.do("POST", "/api/v1/campaigns", "application/json", strings.NewReader(`{"name":"Z","trunk":"carrier","caller_id":"+14155550100","target":5}`)); status != 403 {
		t.Errorf("create with a scoped token: %d %s", status, body)
	}
}

// TestTokensOverTheAPI: an admin makes, lists and revokes tokens; a
// revoked or expired token is refused at once.
func TestTokensOverTheAPI(t *testing.T) {
	now := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	admin, _ := newAPI(t)
	var made struct {
		ID, Token string
		Role      string
	}
	admin.json("POST", "/api/v1/tokens", map[string]any{"name": "wallboard", "role": "viewer", "expires_in_seconds": 3600}, 201, &made)
	if made.Role != "viewer" || !strings.HasPrefix(made.Token, "edt_") || len(made.ID) != 12 {
		t.Fatalf("made %+v", made)
	}
	viewer := &client{t: t, url: admin.url, token: made.Token}
	var who struct {
		Name      string
		Role      string
		ExpiresAt time.Time `json:"expires_at"`
		Perms     []string
	}
	viewer.json("GET", "/api/v1/whoami", nil, 200, &who)
	if who.Name != "wallboard" || who.Role != "viewer" || !who.ExpiresAt.Equal(now.Add(time.Hour)) || strings.Join(who.Perms, ",") != "read" {
		t.Fatalf("whoami %+v", who)
	}
	var list []struct{ ID, Name, Role string }
	admin.json("GET", "/api/v1/tokens", nil, 200, &list)
	if len(list) != 2 || (list[0].Name != "wallboard" && list[1].Name != "wallboard") {
		t.Fatalf("list %+v", list)
	}
	for _, bad := range []string{`{"name":"x","role":"root"}`, `{"name":"","role":"viewer"}`, `{"name":"x","role":"ops","campaigns":["c_1"]}`} {
		if status, body := admin.do("POST", "/api/v1/tokens", "application/json", strings.NewReader(bad)); status != 400 {
			t.Errorf("%s: %d %s", bad, status, body)
		}
	}
	admin.json("DELETE", "/api/v1/tokens/"+made.ID, nil, 200, nil)
	if status, body := viewer.do("GET", "/api/v1/campaigns", "", nil); status != 401 || !strings.Contains(string(body), "revoked") {
		t.Fatalf("revoked token: %d %s", status, body)
	}
}
