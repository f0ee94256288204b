package agenttest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastidial/elastidial/agent"
	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/nodeapi"
)

// SimCallees is the number plan as the simulator's callee model: the
// behaviour of each NumberPlan number. prompt is the simulator's
// PromptTime; the hang-up comes during the first prompt after detection.
func SimCallees(prompt time.Duration) map[string]asterisksim.Callee {
	c := map[Behaviour]asterisksim.Callee{
		PressOne:    {Outcome: asterisksim.Answer, Digits: []string{"1"}},
		Silent:      {Outcome: asterisksim.Answer},
		HangsUp:     {Outcome: asterisksim.Answer, HangupAfter: prompt},
		Busy:        {Outcome: asterisksim.Busy},
		Congested:   {Outcome: asterisksim.Congestion},
		RingsOut:    {Outcome: asterisksim.NoAnswer},
		EarlyMedia:  {Outcome: asterisksim.EarlyMedia},
		Unallocated: {Outcome: asterisksim.Unallocated},
		Declines:    {Outcome: asterisksim.Rejected},
		Unavailable: {Outcome: asterisksim.Unavailable},
		Machine:     {Outcome: asterisksim.Answer, Machine: true},
		SaysHello:   {Outcome: asterisksim.Answer, AMDStatus: "HUMAN"},
	}
	out := map[string]asterisksim.Callee{}
	for b, callee := range c {
		callee.Ring = 10 * time.Millisecond
		out[NumberPlan[b]] = callee
	}
	return out
}

// SimEnv places each call on a fresh simulated Asterisk and node agent over
// loopback, with an in-memory controller that serves Flows through the
// real flow engine. Calls may run in parallel.
type SimEnv struct {
	// Seed of the callee model; it draws the order of the OriginateResponse
	// and Hangup events of every unanswered call.
	Seed uint64
	// PromptTime is how long a simulated prompt lasts; default 40ms.
	PromptTime time.Duration
	Log        *slog.Logger // default: discard

	seq atomic.Int64
}

var _ Env = (*SimEnv)(nil)

// Place implements Env.
func (e *SimEnv) Place(ctx context.Context, sc Scenario) (nodeapi.ResultRequest, error) {
	doc, ok := Flows[sc.Flow]
	if !ok {
		return nodeapi.ResultRequest{}, fmt.Errorf("no flow %q", sc.Flow)
	}
	fl, err := flow.Parse([]byte(doc))
	if err != nil {
		return nodeapi.ResultRequest{}, err
	}
	if err := fl.Validate(func(string) bool { return true }); err != nil {
		return nodeapi.ResultRequest{}, fmt.Errorf("flow %s: %w", sc.Flow, err)
	}
	prompt := cmp.Or(e.PromptTime, 40*time.Millisecond)
	log := cmp.Or(e.Log, slog.New(slog.NewTextHandler(io.Discard, nil)))
	dir, err := os.MkdirTemp("", "agenttest-")
	if err != nil {
		return nodeapi.ResultRequest{}, err
	}
	defer os.RemoveAll(dir)
	sounds := filepath.Join(dir, "sounds")
	for _, p := range Prompts {
		if sc.Fault == PromptMissing && p == MissingPrompt {
			continue
		}
		f := filepath.Join(sounds, "elastidial", p+".wav")
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return nodeapi.ResultRequest{}, err
		}
		if err := os.WriteFile(f, []byte("RIFF"), 0o644); err != nil {
			return nodeapi.ResultRequest{}, err
		}
	}
	if sc.Fault != RecordingFolderMissing {
		// Writable by Asterisk's own user, as the node image must make it.
		rec := filepath.Join(sounds, "recordings")
		if err := os.MkdirAll(rec, 0o777); err != nil {
			return nodeapi.ResultRequest{}, err
		}
		if err := os.Chmod(rec, 0o777); err != nil {
			return nodeapi.ResultRequest{}, err
		}
	}
	apps := slices.Clone(asterisksim.DefaultApps)
	if sc.Fault != AMDNotLoaded {
		apps = append(apps, "AMD")
	}

	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nodeapi.ResultRequest{}, err
	}
	sim := &asterisksim.Sim{Username: "elastidial", Secret: "conformance", Sounds: sounds, Apps: apps, OtherUser: true, Log: log,
		AGI:   "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}",
		Model: asterisksim.Model{Seed: e.Seed, PromptTime: prompt, Callees: SimCallees(prompt)}}
	amiAddr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		agiLn.Close()
		return nodeapi.ResultRequest{}, err
	}
	id := fmt.Sprintf("conf-%d", e.seq.Add(1))
	ctl := &simController{flow: fl, results: make(chan nodeapi.ResultRequest, 1), queue: []nodeapi.Call{{
		CallID: id, Token: "tok-" + id, CampaignID: sc.Flow, FlowVersion: 1, Number: sc.Number(),
		CallerID: `"Conformance" <+15550100000>`, Trunk: "carrier", TimeoutSeconds: 1,
		LeaseExpires: time.Now().Add(time.Hour).Unix(), Fields: sc.Fields}}}
	a, err := agent.New(agent.Config{Controller: ctl, AMIAddr: amiAddr, AMIUser: "elastidial", AMISecret: "conformance",
		AGIListener: agiLn, Queue: &agent.Queue{Dir: filepath.Join(dir, "results")},
		Identity: agent.Identity{InstanceID: "i-" + id}, Capacity: 1, CPS: 100, Poll: 10 * time.Millisecond,
		AnswerGrace: 300 * time.Millisecond, CauseWait: time.Second, Log: log,
		Recordings: filepath.Join(sounds, "recordings")})
	if err != nil {
		agiLn.Close()
		return nodeapi.ResultRequest{}, err
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	agentCtx, stopAgent := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sim.Run(simCtx) }()
	go func() { defer wg.Done(); a.Run(agentCtx) }()
	defer func() {
		stopAgent()
		stopSim()
		wg.Wait()
	}()
	select {
	case r := <-ctl.results:
		return r, nil
	case <-ctx.Done():
		return nodeapi.ResultRequest{}, fmt.Errorf("no result for %s: %w", id, ctx.Err())
	}
}

