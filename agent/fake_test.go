package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/storage"
)

// fakeController is an in-memory controller: it leases the calls it is
// given, serves a small survey flow and records results.
type fakeController struct {
	mu          sync.Mutex
	down        bool // every method fails as if unreachable
	resultDown  bool // only call.result fails
	drain       bool
	audio       string
	queue       []nodeapi.Call
	results     map[string]nodeapi.ResultRequest
	resultLog   []nodeapi.ResultRequest
	heartbeats  []nodeapi.HeartbeatRequest
	nexts       []nodeapi.NextRequest
	registers   int
	steps       []nodeapi.StepRequest
	speech      []nodeapi.AudioFile // what speechFlow's spoken states say
	resultTries int
	manifests   int
	recordings  map[string][]byte
	failovers   []nodeapi.FailoverRequest
	failoverTo  []string // the trunks call.failover answers, in turn; then ""
}

var _ failoverer = (*fakeController)(nil)

func (f *fakeController) Failover(ctx context.Context, req nodeapi.FailoverRequest) (nodeapi.FailoverResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nodeapi.FailoverResponse{}, errUnreachable
	}
	f.failovers = append(f.failovers, req)
	if len(f.failoverTo) == 0 {
		return nodeapi.FailoverResponse{}, nil
	}
	next := f.failoverTo[0]
	f.failoverTo = f.failoverTo[1:]
	return nodeapi.FailoverResponse{Trunk: next}, nil
}

var errUnreachable = errors.New("dial tcp: connection refused")

var _ Controller = (*fakeController)(nil)

func newFake() *fakeController {
	return &fakeController{results: map[string]nodeapi.ResultRequest{}, audio: "v1"}
}

func (f *fakeController) add(calls ...nodeapi.Call) {
	f.mu.Lock()
	f.queue = append(f.queue, calls...)
	f.mu.Unlock()
}

func (f *fakeController) set(fn func(f *fakeController)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func (f *fakeController) Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nodeapi.RegisterResponse{}, errUnreachable
	}
	f.registers++
	return nodeapi.RegisterResponse{NodeID: "n-" + req.InstanceID, Token: "tok", HeartbeatSeconds: 1, AudioVersion: f.audio}, nil
}

func (f *fakeController) Heartbeat(ctx context.Context, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nodeapi.HeartbeatResponse{}, errUnreachable
	}
	f.heartbeats = append(f.heartbeats, req)
	return nodeapi.HeartbeatResponse{Drain: f.drain, AudioVersion: f.audio, HeartbeatSeconds: 1}, nil
}

func (f *fakeController) Next(ctx context.Context, req nodeapi.NextRequest) (nodeapi.NextResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nodeapi.NextResponse{}, errUnreachable
	}
	f.nexts = append(f.nexts, req)
	if req.AudioVersion != f.audio { // as the controller: sync first
		return nodeapi.NextResponse{Calls: []nodeapi.Call{}, AudioVersion: f.audio}, nil
	}
	n := min(req.Free, len(f.queue))
	out := append([]nodeapi.Call(nil), f.queue[:n]...)
	f.queue = f.queue[n:]
	return nodeapi.NextResponse{Calls: out, AudioVersion: f.audio}, nil
}

func (f *fakeController) PutRecording(ctx context.Context, key string, wav io.Reader, size int64) error {
	b, err := io.ReadAll(wav)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down || f.resultDown {
		return errUnreachable
	}
	if f.recordings == nil {
		f.recordings = map[string][]byte{}
	}
	f.recordings[key] = b
	return nil
}

func (f *fakeController) Manifest(ctx context.Context, req nodeapi.ManifestRequest) (nodeapi.ManifestResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nodeapi.ManifestResponse{}, errUnreachable
	}
	f.manifests++
	if req.Have == f.audio {
		return nodeapi.ManifestResponse{Version: f.audio, Unchanged: true}, nil
	}
	return nodeapi.ManifestResponse{Version: f.audio, Files: []nodeapi.AudioFile{{Name: "survey/welcome.wav", Size: 4}}}, nil
}

func (f *fakeController) Result(ctx context.Context, req nodeapi.ResultRequest) (nodeapi.ResultResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resultTries++
	if f.down || f.resultDown {
		return nodeapi.ResultResponse{}, errUnreachable
	}
	f.resultLog = append(f.resultLog, req)
	if _, dup := f.results[req.CallID]; dup {
		return nodeapi.ResultResponse{Recorded: false}, nil
	}
	f.results[req.CallID] = req
	return nodeapi.ResultResponse{Recorded: true}, nil
}

