package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/internal/testenv"
)

type client struct {
	t     *testing.T
	url   string
	token string
}

func (c *client) do(method, path, ctype string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *client) json(method, path string, in any, wantStatus int, out any) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	status, b := c.do(method, path, "application/json", body)
	if status != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// newAPI serves an API over a fresh store; opts adjust the API first.
func newAPI(t *testing.T, opts ...func(*API)) (*client, *sqlstore.Store) {
	return newAPIOn(t, filepath.Join(t.TempDir(), "api.db"), opts...)
}

// eachAPI runs a test through the API over SQLite and over PostgreSQL.
func eachAPI(t *testing.T, fn func(t *testing.T, c *client, s *sqlstore.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		c, s := newAPI(t)
		fn(t, c, s)
	})
	t.Run("postgres", func(t *testing.T) {
		c, s := newAPIOn(t, testenv.PostgresDSN(t))
		fn(t, c, s)
	})
}

// newAPIOn serves an API over a fresh store at dsn.
func newAPIOn(t *testing.T, dsn string, opts ...func(*API)) (*client, *sqlstore.Store) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	noon := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	a := &API{Store: s, Now: func() time.Time { return noon }}
	for _, o := range opts {
		o(a)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	tok, err := s.CreateToken(ctx, "test", noon)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, url: srv.URL, token: tok}, s
}

