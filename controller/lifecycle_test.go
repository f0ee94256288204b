package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/nodeapi"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func readyHB(calls int) nodeapi.HeartbeatRequest {
	return nodeapi.HeartbeatRequest{ActiveCalls: calls, Capacity: 100, AMIConnected: true, TimingOK: true, ChannelOK: true, TrunkOK: true, AudioVersion: "v1"}
}

// newTestController builds a controller for the lifecycle tests; opts
// adjust its options first.
func newTestController(t *testing.T, cloud Cloud, d DemandSource, store *Store, clock Clock, opts ...func(*Options)) *Controller {
	t.Helper()
	// The lifecycle tests drain nodes a few minutes old; the churn guard
	// (MinLifetime, 10 minutes by default) has tests of its own.
	opt := Options{Clock: clock, Logger: quiet, Plan: planner.Config{MinLifetime: time.Minute},
		AudioVersion: func(context.Context) (string, error) { return "v1", nil }}
	for _, o := range opts {
		o(&opt)
	}
	c, err := New(context.Background(), cloud, d, store, opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func states(c *Controller) map[string]planner.NodeState {
	m := map[string]planner.NodeState{}
	for _, n := range c.Nodes() {
		m[n.ID] = n.State
	}
	return m
}

func mustTick(t *testing.T, c *Controller) {
	t.Helper()
	if err := c.Tick(context.Background()); err != nil {
		t.Fatalf("tick: %v", err)
	}
}

// TestLifecycle walks nodes through every state under synctest's clock:
// launch, boot, register, sync, ready, drain, terminate at zero calls.
func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cloud := newFakeCloud(realClock{})
		d := &fakeDemand{target: 150}
		c := newTestController(t, cloud, d, nil, realClock{})

		mustTick(t, c)
		if got := cloud.live(); len(got) != 2 {
			t.Fatalf("launched %v, want 2 instances", got)
		}
		want := map[string]planner.NodeState{"i-0001": planner.StatePending, "i-0002": planner.StatePending}
		if got := states(c); !reflect.DeepEqual(got, want) {
			t.Fatalf("states %v, want %v", got, want)
		}
		cloud.boot()
		time.Sleep(10 * time.Second)
		mustTick(t, c)
		if got := states(c)["i-0001"]; got != planner.StateBooting {
			t.Fatalf("after boot %s, want booting", got)
		}
		if len(cloud.live()) != 2 {
			t.Fatal("launched again while nodes were coming")
		}
		if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: "i-9999"}); !errors.Is(err, ErrUnknownInstance) {
			t.Fatalf("unknown instance registered: %v", err)
		}
		for _, id := range []string{"i-0001", "i-0002"} {
			r, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id, Capacity: 100})
			if err != nil || r.NodeID != id || r.AudioVersion != "v1" || r.HeartbeatSeconds != 10 {
				t.Fatalf("register %s: %+v %v", id, r, err)
			}
		}
		// Old audio: not ready (invariant 4).
		hb := readyHB(0)
		hb.AudioVersion = "v0"
		if r, err := c.Heartbeat(ctx, "i-0001", hb); err != nil || r.AudioVersion != "v1" || r.Drain {
			t.Fatalf("heartbeat: %+v %v", r, err)
		}
		if got := states(c)["i-0001"]; got != planner.StateSyncing {
			t.Fatalf("stale audio gave %s, want syncing", got)
		}
		if _, err := c.Heartbeat(ctx, "i-0001", readyHB(40)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Heartbeat(ctx, "i-0002", readyHB(3)); err != nil {
			t.Fatal(err)
		}
		if got := states(c); got["i-0001"] != planner.StateReady || got["i-0002"] != planner.StateReady {
			t.Fatalf("states %v, want both ready", got)
		}
		// A struggling node is told to offer fewer slots, and given them
		// back when it recovers.
		hot := readyHB(40)
		hot.CPU = 0.97
		c.Heartbeat(ctx, "i-0001", hot)
		mustTick(t, c)
		if r, _ := c.Heartbeat(ctx, "i-0001", readyHB(40)); r.Capacity != 75 {
			t.Fatalf("struggling node told capacity %d, want 75", r.Capacity)
		}
		mustTick(t, c)
		if r, _ := c.Heartbeat(ctx, "i-0001", readyHB(40)); r.Capacity != 100 {
			t.Fatalf("recovered node told capacity %d, want 100", r.Capacity)
		}
		if _, err := c.Heartbeat(ctx, "nope", readyHB(0)); !errors.Is(err, ErrUnknownNode) {
			t.Fatalf("unknown node heartbeat: %v", err)
		}

		// Demand falls; after the window the emptiest node drains.
		d.set(60)
		for i := 0; i < 40; i++ {
			time.Sleep(10 * time.Second)
			c.Heartbeat(ctx, "i-0001", readyHB(40))
			c.Heartbeat(ctx, "i-0002", readyHB(3))
			mustTick(t, c)
		}
		if got := states(c); got["i-0002"] != planner.StateDraining || got["i-0001"] != planner.StateReady {
			t.Fatalf("states %v, want i-0002 draining", got)
		}
		r, _ := c.Heartbeat(ctx, "i-0002", readyHB(3))
		if !r.Drain {
			t.Fatal("draining node not told to drain")
		}
		// Calls still up: not terminated.
		hbd := readyHB(2)
		hbd.Draining = true
		c.Heartbeat(ctx, "i-0002", hbd)
		time.Sleep(10 * time.Second)
		c.Heartbeat(ctx, "i-0001", readyHB(40))
		mustTick(t, c)
		if states(c)["i-0002"] != planner.StateDraining {
			t.Fatal("node with calls terminated")
		}
		hbd.ActiveCalls = 0
		c.Heartbeat(ctx, "i-0002", hbd)
		mustTick(t, c)
		if got := cloud.live(); !reflect.DeepEqual(got, []string{"i-0001"}) {
			t.Fatalf("live %v, want i-0001 only", got)
		}
		time.Sleep(10 * time.Second)
		c.Heartbeat(ctx, "i-0001", readyHB(40))
		mustTick(t, c)
		if got := states(c)["i-0002"]; got != planner.StateGone {
			t.Fatalf("terminated node %s, want gone", got)
		}

		// Spot notice: drain at once and replace.
		spot := readyHB(30)
		spot.SpotNotice = true
		if r, _ := c.Heartbeat(ctx, "i-0001", spot); !r.Drain {
			t.Fatal("spot notice did not drain")
		}
		mustTick(t, c)
		if got := cloud.live(); len(got) != 2 {
			t.Fatalf("spot node not replaced: live %v", got)
		}
	})
}

