package httpapi

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// errorOf reads the API's JSON error body; it fails the test on anything else.
func errorOf(t *testing.T, what string, b []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("%s: not a JSON error: %s", what, b)
	}
	return e
}

func TestUnknownRoutesAndMethodsAnswerJSON(t *testing.T) {
	c, _ := newAPI(t)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/v1/nope", "no such endpoint: GET /api/v1/nope"},
		{"POST", "/api/v1/campaigns/x/launch", "no such endpoint"},
		{"DELETE", "/api/v1/whoami", "DELETE is not allowed on /api/v1/whoami; allowed: GET"},
		{"POST", "/api/v1/campaigns/x", "allowed: GET, HEAD, PATCH, PUT"},
	} {
		req, _ := http.NewRequest(tc.method, c.url+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e errorBody
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s: %d %s %+v, want JSON error with %q", tc.method, tc.path, resp.StatusCode, ct, e, tc.want)
		}
	}
}

func TestPatchCampaign(t *testing.T) {
	c, _ := newAPI(t)
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	c.json("PUT", "/api/v1/trunks/backup", map[string]any{"max_channels": 10, "max_cps": 1}, 200, nil)
	var camp campaign.Campaign
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Reminders", "trunk": "carrier", "caller_id": "+14155550100", "target": 50,
		"window": map[string]any{"start": "09:30", "end": "20:00"}, "retry": map[string]any{"busy": map[string]int{"after_seconds": 60}}}, 201, &camp)
	if camp.Window != (campaign.Window{Start: 9*60 + 30, End: 20 * 60}) {
		t.Fatalf("window as HH:MM: %+v", camp.Window)
	}
	path := "/api/v1/campaigns/" + camp.ID

	// Only the named fields change; objects merge.
	var got campaign.Campaign
	status, b := c.do("PATCH", path, "application/merge-patch+json", strings.NewReader(`{"target": 80, "window": {"end": "21:00"}, "retry": {"no_answer": {"after_seconds": 900}}}`))
	if status != 200 || json.Unmarshal(b, &got) != nil {
		t.Fatalf("patch: %d %s", status, b)
	}
	if got.Target != 80 || got.Name != "Reminders" || got.Trunk != "carrier" || got.Window != (campaign.Window{Start: 9*60 + 30, End: 21 * 60}) ||
		got.Retry["busy"].AfterSeconds != 60 || got.Retry["no_answer"].AfterSeconds != 900 || !strings.Contains(string(b), `"start": "09:30"`) {
		t.Fatalf("after patch: %s", b)
	}
	// null resets a field to its default.
	c.json("PATCH", path, map[string]any{"window": nil, "trunk": "backup"}, 200, &got)
	if got.Window != campaign.DefaultWindow || got.Trunk != "backup" || got.Target != 80 {
		t.Fatalf("after null: %+v", got)
	}
	// The older minutes form still reads.
	c.json("PATCH", path, map[string]any{"window": map[string]int{"start": 600, "end": 1200}}, 200, &got)
	if got.Window != (campaign.Window{Start: 600, End: 1200}) {
		t.Fatalf("minutes: %+v", got.Window)
	}

	for _, tc := range []struct {
		body, field, reason string
	}{
		{`{"colour": "red"}`, "colour", "unknown field; a campaign has name, trunk"},
		{`{"status": "running"}`, "status", "POST .../start"},
		{`{"id": "c_other"}`, "id", "cannot be patched"},
		{`{"retry": {"busy": {"after_minutes": 5}}}`, "after_minutes", "unknown field"},
		{`{"window": {"start": "25:00"}}`, "window.start", `"25:00"`},
		{`{"target": "many"}`, "target", "want a JSON integer"},
		{`{"target": 0}`, "target", "want 1 to 100000"},
		{`{"trunk": "nowhere"}`, "trunk", "nowhere"},
		{`[1]`, "body", "want a JSON object"},
	} {
		status, b := c.do("PATCH", path, "application/json", strings.NewReader(tc.body))
		e := errorOf(t, tc.body, b)
		if status < 400 || e.Field != tc.field || !strings.Contains(e.Error, tc.reason) {
			t.Errorf("PATCH %s: %d %+v, want field %q and %q", tc.body, status, e, tc.field, tc.reason)
		}
	}
	// Refused patches changed nothing.
	c.json("GET", path, nil, 200, &got)
	if got.Target != 80 || got.Trunk != "backup" || got.Window != (campaign.Window{Start: 600, End: 1200}) {
		t.Fatalf("a refused patch changed the campaign: %+v", got)
	}
	status, b = c.do("PATCH", "/api/v1/campaigns/c_missing", "application/json", strings.NewReader(`{"target": 5}`))
	if status != 404 {
		t.Fatalf("patch of a missing campaign: %d %s", status, b)
	}
}

func TestResultsCSVColumns(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Export", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?region=US", "text/csv", strings.NewReader("phone,first_name,account\n212-555-0101,Ada,A-1\n212-555-0102,\"Bob, Jr.\",A-2\n"))
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
	noon := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	leases, err := s.Lease(ctx, "n1", 10, noon)
	if err != nil || len(leases) != 2 {
		t.Fatalf("lease: %d %v", len(leases), err)
	}
	results := []campaign.Result{
		{Disposition: campaign.Answered, Cause: 16, StartedAt: noon, AnsweredAt: noon.Add(5 * time.Second), EndedAt: noon.Add(40 * time.Second), Path: []string{"hello", "menu", "confirmed"}, Tags: map[string]string{"outcome": "confirmed"}},
		{Disposition: campaign.Busy, Cause: 17, StartedAt: noon, EndedAt: noon.Add(2 * time.Second), Tags: map[string]string{"carrier_note": "x"}},
	}
	for i, r := range results {
		r.CallID, r.Token = leases[i].CallID, leases[i].Token
		if _, err := s.Record(ctx, "n1", r, noon.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	status, b := c.do("GET", "/api/v1/campaigns/"+camp.ID+"/results.csv", "", nil)
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if status != 200 || err != nil || len(rows) != 3 {
		t.Fatalf("results: %d %v %s", status, err, b)
	}
	want := "phone,attempt,call_id,state,disposition,cause,cause_text,started_at,answered_at,ended_at,path,recording,contact.account,contact.first_name,tag.carrier_note,tag.outcome"
	if got := strings.Join(rows[0], ","); got != want {
		t.Fatalf("header:\n got %s\nwant %s", got, want)
	}
	byPhone := map[string]map[string]string{}
	for _, r := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = r[i]
		}
		byPhone[m["phone"]] = m
	}
	ada, bob := byPhone["+12125550101"], byPhone["+12125550102"]
	if ada == nil || bob == nil {
		t.Fatalf("rows: %v", rows)
	}
	for _, tc := range []struct{ got, want string }{
		{ada["cause"], "16"}, {ada["cause_text"], "Normal call clearing"}, {ada["path"], "hello > menu > confirmed"},
		{ada["contact.first_name"], "Ada"}, {ada["contact.account"], "A-1"}, {ada["tag.outcome"], "confirmed"}, {ada["tag.carrier_note"], ""},
		{bob["cause_text"], "User busy"}, {bob["contact.first_name"], "Bob, Jr."}, {bob["tag.carrier_note"], "x"}, {bob["answered_at"], ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q (rows %v)", tc.got, tc.want, rows)
		}
	}
}
