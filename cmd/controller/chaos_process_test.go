package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent"
	"github.com/elastidial/elastidial/controller/ec2cloud/ec2fake"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/xmlrpc"
)

// TestChaosProcesses is issue 15's test as an operator would run it:
// three `controller serve` processes, each a process of its own, on one
// PostgreSQL server, behind a load balancer, scaling an EC2 fleet (the
// EC2 protocol server, through the real SDK). Simulated nodes play the
// launched instances over the real XML-RPC: register, heartbeat with the
// calls they hold, dialer.next, call.step, call.result, as the agent
// does. Meanwhile, in real time: kill -9 of a controller every 10 to 16
// s (the leader one time in three), each started again 2 to 4 s later; a
// restart of the PostgreSQL server; a million-row dial list uploaded
// through the REST API mid-campaign. It runs until every contact is
// called and the fleet is back to zero, or fails after eight minutes.
//
// Asserted: no two calls live on one contact at once (as the nodes see
// them, and in the attempts table); every result a node delivered is
// recorded as it reported it, and none is refused; no node is
// terminated holding a call or a result; the fleet never outgrows what
// one scaler launches, and ends with no instance running; calls were
// handed out while the import ran; the import landed whole, once.
func TestChaosProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test is long")
	}
	const (
		contacts   = 4000
		target     = 200       // calls: 3 nodes of 100 (with the planner's 5% headroom)
		maxNodes   = 3         // what one scaler launches for the target
		importRows = 1_000_000 // the dial list uploaded mid-campaign
		secret     = "chaos-secret"
	)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("ELASTIDIAL_CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (ELASTIDIAL_CHAOS_SEED repeats the choices, not the timing)", seed)
	rng := rand.New(rand.NewPCG(seed, 15))

	pg := testenv.StartPostgres(t)
	mc := testenv.StartMemcached(t)
	fake := ec2fake.New()
	fake.BootDelay = time.Second
	ec2 := httptest.NewServer(fake)
	defer ec2.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "controller")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the controller: %v\n%s", err, out)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-db", pg.DSN, "ops"}, &out, io.Discard, bareEnv(t)); err != nil {
		t.Fatal(err)
	}
	ops := strings.TrimSpace(out.String())

	lb := &balancer{}
	front := httptest.NewServer(lb)
	defer front.Close()
	ctls := make([]*ctlProc, 3)
	for i := range ctls {
		c := &ctlProc{name: fmt.Sprintf("c%d", i), addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), ops: ops}
		c.args = []string{bin, "serve", "-db", pg.DSN, "-listen", c.addr, "-data", filepath.Join(dir, c.name),
			"-audio", filepath.Join(dir, "audio"), "-memcached", mc.Addr, "-tts", "off", "-public-url", front.URL,
			"-cloud", "ec2", "-ec2-ami", "ami-0123456789abcdef0", "-ec2-subnets", "subnet-aaa", "-ec2-instance-types", "c6i.large",
			"-tick", "500ms", "-scale-in-window", "10s", "-min-node-lifetime", "10s", "-log-level", "info"}
		c.env = append(os.Environ(), "ELASTIDIAL_CLUSTER_SECRET="+secret, "AWS_ENDPOINT_URL_EC2="+ec2.URL,
			"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1")
		// ELASTIDIAL_CHAOS_LOGS keeps the controllers' whole logs in a
		// folder of one's choice (the test shows only their ends).
		c.log = filepath.Join(cmp.Or(os.Getenv("ELASTIDIAL_CHAOS_LOGS"), dir), c.name+".log")
		ctls[i] = c
		lb.addrs = append(lb.addrs, c.addr)
		c.start(t)
	}
	defer func() {
		for _, c := range ctls {
			c.stop()
		}
		if t.Failed() {
			for _, c := range ctls {
				b, _ := os.ReadFile(c.log)
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("%s's log ends:\n%s", c.name, b)
			}
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	send := func(method, base, path, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ops)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	rest := func(method, path, body string) (int, string) { return send(method, front.URL, path, body) }
	upload := func(addr, path, csv string) (int, string) { return send("POST", "http://"+addr, path, csv) }
	must := func(want int, method, path, body string) string {
		t.Helper()
		code, b := rest(method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d %s", method, path, code, b)
		}
		return b
	}
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	must(200, "PUT", "/api/v1/trunks/carrier", `{"max_channels":1000,"max_cps":200}`)
	var camp, later struct{ ID string }
	json.Unmarshal([]byte(must(201, "POST", "/api/v1/campaigns", fmt.Sprintf(`{"name":"Chaos","trunk":"carrier","caller_id":"%s","target":%d,"max_cps":100,"retry":{"cut_off":{"after_seconds":3},"ivr_failed":{"after_seconds":3}}}`, where.callerID, target))), &camp)
	json.Unmarshal([]byte(must(201, "POST", "/api/v1/campaigns", fmt.Sprintf(`{"name":"Next week","trunk":"carrier","caller_id":"%s","target":10}`, where.callerID))), &later)
	must(200, "PUT", "/api/v1/campaigns/"+camp.ID+"/flow", `{"start":"hello","states":{"hello":{"say_digits":"1","next":"bye"},"bye":{"hangup":true}}}`)
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range contacts {
		fmt.Fprintf(&csv, "%s\n", where.number(i))
	}
	must(200, "POST", "/api/v1/campaigns/"+camp.ID+"/contacts", csv.String())
	must(200, "POST", "/api/v1/campaigns/"+camp.ID+"/start", "")

	f := &simFleet{url: front.URL + "/RPC2", secret: secret, ec2: fake, live: map[string]string{},
		handed: map[string]bool{}, delivered: map[string]string{}, nodes: map[string]bool{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Nodes boot as the cloud runs instances; peak counts instances up
	// at once (pending, running or shutting down).
	peak := 0
	seeds := rand.New(rand.NewPCG(seed, 16)) // the nodes' own: rng is the chaos loop's
	wg.Go(func() {
		for ctx.Err() == nil {
			up := 0
			for _, in := range fake.Instances() {
				if in.State != "terminated" {
					up++
				}
				if in.State == "running" && f.boot(in.ID) {
					seed := seeds.Uint64()
					wg.Go(func() { f.run(ctx, in.ID, seed) })
				}
			}
			f.mu.Lock()
			peak = max(peak, up)
			f.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	})

	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// states counts the campaign's contacts by state; -1 when the
	// database cannot say (it is restarting).
	states := func(id string) map[string]int {
		rows, err := db.QueryContext(ctx, `SELECT state, count(*) FROM contacts WHERE campaign_id = $1 GROUP BY state`, id)
		if err != nil {
			return nil
		}
		defer rows.Close()
		m := map[string]int{}
		for rows.Next() {
			var s string
			var n int
			rows.Scan(&s, &n)
			m[s] = n
		}
		if rows.Err() != nil {
			return nil
		}
		return m
	}

	// The million-row dial list, uploaded to one controller, tried again
	// when it fails: the first try is cut by a kill -9 of that controller
	// five seconds in. An import is whole or nothing, so a try again is
	// safe, and it must not take the rows a dead try staged for "already
	// in this campaign".
	var big strings.Builder
	big.Grow(importRows * 14)
	big.WriteString("phone\n")
	for i := range importRows {
		fmt.Fprintf(&big, "%s\n", where.number(i))
	}
	var importing atomic.Bool
	var importWindow, importHanded atomic.Int64
	importStarted := false
	importDone := make(chan error, 1)

	start := time.Now()
	nextKill := start.Add(8 * time.Second)
	down := map[int]time.Time{} // controller → when it starts again
	kills, leaderKills, pgRestarts := 0, 0, 0
	importCut := false // the first try killed under its upload
	kill := func(i int, now time.Time) {
		if ctls[i].leading() {
			leaderKills++
		}
		ctls[i].kill()
		kills++
		down[i] = now.Add(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
	}
	for {
		now := time.Now()
		if now.Sub(start) > 8*time.Minute {
			t.Errorf("not done in eight minutes: contacts %v, import running %v, nodes holding %d calls, instances %v",
				states(camp.ID), importing.Load(), f.holding(), liveInstances(fake))
			break
		}
		// kill -9, the leader one time in three; never the last one up,
		// nor (but once) the one reading the upload.
		spare := func(i int) bool { _, off := down[i]; return off || (i == 0 && importing.Load()) }
		if now.After(nextKill) && len(down) < len(ctls)-1 {
			victim := -1
			if rng.IntN(3) == 0 {
				for i, c := range ctls {
					if !spare(i) && c.leading() {
						victim = i
					}
				}
			}
			for victim < 0 || spare(victim) {
				victim = rng.IntN(len(ctls))
			}
			kill(victim, now)
			nextKill = now.Add(time.Duration(10000+rng.IntN(6000)) * time.Millisecond)
		}
		if importing.Load() && !importCut && now.Sub(start) > 21*time.Second && len(down) < len(ctls)-1 {
			if _, off := down[0]; !off {
				kill(0, now)
			}
			importCut = true
		}
		for i, at := range down {
			if now.After(at) {
				ctls[i].start(t)
				delete(down, i)
			}
		}
		// The upload, once calls flow and the database is back.
		if now.Sub(start) > 16*time.Second && !importStarted {
			importStarted = true
			importing.Store(true)
			handedBefore, began := f.handedCount(), time.Now()
			wg.Go(func() {
				var err error
				for try := 1; ; try++ {
					code, body := upload(ctls[0].addr, "/api/v1/campaigns/"+later.ID+"/contacts", big.String())
					if code == 0 && strings.Contains(body, "dial tcp") {
						try-- // the controller is down: wait for it
						time.Sleep(500 * time.Millisecond)
						continue
					}
					if code == 200 {
						var res struct{ Imported, Duplicates int }
						json.Unmarshal([]byte(body), &res)
						t.Logf("import: try %d: %d rows imported, %d duplicates in %v", try, res.Imported, res.Duplicates, time.Since(began).Round(time.Millisecond))
						break
					}
					t.Logf("import: try %d: %d %.200s", try, code, body)
					if try == 5 || ctx.Err() != nil {
						err = fmt.Errorf("import failed %d times; last: %d %.200s", try, code, body)
						break
					}
				}
				importWindow.Store(int64(time.Since(began)))
				importHanded.Store(f.handedCount() - handedBefore)
				importing.Store(false)
				importDone <- err
			})
		}
		// PostgreSQL restarts mid-campaign.
		if pgRestarts == 0 && now.Sub(start) > 12*time.Second {
			t.Logf("PostgreSQL restarts at %v", now.Sub(start).Round(time.Second))
			pg.Restart()
			pgRestarts++
		}
		if pgRestarts > 0 && len(down) == 0 {
			st := states(camp.ID)
			var nodes int
			up := 0
			for _, in := range fake.Instances() {
				if in.State != "terminated" && in.State != "stopped" {
					up++
				}
			}
			if st != nil && st["done"]+st["failed"] == contacts && f.holding() == 0 && up == 0 && importStarted && !importing.Load() &&
				db.QueryRow(`SELECT count(*) FROM elastidial_nodes WHERE state NOT IN ('gone', 'parked')`).Scan(&nodes) == nil && nodes == 0 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if err := <-importDone; err != nil {
		t.Error(err)
	}

	// What the nodes saw.
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fail := range f.failures {
		t.Error(fail)
	}
	var token int64
	db.QueryRow(`SELECT token FROM elastidial_leader`).Scan(&token)
	t.Logf("%v: %d kills (%d of the leader), fencing token %d, PostgreSQL restarted %d; %d calls handed, %d results delivered, %d requests failed in transport; %d instances launched, at most %d at once; %d calls handed while the import ran (%v)",
		time.Since(start).Round(time.Second), kills, leaderKills, token, pgRestarts, len(f.handed), len(f.delivered), f.transport,
		len(fake.Instances()), peak, importHanded.Load(), time.Duration(importWindow.Load()).Round(time.Millisecond))
	if kills < 5 || leaderKills == 0 {
		t.Errorf("%d kills, %d of the leader: not the chaos asked for", kills, leaderKills)
	}
	if f.lost != 0 {
		t.Errorf("%d calls or results were on nodes when their instances ended", f.lost)
	}
	if n := len(fake.Instances()); n > maxNodes {
		t.Errorf("%d instances launched (at most %d up at once); one scaler launches %d for %d calls", n, peak, maxNodes, target)
	}
	// What is left is the warm pool: stopped instances, parked in the
	// registry. Anything else still up is an orphan.
	var parked []string
	rows, err := db.Query(`SELECT id || ' ' || state FROM elastidial_nodes WHERE state <> 'gone' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		parked = append(parked, strings.Replace(s, " parked", " stopped", 1))
	}
	rows.Close()
	if live := liveInstances(fake); !slices.Equal(live, parked) {
		t.Errorf("instances up at the end %v; the registry's %v (only the warm pool, stopped, may stay)", live, parked)
	}
	if importHanded.Load() <= 0 {
		t.Errorf("no call was handed out while the import ran")
	}
	var imported, staged int
	db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE state = 'staged') FROM contacts WHERE campaign_id = $1`, later.ID).Scan(&imported, &staged)
	if imported != importRows || staged != 0 {
		t.Errorf("the imported campaign holds %d contacts (%d of them staged), want %d, none staged", imported, staged, importRows)
	}

	// What the database kept: each delivered result as the node said it,
	// every attempt but those of calls never handed to a node, and no
	// attempt of a contact begun before its last one ended.
	rows, err = db.Query(`SELECT call_id, contact_id, disposition, started_at, ended_at FROM attempts WHERE campaign_id = $1 ORDER BY contact_id, started_at`, camp.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prev struct {
		contact int64
		call    string
		ended   int64
	}
	answered, cutUnhanded, overlaps := 0, 0, 0
	seen := map[string]bool{}
	for rows.Next() {
		var call, disp string
		var contact, started, ended int64
		if err := rows.Scan(&call, &contact, &disp, &started, &ended); err != nil {
			t.Fatal(err)
		}
		seen[call] = true
		if contact == prev.contact && (prev.ended == 0 || started < prev.ended) {
			overlaps++
			if overlaps <= 5 {
				t.Errorf("contact %d: attempt %s began at %d before attempt %s ended (%d)", contact, call, started, prev.call, prev.ended)
			}
		}
		prev.contact, prev.call, prev.ended = contact, call, ended
		switch want, ok := f.delivered[call]; {
		case ok && disp != want:
			t.Errorf("call %s: the node reported %s, the database holds %q", call, want, disp)
		case ok:
			answered++
		case f.handed[call]:
			t.Errorf("call %s was handed to a node, which never delivered its result; the database holds %q", call, disp)
		case disp == "cut_off":
			cutUnhanded++ // its dialer.next answer never reached a node
		default:
			t.Errorf("call %s was never handed to a node, yet the database holds %q", call, disp)
		}
	}
	for call := range f.delivered {
		if !seen[call] {
			t.Errorf("the result of call %s was delivered but no attempt holds it", call)
		}
	}
	t.Logf("attempts: %d answered, %d cut off without reaching a node", answered, cutUnhanded)
	if answered == 0 {
		t.Error("no call was answered")
	}
}

// ctlProc is one `controller serve` process.
type ctlProc struct {
	name, addr, ops, log string
	args, env            []string
	cmd                  *exec.Cmd
}

func (c *ctlProc) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	fmt.Fprintf(log, "--- started at %s\n", time.Now().Format(time.StampMilli))
	c.cmd = exec.Command(c.args[0], c.args[1:]...)
	c.cmd.Env, c.cmd.Stdout, c.cmd.Stderr = c.env, log, log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !healthyWithin("http://"+c.addr, 20*time.Second) {
		t.Fatalf("%s did not come up", c.name)
	}
}

// healthyWithin reports whether the controller at base answers /healthz
// with 200 within d.
func healthyWithin(base string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// kill is kill -9: no goodbye to the database, the cloud or the nodes.
func (c *ctlProc) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.cmd = nil
}

func (c *ctlProc) stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

var leaderGauge = regexp.MustCompile(`(?m)^elastidial_scaler_leader 1$`)

// leading reports whether the process says it leads the scaler.
func (c *ctlProc) leading() bool {
	if c.cmd == nil {
		return false
	}
	req, _ := http.NewRequest("GET", "http://"+c.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.ops)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return leaderGauge.Match(b)
}

// balancer is the load balancer in front of the controllers: each
// request goes to one chosen at random; one whose connection cannot be
// opened (the process is down) goes to another, as a load balancer's
// health checks would have it. A request sent and then cut is not sent
// again: the client decides.
type balancer struct {
	addrs []string
	n     atomic.Uint64
}

var balancerClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	first := int(b.n.Add(1))
	for k := range b.addrs {
		addr := b.addrs[(first+k)%len(b.addrs)]
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := balancerClient.Do(req)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			continue
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no controller is up", http.StatusServiceUnavailable)
}

// liveInstances lists the instances not terminated.
func liveInstances(fake *ec2fake.Server) []string {
	var out []string
	for _, in := range fake.Instances() {
		if in.State != "terminated" {
			out = append(out, in.ID+" "+in.State)
		}
	}
	return out
}

// simFleet is the simulated nodes and what they saw.
type simFleet struct {
	url, secret string
	ec2         *ec2fake.Server

	mu        sync.Mutex
	nodes     map[string]bool   // instances a node runs on
	live      map[string]string // number → the call live on it
	handed    map[string]bool   // calls dialer.next handed to a node
	delivered map[string]string // call → the disposition its node delivered
	held      int               // calls handed and not yet delivered, fleet-wide
	transport int               // requests the connection failed under
	lost      int               // calls or results on a node when its instance ended
	failures  []string
}

func (f *simFleet) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) < 20 {
		f.failures = append(f.failures, fmt.Sprintf(format, args...))
	}
}

// boot reports whether instance id needs a node started (once).
func (f *simFleet) boot(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes[id] {
		return false
	}
	f.nodes[id] = true
	return true
}

func (f *simFleet) holding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

func (f *simFleet) handedCount() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.handed))
}

// gone reports whether the cloud has ended instance id (or is ending it).
func (f *simFleet) gone(id string) bool {
	for _, in := range f.ec2.Instances() {
		if in.ID == id {
			return in.State == "shutting-down" || in.State == "terminated"
		}
	}
	return true
}

// call makes one XML-RPC request; err is an *xmlrpc.Fault, or a
// transport failure (counted) the caller may try again.
func (f *simFleet) call(hc *http.Client, cred, method string, arg, reply any) error {
	var body bytes.Buffer
	if err := xmlrpc.EncodeCall(&body, method, arg); err != nil {
		return err
	}
	req, _ := http.NewRequest("POST", f.url, &body)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := hc.Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
		}
	}
	var out []byte
	if err == nil {
		out, err = io.ReadAll(resp.Body)
	}
	if err != nil {
		f.mu.Lock()
		f.transport++
		f.mu.Unlock()
		return err
	}
	v, err := xmlrpc.DecodeResponse(out, xmlrpc.Limits{})
	if err != nil {
		return err
	}
	return xmlrpc.Unmarshal(v, reply)
}