// TestLifecycleDeadlines: a node that never registers and one that stops
// heartbeating are both terminated and replaced.
func TestLifecycleDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cloud := newFakeCloud(realClock{})
		d := &fakeDemand{target: 150}
		c := newTestController(t, cloud, d, nil, realClock{})
		mustTick(t, c)
		cloud.boot()
		c.Register(ctx, nodeapi.RegisterRequest{InstanceID: "i-0001"})
		c.Heartbeat(ctx, "i-0001", readyHB(10))
		// i-0002 never registers; i-0001 falls silent after a minute.
		for i := 0; i < 33; i++ {
			time.Sleep(10 * time.Second)
			if i < 3 {
				c.Heartbeat(ctx, "i-0001", readyHB(10))
			}
			mustTick(t, c)
			cloud.boot()
		}
		got := states(c)
		if got["i-0001"] != planner.StateGone || got["i-0002"] != planner.StateGone {
			t.Fatalf("states %v, want i-0001 and i-0002 gone", got)
		}
		if live := cloud.live(); len(live) < 2 {
			t.Fatalf("not replaced: live %v", live)
		}
	})
}

// TestRunLoop runs Run under synctest: it ticks on its interval, survives
// errors from every dependency and stops with its context.
func TestRunLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cloud := newFakeCloud(realClock{})
		d := &fakeDemand{target: 50}
		c := newTestController(t, cloud, d, nil, realClock{})
		cloud.failNext("instances")
		cloud.failNext("launch")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if got := cloud.live(); len(got) != 1 {
			t.Errorf("live %v, want 1 after a failed launch was retried", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestAdoptOrTerminateOrphans: a stray instance of ours that registers is
// adopted; one that does not is terminated after the grace period.
func TestAdoptOrTerminateOrphans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cloud := newFakeCloud(realClock{})
		d := &fakeDemand{target: 150}
		c := newTestController(t, cloud, d, nil, realClock{})
		a, b := cloud.addStray(), cloud.addStray()
		mustTick(t, c)
		if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: a}); err != nil {
			t.Fatalf("adopt: %v", err)
		}
		for i := 0; i < 35; i++ {
			c.Heartbeat(ctx, a, readyHB(10))
			time.Sleep(10 * time.Second)
			mustTick(t, c)
		}
		got := states(c)
		if got[a] != planner.StateReady || got[b] != planner.StateGone {
			t.Fatalf("states %v, want %s ready (adopted), %s gone", got, a, b)
		}
	})
}

