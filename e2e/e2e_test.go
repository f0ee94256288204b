// Package e2e runs elastidial end to end on a real Asterisk: the controller
// binary (serve, with its local cloud driving one real node), the node-agent
// binary, the node's Asterisk on the image's own configuration, and a second
// Asterisk as the SIP carrier whose callees answer, press keys, stay silent,
// hang up, are busy, congested, unallocated, ring out, send early media,
// reject the call, or are answering machines. Every call crosses real SIP
// and RTP on loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/realasterisk"
	"github.com/elastidial/elastidial/storage"
)

// bins are the controller and node-agent, built once for the package.
var bins struct{ controller, agent string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "elastidial-e2e-bin")
	if err != nil {
		panic(err)
	}
	bins.controller, bins.agent = filepath.Join(dir, "controller"), filepath.Join(dir, "node-agent")
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/elastidial/elastidial/cmd/controller", "github.com/elastidial/elastidial/cmd/node-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// system is one control center with one real node and the carrier.
type system struct {
	t       testing.TB
	base    string // controller URL
	token   string
	node    *realasterisk.Node
	carrier *realasterisk.Carrier
	dir     string
	ctl     *exec.Cmd
	ctlDone chan struct{}
}

// start brings the whole system up with one node of 20 slots; everything
// stops when the test ends.
func start(t testing.TB) *system { return startWith(t, 20) }

