// Package browser drives Debian's headless Chromium for the dashboard's
// browser tests.
package browser

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	d.Eval(js, args...)
}

// Eval runs JavaScript in the page and returns what it returns (numbers
// as float64, objects as maps).
func (d *Browser) Eval(js string, args ...any) any {
	d.t.Helper()
	if args == nil {
		args = []any{}
	}
	return d.Do("POST", d.S("/execute/sync"), map[string]any{"script": js, "args": args})["value"]
}

// Screenshot saves a PNG of the window to dir/name.png and returns the
// image's bytes.
func (d *Browser) Screenshot(dir, name string) []byte {
	d.t.Helper()
	v, _ := d.Do("GET", d.S("/screenshot"), nil)["value"].(string)
	png, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		d.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("screenshot %s", path)
	return png
}

// Resize sets the window's outer size in CSS pixels.
func (d *Browser) Resize(width, height int) {
	d.Do("POST", d.S("/window/rect"), map[string]any{"width": width, "height": height})
}

// ConsoleErrors returns the page's console messages of level SEVERE
// since the last call (errors thrown, failed loads, console.error), but
// those containing one of expected: Chromium logs every 4xx answer, also
// the refusals a test provokes on purpose.
func (d *Browser) ConsoleErrors(expected ...string) []string {
	d.t.Helper()
	entries, _ := d.Do("POST", d.S("/se/log"), map[string]any{"type": "browser"})["value"].([]any)
	var errs []string
	for _, e := range entries {
		m, _ := e.(map[string]any)
		msg := fmt.Sprint(m["message"])
		if m["level"] == "SEVERE" && !slices.ContainsFunc(expected, func(e string) bool { return strings.Contains(msg, e) }) {
			errs = append(errs, msg)
		}
	}
	return errs
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
		"browserName":       "chrome",
		"goog:loggingPrefs": map[string]any{"browser": "ALL"},
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

// CanvasPixels counts the pixels of the canvases under css whose colour
// is within 40 per channel of rgb: a chart that drew its series has them.
func (d *Browser) CanvasPixels(css string, rgb [3]int) int {
	d.t.Helper()
	n, _ := d.Eval(`let n = 0;
for (const c of document.querySelectorAll(arguments[0] + " canvas")) {
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < px.length; i += 4)
    if (px[i+3] > 200 && Math.abs(px[i] - arguments[1]) < 40 && Math.abs(px[i+1] - arguments[2]) < 40 && Math.abs(px[i+2] - arguments[3]) < 40) n++;
}
return n;`, css, rgb[0], rgb[1], rgb[2]).(float64)
	return int(n)
}

// PNGPixels counts the pixels of a PNG within 40 per channel of rgb.
func PNGPixels(t *testing.T, data []byte, rgb [3]int) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	n := 0
	b := img.Bounds()
	near := func(v uint32, want int) bool { d := int(v>>8) - want; return d > -40 && d < 40 }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, rgb[0]) && near(g, rgb[1]) && near(bl, rgb[2]) {
				n++
			}
		}
	}
	return n
}

// ScreenshotDir is where tests save screenshots: $ELASTIDIAL_SCREENSHOTS,
// or a folder in the system's temporary folder.
func ScreenshotDir() string {
	if d := os.Getenv("ELASTIDIAL_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "elastidial-screenshots")
}

// Blue is the colour of a dashboard chart's first series.
var Blue = [3]int{37, 99, 235}

// CheckChart waits for the chart under css to hold points samples from the
// server and checks what a person would look at: a time axis with clock
// times, a value axis with numbers, a legend naming the series, and the
// series drawn (pixels of colour on its canvas).
func (d *Browser) CheckChart(css string, points int, legend []string, colour [3]int) {
	d.t.Helper()
	d.WaitFor(css+" to hold the server's history", func() bool {
		n, _ := d.Eval(`return Number(document.querySelector(arguments[0]).dataset.points || 0)`, css).(float64)
		return int(n) >= points
	})
	xticks, _ := d.Eval(`return document.querySelector(arguments[0]).dataset.xticks || ""`, css).(string)
	yticks, _ := d.Eval(`return document.querySelector(arguments[0]).dataset.yticks || ""`, css).(string)
	if !regexp.MustCompile(`(^|\|)(\d+/\d+ )?\d\d:\d\d`).MatchString(xticks) || !regexp.MustCompile(`\d`).MatchString(yticks) {
		d.t.Errorf("%s axes: time ticks %q, value ticks %q", css, xticks, yticks)
	}
	for _, l := range legend {
		d.WaitText(css+" .u-legend", l)
	}
	d.WaitFor(css+" to draw its series", func() bool { return d.CanvasPixels(css, colour) > 50 })
}