// TestDemandOutageHoldsFleet: while the campaign tier does not answer the
// fleet is neither drained nor grown, however long it lasts.
func TestDemandOutageHoldsFleet(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	d := &fakeDemand{target: 150}
	c := newTestController(t, cloud, d, nil, clock)
	mustTick(t, c)
	cloud.boot()
	for _, id := range cloud.live() {
		c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id})
	}
	d.err = errors.New("campaign store down")
	for i := 0; i < 60; i++ {
		clock.Add(10 * time.Second)
		for _, id := range cloud.live() {
			c.Heartbeat(ctx, id, readyHB(0))
		}
		if err := c.Tick(ctx); err == nil {
			t.Fatal("demand error not reported")
		}
	}
	for id, s := range states(c) {
		if s != planner.StateReady {
			t.Errorf("%s %s during the outage, want ready", id, s)
		}
	}
	if n := len(cloud.live()); n != 2 {
		t.Errorf("%d live, want 2", n)
	}
}

// TestConcurrentNodesAndLoop runs the loop on a fast real ticker while
// nodes register and heartbeat from their own goroutines (for -race).
func TestConcurrentNodesAndLoop(t *testing.T) {
	cloud := newFakeCloud(realClock{})
	d := &fakeDemand{target: 400}
	c, err := New(context.Background(), cloud, d, nil, Options{Tick: time.Millisecond, Logger: quiet,
		AudioVersion: func(context.Context) (string, error) { return "v1", nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cloud.boot()
				for _, id := range cloud.live() {
					c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id, Capacity: 100})
					c.Heartbeat(ctx, id, readyHB(g))
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, s := range states(c) {
		if s == planner.StateReady {
			ready++
		}
	}
	if ready != 5 {
		t.Errorf("%d ready, want 5: %v", ready, states(c))
	}
}

// An ended node's leases go back to their campaigns at once; a node that
// is merely missing from the instance list keeps them, for it may still be
// placing calls. A failed release is tried again on the next tick.
func TestEndedNodesReleaseTheirLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cloud := newFakeCloud(realClock{})
		var released []string
		fail := true
		c := newTestController(t, cloud, &fakeDemand{target: 150}, nil, realClock{}, func(o *Options) {
			o.ReleaseNode = func(_ context.Context, id string) error {
				if fail {
					fail = false
					return errInjected
				}
				released = append(released, id)
				return nil
			}
		})
		mustTick(t, c)
		cloud.boot()
		for _, id := range []string{"i-0001", "i-0002"} {
			c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id})
			c.Heartbeat(ctx, id, readyHB(40))
		}
		cloud.mu.Lock()
		cloud.insts["i-0001"].State = InstanceTerminated // ended without us
		delete(cloud.insts, "i-0002")                    // missing from the list
		cloud.mu.Unlock()

		if err := c.Tick(ctx); !errors.Is(err, errInjected) {
			t.Fatalf("first release should fail: %v", err)
		}
		for range 40 {
			time.Sleep(10 * time.Second)
			c.Heartbeat(ctx, "i-0002", readyHB(40))
			c.Tick(ctx)
		}
		// (Replacements that never registered are terminated and released
		// too, which costs nothing: they hold no leases.)
		if n := strings.Count(strings.Join(released, " "), "i-0001"); n != 1 || slices.Contains(released, "i-0002") {
			t.Fatalf("released %v, want i-0001 once and never i-0002", released)
		}
		if got := states(c); got["i-0002"] != planner.StateGone {
			t.Fatalf("i-0002 is %s; want it gone after its long absence", got["i-0002"])
		}
	})
}

