package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/xmlrpc"
)

// BenchmarkFleet is the fleet at scale on this machine: two controllers,
// each a process of its own, on one PostgreSQL with memcached, and
// lightweight simulated nodes, each with the agent's HTTP client,
// speaking the real XML-RPC through both (round robin, as behind a load
// balancer): register, heartbeat, dialer.next, five call.step per call,
// call.result. No Asterisk: a call holds its slot for its steps' pauses,
// about 5 s in all, the length the 2009 deployment's figures imply
// (3,500 concurrent calls at 680 attempts/s). The load climbs a ladder of
// active nodes (100 slots each) up to 35; each rung reports the calls
// actually held (sampled), attempts/s, steps/s, p99 latencies, database
// transactions per attempt and the CPU time per attempt of the
// controllers, PostgreSQL and the simulated fleet (which shares the
// machine here; in production it is the nodes). The ceiling is the last
// rung whose p99 call.step stays under a second (a caller hears a longer
// silence between prompts as a fault). Beside it, in the same run, the
// floors: a bare HTTP round trip with the same client and concurrency,
// and a bare UPDATE ... RETURNING on the same PostgreSQL.
//
// Nodes ask for calls at the agent's cadence (Agent.dialLoop), and try
// a request the connection failed under again, as the agent does; each
// rung says how many were.
//
// On the 2-core machine, nothing else running (four runs, one with a
// sampler of pg_stat_activity at 4 Hz): at 3,500 slots 3,055-3,173
// calls held at 468-613 attempts/s, p99 call.step 578-1,040 ms,
// dialer.next 1.0-1.5 s, call.result 0.8-1.4 s, 3.4-4.5 database
// transactions per attempt; CPU per attempt: controllers 1.12-1.55 ms,
// PostgreSQL 0.96-1.38 ms, simulated fleet 0.68-0.95 ms (2.76-3.88 ms in
// all; 680 attempts/s needs at most 2.94 on two cores), the machine
// 87-94% busy; in the run with the sampler p99 call.step passed 1 s at
// that rung, so its ceiling was 2,000 slots. Floors 19,864-31,982 HTTP
// req/s (requests at 0.11-0.16x) and 10,834-18,684 UPDATEs/s (attempts
// at 0.033-0.048x); no request was tried again in the run that counted.
// Before this round's changes (four runs of the last round's code, and
// three of the lighter simulated fleet alone): 2,572-2,989 calls at
// 391-539 attempts/s, 3.5-4.8 ms of CPU per attempt in all.
//
//	RACE= GOTESTFLAGS="-run x -bench Fleet -benchtime 1x" scripts/test ./cmd/controller
//
// With ELASTIDIAL_FLEET_PROFILE=<folder> it also saves the controllers'
// CPU profiles of each rung there (go tool pprof controller-*.prof).
func BenchmarkFleet(b *testing.B) {
	const (
		nodes    = 35
		slots    = 100
		hold     = 1250 * time.Millisecond // between steps: the prompt playing
		poll     = time.Second             // the agent's default Config.Poll
		ramp     = 7 * time.Second
		measure  = 8 * time.Second
		contacts = 100000
		budget   = time.Second // p99 call.step beyond this is broken
	)
	ladder := []int{5, 10, 20, 35} // active nodes
	dsn := testenv.PostgresDSN(b)
	mc := testenv.StartMemcached(b)
	env := func(k string) string { // secrets come from the environment, never flags
		if k == "ELASTIDIAL_CLUSTER_SECRET" {
			return "bench-secret"
		}
		return ""
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-db", dsn, "ops"}, &out, io.Discard, env); err != nil {
		b.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	dir := b.TempDir()
	idle := filepath.Join(dir, "idle-agent")
	os.WriteFile(idle, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755)
	// Several controllers share the local cloud's folder and one public
	// address (the load balancer's), as the README says: whichever leads
	// sees the same node processes, so a change of leader under load
	// (leases are renewed by tick) does not lose the fleet.
	// Each controller is a process of its own, as deployed: in the
	// benchmark's process the controllers' goroutines queued behind the
	// simulated fleet's thousands on one Go scheduler, and a lease
	// holding its campaign's lock waited there.
	bin := filepath.Join(dir, "controller")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build the controller: %v\n%s", err, out)
	}
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))}
	var bases []string
	var procs []*os.Process
	// ELASTIDIAL_FLEET_PROFILE names a folder for the controllers' CPU
	// profiles of each rung (controller-<n>-<slots>.prof).
	profDir := os.Getenv("ELASTIDIAL_FLEET_PROFILE")
	var pprofAddrs []string
	for i := range 2 {
		addr := addrs[i]
		cmd := exec.Command(bin, "serve", "-data", dir, "-db", dsn, "-listen", addr, "-memcached", mc.Addr,
			"-agent-path", idle, "-local-dir", filepath.Join(dir, "nodes"), "-public-url", "http://"+addrs[0],
			"-audio", filepath.Join(dir, "audio"), "-tick", "1s", "-log-level", "error")
		cmd.Env = append(os.Environ(), "ELASTIDIAL_CLUSTER_SECRET=bench-secret", "GOMAXPROCS=1")
		if profDir != "" {
			pprofAddrs = append(pprofAddrs, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b)))
			cmd.Env = append(cmd.Env, "ELASTIDIAL_DEBUG_PPROF="+pprofAddrs[i])
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd.Process)
		b.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
		bases = append(bases, "http://"+addr)
		if !healthyWithin(bases[i], 15*time.Second) {
			b.Fatal("controller did not come up")
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	rest := func(method, path, body string) string {
		req, _ := http.NewRequest(method, bases[0]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
		}
		return string(out)
	}
	rest("PUT", "/api/v1/trunks/carrier", `{"max_channels":5000,"max_cps":2000}`)
	var camp struct{ ID string }
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	json.Unmarshal([]byte(rest("POST", "/api/v1/campaigns", fmt.Sprintf(`{"name":"Fleet","trunk":"carrier","caller_id":"%s","target":%d,"max_cps":2000}`, where.callerID, nodes*slots))), &camp)
	rest("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", `{"start":"a","states":{"a":{"say_digits":"1","next":"b"},"b":{"say_digits":"2","next":"c"},"c":{"say_digits":"3","next":"d"},"d":{"say_digits":"4","next":"bye"},"bye":{"hangup":true}}}`)
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range contacts {
		fmt.Fprintf(&csv, "%s\n", where.number(i))
	}
	rest("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", csv.String())
	rest("POST", "/api/v1/campaigns/"+camp.ID+"/start", "")

	// The scaler launches the nodes (idle processes); we play them.
	var ids []string // launched: a launch the cloud has not answered yet has no instance to register
	for deadline := time.Now().Add(90 * time.Second); len(ids) < nodes; time.Sleep(200 * time.Millisecond) {
		ids = launched(rest("GET", "/api/v1/fleet", ""))
		if time.Now().After(deadline) {
			b.Fatalf("fleet: %d launched nodes", len(ids))
		}
	}

	var rr atomic.Uint64
	type sample struct {
		method string
		d      time.Duration
	}
	var smu sync.Mutex
	var samples []sample
	var counting atomic.Bool
	var attempts, steps atomic.Int64
	var transportErrs atomic.Int64 // requests the connection failed under, tried again
	var live atomic.Int64          // calls in progress across the fleet
	// Each node has its own HTTP client, the agent's (agent.NewRPC): a
	// client shared by the whole fleet would queue every node's calls on
	// its connection limit and time that as the controllers'.
	rpc := func(hc *http.Client, cred, method string, arg, reply any) error {
		// The nodes send the bytes the agent sends (kolo's encoding, as
		// xmlrpc's tests prove), encoded at a tenth of kolo's cost: the
		// simulated fleet shares the machine with what it measures.
		body := new(bytes.Buffer)
		if err := xmlrpc.EncodeCall(body, method, arg); err != nil {
			return err
		}
		// A request the connection failed under (no answer read) is
		// tried again, as the agent tries a step again (Agent.step: four
		// tries, 200 ms doubling) and keeps a result until delivered;
		// each such failure is counted and reported with its rung.
		var out []byte
		for try, wait := 1, 200*time.Millisecond; ; try, wait = try+1, 2*wait {
			req, _ := http.NewRequest("POST", bases[rr.Add(1)%uint64(len(bases))]+"/RPC2", bytes.NewReader(body.Bytes()))
			req.Header.Set("Authorization", "Bearer "+cred)
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err == nil {
				out, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				if counting.Load() {
					smu.Lock()
					samples = append(samples, sample{method, time.Since(t0)})
					smu.Unlock()
				}
				break
			}
			transportErrs.Add(1)
			if try == 4 {
				return err
			}
			time.Sleep(wait)
		}
		// They read answers with the project's decoder, a fraction of
		// kolo's reflection.
		v, err := xmlrpc.DecodeResponse(out, xmlrpc.Limits{})
		if err != nil {
			return err
		}
		return xmlrpc.Unmarshal(v, reply)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failure atomic.Value
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			failure.CompareAndSwap(nil, err)
			stop()
		}
	}
	// place plays one call: its steps, the prompts' pauses between them,
	// and its result.
	place := func(hc *http.Client, reg nodeapi.RegisterResponse, c nodeapi.Call) {
		state, input := "", nodeapi.InputStart
		path := []string{}
		for {
			var st nodeapi.StepResponse
			if err := rpc(hc, reg.Token, nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: c.CampaignID,
				FlowVersion: c.FlowVersion, State: state, Input: input}, &st); err != nil {
				fail(err)
				return
			}
			if counting.Load() {
				steps.Add(1)
			}
			if st.Action.Kind == nodeapi.ActionHangup {
				break
			}
			path = append(path, st.State)
			state, input = st.State, nodeapi.InputDone
			time.Sleep(hold)
		}
		now := time.Now().Unix()
		var res nodeapi.ResultResponse
		fail(rpc(hc, reg.Token, nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: nodeapi.DispAnswered,
			StartedAt: now - 2, AnsweredAt: now - 1, EndedAt: now, Path: path}, &res))
		if counting.Load() {
			attempts.Add(1)
		}
	}
	// The simulated fleet stands for 35 machines, each with a collector
	// and a scheduler of its own. In one process its collector scanned
	// thousands of goroutines' stacks every cycle, and its scheduler
	// spun threads looking for work between requests: CPU it took from
	// the machine it shares with what it measures. While the ladder
	// runs, it collects less often (its memory is not measured) and runs
	// on one thread, as each controller does (it needs half a core at
	// the top rung; a reply it is slow to read counts against the
	// latency, never for it). The floors run with the process's own
	// settings again.
	gcPercent, maxProcs := debug.SetGCPercent(400), runtime.GOMAXPROCS(1)
	restore := sync.OnceFunc(func() {
		debug.SetGCPercent(gcPercent)
		runtime.GOMAXPROCS(maxProcs)
	})
	defer restore()
	var activeNodes atomic.Int64
	for i, id := range ids[:nodes] {
		wg.Go(func() {
			// A controller that has not yet listed the instance refuses
			// it; the agent tries again, as here (for a minute: on a
			// loaded machine the leader lists the cloud late).
			hc := agent.NewRPC("", "").HTTP
			var reg nodeapi.RegisterResponse
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
				err := rpc(hc, "bench-secret", nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: id, Capacity: slots}, &reg)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					fail(fmt.Errorf("register %s: %w", id, err))
					return
				}
			}
			var active atomic.Int64
			// A worker per slot places the calls dialer.next hands out: a
			// goroutine per call would grow a fresh stack for every
			// attempt, CPU the simulated fleet takes from the machine.
			work := make(chan nodeapi.Call, slots)
			slotFree := make(chan struct{}, 1)
			var calls sync.WaitGroup
			defer calls.Wait()
			defer close(work)
			for range slots {
				calls.Go(func() {
					for c := range work {
						place(hc, reg, c)
						live.Add(-1)
						active.Add(-1)
						select {
						case slotFree <- struct{}{}:
						default:
						}
					}
				})
			}
			nextHB := time.Now()
			for ctx.Err() == nil {
				if time.Now().After(nextHB) {
					// Every node beats, dialling or not: a silent one is dead.
					var hb nodeapi.HeartbeatResponse
					fail(rpc(hc, reg.Token, nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{ActiveCalls: int(active.Load()), Capacity: slots,
						AMIConnected: true, TimingOK: true, ChannelOK: true, TrunkOK: true, AudioVersion: reg.AudioVersion}, &hb))
					nextHB = time.Now().Add(10 * time.Second)
				}
				if int64(i) >= activeNodes.Load() {
					time.Sleep(100 * time.Millisecond) // not on this rung yet
					continue
				}
				// The agent's cadence (Agent.dialLoop, default Poll 1 s): it
				// asks while it has free slots and was handed calls; else
				// it waits for a slot to free, then a quarter of Poll, or
				// for Poll.
				if free := slots - int(active.Load()); free > 0 {
					var next nodeapi.NextResponse
					if err := rpc(hc, reg.Token, nodeapi.MethodNext, nodeapi.NextRequest{Free: free, AudioVersion: reg.AudioVersion}, &next); err != nil {
						fail(err)
						return
					}
					for _, c := range next.Calls { // at most the free slots: a worker is waiting for each
						active.Add(1)
						live.Add(1)
						work <- c
					}
					if len(next.Calls) > 0 {
						continue
					}
				}
				select {
				case <-ctx.Done():
				case <-slotFree:
					time.Sleep(poll / 4)
				case <-time.After(poll):
				}
			}
		})
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// PostgreSQL's CPU is its server processes': the children of the
	// postmaster serving this connection.
	var backend int
	if err := db.QueryRow(`SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	postmaster := parentPID(backend)
	xacts := func() int64 {
		time.Sleep(1100 * time.Millisecond) // statistics reach the view at most a second late
		var n int64
		db.QueryRow(`SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
		return n
	}
	p99 := func(method string) time.Duration {
		var ds []time.Duration
		for _, s := range samples {
			if s.method == method || method == "" {
				ds = append(ds, s.d)
			}
		}
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return ds[len(ds)*99/100]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	type rung struct {
		slots, calls                    int // offered by the active nodes, held on average
		attemptsPS, stepsPS, requestsPS float64
		p99, p99Step, p99Next, p99Res   time.Duration
		xactsPerAttempt                 float64
		cpuPerAttempt                   [3]time.Duration // CPU time per attempt: the controllers, PostgreSQL, the simulated fleet
		busy                            float64          // the machine's CPUs busy, 0-1 (PostgreSQL, memcached, the simulated fleet, all)
		transportErrs                   int64            // requests the connection failed under, tried again
	}
	var rungs []rung
	ceiling := -1
	for _, active := range ladder {
		activeNodes.Store(int64(active))
		time.Sleep(ramp)
		smu.Lock()
		samples = samples[:0]
		smu.Unlock()
		attempts.Store(0)
		steps.Store(0)
		e0 := transportErrs.Load()
		x0 := xacts()
		cpu0, busy0 := partyCPU(procs, postmaster), machineBusy()
		counting.Store(true)
		var profiles sync.WaitGroup
		for i, addr := range pprofAddrs {
			profiles.Go(func() {
				saveProfile(b, addr, measure, filepath.Join(profDir, fmt.Sprintf("controller-%d-%d.prof", i, active*slots)))
			})
		}
		var held, samplesTaken int64 // calls in progress, sampled
		for end := time.Now().Add(measure); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			held += live.Load()
			samplesTaken++
		}
		counting.Store(false)
		profiles.Wait()
		cpu1, busy1 := partyCPU(procs, postmaster), machineBusy()
		x1 := xacts()
		if ctx.Err() != nil {
			break
		}
		if attempts.Load() == 0 {
			// Nothing dialled is no figure: the nodes are not ready, or
			// the campaign is not callable.
			b.Fatalf("%d nodes: no call attempt in %s", active, measure)
		}
		smu.Lock()
		secs := measure.Seconds()
		r := rung{slots: active * slots, calls: int(held / samplesTaken), attemptsPS: float64(attempts.Load()) / secs, stepsPS: float64(steps.Load()) / secs,
			requestsPS: float64(len(samples)) / secs, p99: p99(""), p99Step: p99(nodeapi.MethodStep), p99Next: p99(nodeapi.MethodNext),
			p99Res: p99(nodeapi.MethodResult), xactsPerAttempt: float64(x1-x0) / float64(max(attempts.Load(), 1)),
			busy: busy1.since(busy0), transportErrs: transportErrs.Load() - e0}
		for i := range cpu1 {
			r.cpuPerAttempt[i] = (cpu1[i] - cpu0[i]) / time.Duration(max(attempts.Load(), 1))
		}
		smu.Unlock()
		rungs = append(rungs, r)
		b.Logf("%5d slots, %5d calls held: %6.1f attempts/s %7.1f steps/s %7.1f requests/s  p99 %6.0f ms (step %6.0f, next %6.0f, result %6.0f)  %.2f db xacts/attempt; CPU ms/attempt: controllers %.2f, PostgreSQL %.2f, simulated fleet %.2f; machine %.0f%% busy; %d requests tried again",
			r.slots, r.calls, r.attemptsPS, r.stepsPS, r.requestsPS, ms(r.p99), ms(r.p99Step), ms(r.p99Next), ms(r.p99Res), r.xactsPerAttempt,
			ms(r.cpuPerAttempt[0]), ms(r.cpuPerAttempt[1]), ms(r.cpuPerAttempt[2]), 100*r.busy, r.transportErrs)
		if r.p99Step > budget {
			break // broken: no higher rung
		}
		ceiling = len(rungs) - 1
	}
	stop()
	wg.Wait()
	restore()
	if err, _ := failure.Load().(error); err != nil {
		b.Fatal(err)
	}
	httpPS, httpP99 := httpFloor(b, client, 64)
	updPS := updateFloor(b, db, 32)
	b.Logf("floors: bare HTTP round trip %.0f req/s (p99 %.1f ms), bare UPDATE ... RETURNING %.0f/s", httpPS, ms(httpP99), updPS)
	// The top rung measured, and the ceiling.
	top := rungs[len(rungs)-1]
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(top.calls), "calls")
	b.ReportMetric(top.attemptsPS, "attempts/s")
	b.ReportMetric(top.stepsPS, "steps/s")
	b.ReportMetric(top.requestsPS, "requests/s")
	b.ReportMetric(ms(top.p99), "p99-ms")
	b.ReportMetric(ms(top.p99Step), "p99-step-ms")
	b.ReportMetric(ms(top.p99Next), "p99-next-ms")
	b.ReportMetric(ms(top.p99Res), "p99-result-ms")
	b.ReportMetric(top.xactsPerAttempt, "db-xacts/attempt")
	b.ReportMetric(ms(top.cpuPerAttempt[0]), "ctrl-cpu-ms/attempt")
	b.ReportMetric(ms(top.cpuPerAttempt[1]), "pg-cpu-ms/attempt")
	b.ReportMetric(ms(top.cpuPerAttempt[2]), "fleet-cpu-ms/attempt")
	b.ReportMetric(100*top.busy, "machine-busy-%")
	if ceiling >= 0 {
		b.ReportMetric(float64(rungs[ceiling].calls), "ceiling-calls")
		b.ReportMetric(rungs[ceiling].attemptsPS, "ceiling-attempts/s")
	} else {
		b.ReportMetric(0, "ceiling-calls")
	}
	b.ReportMetric(httpPS, "floor-http-req/s")
	b.ReportMetric(ms(httpP99), "floor-http-p99-ms")
	b.ReportMetric(updPS, "floor-update/s")
	b.ReportMetric(top.requestsPS/httpPS, "requests/floor-http")
	b.ReportMetric(top.attemptsPS/updPS, "attempts/floor-update")
}