func faultCode(err error) int {
	var fe *xmlrpc.Fault
	if errors.As(err, &fe) {
		return fe.Code
	}
	return 0
}

// run is one node, from its instance's boot to its end: the agent's
// loop (register, heartbeat with the calls held, dialer.next while slots
// are free and no drain is asked, each call's steps and its result,
// delivered until accepted), on the agent's HTTP client.
func (f *simFleet) run(ctx context.Context, id string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	hc := agent.NewRPC("", "").HTTP
	var (
		mu       sync.Mutex
		held     = map[string]bool{} // handed, result not yet accepted
		reg      nodeapi.RegisterResponse
		draining bool
		calls    sync.WaitGroup
	)
	defer calls.Wait()
	register := func() bool {
		for ctx.Err() == nil && !f.gone(id) {
			var r nodeapi.RegisterResponse
			err := f.call(hc, f.secret, nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: id, PrivateIP: "10.0.0.1", Capacity: 100}, &r)
			if err == nil {
				mu.Lock()
				reg = r
				mu.Unlock()
				return true
			}
			if faultCode(err) == nodeapi.FaultNodeGone {
				return false
			}
			time.Sleep(200 * time.Millisecond) // not yet listed by the leader, or no controller up
		}
		return false
	}
	if !register() {
		return
	}
	audio, trunks := reg.AudioVersion, ""
	// token is the node's credential now (calls read it as the node
	// registers again).
	token := func() string {
		mu.Lock()
		defer mu.Unlock()
		return reg.Token
	}
	// place plays one call and delivers its result until a controller
	// accepts it (the agent's queue).
	place := func(c nodeapi.Call, prompt time.Duration) {
		defer calls.Done()
		state, input := "", nodeapi.InputStart
		var path []string
		disp := nodeapi.DispAnswered
		for steps := 0; ; steps++ {
			var st nodeapi.StepResponse
			var err error
			for try := 0; try < 8; try++ { // the agent tries a step again, then gives the call up
				if err = f.call(hc, token(), nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: c.CampaignID,
					FlowVersion: c.FlowVersion, State: state, Input: input}, &st); err == nil {
					break
				}
				time.Sleep(300 * time.Millisecond)
			}
			if err != nil {
				disp = nodeapi.DispIVRFailed
				break
			}
			if st.Action.Kind == nodeapi.ActionHangup {
				break
			}
			path = append(path, st.State)
			state, input = st.State, nodeapi.InputDone
			time.Sleep(prompt) // the prompt plays
		}
		now := time.Now().Unix()
		for ctx.Err() == nil {
			var res nodeapi.ResultResponse
			err := f.call(hc, token(), nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: disp,
				StartedAt: now - 3, AnsweredAt: now - 2, EndedAt: now, Path: path}, &res)
			switch code := faultCode(err); {
			case err == nil:
				f.mu.Lock()
				f.delivered[c.CallID] = disp
				if f.live[c.Number] == c.CallID {
					delete(f.live, c.Number)
				}
				f.held--
				f.mu.Unlock()
				mu.Lock()
				delete(held, c.CallID)
				mu.Unlock()
				return
			case code == nodeapi.FaultStaleLease || code == nodeapi.FaultForbidden || code == nodeapi.FaultNodeGone:
				f.fail("result of %s on %s refused: %v", c.CallID, id, err)
				return
			}
			time.Sleep(300 * time.Millisecond) // kept, delivered again
		}
	}
	nextHB := time.Now()
	for ctx.Err() == nil {
		if f.gone(id) {
			mu.Lock()
			if n := len(held); n > 0 {
				f.fail("instance %s ended holding calls %v", id, held)
				f.mu.Lock()
				f.lost += n
				f.mu.Unlock()
			}
			mu.Unlock()
			return
		}
		mu.Lock()
		ids := make([]string, 0, len(held))
		for c := range held {
			ids = append(ids, c)
		}
		mu.Unlock()
		slices.Sort(ids)
		if time.Now().After(nextHB) {
			var hb nodeapi.HeartbeatResponse
			err := f.call(hc, reg.Token, nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{ActiveCalls: len(ids), Capacity: 100,
				AMIConnected: true, TimingOK: true, ChannelOK: true, TrunkOK: true, AudioVersion: audio, TrunksVersion: trunks,
				Draining: draining, Calls: strings.Join(ids, ","), CallsListed: true}, &hb)
			switch faultCode(err) {
			case 0:
				if err == nil {
					draining = hb.Drain
					audio, trunks = hb.AudioVersion, hb.TrunksVersion // synced, as the agent does
					nextHB = time.Now().Add(time.Second)
				}
			case nodeapi.FaultUnknownNode, nodeapi.FaultUnauthorized:
				if !register() {
					continue
				}
			case nodeapi.FaultNodeGone:
				draining = true
			}
		}
		if free := 100 - len(ids); free > 0 && !draining {
			var next nodeapi.NextResponse
			err := f.call(hc, reg.Token, nodeapi.MethodNext, nodeapi.NextRequest{Free: free, AudioVersion: audio, TrunksVersion: trunks}, &next)
			if err == nil {
				audio, trunks = next.AudioVersion, next.TrunksVersion
				for _, c := range next.Calls {
					f.mu.Lock()
					if other, ok := f.live[c.Number]; ok {
						f.failures = append(f.failures, fmt.Sprintf("%s handed as %s to %s while %s is live", c.Number, c.CallID, id, other))
					}
					f.live[c.Number] = c.CallID
					f.handed[c.CallID] = true
					f.held++
					f.mu.Unlock()
					mu.Lock()
					held[c.CallID] = true
					mu.Unlock()
					calls.Add(1)
					go place(c, time.Duration(1000+rng.IntN(2000))*time.Millisecond)
				}
				if len(next.Calls) > 0 {
					continue
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}
