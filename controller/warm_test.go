package controller

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/nodeapi"
)

// TestWarmPoolLifecycle walks nodes through the warm pool against a real
// SQLite store: an unannounced rise, the surplus drained and parked
// stopped, a start (not a launch) on the next rise, the agent registering
// again with a new epoch and re-syncing its audio before it is ready, a
// failed start falling back to a launch, and the ledger billing the
// parked time at the stopped price.
func TestWarmPoolLifecycle(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	d := &fakeDemand{target: 100}
	store := openStore(t, "sqlite", filepath.Join(t.TempDir(), "nodes.db"))
	audio := "v1"
	c := newTestController(t, cloud, d, store, clock, func(o *Options) {
		o.Plan.WarmPool, o.Plan.MinLifetime = true, time.Hour
		o.AudioVersion = func(context.Context) (string, error) { return audio, nil }
	})
	epochs := map[string]int{}
	// serve boots pending instances and has every running agent register
	// (once) and heartbeat ready with the audio it holds.
	serve := func(held string) {
		t.Helper()
		cloud.boot()
		for _, n := range c.Nodes() {
			switch n.State {
			case planner.StateBooting, planner.StateResuming:
				r, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: n.ID, Capacity: 100})
				if err != nil {
					t.Fatalf("register %s (%s): %v", n.ID, n.State, err)
				}
				epochs[n.ID] = r.Epoch
			}
		}
		for _, n := range c.Nodes() {
			switch n.State {
			case planner.StateRegistered, planner.StateSyncing, planner.StateReady, planner.StateDraining:
				hb := readyHB(0)
				hb.AudioVersion, hb.Draining = held, n.State == planner.StateDraining
				if _, err := c.Heartbeat(nodeapi.WithEpoch(ctx, int64(epochs[n.ID])), n.ID, hb); err != nil {
					t.Fatalf("heartbeat %s: %v", n.ID, err)
				}
			}
		}
	}
	tick := func() {
		t.Helper()
		clock.Add(10 * time.Second)
		if err := c.Tick(ctx); err != nil {
			t.Fatalf("tick: %v", err)
		}
	}
	count := func(s planner.NodeState) int {
		k := 0
		for _, n := range c.Nodes() {
			if n.State == s {
				k++
			}
		}
		return k
	}

	tick()
	serve("v1")
	tick()
	// An unannounced rise to 400 calls, served by launches (the pool is
	// empty), then back to 100.
	d.set(400)
	for range 6 {
		tick()
		serve("v1")
	}
	if n := count(planner.StateReady); n < 4 {
		t.Fatalf("%d ready nodes after the rise, want 4+", n)
	}
	launched := cloud.launched
	d.set(100)
	for range 60 {
		tick()
		cloud.settle()
		serve("v1")
	}
	if n := count(planner.StateParked); n < 3 {
		t.Fatalf("%d parked, states %v; want the surplus (3+) parked, young as it is", n, states(c))
	}
	if got := c.LastPlan().WarmTarget; got < 3 {
		t.Fatalf("pool target %d after a rise of 300 calls", got)
	}
	parkedCost := c.CostPerHour()
	if want := float64(count(planner.StateReady))*c.Pricing().RunningHourly("c6i.large", false) + float64(count(planner.StateParked))*c.Pricing().StoppedHourly(); !near(parkedCost, want) {
		t.Fatalf("cost per hour %g with the pool parked, want %g", parkedCost, want)
	}
	// The manifest changed while they were parked: a resumed node must
	// re-sync before it counts.
	audio = "v2"
	clock.Add(time.Hour)
	serve("v2")
	d.set(400)
	tick()
	if count(planner.StateResuming) < 3 || cloud.launched != launched {
		t.Fatalf("rise with a pool: %d resuming, %d launched; want starts, no launch (calls %v)", count(planner.StateResuming), cloud.launched-launched, cloud.calls[len(cloud.calls)-3:])
	}
	if !strings.Contains(strings.Join(cloud.calls, "|"), "start [") {
		t.Fatal("no start call")
	}
	var resumed string
	for _, n := range c.Nodes() {
		if n.State == planner.StateResuming {
			resumed = n.ID
		}
	}
	before := epochs[resumed]
	// A hibernated agent wakes and heartbeats on its old token: told to
	// register again.
	if _, err := c.Heartbeat(nodeapi.WithEpoch(ctx, int64(before)), resumed, readyHB(0)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("heartbeat of a resuming node on its old token: %v", err)
	}
	cloud.boot()
	serve("v1") // registers again, but holds the old audio
	if epochs[resumed] <= before {
		t.Fatalf("epoch %d after resume, was %d: the agent did not register anew", epochs[resumed], before)
	}
	if got := states(c)[resumed]; got != planner.StateSyncing {
		t.Fatalf("resumed node with old audio is %s, want syncing", got)
	}
	serve("v2")
	if got := states(c)[resumed]; got != planner.StateReady {
		t.Fatalf("resumed node with the current audio is %s, want ready", got)
	}
	// The ledger: parked time billed at the stopped price, apart.
	r, err := c.CostReport(ctx, nil, t0, clock.Now())
	if err != nil || r.ParkedHours < 3*0.9 || r.PoolCost <= 0 || r.PoolCost > r.ParkedHours*c.Pricing().StoppedHourly()+1e-9 {
		t.Fatalf("report: parked %g h, pool $%g, %v", r.ParkedHours, r.PoolCost, err)
	}
	// Persisted: a fresh controller on the same store sees the stops.
	c2 := newTestController(t, cloud, d, store, clock)
	var starts int
	for _, n := range c2.Nodes() {
		starts += n.Warm.Starts
	}
	if starts < 3 {
		t.Fatalf("a restarted controller sees %d starts", starts)
	}
}

// TestWarmPoolStartFails: a start the cloud refuses puts the nodes back in
// the pool and the next plan launches.
func TestWarmPoolStartFails(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	d := &fakeDemand{target: 100}
	c := newTestController(t, cloud, d, nil, clock, func(o *Options) { o.Plan.WarmPool = true })
	c.nodes["i-park"] = &node{rec: NodeRecord{ID: "i-park", State: planner.StateParked, Type: "c6i.large", LaunchedAt: t0.Add(-time.Hour),
		RunningAt: t0.Add(-time.Hour), ReadyAt: t0.Add(-time.Hour), Warm: WarmRecord{StoppedAt: t0.Add(-time.Minute)}}}
	cloud.insts["i-park"] = &Instance{ID: "i-park", State: InstanceStopped, Type: "c6i.large", Tags: map[string]string{TagCluster: "test"}}
	cloud.failNext("start")
	if err := c.Tick(ctx); err == nil || !strings.Contains(err.Error(), "start") {
		t.Fatalf("tick: %v", err)
	}
	if got := states(c)["i-park"]; got != planner.StateParked {
		t.Fatalf("after a refused start: %s, want parked", got)
	}
	clock.Add(10 * time.Second)
	if err := c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := states(c)["i-park"]; got != planner.StateParked || cloud.launched == 0 {
		t.Fatalf("after a refused start: %s, %d launched; want the next plan to launch", got, cloud.launched)
	}
}
