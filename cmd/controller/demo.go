package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller/cost"
	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/storage"
)

func init() {
	commands["demo"] = command{summary: "run the whole system on this machine with a sample campaign and print a summary",
		config: []string{"listen", "node-slots", "max-nodes", "agent-path", "log-level"}, run: demo, flags: func(fs *flag.FlagSet) {
			fs.Int("contacts", 1500, "`CONTACTS` in the sample dial list")
			fs.Int("calls", 250, "the campaign's target of concurrent `CALLS`")
			fs.String("dir", "", "working `DIR` (store, audio, nodes), kept afterwards; a temporary one, removed, when empty")
			fs.Duration("timeout", 10*time.Minute, "give up after this long")
		}}
}

// demo runs the control center on the embedded default with the local
// cloud, and drives it the way a campaign manager would, through the REST
// API: audio, a flow, a dial list, start. It prints a progress line every
// two seconds and, at the end, a summary: calls and their outcomes, nodes,
// cost and cost per answered call.
//
// It always ends: when every contact is accounted for (the campaign is
// stopped and the fleet gets a bounded time to scale in), at -timeout, or
// at Ctrl-C, each with the summary of what happened so far. A temporary
// working folder is removed at the end.
func demo(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, log *slog.Logger) (err error) {
	contacts, _ := strconv.Atoi(fs.Lookup("contacts").Value.String())
	calls, _ := strconv.Atoi(fs.Lookup("calls").Value.String())
	timeout, _ := time.ParseDuration(fs.Lookup("timeout").Value.String())
	dir := fs.Lookup("dir").Value.String()
	if contacts < 1 || contacts > 100000 {
		return fmt.Errorf("demo: -contacts %d: want 1 to 100000", contacts)
	}
	if calls < 1 || calls > 5000 {
		return fmt.Errorf("demo: -calls %d: want 1 to 5000", calls)
	}
	if timeout < 10*time.Second {
		return fmt.Errorf("demo: -timeout %s: want at least 10s", timeout)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "elastidial-demo-"); err != nil {
			return err
		}
		defer func() {
			if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
				err = fmt.Errorf("demo: remove its working folder: %w", rerr)
			}
		}()
	}
	// Everything the demo writes lives in its working folder.
	cfg.DB = filepath.Join(dir, "elastidial.db")
	cfg.Audio = filepath.Join(dir, "audio")
	cfg.Recordings = filepath.Join(dir, "recordings")
	cfg.LocalDir = filepath.Join(dir, "nodes")
	cfg.SecretFile = filepath.Join(dir, "elastidial.secret")
	if !isSet(fs, "listen") {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.Cloud = "local"
	cfg.Tick = time.Second
	cfg.ScaleInWindow = 20 * time.Second
	cfg.MinNodeLifetime = 30 * time.Second // a demo lasts minutes, not hours

	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	token, err := store.CreateToken(ctx, "demo", time.Now())
	store.Close()
	if err != nil {
		return err
	}

	// The control center outlives ctx (Ctrl-C) long enough to report what
	// happened; stopServer ends it, bounded.
	srvCtx, cancelSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSrv()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	if cfg.AgentPath == "" {
		fmt.Fprintln(stdout, "building node-agent (the first build compiles for a minute or two)...")
	}
	go func() { done <- runServer(srvCtx, cfg, io.Discard, log, func(base string) { ready <- base }) }()
	stopServer := func() error {
		cancelSrv()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		case <-time.After(30 * time.Second):
			return errors.New("demo: the control center did not stop within 30s")
		}
		return nil
	}
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		return err
	case <-ctx.Done():
		return stopServer()
	}
	fmt.Fprintf(stdout, "elastidial demo: dashboard at %s (token %s), working folder %s\n", base, token, dir)
	c := &restClient{base: base + "/api/v1", token: token}

	id, err := c.setUp(contacts, calls)
	if err != nil {
		return errors.Join(err, stopServer())
	}
	started := time.Now()
	fmt.Fprintf(stdout, "campaign %s started: %d contacts, target %d concurrent calls\n", id, contacts, calls)
	fmt.Fprintln(stdout, "  dialled: attempts finished or handed to a node to dial; in call: ringing or connected, as the nodes last said; done: contacts finished; remaining: contacts still to call")

	var (
		peak          int
		stopped       bool      // every contact accounted for; the campaign is stopped
		scaleInBy     time.Time // when the fleet has had its chance to scale in
		ending        string    // why the demo ends
		deadline      = time.After(timeout)
		tick          = time.NewTicker(2 * time.Second)
		interruptedAt time.Duration
	)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			ending, interruptedAt = "interrupted", time.Since(started)
			break loop
		case <-deadline:
			ending = "timeout"
			break loop
		case err := <-done:
			return fmt.Errorf("demo: the control center stopped: %w", err)
		case <-tick.C:
		}
		p, err := c.progress(id)
		if err != nil {
			fmt.Fprintf(stdout, "  (progress unavailable: %v)\n", err)
			continue
		}
		peak = max(peak, p.nodes)
		nodes := fmt.Sprintf("%d ready", p.readyNodes)
		if starting := p.nodes - p.readyNodes - p.leaving; starting > 0 {
			nodes += fmt.Sprintf(", %d starting", starting)
		}
		if p.leaving > 0 {
			nodes += fmt.Sprintf(", %d draining", p.leaving)
		}
		fmt.Fprintf(stdout, "%7s  nodes %2d (%s)  dialled %5d  in call %4d  done %5d/%d  remaining %5d  fleet $%s/h\n",
			clock(time.Since(started)), p.nodes, nodes, p.dialled, p.inCall, p.done, contacts, p.remaining, money(p.costPerHour))
		switch {
		case !stopped && p.remaining == 0:
			stopped = true
			if err := c.post("/campaigns/"+id+"/stop", nil); err != nil {
				return errors.Join(err, stopServer())
			}
			// The scaler drains idle nodes after its scale-in window; give
			// it that and a margin, then end regardless.
			scaleInBy = time.Now().Add(cfg.ScaleInWindow + cfg.MinNodeLifetime + 30*time.Second)
			fmt.Fprintln(stdout, "every contact is accounted for; the campaign is stopped and the fleet scales in")
		case stopped && p.nodes == 0:
			ending = "finished"
			break loop
		case stopped && time.Now().After(scaleInBy):
			ending = "finished"
			fmt.Fprintf(stdout, "%d node(s) still up after the scale-in window; the demo stops them\n", p.nodes)
			break loop
		}
	}
	elapsed := time.Since(started)
	if ending == "interrupted" {
		elapsed = interruptedAt
	}
	sum, serr := c.summary(id, started.Add(-time.Minute))
	if serr != nil {
		fmt.Fprintf(stdout, "\nno summary: %v\n", serr)
	} else {
		sum.peakNodes = max(sum.peakNodes, peak)
		sum.write(stdout, ending, elapsed, contacts)
	}
	err = stopServer()
	switch ending {
	case "timeout":
		return errors.Join(fmt.Errorf("demo: not finished after %s (-timeout); the summary above is partial", timeout), err)
	case "interrupted":
		fmt.Fprintln(stdout, "interrupted: the summary above is partial")
	}
	return err
}