// Step serves this flow:
//
//	detect ─human─► welcome ─done─► q1 ─1─► yes ─► bye
//	  │machine                       ├─2─► no ──► bye
//	  ▼                              └─timeout/failed─► bye
//	 vm ─► bye
func (f *fakeController) Step(ctx context.Context, req nodeapi.StepRequest) (nodeapi.StepResponse, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return nodeapi.StepResponse{}, errUnreachable
	}
	if req.Token == "" {
		return nodeapi.StepResponse{}, &Fault{Code: nodeapi.FaultStaleLease, Message: "no token"}
	}
	f.mu.Lock()
	f.steps = append(f.steps, req)
	f.mu.Unlock()
	if req.CampaignID == "xfer" {
		return xferFlow(req), nil
	}
	if req.CampaignID == "speech" {
		return f.speechFlow(req), nil
	}
	if req.CampaignID == "xfer-implicit" {
		// As xfer, but an unanswered transfer ends the flow implicitly
		// (no state), as a flow without a failed branch there does.
		if req.State == "xfer" {
			return nodeapi.StepResponse{Action: nodeapi.Action{Kind: nodeapi.ActionHangup}}, nil
		}
		return xferFlow(req), nil
	}
	next := ""
	switch req.State {
	case "":
		next = "detect"
	case "detect":
		next = "welcome"
		if req.Input == nodeapi.InputMachine {
			next = "vm"
		}
	case "welcome":
		next = "q1"
	case "q1":
		switch {
		case req.Input == nodeapi.InputDigits && req.Digits == "1":
			next = "yes"
		case req.Input == nodeapi.InputDigits && req.Digits == "2":
			next = "no"
		default:
			next = "bye"
		}
	default:
		next = "bye"
	}
	resp := nodeapi.StepResponse{State: next}
	switch next {
	case "detect":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionDetect}
	case "welcome":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionPlay, Prompts: []string{"survey/welcome"}}
	case "q1":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionGather, Prompts: []string{"survey/q1"}, MaxDigits: 1, TimeoutMS: 3000}
	case "yes", "no":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionSayDigits, Text: "42"}
		resp.Tags = map[string]string{"answer": next}
	case "vm":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionPlay, Prompts: []string{"survey/voicemail"}}
	case "bye":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionHangup}
	}
	return resp, nil
}

func (f *fakeController) result(id string) (nodeapi.ResultRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.results[id]
	return r, ok
}

// rig is an agent wired to a simulator over loopback sockets.
type rig struct {
	t      *testing.T
	sim    *asterisksim.Sim
	ctl    *fakeController
	agent  *Agent
	state  string
	cancel context.CancelFunc
	done   chan error
	simCtx context.CancelFunc
	simErr chan error
	spot   *fakeSpot
	rpcURL string // when set, the agent reaches ctl through the real XML-RPC client
	clock  Clock  // the agent's clock; nil is the real one
}

type fakeSpot struct {
	mu     sync.Mutex
	notice bool
}

func (s *fakeSpot) SpotNotice(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notice, nil
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newRig starts a simulator with the given callees and an agent.
func newRig(t *testing.T, callees map[string]asterisksim.Callee, prompt time.Duration, configure ...func(*asterisksim.Sim)) *rig {
	t.Helper()
	sounds := t.TempDir()
	for _, n := range []string{"survey/welcome.wav", "survey/q1.wav", "survey/voicemail.wav"} {
		p := filepath.Join(sounds, "elastidial", n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("RIFF"), 0o644)
	}
	// The node image creates the recording folder (under sounds, where
	// RECORD FILE puts relative names).
	os.MkdirAll(filepath.Join(sounds, "recordings"), 0o755)
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim := &asterisksim.Sim{Username: "elastidial", Secret: "s3cret", Sounds: sounds, Log: testLog(t),
		Apps:  append(slices.Clone(asterisksim.DefaultApps), "AMD"),
		AGI:   "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}",
		Model: asterisksim.Model{Seed: 1, PromptTime: prompt, Callees: callees, RingMin: 5 * time.Millisecond, RingMax: 20 * time.Millisecond}}
	for _, f := range configure {
		f(sim)
	}
	amiAddr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, sim: sim, ctl: newFake(), state: t.TempDir(), spot: &fakeSpot{}}
	sctx, scancel := context.WithCancel(context.Background())
	r.simCtx, r.simErr = scancel, make(chan error, 1)
	go func() { r.simErr <- sim.Run(sctx) }()
	r.start(agiLn, amiAddr)
	t.Cleanup(r.stop)
	return r
}

