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
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
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
// API: audio, a flow, a dial list, start. It prints progress until every
// contact is accounted for and the fleet is back to zero, then the results
// and the cost report.
func demo(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, log *slog.Logger) error {
	contacts, _ := strconv.Atoi(fs.Lookup("contacts").Value.String())
	calls, _ := strconv.Atoi(fs.Lookup("calls").Value.String())
	timeout, _ := time.ParseDuration(fs.Lookup("timeout").Value.String())
	dir := fs.Lookup("dir").Value.String()
	if contacts < 1 || contacts > 100000 || calls < 1 || calls > 5000 {
		return fmt.Errorf("demo: want 1 to 100000 -contacts and 1 to 5000 -calls")
	}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "elastidial-demo-"); err != nil {
			return err
		}
	}
	if !isSet(fs, "db") {
		cfg.DB = filepath.Join(dir, "elastidial.db")
	}
	if !isSet(fs, "audio") {
		cfg.Audio = filepath.Join(dir, "audio")
	}
	if !isSet(fs, "local-dir") {
		cfg.LocalDir = filepath.Join(dir, "nodes")
	}
	if !isSet(fs, "secret-file") {
		cfg.SecretFile = filepath.Join(dir, "elastidial.secret")
	}
	if !isSet(fs, "listen") {
		cfg.Listen = "127.0.0.1:0"
	}
	if !isSet(fs, "tick") {
		cfg.Tick = time.Second
	}
	if !isSet(fs, "scale-in-window") {
		cfg.ScaleInWindow = 20 * time.Second
	}
	if !isSet(fs, "min-node-lifetime") {
		cfg.MinNodeLifetime = 30 * time.Second // a demo lasts minutes, not hours
	}
	cfg.Cloud = "local"

	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	token, err := store.CreateToken(ctx, "demo", time.Now())
	store.Close()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, io.Discard, log, func(base string) { ready <- base }) }()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		return err
	}
	fmt.Fprintf(stdout, "elastidial demo: dashboard at %s (token %s), working folder %s\n", base, token, dir)
	c := &restClient{base: base + "/api/v1", token: token}
	stop := func(err error) error {
		cancel()
		if serr := <-done; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr
		}
		return err
	}

	id, err := c.setUp(contacts, calls)
	if err != nil {
		return stop(err)
	}
	fmt.Fprintf(stdout, "campaign %s started: %d contacts, target %d concurrent calls\n", id, contacts, calls)
	started := time.Now()
	var peak int
	finished := false
	lastAttempts := 0
	for tick := time.NewTicker(2 * time.Second); ; {
		select {
		case <-ctx.Done():
			return stop(fmt.Errorf("demo: not finished after %s", timeout))
		case err := <-done:
			return fmt.Errorf("demo: the control center stopped: %w", err)
		case <-tick.C:
		}
		var st struct {
			Contacts   map[string]int `json:"contacts"`
			Attempts   map[string]int `json:"attempts"`
			InProgress int            `json:"in_progress"`
		}
		var fl fleet
		if err := c.get("/campaigns/"+id+"/stats", &st); err != nil {
			return stop(err)
		}
		if err := c.get("/fleet", &fl); err != nil {
			return stop(err)
		}
		attempts := 0
		for _, n := range st.Attempts {
			attempts += n
		}
		peak = max(peak, len(fl.Nodes))
		fmt.Fprintf(stdout, "%6.0fs  nodes %2d  ready slots %4d  in progress %4d  attempts/s %5.1f  done %5d  waiting %5d  $%.3f/h\n",
			time.Since(started).Seconds(), len(fl.Nodes), fl.ReadySlots, st.InProgress, float64(attempts-lastAttempts)/2,
			st.Contacts["done"]+st.Contacts["failed"]+st.Contacts["dnc"], st.Contacts["pending"]+st.Contacts["leased"], fl.CostPerHour)
		lastAttempts = attempts
		if !finished && st.Contacts["pending"]+st.Contacts["leased"] == 0 {
			finished = true
			if err := c.post("/campaigns/"+id+"/stop", nil); err != nil {
				return stop(err)
			}
			fmt.Fprintln(stdout, "every contact is accounted for; the fleet scales in")
		}
		if finished && len(fl.Nodes) == 0 {
			break
		}
	}
	var st json.RawMessage
	if err := c.get("/campaigns/"+id+"/stats", &st); err != nil {
		return stop(err)
	}
	fmt.Fprintf(stdout, "\nresults (peak %d nodes):\n%s\n\ncost report:\n", peak, st)
	report, err := c.raw("/cost?format=table&from=" + started.Add(-time.Minute).UTC().Format(time.RFC3339))
	if err != nil {
		return stop(err)
	}
	fmt.Fprint(stdout, report)
	return stop(nil)
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

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
	resp, err := http.DefaultClient.Do(req)
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
		fmt.Fprintf(&list, "%s,Guest %d,%02d%02d\n", where.number(i), i+1, 1+i%12, 1+i%28)
	}
	if _, err := c.do("POST", "/campaigns/"+created.ID+"/contacts", "text/csv", &list); err != nil {
		return "", err
	}
	return created.ID, c.post("/campaigns/"+created.ID+"/start", nil)
}
