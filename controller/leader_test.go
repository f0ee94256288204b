package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastidial/elastidial/controller/metrics"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/nodeapi"
)

// pausingDemand is a DemandSource that can hold one controller inside its
// tick (a GC pause, SIGSTOP, a stalled network) while the test goes on.
type pausingDemand struct {
	*fakeDemand
	pause  chan struct{} // when non-nil, Demand blocks until it is closed
	paused chan struct{} // closed once Demand is blocked
}

func (p *pausingDemand) Demand(ctx context.Context, now time.Time) ([]Demand, error) {
	if p.pause != nil {
		close(p.paused)
		<-p.pause
	}
	return p.fakeDemand.Demand(ctx, now)
}

// TestOneLeaderActs: two controllers on one database, ticking in turn,
// launch exactly what one would, and only the leader acts.
func TestOneLeaderActs(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := newFakeCloud(clock)
		d := &fakeDemand{target: 250}
		a := newTestController(t, cloud, d, open(), clock)
		b := newTestController(t, cloud, d, open(), clock)
		for i := 0; i < 12; i++ {
			mustTick(t, a)
			mustTick(t, b)
			cloud.boot()
			for _, id := range cloud.live() {
				// Nodes register and heartbeat with whichever controller
				// the load balancer picks.
				c := []*Controller{a, b}[i%2]
				if _, err := c.Heartbeat(ctx, id, readyHB(80)); errors.Is(err, ErrUnknownNode) {
					t.Fatalf("heartbeat of %s: %v", id, err)
				} else if err != nil {
					if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id, Capacity: 100}); err != nil {
						t.Fatalf("register %s: %v", id, err)
					}
				}
			}
			clock.Add(5 * time.Second)
		}
		if !a.Leading() || b.Leading() {
			t.Fatalf("leading: a %v, b %v; want a only", a.Leading(), b.Leading())
		}
		if cloud.launched != 3 {
			t.Fatalf("two controllers launched %d nodes for 250 calls; one launches 3 (calls %v)", cloud.launched, cloud.calls)
		}
		// Any controller answers for any node: b sees the registrations a took.
		for _, id := range cloud.live() {
			if _, err := b.CheckNode(ctx, id); err != nil {
				t.Errorf("b does not serve %s: %v", id, err)
			}
		}
	})
}

// TestPausedLeaderIsFenced: a leader paused in mid-tick past its
// leadership wakes up to find a successor; it launches nothing and writes
// nothing, and says so.
func TestPausedLeaderIsFenced(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := newFakeCloud(clock)
		d := &fakeDemand{target: 0}
		pd := &pausingDemand{fakeDemand: d}
		reg := prometheus.NewRegistry()
		m, err := metrics.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		a := newTestController(t, cloud, pd, open(), clock, func(o *Options) { o.Metrics = m })
		b := newTestController(t, cloud, d, open(), clock)
		mustTick(t, a) // a leads
		mustTick(t, b)
		if got := gather(t, reg)["elastidial_scaler_leader"]; got != 1 {
			t.Fatalf("elastidial_scaler_leader = %v, want 1", got)
		}

		d.set(250)
		pd.pause, pd.paused = make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- a.Tick(ctx) }()
		<-pd.paused // a holds its leadership, inside the tick

		clock.Add(a.cfg.LeaderTTL + time.Second)
		mustTick(t, b) // b takes over and launches
		if !b.Leading() {
			t.Fatal("b did not take over an expired leadership")
		}
		launched := cloud.launched
		if launched == 0 {
			t.Fatal("b launched nothing")
		}
		close(pd.pause)
		err = <-done
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("paused leader's tick: %v, want ErrFenced", err)
		}
		if cloud.launched != launched {
			t.Fatalf("paused old leader launched %d more nodes", cloud.launched-launched)
		}
		if a.Leading() {
			t.Fatal("a still thinks it leads")
		}
		if got := gather(t, reg)["elastidial_scaler_leader"]; got != 0 {
			t.Fatalf("elastidial_scaler_leader = %v after losing, want 0", got)
		}
		if got := gather(t, reg)[`elastidial_scaler_leadership_changes_total{event="lost"}`]; got != 1 {
			t.Fatalf("leadership losses = %v, want 1", got)
		}
		// And it stays a follower while b renews.
		clock.Add(5 * time.Second)
		mustTick(t, b)
		mustTick(t, a)
		if a.Leading() || cloud.launched != launched {
			t.Fatalf("a leads %v, launched %d more", a.Leading(), cloud.launched-launched)
		}
	})
}