// progress is one progress line's numbers.
type progress struct {
	nodes, readyNodes int
	leaving           int // draining or terminating
	dialled, inCall   int
	done, remaining   int
	costPerHour       float64
}

func (c *restClient) progress(id string) (progress, error) {
	var st campaign.Stats
	var fl fleet
	if err := c.get("/campaigns/"+id+"/stats", &st); err != nil {
		return progress{}, err
	}
	if err := c.get("/fleet", &fl); err != nil {
		return progress{}, err
	}
	p := progress{nodes: len(fl.Nodes), costPerHour: fl.CostPerHour}
	for _, n := range fl.Nodes {
		p.inCall += n.ActiveCalls
		switch n.State {
		case "ready":
			p.readyNodes++
		case "draining", "terminating":
			p.leaving++
		}
	}
	// Dialled: finished attempts and calls handed to nodes (which dial
	// what they take at once); one snapshot of the store, so it never
	// goes down. In call is what the nodes' last heartbeats said.
	for _, n := range st.Attempts {
		p.dialled += n
	}
	p.dialled += st.InProgress
	p.done = st.Contacts[campaign.ContactDone] + st.Contacts[campaign.ContactFailed] + st.Contacts[campaign.ContactDNC]
	p.remaining = st.Contacts[campaign.ContactPending] + st.Contacts[campaign.ContactLeased]
	return p, nil
}

// demoSummary is what the demo reports at its end.
type demoSummary struct {
	stats     campaign.Stats
	cost      cost.Report
	peakNodes int
}

func (c *restClient) summary(id string, from time.Time) (demoSummary, error) {
	var s demoSummary
	if err := c.get("/campaigns/"+id+"/stats", &s.stats); err != nil {
		return s, err
	}
	if err := c.get("/cost?format=json&from="+url.QueryEscape(from.UTC().Format(time.RFC3339)), &s.cost); err != nil {
		return s, err
	}
	s.peakNodes = s.cost.PeakNodes
	return s, nil
}