// countingDemand counts how often the loop asked for demand.
type countingDemand struct {
	mu    sync.Mutex
	calls int
}

func (d *countingDemand) Demand(context.Context, time.Time) ([]Demand, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return nil, nil
}

func (d *countingDemand) n() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// TestWakeTicksAtOnce: a demand change reported through Wake is acted on
// at once, not at the next interval; wakes never block and fold together.
func TestWakeTicksAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &countingDemand{}
		c, err := New(context.Background(), newFakeCloud(realClock{}), d, nil, Options{Tick: time.Hour, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := d.n(); got != 1 {
			t.Fatalf("%d passes in the first minute of an hourly loop, want 1", got)
		}
		c.Wake()
		synctest.Wait()
		if got := d.n(); got != 2 {
			t.Fatalf("%d passes after Wake, want 2", got)
		}
		for range 100 {
			c.Wake()
		}
		synctest.Wait()
		// The first wake may start a pass before the next arrives; the
		// rest wait in a buffer of one.
		if got := d.n(); got < 3 || got > 4 {
			t.Fatalf("%d passes after 100 wakes in a row, want 3 or 4 (folded)", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestHeartbeatPassesHeldCalls: a heartbeat that lists the node's calls
// hands them to RenewLeases (which ends the leases left out); one from an
// agent that lists none hands nil, renewing every lease as before.
func TestHeartbeatPassesHeldCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cloud := newFakeCloud(realClock{})
		var got [][]string
		c := newTestController(t, cloud, &fakeDemand{target: 50}, nil, realClock{}, func(o *Options) {
			o.RenewLeases = func(ctx context.Context, nodeID string, held []string, now time.Time) error {
				got = append(got, held)
				return nil
			}
		})
		mustTick(t, c)
		cloud.boot()
		time.Sleep(10 * time.Second)
		mustTick(t, c)
		if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: "i-0001", Capacity: 100}); err != nil {
			t.Fatal(err)
		}
		for _, hb := range []nodeapi.HeartbeatRequest{
			{Calls: "k1-1,k2-1", CallsListed: true},
			{CallsListed: true},
			{Calls: "k1-1"}, // not listed: an older agent's
		} {
			req := readyHB(2)
			req.Calls, req.CallsListed = hb.Calls, hb.CallsListed
			if _, err := c.Heartbeat(ctx, "i-0001", req); err != nil {
				t.Fatal(err)
			}
		}
		if want := [][]string{{"k1-1", "k2-1"}, {}, nil}; !reflect.DeepEqual(got, want) {
			t.Fatalf("RenewLeases got %#v, want %#v", got, want)
		}
		for _, n := range c.Nodes() {
			if n.Load.Calls != "" {
				t.Fatalf("node %s keeps its call list in the registry: %q", n.ID, n.Load.Calls)
			}
		}
	})
}