// TestFencedWrites: every fleet write under an old fencing token is
// refused, on both stores.
func TestFencedWrites(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		old, ok, err := s.Lead(ctx, "a", t0, 15*time.Second)
		if err != nil || !ok {
			t.Fatalf("lead: %v %v", ok, err)
		}
		if _, ok, _ := s.Lead(ctx, "b", t0.Add(time.Second), 15*time.Second); ok {
			t.Fatal("b took a held leadership")
		}
		if f, ok, _ := s.Lead(ctx, "a", t0.Add(10*time.Second), 15*time.Second); !ok || f != old {
			t.Fatalf("renewal changed the token: %+v, want %+v", f, old)
		}
		n := NodeRecord{ID: "i-1", State: planner.StateReady}
		if err := s.SaveNode(ctx, old, &n); err != nil {
			t.Fatal(err)
		}
		cur, ok, err := s.Lead(ctx, "b", t0.Add(26*time.Second), 15*time.Second)
		if err != nil || !ok || cur.Token <= old.Token {
			t.Fatalf("takeover: %+v %v %v", cur, ok, err)
		}
		n.State = planner.StateTerminating
		if err := s.SaveNode(ctx, old, &n); !errors.Is(err, ErrFenced) {
			t.Errorf("save node under an old token: %v", err)
		}
		if err := s.AddIntent(ctx, old, LaunchIntent{Token: "x", Count: 1, CreatedAt: t0}); !errors.Is(err, ErrFenced) {
			t.Errorf("add intent under an old token: %v", err)
		}
		if err := s.AddIntent(ctx, cur, LaunchIntent{Token: "y", Count: 1, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishIntent(ctx, old, "y"); !errors.Is(err, ErrFenced) {
			t.Errorf("finish intent under an old token: %v", err)
		}
		if got, _ := s.OpenIntents(ctx); len(got) != 1 || got[0].Token != "y" {
			t.Errorf("open intents %+v, want y only", got)
		}
		if got, _ := s.Node(ctx, "i-1"); got.State != planner.StateReady {
			t.Errorf("node state %s after a fenced write", got.State)
		}
		// A stale revision loses, whoever writes.
		stale := n
		stale.Rev = 0
		if err := s.SaveNode(ctx, Fence{}, &stale); !errors.Is(err, ErrNodeChanged) {
			t.Errorf("insert over an existing row: %v", err)
		}
		if err := s.Resign(ctx, cur); err != nil {
			t.Fatal(err)
		}
		if f, ok, _ := s.Lead(ctx, "a", t0.Add(27*time.Second), 15*time.Second); !ok || f.Token != cur.Token+1 {
			t.Errorf("after resign: %+v %v", f, ok)
		}
	})
}

// TestFailoverKeepsTheFleet: the leader dies; a follower takes over after
// the leadership expires, knows every node (registered through either),
// launches nothing more and keeps serving their heartbeats.
func TestFailoverKeepsTheFleet(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := newFakeCloud(clock)
		d := &fakeDemand{target: 250}
		a := newTestController(t, cloud, d, open(), clock)
		b := newTestController(t, cloud, d, open(), clock)
		mustTick(t, a)
		cloud.boot()
		for i, id := range cloud.live() {
			c := []*Controller{a, b}[i%2]
			if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id, Capacity: 100}); err != nil {
				t.Fatal(err)
			}
		}
		launched := cloud.launched
		// a dies (no resign). Nodes heartbeat to b.
		for i := 0; i < 10; i++ {
			clock.Add(5 * time.Second)
			for _, id := range cloud.live() {
				if _, err := b.Heartbeat(ctx, id, readyHB(80)); err != nil {
					t.Fatal(err)
				}
			}
			mustTick(t, b)
		}
		if !b.Leading() {
			t.Fatal("b never took over")
		}
		if cloud.launched != launched {
			t.Fatalf("the new leader launched %d more", cloud.launched-launched)
		}
		for id, st := range states(b) {
			if st != planner.StateReady {
				t.Errorf("%s is %s under the new leader", id, st)
			}
		}
		if calls := strings.Join(cloud.calls, ","); strings.Contains(calls, "terminate") {
			t.Errorf("failover terminated nodes: %s", calls)
		}
	})
}