// httpFloor is a bare HTTP round trip with the same client: a server
// answering a fixed XML-RPC response, conc clients for two seconds.
func httpFloor(b *testing.B, client *http.Client, conc int) (float64, time.Duration) {
	reply := []byte(`<?xml version="1.0"?><methodResponse><params><param><value><struct></struct></value></param></params></methodResponse>`)
	var call bytes.Buffer
	if err := xmlrpc.EncodeCall(&call, nodeapi.MethodStep, nodeapi.StepRequest{CallID: "k1-1", State: "a", Input: nodeapi.InputDone}); err != nil {
		b.Fatal(err)
	}
	body := call.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		w.Write(reply)
	}))
	defer srv.Close()
	var mu sync.Mutex
	var ds []time.Duration
	end := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				resp, err := client.Post(srv.URL, "text/xml", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			ds = append(ds, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(ds)
	return float64(len(ds)) / 2, ds[len(ds)*99/100]
}

// updateFloor is a bare single-row UPDATE ... RETURNING on the same
// PostgreSQL, conc clients on their own rows, for two seconds.
func updateFloor(b *testing.B, db *sql.DB, conc int) float64 {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS bench_floor (id INT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	for i := range conc {
		db.Exec(`INSERT INTO bench_floor VALUES ($1, 0) ON CONFLICT DO NOTHING`, i)
	}
	var n atomic.Int64
	end := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Go(func() {
			for time.Now().Before(end) {
				var v int64
				if err := db.QueryRow(`UPDATE bench_floor SET n = n + 1 WHERE id = $1 RETURNING n`, i).Scan(&v); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / 2
}

// saveProfile writes the CPU profile of the next d from the pprof
// listener at addr (ELASTIDIAL_DEBUG_PPROF) to file.
func saveProfile(b *testing.B, addr string, d time.Duration, file string) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	prof, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(file, prof, 0o644)
	}
	if err != nil {
		b.Error(err)
	}
}

// procStat is a process's parent and CPU time so far (Linux /proc).
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The fields after the command's closing parenthesis: the state,
	// the parent, ...; utime and stime are the 12th and 13th, in clock
	// ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ut, st int64
	fmt.Sscan(f[1], &ppid)
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return ppid, time.Duration(ut+st) * 10 * time.Millisecond, true
}

func parentPID(pid int) int {
	ppid, _, _ := procStat(pid)
	return ppid
}

// partyCPU is the CPU time used so far by the controllers, by
// PostgreSQL's server processes (postmaster's children) and by this
// process (the simulated fleet).
func partyCPU(ctrls []*os.Process, postmaster int) [3]time.Duration {
	var out [3]time.Duration
	for _, p := range ctrls {
		if _, cpu, ok := procStat(p.Pid); ok {
			out[0] += cpu
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, cpu, ok := procStat(pid); ok && ppid == postmaster {
			out[1] += cpu
		}
	}
	_, out[2], _ = procStat(os.Getpid())
	return out
}

// cpuTicks is the machine's CPU time, busy and all (/proc/stat).
type cpuTicks struct{ busy, all int64 }

func machineBusy() cpuTicks {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	var t cpuTicks
	for i, f := range strings.Fields(line)[1:] {
		var v int64
		fmt.Sscan(f, &v)
		t.all += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

// since is the share of the CPUs busy from t0 to t.
func (t cpuTicks) since(t0 cpuTicks) float64 {
	if t.all == t0.all {
		return 0
	}
	return float64(t.busy-t0.busy) / float64(t.all-t0.all)
}
