package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/nodeapi"
)

var errCrashed = errors.New("controller crashed")

// crashingCloud kills its controller at a random cloud call: before the
// call reaches the cloud, or after the cloud acted but before the reply got
// back. From then on every call fails and the controller's context is
// cancelled, so nothing after the crash point reaches the store either.
type crashingCloud struct {
	inner  *fakeCloud
	rng    *rand.Rand
	p      float64
	cancel context.CancelFunc

	mu      sync.Mutex
	crashed bool
}

func (c *crashingCloud) roll() (before, after bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return true, false
	}
	if c.rng.Float64() < c.p {
		c.crashed = true
		c.cancel()
		return c.rng.IntN(2) == 0, true
	}
	return false, false
}

func (c *crashingCloud) Launch(ctx context.Context, req LaunchRequest) ([]Instance, error) {
	before, after := c.roll()
	if before {
		return nil, errCrashed
	}
	out, err := c.inner.Launch(ctx, req)
	if after {
		return nil, errCrashed
	}
	return out, err
}

func (c *crashingCloud) Terminate(ctx context.Context, ids []string) error {
	before, after := c.roll()
	if before {
		return errCrashed
	}
	err := c.inner.Terminate(ctx, ids)
	if after {
		return errCrashed
	}
	return err
}

func (c *crashingCloud) Instances(ctx context.Context) ([]Instance, error) {
	if before, _ := c.roll(); before {
		return nil, errCrashed
	}
	return c.inner.Instances(ctx)
}

// simAgent is a node agent: registers, heartbeats, takes calls unless
// draining, and finishes its calls within a minute or so once draining.
type simAgent struct {
	registered bool
	draining   bool
	calls      int
}

// TestCrashNoLeakNoDrop kills the controller at random points across many
// seeded runs of random demand and checks: no call is cut by a terminate, the
// fleet never exceeds MaxNodes (no duplicate launch), and once demand ends
// every instance is terminated (no leak).
func TestCrashNoLeakNoDrop(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { crashRun(t, uint64(seed)) })
	}
}

func crashRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	clock := testclock.New(t0)
	fc := newFakeCloud(clock)
	agents := map[string]*simAgent{}
	var dropped []string
	fc.onTerm = func(id string) {
		if a := agents[id]; a != nil && a.calls > 0 {
			dropped = append(dropped, fmt.Sprintf("%s with %d calls (draining %v) at %s", id, a.calls, a.draining, clock.Now().Sub(t0)))
		}
		delete(agents, id)
	}
	d := &fakeDemand{target: 300}
	path := "file:" + filepath.Join(t.TempDir(), "nodes.db") + "?_pragma=synchronous(off)&_pragma=journal_mode(wal)"
	opt := Options{Plan: planner.Config{MaxNodes: 8}, Clock: clock, Logger: quiet,
		AudioVersion: func(context.Context) (string, error) { return "v1", nil }}
	var ctrl *Controller
	var cc *crashingCloud
	var ctx context.Context
	restarts := 0
	start := func(p float64) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(context.Background())
		cc = &crashingCloud{inner: fc, rng: rand.New(rand.NewPCG(seed, uint64(restarts))), p: p, cancel: cancel}
		var err error
		ctrl, err = New(context.Background(), cc, d, openStore(t, "sqlite", path), opt)
		if err != nil {
			t.Fatal(err)
		}
		restarts++
	}
	step := func() {
		clock.Add(10 * time.Second)
		fc.boot()
		for _, id := range fc.live() {
			a := agents[id]
			if a == nil {
				a = &simAgent{}
				agents[id] = a
			}
			if !a.registered {
				if _, err := ctrl.Register(context.Background(), nodeapi.RegisterRequest{InstanceID: id, Capacity: 100}); err == nil {
					a.registered = true
				}
				continue
			}
			if a.draining {
				a.calls = max(0, a.calls-10-rng.IntN(20))
			} else {
				a.calls = rng.IntN(101)
			}
			r, err := ctrl.Heartbeat(context.Background(), id, nodeapi.HeartbeatRequest{ActiveCalls: a.calls, Capacity: 100,
				AMIConnected: true, TimingOK: true, ChannelOK: true, TrunkOK: true, AudioVersion: "v1", Draining: a.draining})
			if err == nil {
				a.draining = r.Drain
			}
		}
		ctrl.Tick(ctx)
		if n := len(fc.live()); n > 8 {
			t.Fatalf("%d instances live, above MaxNodes 8: duplicate launch", n)
		}
	}

	start(0.04)
	for i := 0; i < 300; i++ {
		if rng.IntN(40) == 0 {
			d.set(rng.IntN(900))
		}
		step()
		cc.mu.Lock()
		crashed := cc.crashed
		cc.mu.Unlock()
		if crashed || rng.IntN(40) == 0 {
			start(0.04) // the dead controller is dropped; a new one takes over
		}
	}
	// Demand ends; a healthy controller must end every instance.
	d.set(0)
	start(0)
	for i := 0; i < 300 && len(fc.live()) > 0; i++ {
		step()
	}
	if live := fc.live(); len(live) > 0 {
		t.Errorf("leaked instances %v after %d restarts", live, restarts)
	}
	if len(dropped) > 0 {
		t.Errorf("terminated nodes with calls: %v", dropped)
	}
	t.Logf("restarts %d, instances launched %d, terminate calls %d", restarts, fc.launched, countPrefix(fc.calls, "terminate"))
}

func countPrefix(ss []string, p string) int {
	n := 0
	for _, s := range ss {
		if len(s) >= len(p) && s[:len(p)] == p {
			n++
		}
	}
	return n
}
