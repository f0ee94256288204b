package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign/httpapi"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/testenv"
)

// wd is a minimal W3C WebDriver client for chromedriver.
type wd struct {
	t       *testing.T
	base    string
	session string
}

func (d *wd) do(method, path string, in any) map[string]any {
	d.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		d.t.Fatalf("webdriver %s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

func (d *wd) s(path string) string { return "/session/" + d.session + path }

// find returns an element id, or "" when there is none.
func (d *wd) find(css string) string {
	d.t.Helper()
	out := d.do("POST", d.s("/elements"), map[string]any{"using": "css selector", "value": css})
	els, _ := out["value"].([]any)
	if len(els) == 0 {
		return ""
	}
	for _, v := range els[0].(map[string]any) {
		return v.(string)
	}
	return ""
}

func (d *wd) must(css string) string {
	d.t.Helper()
	var id string
	d.waitFor("element "+css, func() bool { id = d.find(css); return id != "" })
	return id
}

func (d *wd) click(css string) { d.do("POST", d.s("/element/"+d.must(css)+"/click"), map[string]any{}) }

func (d *wd) typeIn(css, text string) {
	id := d.must(css)
	d.do("POST", d.s("/element/"+id+"/clear"), map[string]any{})
	d.do("POST", d.s("/element/"+id+"/value"), map[string]any{"text": text})
}

func (d *wd) text(css string) string {
	id := d.find(css)
	if id == "" {
		return ""
	}
	v, _ := d.do("GET", d.s("/element/"+id+"/text"), nil)["value"].(string)
	return v
}

func (d *wd) script(js string, args ...any) {
	if args == nil {
		args = []any{}
	}
	d.do("POST", d.s("/execute/sync"), map[string]any{"script": js, "args": args})
}

func (d *wd) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *wd) waitText(css, want string) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf("%s to show %q (shows %q)", css, want, d.text(css)), func() bool { return strings.Contains(d.text(css), want) })
}

func startBrowser(t *testing.T) *wd {
	chromium, err1 := exec.LookPath("chromium")
	driver, err2 := exec.LookPath("chromedriver")
	if err1 != nil || err2 != nil {
		testenv.Missing(t, "chromium and chromedriver")
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &wd{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	d.waitFor("chromedriver", func() bool {
		resp, err := http.Get(d.base + "/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	out := d.do("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir(),
		}},
	}}})
	d.session = out["value"].(map[string]any)["sessionId"].(string)
	t.Cleanup(func() { d.do("DELETE", d.s(""), nil) })
	return d
}

// TestDashboardCampaignJourney drives the dashboard in headless Chromium
// as a campaign manager would: sign in, add a trunk, create a campaign,
// upload a dial list and read the import report, save a flow, start the
// campaign and watch calls in progress appear without reloading.
func TestDashboardCampaignJourney(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "web.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	token, _ := store.CreateToken(ctx, "manager", time.Now())
	mux := http.NewServeMux()
	api := &httpapi.API{Store: store, ValidateFlow: func(_ context.Context, doc []byte) error { return flow.Check(doc, nil) }}
	mux.Handle("/api/v1/", api.Handler())
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	d := startBrowser(t)
	d.do("POST", d.s("/url"), map[string]any{"url": srv.URL})
	d.typeIn("#token", "edt_wrong")
	d.click("#login-form button")
	d.waitText("#login-error", "refused")
	d.typeIn("#token", token)
	d.click("#login-form button")
	d.must("#view-campaigns:not([hidden])")

	d.click("#tab-trunks")
	d.typeIn("#trunk-form [name=name]", "carrier")
	d.click("#trunk-form button")
	d.waitText("#trunks tbody", "carrier")

	d.click("#tab-campaigns")
	d.typeIn("#new-campaign [name=name]", "Flu shots")
	d.typeIn("#new-campaign [name=trunk]", "carrier")
	d.typeIn("#new-campaign [name=caller_id]", "555")
	d.click("#new-campaign button")
	d.waitText("#new-campaign-error", "caller_id")
	d.typeIn("#new-campaign [name=caller_id]", "+14155550100")
	d.click("#new-campaign button")
	d.waitText("#detail-name", "Flu shots")
	d.waitText("#detail-status", "draft")

	list := filepath.Join(t.TempDir(), "list.csv")
	os.WriteFile(list, []byte("phone,appointment_date\n212-555-0101,0314\nnot a number,0315\n212-555-0102,0316\n"), 0o644)
	d.do("POST", d.s("/element/"+d.must("#dial-list")+"/value"), map[string]any{"text": list})
	d.click("#upload button")
	d.waitText("#import-summary", "3 rows: 2 imported, 1 rejected")
	d.waitText("#rejections", "not a valid phone number")

	d.script(`document.querySelector("#flow").value = arguments[0]`, `{"start": "a", "states": {"a": {"play": ["x/y"], "next": "b"}}}`)
	d.click("#save-flow")
	d.waitText("#flow-result", `unknown state "b"`)
	d.script(`document.querySelector("#flow").value = arguments[0]`, string(examples.Reminder))
	d.click("#save-flow")
	d.waitText("#flow-result", "Saved as version 1")

	d.click(`[data-action=start]`)
	d.waitText("#detail-status", "running")

	// Nodes lease both contacts; the page shows them without a reload. The
	// campaign's window is 08:00-21:00 New York time, so lease at noon there.
	id := d.text("#detail-id")
	noonNY := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	if ls, err := store.Lease(ctx, "node-1", 10, noonNY); err != nil || len(ls) != 2 {
		t.Fatalf("lease %s: %d %v", id, len(ls), err)
	}
	d.waitText("#stat-inprogress", "2")
	d.waitText("#by-state", "leased")

	d.click(`[data-action=pause]`)
	d.waitText("#detail-status", "paused")
	d.click(`[data-action=pause]`)
	d.waitText("#action-error", "cannot become paused")
}