// simController is the controller side of one SimEnv call.
type simController struct {
	flow    *flow.Flow
	results chan nodeapi.ResultRequest

	mu    sync.Mutex
	queue []nodeapi.Call
}

var _ agent.Controller = (*simController)(nil)

func (c *simController) Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error) {
	return nodeapi.RegisterResponse{NodeID: "n-" + req.InstanceID, Token: "node", HeartbeatSeconds: 1, AudioVersion: "v1"}, nil
}

func (c *simController) Heartbeat(ctx context.Context, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	return nodeapi.HeartbeatResponse{AudioVersion: "v1", HeartbeatSeconds: 1}, nil
}

// PutRecording accepts every recording (the store's checks are tested
// where the store lives).
func (c *simController) PutRecording(ctx context.Context, key string, wav io.Reader, size int64) error {
	_, err := io.Copy(io.Discard, wav)
	return err
}

func (c *simController) Manifest(ctx context.Context, req nodeapi.ManifestRequest) (nodeapi.ManifestResponse, error) {
	return nodeapi.ManifestResponse{Version: "v1", Unchanged: true}, nil
}

func (c *simController) Next(ctx context.Context, req nodeapi.NextRequest) (nodeapi.NextResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(req.Free, len(c.queue))
	out := c.queue[:n:n]
	c.queue = c.queue[n:]
	return nodeapi.NextResponse{Calls: out}, nil
}

func (c *simController) Step(ctx context.Context, req nodeapi.StepRequest) (nodeapi.StepResponse, error) {
	o, err := flow.Run(c.flow, req.State, flow.Input{Kind: req.Input, Digits: req.Digits}, req.Fields, req.Vars)
	if err != nil {
		return nodeapi.StepResponse{}, &agent.Fault{Code: nodeapi.FaultInvalidParams, Message: err.Error()}
	}
	return nodeapi.StepResponse{State: o.State, Action: o.Action, Tags: o.Tags, Vars: o.Vars}, nil
}

func (c *simController) Result(ctx context.Context, req nodeapi.ResultRequest) (nodeapi.ResultResponse, error) {
	select {
	case c.results <- req:
		return nodeapi.ResultResponse{Recorded: true}, nil
	default:
		return nodeapi.ResultResponse{}, errors.New("a second result for one call")
	}
}