// write prints the summary for a person.
func (s demoSummary) write(w io.Writer, ending string, elapsed time.Duration, contacts int) {
	st := s.stats
	title := map[string]string{"finished": "finished", "timeout": "stopped at -timeout", "interrupted": "interrupted"}[ending]
	fmt.Fprintf(w, "\nSummary (%s after %s)\n", title, clock(elapsed))
	remaining := st.Contacts[campaign.ContactPending] + st.Contacts[campaign.ContactLeased]
	fmt.Fprintf(w, "  contacts  %d: %d reached, %d failed, %d opted out, %d remaining\n", contacts,
		st.Contacts[campaign.ContactDone], st.Contacts[campaign.ContactFailed], st.Contacts[campaign.ContactDNC], remaining)
	attempts := 0
	var outcomes []string
	for _, d := range campaign.Dispositions {
		if n := st.Attempts[d]; n > 0 {
			attempts += n
			outcomes = append(outcomes, fmt.Sprintf("%d %s", n, strings.ReplaceAll(d, "_", " ")))
		}
	}
	fmt.Fprintf(w, "  calls     %d finished", attempts)
	if len(outcomes) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(outcomes, ", "))
	}
	fmt.Fprintln(w)
	if st.AnsweredCalls > 0 {
		fmt.Fprintf(w, "            %.0f s talk time in all, %.0f s per answered call\n", st.TalkSeconds, st.TalkSeconds/float64(st.AnsweredCalls))
	}
	fmt.Fprintf(w, "  nodes     %d at most at once, %d launched, %.2f node-hours\n", s.peakNodes, s.cost.Instances, s.cost.NodeHours)
	fmt.Fprintf(w, "  cost      $%s for the fleet (%s, EC2 on-demand price, billed per second with a 60 s minimum)\n", money(s.cost.Total), s.cost.Region)
	if s.cost.AnsweredCalls > 0 {
		fmt.Fprintf(w, "            $%s per answered call (%d answered)\n", money(s.cost.PerAnsweredCall), s.cost.AnsweredCalls)
	} else {
		fmt.Fprintln(w, "            no call answered yet, so no cost per answered call")
	}
}

// money prints dollars with enough digits to be read: cents from $1 up,
// then more places the smaller the sum, and two significant digits below
// a cent ($0.0041, $0.000017).
func money(v float64) string {
	switch {
	case v == 0:
		return "0.00"
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v >= 0.01:
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	places := int(-math.Floor(math.Log10(v))) + 1
	return strconv.FormatFloat(v, 'f', places, 64)
}

// clock prints an elapsed time as 1m04s.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// demoHTTP bounds every request of the demo: it must end on a busy machine.
var demoHTTP = &http.Client{Timeout: 30 * time.Second}

// restClient is the demo's campaign manager, speaking the REST API.
type restClient struct{ base, token string }

func (c *restClient) do(method, path, ctype string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := demoHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func (c *restClient) get(path string, out any) error {
	b, err := c.do("GET", path, "", nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (c *restClient) raw(path string) (string, error) {
	b, err := c.do("GET", path, "", nil)
	return string(b), err
}

func (c *restClient) post(path string, in any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	_, err := c.do("POST", path, "application/json", body)
	return err
}

// setUp creates the trunk, uploads the reminder's prompts, and creates,
// loads and starts the sample campaign; it returns the campaign id.
func (c *restClient) setUp(contacts, calls int) (string, error) {
	trunk, _ := json.Marshal(map[string]any{"max_channels": calls * 2, "max_cps": 100})
	if _, err := c.do("PUT", "/trunks/demo-carrier", "application/json", bytes.NewReader(trunk)); err != nil {
		return "", err
	}
	for i, p := range []string{"hello", "menu", "confirmed", "cancelled", "opted_out"} {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", p+".wav")
		fw.Write(storage.Tone(330+110*float64(i), 1.5))
		mw.Close()
		if _, err := c.do("POST", "/audio/reminder", mw.FormDataContentType(), &body); err != nil {
			return "", err
		}
	}
	// Calling hours are the law: call a city where it is daytime now.
	where := daytime(time.Now())
	camp, _ := json.Marshal(map[string]any{
		"name": "Demo reminders", "trunk": "demo-carrier", "caller_id": where.callerID, "target": calls, "max_cps": 100,
		"max_attempts": 2,
		"retry": map[string]any{"busy": map[string]int{"after_seconds": 5}, "no_answer": map[string]int{"after_seconds": 5},
			"congestion": map[string]int{"after_seconds": 5}, "cut_off": map[string]int{"after_seconds": 5}},
	})
	b, err := c.do("POST", "/campaigns", "application/json", bytes.NewReader(camp))
	if err != nil {
		return "", err
	}
	var created struct{ ID string }
	json.Unmarshal(b, &created)
	if _, err := c.do("PUT", "/campaigns/"+created.ID+"/flow", "application/json", bytes.NewReader(examples.Reminder)); err != nil {
		return "", err
	}
	var list bytes.Buffer
	list.WriteString("phone,first_name,appointment_date\n")
	for i := range contacts {
		fmt.Fprintf(&list, "%s,Guest %d,2026-%02d-%02d\n", where.number(i), i+1, 1+i%12, 1+i%28)
	}
	if _, err := c.do("POST", "/campaigns/"+created.ID+"/contacts", "text/csv", &list); err != nil {
		return "", err
	}
	return created.ID, c.post("/campaigns/"+created.ID+"/start", nil)
}