// TestNodeEpochsAndGoneNodes: a registration makes the tokens of earlier
// ones stale; a gone node is refused; a terminating one may still report.
func TestNodeEpochsAndGoneNodes(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := newFakeCloud(clock)
		c := newTestController(t, cloud, &fakeDemand{target: 50}, open(), clock)
		mustTick(t, c)
		cloud.boot()
		id := cloud.live()[0]
		r1, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id})
		if err != nil || r2.Epoch != r1.Epoch+1 {
			t.Fatalf("second registration: epoch %d after %d, %v", r2.Epoch, r1.Epoch, err)
		}
		old, cur := nodeapi.WithEpoch(ctx, int64(r1.Epoch)), nodeapi.WithEpoch(ctx, int64(r2.Epoch))
		if _, err := c.Heartbeat(old, id, readyHB(0)); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("heartbeat with the first token: %v, want ErrStaleEpoch", err)
		}
		if _, err := c.CheckNode(old, id); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("check with the first token: %v, want ErrStaleEpoch", err)
		}
		if st, err := c.CheckNode(cur, id); err != nil || st.State != planner.StateRegistered {
			t.Errorf("check with the current token: %s %v", st.State, err)
		}
		if _, err := c.CheckNode(cur, "i-none"); !errors.Is(err, ErrUnknownNode) {
			t.Errorf("unknown node: %v", err)
		}
		// The instance ends under us: the node is gone for good.
		cloud.Terminate(ctx, []string{id})
		mustTick(t, c)
		if _, err := c.CheckNode(cur, id); !errors.Is(err, ErrNodeGone) {
			t.Errorf("gone node: %v, want ErrNodeGone", err)
		}
		if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id}); !errors.Is(err, ErrNodeGone) {
			t.Errorf("gone node registering: %v, want ErrNodeGone", err)
		}
	})
}

// TestNewLeaderResumesTheDemandMemory: the headroom a rise earned
// expires with the scale-in window, and the leader drains back to
// demand. A leader taking over then plans from that memory, stored with
// the registry: without it all of today's demand looked like a surprise
// to it, it wanted the headroom again and launched the node just
// drained (found by the process chaos test: four instances for three),
// and a leadership changing more often than the window never scaled in.
func TestNewLeaderResumesTheDemandMemory(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := newFakeCloud(clock)
		d := &fakeDemand{target: 200}
		window := func(o *Options) { o.Plan.ScaleInWindow = time.Minute }
		a := newTestController(t, cloud, d, open(), clock, window)
		b := newTestController(t, cloud, d, open(), clock, window)
		beat := func(c *Controller) {
			for _, id := range cloud.live() {
				if _, err := c.Heartbeat(ctx, id, readyHB(0)); err != nil {
					if _, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id, Capacity: 100}); err != nil {
						t.Fatalf("register %s: %v", id, err)
					}
				}
			}
		}
		for range 60 { // five minutes: the rise, its window, the drain
			mustTick(t, a)
			cloud.boot()
			beat(a)
			clock.Add(5 * time.Second)
		}
		if p := a.LastPlan(); p.DesiredNodes != 2 || p.ReadySlots != 200 || cloud.launched != 3 {
			t.Fatalf("the first leader wants %d nodes, %d slots ready, after launching %d; want 2 of 3 (200 calls, the headroom expired)", p.DesiredNodes, p.ReadySlots, cloud.launched)
		}
		// a dies; b takes over after the leadership's lifetime.
		for range 12 {
			mustTick(t, b)
			cloud.boot()
			beat(b)
			clock.Add(5 * time.Second)
		}
		if !b.Leading() {
			t.Fatal("b never took over")
		}
		if p := b.LastPlan(); cloud.launched != 3 || p.DesiredNodes != 2 {
			t.Fatalf("the new leader launched %d more and wants %d nodes; want none more, 2 (%v)", cloud.launched-3, p.DesiredNodes, p.Reasons)
		}
		// And it scales in within one window of its own takeover.
		d.set(90)
		for range 24 {
			mustTick(t, b)
			cloud.boot()
			beat(b)
			clock.Add(5 * time.Second)
		}
		if p := b.LastPlan(); p.ReadySlots != 100 {
			t.Fatalf("%d slots ready for 90 calls under the new leader, want 100 (%v)", p.ReadySlots, p.Reasons)
		}
	})
}
