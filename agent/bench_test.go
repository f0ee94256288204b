package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
)

// TestMain lets the benchmark re-run this test binary as a lone agent or a
// lone simulator, so that the agent's CPU and memory are measured in a
// process that runs nothing else.
func TestMain(m *testing.M) {
	switch os.Getenv("ELASTIDIAL_BENCH_ROLE") {
	case "sim":
		os.Exit(benchSim())
	case "agent":
		os.Exit(benchAgent())
	}
	os.Exit(testenv.RunInTree(m))
}

func benchSim() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	prompt, _ := time.ParseDuration(os.Getenv("BENCH_PROMPT"))
	sim := &asterisksim.Sim{Username: "elastidial", Secret: "x", AGI: os.Getenv("BENCH_AGI"),
		Apps: append(slices.Clone(asterisksim.DefaultApps), "AMD"), Log: testLogger(), Model: asterisksim.Model{Seed: 3, Answer: 1, PromptTime: prompt, DigitChoices: "12",
			RingMin: time.Second, RingMax: 3 * time.Second}}
	if _, err := sim.Listen(os.Getenv("BENCH_AMI")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	if err := sim.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func benchAgent() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", os.Getenv("BENCH_AGI_LISTEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a, err := New(Config{Controller: NewRPC(os.Getenv("BENCH_CONTROLLER"), "secret"), AMIAddr: os.Getenv("BENCH_AMI"),
		AMIUser: "elastidial", AMISecret: "x", AGIListener: ln, Queue: &Queue{Dir: os.Getenv("BENCH_STATE")},
		Identity: Identity{InstanceID: "i-bench"}, Capacity: 100, CPS: 20, Log: testLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if p := os.Getenv("ELASTIDIAL_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func testLogger() *slog.Logger {
	if os.Getenv("ELASTIDIAL_BENCH_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// benchController leases calls without end and counts them.
type benchController struct {
	*fakeController
	seq, done, secs, other atomic.Int64
}

func (b *benchController) Next(ctx context.Context, req nodeapi.NextRequest) (nodeapi.NextResponse, error) {
	var out []nodeapi.Call
	for range req.Free {
		n := b.seq.Add(1)
		c := lease(fmt.Sprintf("b%d", n), fmt.Sprintf("+1555%07d", n))
		c.TimeoutSeconds = 30
		out = append(out, c)
	}
	return nodeapi.NextResponse{Calls: out}, nil
}

func (b *benchController) Result(ctx context.Context, req nodeapi.ResultRequest) (nodeapi.ResultResponse, error) {
	b.done.Add(1)
	b.secs.Add(req.EndedAt - req.StartedAt)
	if req.Disposition != nodeapi.DispAnswered {
		b.other.Add(1)
	}
	return nodeapi.ResultResponse{Recorded: true}, nil
}

var methodRx = regexp.MustCompile(`<methodName>([^<]+)</methodName>`)

// xmlrpcFake serves a Controller over XML-RPC with kolo's codec: enough
// of a server to drive the agent's real client in the benchmark.
func xmlrpcFake(ctl Controller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := methodRx.FindSubmatch(body)
		if m == nil {
			http.Error(w, "no method", 400)
			return
		}
		ctx := r.Context()
		dec := func(v any) { xmlrpc.Response(body).Unmarshal(v) }
		var resp any
		var err error
		switch string(m[1]) {
		case nodeapi.MethodRegister:
			var q nodeapi.RegisterRequest
			dec(&q)
			resp, err = ctl.Register(ctx, q)
		case nodeapi.MethodHeartbeat:
			var q nodeapi.HeartbeatRequest
			dec(&q)
			resp, err = ctl.Heartbeat(ctx, q)
		case nodeapi.MethodNext:
			var q nodeapi.NextRequest
			dec(&q)
			resp, err = ctl.Next(ctx, q)
		case nodeapi.MethodStep:
			var q nodeapi.StepRequest
			dec(&q)
			resp, err = ctl.Step(ctx, q)
		case nodeapi.MethodResult:
			var q nodeapi.ResultRequest
			dec(&q)
			resp, err = ctl.Result(ctx, q)
		case nodeapi.MethodManifest:
			var q nodeapi.ManifestRequest
			dec(&q)
			resp, err = ctl.Manifest(ctx, q)
		}
		w.Header().Set("Content-Type", "text/xml")
		var f *Fault
		if errors.As(err, &f) {
			fmt.Fprintf(w, `<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>%d</int></value></member><member><name>faultString</name><value><string>%s</string></value></member></struct></value></fault></methodResponse>`, f.Code, f.Message)
			return
		}
		b, _ := xmlrpc.EncodeMethodCall("r", resp)
		s := string(b)
		i, j := strings.Index(s, "<params>"), strings.LastIndex(s, "</params>")
		io.WriteString(w, `<?xml version="1.0"?><methodResponse>`+s[i:j+len("</params>")]+`</methodResponse>`)
	})
}

// procCPU returns user+sys clock ticks of pid and its resident and peak
// resident memory in kB.
func procCPU(pid int) (ticks int64, rssKB, hwmKB int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	sb, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, l := range strings.Split(string(sb), "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, _ := strconv.ParseInt(strings.Fields(v + " 0")[0], 10, 64)
		switch k {
		case "VmRSS":
			rssKB = n
		case "VmHWM":
			hwmKB = n
		}
	}
	return ut + st, rssKB, hwmKB, nil
}

// BenchmarkAgent100Calls runs one agent (its own process, real XML-RPC
// client) against a simulator in another process, holding 100 concurrent
// answered calls, and reports the agent's CPU share of one core and its
// resident memory over a steady window. Run:
//
//	go test -run '^$' -bench Agent100Calls -benchtime 1x ./agent/
//
// ELASTIDIAL_BENCH_SECONDS sets the measured window (default 30).
func BenchmarkAgent100Calls(b *testing.B) {
	window := 30 * time.Second
	if s, err := strconv.Atoi(os.Getenv("ELASTIDIAL_BENCH_SECONDS")); err == nil {
		window = time.Duration(s) * time.Second
	}
	ctl := &benchController{fakeController: newFake()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: xmlrpcFake(ctl)}
	go srv.Serve(ln)
	defer srv.Close()
	free := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}
	amiAddr, agiAddr := free(), free()
	self, _ := os.Executable()
	common := []string{"BENCH_AMI=" + amiAddr, "BENCH_AGI=agi://" + agiAddr + "/ivr?call_id=${ELASTIDIAL_CALL_ID}",
		"BENCH_AGI_LISTEN=" + agiAddr, "BENCH_CONTROLLER=http://" + ln.Addr().String() + "/RPC2",
		"BENCH_STATE=" + filepath.Join(b.TempDir(), "results"), "BENCH_PROMPT=3s"}
	sim := exec.Command(self)
	sim.Env = append(os.Environ(), append(common, "ELASTIDIAL_BENCH_ROLE=sim")...)
	out, _ := sim.StdoutPipe()
	sim.Stderr = os.Stderr
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { sim.Process.Signal(syscall.SIGTERM); sim.Wait() }()
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
		b.Fatalf("simulator: %q", l)
	}
	ag := exec.Command(self)
	ag.Env = append(os.Environ(), append(common, "ELASTIDIAL_BENCH_ROLE=agent")...)
	ag.Stderr = os.Stderr
	if err := ag.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { ag.Process.Signal(syscall.SIGTERM); ag.Wait() }()

	active := func() int64 { return ctl.seq.Load() - ctl.done.Load() }
	// Warm up until 100 calls are up.
	deadline := time.Now().Add(60 * time.Second)
	for active() < 100 {
		if time.Now().After(deadline) {
			b.Fatalf("only %d concurrent calls after 60s", active())
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.ResetTimer()
	t0, _, _, err := procCPU(ag.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	start, done0 := time.Now(), ctl.done.Load()
	var sum, samples, low int64 = 0, 0, 100
	for time.Since(start) < window {
		time.Sleep(200 * time.Millisecond)
		a := active()
		sum += a
		samples++
		low = min(low, a)
	}
	t1, rss, hwm, err := procCPU(ag.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := float64(t1-t0) / 100 / elapsed.Seconds() // CLK_TCK is 100 on Linux
	b.ReportMetric(100*cpu, "%core")
	b.ReportMetric(float64(rss)/1024, "rssMB")
	b.ReportMetric(float64(hwm)/1024, "peakMB")
	b.ReportMetric(float64(sum)/float64(samples), "avg_calls")
	b.ReportMetric(float64(low), "min_calls")
	b.ReportMetric(float64(ctl.done.Load()-done0)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(ctl.secs.Load())/float64(max(ctl.done.Load(), 1)), "s/call")
	b.ReportMetric(float64(ctl.other.Load()), "not_answered")
}
