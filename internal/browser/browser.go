// Package browser drives Debian's headless Chromium for the dashboard's
// browser tests.
package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testenv"
)

// Browser is a headless Chromium driven through chromedriver's W3C
// WebDriver protocol: enough to click, type, upload and read text the way a
// user does, with no dependency beyond the Debian packages.
type Browser struct {
	t       *testing.T
	base    string
	session string
}

// Do sends one WebDriver command and returns its decoded answer.
func (d *Browser) Do(method, path string, in any) map[string]any {
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

// S is a path inside the current session.
func (d *Browser) S(path string) string { return "/session/" + d.session + path }

// Find returns an element id, or "" when there is none.
func (d *Browser) Find(css string) string {
	d.t.Helper()
	out := d.Do("POST", d.S("/elements"), map[string]any{"using": "css selector", "value": css})
	els, _ := out["value"].([]any)
	if len(els) == 0 {
		return ""
	}
	for _, v := range els[0].(map[string]any) {
		return v.(string)
	}
	return ""
}

// Must waits for an element and returns its id.
func (d *Browser) Must(css string) string {
	d.t.Helper()
	var id string
	d.WaitFor("element "+css, func() bool { id = d.Find(css); return id != "" })
	return id
}

// Click clicks the element css selects.
func (d *Browser) Click(css string) {
	d.Do("POST", d.S("/element/"+d.Must(css)+"/click"), map[string]any{})
}

// Type clears the element and types text into it.
func (d *Browser) Type(css, text string) {
	id := d.Must(css)
	d.Do("POST", d.S("/element/"+id+"/clear"), map[string]any{})
	d.Do("POST", d.S("/element/"+id+"/value"), map[string]any{"text": text})
}

// Text is the visible text of the element, "" when there is none.
func (d *Browser) Text(css string) string {
	id := d.Find(css)
	if id == "" {
		return ""
	}
	v, _ := d.Do("GET", d.S("/element/"+id+"/text"), nil)["value"].(string)
	return v
}

// Script runs JavaScript in the page with the given arguments.
func (d *Browser) Script(js string, args ...any) {
	if args == nil {
		args = []any{}
	}
	d.Do("POST", d.S("/execute/sync"), map[string]any{"script": js, "args": args})
}

// WaitFor polls cond for up to 15 s and fails the test if it never holds.
func (d *Browser) WaitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitText waits until the element's text contains want.
func (d *Browser) WaitText(css, want string) {
	d.t.Helper()
	d.WaitFor(fmt.Sprintf("%s to show %q (shows %q)", css, want, d.Text(css)), func() bool { return strings.Contains(d.Text(css), want) })
}

// Start launches chromedriver and a fresh headless Chromium session, both
// ended with the test; it skips (fails under CI) when they are missing.
func Start(t *testing.T) *Browser {
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
	d := &Browser{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	d.WaitFor("chromedriver", func() bool {
		resp, err := http.Get(d.base + "/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	out := d.Do("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir(),
		}},
	}}})
	d.session = out["value"].(map[string]any)["sessionId"].(string)
	t.Cleanup(func() { d.Do("DELETE", d.S(""), nil) })
	return d
}

// Open loads a URL.
func (d *Browser) Open(url string) { d.Do("POST", d.S("/url"), map[string]any{"url": url}) }

// Upload sets a file input to a local file.
func (d *Browser) Upload(css, path string) {
	d.Do("POST", d.S("/element/"+d.Must(css)+"/value"), map[string]any{"text": path})
}