func startWith(t testing.TB, slots int, flags ...string) *system {
	t.Helper()
	root := realasterisk.Root(t)
	s := &system{t: t, dir: realasterisk.OpenDir(t, t.TempDir())}
	sounds, recordings := filepath.Join(s.dir, "sounds"), filepath.Join(s.dir, "recordings")
	if err := os.Mkdir(sounds, 0o755); err != nil {
		t.Fatal(err)
	}
	// The agent fetches synthesised speech beside the campaign audio
	// (its default), where Asterisk reads it as sounds/elastidial-tts.
	if err := os.Mkdir(filepath.Join(s.dir, "elastidial-tts"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Asterisk (its own user) writes recordings here; the agent reads them.
	if err := os.Mkdir(recordings, 0o777); err != nil || os.Chmod(recordings, 0o777) != nil {
		t.Fatal(err)
	}
	s.carrier = realasterisk.StartCarrier(t, root)
	s.node = realasterisk.StartNode(t, root, realasterisk.NodeOptions{Carrier: s.carrier, Sounds: sounds, Speech: filepath.Join(s.dir, "elastidial-tts")})

	db := filepath.Join(s.dir, "elastidial.db")
	out, err := exec.Command(bins.controller, "token", "-db", db, "e2e").Output()
	if err != nil {
		t.Fatalf("controller token: %v", err)
	}
	s.token = strings.TrimSpace(string(out))
	s.base = "http://127.0.0.1:" + strconv.Itoa(realasterisk.FreePort(t))
	logf, err := os.Create(filepath.Join(s.dir, "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.ctl = exec.Command(bins.controller, "serve", "-data", s.dir, "-listen", strings.TrimPrefix(s.base, "http://"), "-db", db,
		"-audio", filepath.Join(s.dir, "audio"), "-speech", filepath.Join(s.dir, "speech"), "-secret-file", filepath.Join(s.dir, "secret"),
		"-cloud", "local", "-agent-path", bins.agent, "-local-dir", filepath.Join(s.dir, "nodes"),
		"-local-ami", s.node.AMIAddr, "-local-ami-user", s.node.AMIUser, "-local-agi", s.node.AGIAddr,
		"-local-sounds", sounds, "-local-recordings", recordings, "-max-nodes", "1", "-node-slots", strconv.Itoa(slots), "-tick", "1s",
		"-scale-in-window", "2s", "-min-node-lifetime", "1s",
		"-local-trunks-conf", s.node.TrunksConf)
	s.ctl.Args = append(s.ctl.Args, flags...)
	s.ctl.Env = append(os.Environ(), "ELASTIDIAL_LOCAL_AMI_SECRET="+s.node.AMISecret)
	s.ctl.Stdout, s.ctl.Stderr = logf, logf
	s.ctl.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.ctl.Start(); err != nil {
		t.Fatal(err)
	}
	s.ctlDone = make(chan struct{})
	go func() { s.ctl.Wait(); logf.Close(); close(s.ctlDone) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller not up in 30s: %v\n%s", err, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func (s *system) stop() {
	s.ctl.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.ctlDone:
	case <-time.After(20 * time.Second):
		syscall.Kill(-s.ctl.Process.Pid, syscall.SIGKILL)
		<-s.ctlDone
	}
	if s.t.Failed() {
		s.t.Logf("controller and agent logs:\n%s", s.logs())
		s.t.Logf("node asterisk:\n%s", s.node.Log())
	}
}

// logs returns the controller's log and every local node's agent log.
func (s *system) logs() string {
	var b strings.Builder
	c, _ := os.ReadFile(filepath.Join(s.dir, "controller.log"))
	b.Write(c)
	agents, _ := filepath.Glob(filepath.Join(s.dir, "nodes", "*", "agent.log"))
	for _, f := range agents {
		c, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "\n--- %s\n%s", f, c)
	}
	return b.String()
}

// api calls the REST API and decodes a JSON answer into out (when not nil).
func (s *system) api(method, path, ctype string, body io.Reader, out any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+"/api/v1"+path, body)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if p, ok := out.(*[]byte); ok {
			*p = b
			return
		}
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

func (s *system) json(method, path string, in, out any) {
	s.t.Helper()
	b, _ := json.Marshal(in)
	s.api(method, path, "application/json", bytes.NewReader(b), out)
}

// upload puts WAV prompts into an audio set.
func (s *system) upload(set string, prompts map[string][]byte) {
	s.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, wav := range prompts {
		w, _ := mw.CreateFormFile("file", name+".wav")
		w.Write(wav)
	}
	mw.Close()
	s.api("POST", "/audio/"+set, mw.FormDataContentType(), &body, nil)
}

// result is one row of results.csv.
type result struct {
	Phone, Disposition string
	Attempt, Cause     int
	Path               []string
	Tags               map[string]string
	Talk               time.Duration // answered to ended
	Recording          string        // its download path, "" for none
}

func (s *system) results(campaignID string) []result {
	s.t.Helper()
	var raw []byte
	s.api("GET", "/campaigns/"+campaignID+"/results.csv", "", nil, &raw)
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil || len(recs) == 0 {
		s.t.Fatalf("results.csv: %v\n%s", err, raw)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	var out []result
	for _, r := range recs[1:] {
		var res result
		res.Phone, res.Disposition = r[col["phone"]], r[col["disposition"]]
		res.Attempt, _ = strconv.Atoi(r[col["attempt"]])
		res.Cause, _ = strconv.Atoi(r[col["cause"]])
		if p := r[col["path"]]; p != "" {
			res.Path = strings.Split(p, " > ")
		}
		res.Tags = map[string]string{} // one column per tag: tag.<name>
		for h, i := range col {
			if name, ok := strings.CutPrefix(h, "tag."); ok && r[i] != "" {
				res.Tags[name] = r[i]
			}
		}
		res.Recording = r[col["recording"]]
		an, _ := time.Parse(time.RFC3339, r[col["answered_at"]])
		en, _ := time.Parse(time.RFC3339, r[col["ended_at"]])
		if !an.IsZero() && en.After(an) {
			res.Talk = en.Sub(an)
		}
		out = append(out, res)
	}
	return out
}

// numbering picks a country where it is now mid-day, so calls fall inside
// the legal calling window whenever the test runs: the callees are the
// carrier's, whatever the country code.
func numbering(now time.Time) (region, prefix string) {
	best, bestGap := 0, 24.0
	cands := []struct{ region, prefix, zone string }{
		{"GB", "+4420794600", "Europe/London"},
		{"JP", "+813123450", "Asia/Tokyo"},
		{"US", "+121355501", "America/Los_Angeles"},
	}
	for i, c := range cands {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			continue
		}
		l := now.In(loc)
		h := float64(l.Hour()) + float64(l.Minute())/60
		if gap := abs(h - 14); gap < bestGap {
			best, bestGap = i, gap
		}
	}
	return cands[best].region, cands[best].prefix
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func prompt(seconds float64) []byte {
	return storage.EncodeWAV(8000, make([]int16, int(8000*seconds)))
}

// waitFor polls until cond holds, failing the test after d.
func waitFor(t testing.TB, s *system, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