func (r *rig) start(agiLn net.Listener, amiAddr string) {
	var ctl Controller = r.ctl
	if r.rpcURL != "" {
		ctl = NewRPC(r.rpcURL, "secret")
	}
	a, err := New(Config{Controller: ctl, AMIAddr: amiAddr, AMIUser: "elastidial", AMISecret: "s3cret",
		AGIListener: agiLn, Queue: &Queue{Dir: filepath.Join(r.state, "results")},
		Identity: Identity{InstanceID: "i-test", PrivateIP: "10.0.0.5"}, Capacity: 10, CPS: 200,
		Poll: 20 * time.Millisecond, AnswerGrace: 300 * time.Millisecond, Spot: r.spot, SpotEvery: 50 * time.Millisecond, Log: testLog(r.t),
		Recordings: filepath.Join(r.sim.Sounds, "recordings"), Speech: &storage.Syncer{Dir: filepath.Join(r.sim.Sounds, "elastidial-tts")}, Clock: r.clock})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.agent, r.cancel, r.done = a, cancel, make(chan error, 1)
	go func() { r.done <- a.Run(ctx) }()
}

func (r *rig) stopAgent() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("agent Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("agent did not stop")
	}
	r.cancel = nil
}

func (r *rig) stop() {
	r.stopAgent()
	r.simCtx()
	select {
	case <-r.simErr:
	case <-time.After(10 * time.Second):
		r.t.Fatal("simulator did not stop")
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func lease(id, number string) nodeapi.Call {
	return nodeapi.Call{CallID: id, Token: "t-" + id, CampaignID: "c1", FlowVersion: 1, Number: number,
		CallerID: `"Survey" <+15550000000>`, Trunk: "carrier", TimeoutSeconds: 1,
		LeaseExpires: time.Now().Add(time.Hour).Unix(), Fields: map[string]string{"name": "Ann"}}
}

func fmtPath(p []string) string { return fmt.Sprint(p) }

// xferFlow: rec ─► xfer ─(answered: call over)─► ; not answered ─► bye
func xferFlow(req nodeapi.StepRequest) nodeapi.StepResponse {
	switch req.State {
	case "":
		return nodeapi.StepResponse{State: "rec", Action: nodeapi.Action{Kind: nodeapi.ActionRecord, Target: "msg-1", MaxSeconds: 2}}
	case "rec":
		return nodeapi.StepResponse{State: "xfer", Action: nodeapi.Action{Kind: nodeapi.ActionTransfer, Target: "+15559999", MaxSeconds: 30}}
	}
	return nodeapi.StepResponse{State: "bye", Action: nodeapi.Action{Kind: nodeapi.ActionHangup}, Tags: map[string]string{"xfer": req.Input}}
}

func (f *fakeController) recordingOf(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recordings[key]
}

// speechFlow: greet (speech) ─► date (SAY DATETIME) ─► owe (money) ─► pin
// (a spoken gather of 4 digits) ─► bye; a failed step goes to bye too.
// The first step sets a variable, which must come back with every step.
func (f *fakeController) speechFlow(req nodeapi.StepRequest) nodeapi.StepResponse {
	f.mu.Lock()
	files := f.speech
	f.mu.Unlock()
	next := map[string]string{"": "greet", "greet": "date", "date": "owe", "owe": "pin"}[req.State]
	if req.Input == nodeapi.InputFailed || next == "" || req.State != "" && req.Vars["lang"] != "fr" {
		next = "bye"
	}
	resp := nodeapi.StepResponse{State: next, Vars: map[string]string{"lang": "fr"}}
	switch next {
	case "greet":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionSpeak, Text: "Bonjour Ann", Language: "fr", Files: files[:1],
			Prompts: []string{nodeapi.SpeechPrefix + strings.TrimSuffix(files[0].Name, ".wav")}}
	case "date":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionSayDateTime, Text: "1798070400", Format: "ABdY", Language: "fr"}
	case "owe":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionSayMoney, Text: "12.50", Language: "fr"}
	case "pin":
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionGather, Text: "Votre code", MaxDigits: 4, TimeoutMS: 1000, Language: "fr",
			Files: files[1:], Prompts: []string{nodeapi.SpeechPrefix + strings.TrimSuffix(files[1].Name, ".wav")}}
	default:
		resp.Action = nodeapi.Action{Kind: nodeapi.ActionHangup}
	}
	return resp
}