func TestCampaignManagerJourney(t *testing.T) {
	c, s := newAPI(t)
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID, Status string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Reminders", "trunk": "carrier", "caller_id": "+14155550100", "target": 50}, 201, &camp)
	if camp.Status != "draft" {
		t.Fatalf("new campaign is %q", camp.Status)
	}

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "list.csv")
	fw.Write([]byte("Name,Phone\nAda,212-555-0101\nBob,not a number\nCy,212-555-0102\n"))
	mw.Close()
	status, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?region=US", mw.FormDataContentType(), &form)
	var rep struct {
		Rows, Imported, Rejected int
		Rejections               []struct {
			Line   int
			Reason string
		}
		RejectionsURL string `json:"rejections_url"`
	}
	json.Unmarshal(body, &rep)
	if status != 200 || rep.Rows != 3 || rep.Imported != 2 || rep.Rejected != 1 || rep.Rejections[0].Line != 3 {
		t.Fatalf("import: %d %s", status, body)
	}
	status, body = c.do("GET", rep.RejectionsURL, "", nil)
	if status != 200 || !strings.Contains(string(body), `3,"""not a number"" is not a phone number (no digits)"`) {
		t.Fatalf("rejections csv: %d %s", status, body)
	}

	// Starting needs a flow.
	status, body = c.do("POST", "/api/v1/campaigns/"+camp.ID+"/start", "", nil)
	if status != 409 || !strings.Contains(string(body), "no IVR flow") {
		t.Fatalf("start without flow: %d %s", status, body)
	}
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, &camp)
	if camp.Status != "running" {
		t.Fatalf("status after start: %q", camp.Status)
	}
	leases, err := s.Lease(context.Background(), "n1", 10, time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
	if err != nil || len(leases) != 2 {
		t.Fatalf("lease after start: %d %v", len(leases), err)
	}
	var st struct {
		Contacts   map[string]int
		InProgress int `json:"in_progress"`
	}
	c.json("GET", "/api/v1/campaigns/"+camp.ID+"/stats", nil, 200, &st)
	if st.InProgress != 2 || st.Contacts["leased"] != 2 {
		t.Fatalf("stats = %+v", st)
	}
	// The export lists finished attempts; calls in progress are in stats.
	if _, err := s.Record(context.Background(), "n1", campaign.Result{CallID: leases[0].CallID, Token: leases[0].Token, Disposition: campaign.Answered}, time.Date(2026, 3, 10, 16, 1, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	status, body = c.do("GET", "/api/v1/campaigns/"+camp.ID+"/results.csv", "", nil)
	if status != 200 || strings.Count(string(body), "\n") != 2 || !strings.Contains(string(body), leases[0].Number+",1,"+leases[0].CallID+",done,answered") {
		t.Fatalf("results: %d %s", status, body)
	}
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/pause", nil, 200, &camp)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/resume", nil, 200, &camp)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/stop", nil, 200, &camp)
	if camp.Status != "completed" {
		t.Fatalf("after stop: %q", camp.Status)
	}
}

func TestHostileRequests(t *testing.T) {
	c, _ := newAPI(t)
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "X", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		want                            string
	}{
		{"bad json", "POST", "/api/v1/campaigns", "application/json", `{"name":`, 400, "not valid JSON"},
		{"unknown field", "POST", "/api/v1/campaigns", "application/json", `{"nmae":"x"}`, 400, "unknown field"},
		{"wrong type", "POST", "/api/v1/campaigns", "application/json", `{"target":"many"}`, 400, `"field": "target"`},
		{"two objects", "POST", "/api/v1/campaigns", "application/json", `{} {}`, 400, "more"},
		{"validation", "POST", "/api/v1/campaigns", "application/json", `{"name":"x","trunk":"carrier","caller_id":"555","target":5}`, 400, `"field": "caller_id"`},
		{"huge body", "POST", "/api/v1/campaigns", "application/json", `{"name":"` + strings.Repeat("a", MaxJSONBytes) + `"}`, 413, "over"},
		{"xml", "POST", "/api/v1/campaigns", "text/xml", `<x/>`, 400, "application/json"},
		{"unknown campaign", "GET", "/api/v1/campaigns/c_nope", "", "", 404, "not found"},
		{"binary dial list", "POST", "/api/v1/campaigns/" + camp.ID + "/contacts", "text/csv", "PK\x03\x04\x00\x00binary", 422, "not a CSV text file"},
		{"no phone column", "POST", "/api/v1/campaigns/" + camp.ID + "/contacts", "text/csv", "name,email\na,b\n", 422, "no phone column"},
		{"multipart without file", "POST", "/api/v1/campaigns/" + camp.ID + "/contacts", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n", 400, `no part named \"file\"`},
		{"bad action", "POST", "/api/v1/campaigns/" + camp.ID + "/explode", "", "", 404, "no such endpoint: POST"},
		{"bad transition", "POST", "/api/v1/campaigns/" + camp.ID + "/pause", "", "", 409, "cannot become paused"},
		{"flow not an object", "PUT", "/api/v1/campaigns/" + camp.ID + "/flow", "application/json", `[1,2]`, 400, "JSON object"},
		{"NUL past the sniff", "POST", "/api/v1/campaigns/" + camp.ID + "/contacts", "text/csv", "phone\n" + strings.Repeat("2125550100\n", 8000) + "21255\x0001\n", 422, "line 8002: a NUL byte"},
		{"rejections of an unknown import", "GET", "/api/v1/imports/i_nope/rejections.csv", "", "", 404, "i_nope"},
		{"trunk max_cps huge", "PUT", "/api/v1/trunks/t2", "application/json", `{"max_channels":10,"max_cps":1e300}`, 400, `"field": "max_cps"`},
		{"campaign max_cps tiny", "POST", "/api/v1/campaigns", "application/json", `{"name":"x","trunk":"carrier","caller_id":"+14155550100","target":5,"max_cps":1e-300}`, 400, `"field": "max_cps"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.do(tc.method, tc.path, tc.ctype, strings.NewReader(tc.body))
			if status != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("status %d, body %s; want %d containing %q", status, body, tc.status, tc.want)
			}
		})
	}
	anon := &client{t: t, url: c.url}
	if status, body := anon.do("GET", "/api/v1/campaigns", "", nil); status != 401 || !strings.Contains(string(body), "Bearer") {
		t.Fatalf("no token: %d %s", status, body)
	}
	anon.token = "edt_forged"
	if status, _ := anon.do("GET", "/api/v1/campaigns", "", nil); status != 401 {
		t.Fatalf("forged token: %d", status)
	}
}

// TestDemandChangedWakesScaler: every change that can move demand tells the
// scaler once it is stored; reads and refused changes do not.
func TestDemandChangedWakesScaler(t *testing.T) {
	wakes := 0
	c, _ := newAPI(t, func(a *API) { a.DemandChanged = func() { wakes++ } })
	step := func(what string, want int) {
		t.Helper()
		if wakes != want {
			t.Fatalf("after %s: %d wakes, want %d", what, wakes, want)
		}
	}
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	step("trunk", 1)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "R", "trunk": "carrier", "caller_id": "+14155550100", "target": 50}, 201, &camp)
	step("create", 2)
	c.json("GET", "/api/v1/campaigns/"+camp.ID, nil, 200, nil)
	step("read", 2)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 409, nil)
	step("refused start", 2)
	// A new flow may move the campaign's calls on or off spot nodes.
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
	step("flow", 3)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
	step("start", 4)
	c.json("PUT", "/api/v1/campaigns/"+camp.ID, map[string]any{"name": "R", "trunk": "carrier", "caller_id": "+14155550100", "target": 500}, 200, nil)
	step("target raised", 5)
}

// TestDialListRequestCap: a dial-list body over the cap is refused with
// 413 and nothing of it is kept.
func TestDialListRequestCap(t *testing.T) {
	c, s := newAPI(t, func(a *API) { a.MaxListBytes = 64 << 10 })
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "X", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	var b strings.Builder
	b.WriteString("phone\n")
	for i := 0; b.Len() <= 64<<10; i++ {
		fmt.Fprintf(&b, "21255%05d\n", i)
	}
	status, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader(b.String()))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "65536 bytes") {
		t.Fatalf("over the cap: %d %s", status, body)
	}
	if st, err := s.Stats(context.Background(), camp.ID); err != nil || st.Contacts["pending"] != 0 {
		t.Fatalf("contacts kept from a refused list: %+v %v", st.Contacts, err)
	}
	status, body = c.do("POST", "/api/v1/dnc?source=x&version=1&reason=r", "text/csv", strings.NewReader(b.String()))
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("dnc over the cap: %d %s", status, body)
	}
}

// TestUploadSpooledAndRemoved: a dial list is read whole into a
// temporary file before the store sees it, and the file (phone numbers)
// is gone once the import is over, kept, refused or cut off.
func TestUploadSpooledAndRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	c, s := newAPI(t, func(a *API) { a.MaxListBytes = 64 << 10 })
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "X", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	left := func(when string) {
		t.Helper()
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Fatalf("after %s, the temporary folder holds %v", when, ents)
		}
	}
	if status, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader("phone\n2125550100\n2125550101\n")); status != 200 {
		t.Fatalf("import: %d %s", status, body)
	}
	left("an import")
	if st, _ := s.Stats(context.Background(), camp.ID); st.Contacts["pending"] != 2 {
		t.Fatalf("contacts: %+v", st.Contacts)
	}
	if status, _ := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader(strings.Repeat("2125550199\n", 7000))); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the cap: %d", status)
	}
	left("an upload over the cap")
	// An upload cut off halfway: its connection closes.
	conn, err := net.Dial("tcp", strings.TrimPrefix(c.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/v1/campaigns/%s/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\nphone\n2125550102\n", camp.ID, c.token)
	time.Sleep(100 * time.Millisecond) // the server reads the start
	conn.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ents, _ := os.ReadDir(tmp); len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			left("an upload cut off")
		}
	}
	if st, _ := s.Stats(context.Background(), camp.ID); st.Contacts["pending"] != 2 {
		t.Fatalf("contacts after a cut upload: %+v", st.Contacts)
	}
}

// TestFlowLengthShown: the flow's longest call, computed when it is saved,
// is in the save's answer and on the campaign; PATCH refuses it by name.
func TestFlowLengthShown(t *testing.T) {
	c, _ := newAPI(t, func(a *API) {
		a.FlowLength = func(_ context.Context, doc []byte) (campaign.FlowLength, error) {
			if strings.Contains(string(doc), "loop") {
				return campaign.FlowLength{Unbounded: true, Why: `state "loop": goes back to "loop"`}, nil
			}
			return campaign.FlowLength{Seconds: 42.5}, nil
		}
	})
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "R", "trunk": "carrier", "caller_id": "+14155550100", "target": 50}, 201, &camp)
	var saved struct {
		FlowVersion int                  `json:"flow_version"`
		FlowLength  *campaign.FlowLength `json:"flow_length"`
	}
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, &saved)
	if saved.FlowVersion != 1 || saved.FlowLength == nil || saved.FlowLength.Seconds != 42.5 {
		t.Fatalf("save: %+v", saved)
	}
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "loop"}, 200, nil)
	var got campaign.Campaign
	c.json("GET", "/api/v1/campaigns/"+camp.ID, nil, 200, &got)
	if got.FlowLength == nil || !got.FlowLength.Unbounded || !strings.Contains(got.FlowLength.Why, "loop") {
		t.Fatalf("campaign: %+v", got.FlowLength)
	}
	c.json("PATCH", "/api/v1/campaigns/"+camp.ID, map[string]any{"flow_length": map[string]any{"seconds": 1}}, 400, nil)
}
