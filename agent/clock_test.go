package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/asterisksim"
)

// fakeClock is a Clock that moves only when told to (Advance); waits fire
// in time order as it passes them.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []fakeWait
}

type fakeWait struct {
	at time.Time
	fn func(time.Time)
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.wait(d, func(t time.Time) { ch <- t })
	return ch
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.wait(d, func(time.Time) { go f() })
}

func (c *fakeClock) wait(d time.Duration, fn func(time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, fakeWait{c.now.Add(d), fn})
}

// Advance moves the clock on by d, firing the waits it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	sort.SliceStable(c.waits, func(i, j int) bool { return c.waits[i].at.Before(c.waits[j].at) })
	var due []fakeWait
	for len(c.waits) > 0 && !c.waits[0].at.After(now) {
		due = append(due, c.waits[0])
		c.waits = c.waits[1:]
	}
	c.mu.Unlock()
	for _, w := range due {
		w.fn(now)
	}
}

// skewedClock is the real clock set off by an offset: a node whose clock
// jumped.
type skewedClock struct {
	realClock
	off time.Duration
}

func (c skewedClock) Now() time.Time { return time.Now().Add(c.off) }

func TestFakeClock(t *testing.T) {
	c := newFakeClock(t0Agent)
	a, b := c.After(time.Second), c.After(3*time.Second)
	fired := make(chan struct{})
	c.AfterFunc(2*time.Second, func() { close(fired) })
	c.Advance(1500 * time.Millisecond)
	select {
	case got := <-a:
		if !got.Equal(t0Agent.Add(1500 * time.Millisecond)) {
			t.Errorf("After fired at %v", got)
		}
	default:
		t.Fatal("After(1s) did not fire at 1.5s")
	}
	select {
	case <-b:
		t.Fatal("After(3s) fired at 1.5s")
	case <-fired:
		t.Fatal("AfterFunc(2s) ran at 1.5s")
	default:
	}
	c.Advance(time.Second)
	<-fired
	c.Advance(time.Second)
	<-b
}

var t0Agent = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// The IMDSv2 session token lasts six hours: it is fetched once, reused,
// and fetched again only when it is about to expire. A fake clock shows it
// without waiting six hours.
func TestIMDSTokenRenewedBeforeExpiry(t *testing.T) {
	var mu sync.Mutex
	tokens := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/latest/api/token" {
			tokens++
			w.Write([]byte("TOKEN"))
			return
		}
		w.Write([]byte("i-0abc"))
	}))
	defer srv.Close()
	clock := newFakeClock(t0Agent)
	m := &IMDS{Endpoint: srv.URL, Clock: clock}
	ctx := context.Background()
	fetched := func() int { mu.Lock(); defer mu.Unlock(); return tokens }
	for i, step := range []struct {
		advance time.Duration
		want    int
	}{{0, 1}, {time.Hour, 1}, {4*time.Hour + 58*time.Minute, 1}, {time.Minute, 2}, {time.Hour, 2}} {
		clock.Advance(step.advance)
		if _, _, err := m.get(ctx, "instance-id"); err != nil {
			t.Fatal(err)
		}
		if got := fetched(); got != step.want {
			t.Errorf("step %d (+%s): %d tokens fetched, want %d", i, step.advance, got, step.want)
		}
	}
}

// A node whose clock runs two hours ahead sees a lease that the controller
// gave an hour as already expired, and does not dial it: dialling could
// make a second live attempt once the controller leases the contact again.
// A lease with time to spare is dialled.
func TestExpiredLeaseNotDialled(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+9100": {Outcome: asterisksim.Answer}, "+9200": {Outcome: asterisksim.Answer}}, 20*time.Millisecond)
	r.stopAgent()
	r.clock = skewedClock{off: 2 * time.Hour}
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.sim.AGI = "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}"
	r.start(agiLn, amiAddrOf(r))
	stale, fresh := lease("stale", "+9100"), lease("fresh", "+9200")
	stale.LeaseExpires = time.Now().Add(time.Hour).Unix()
	fresh.LeaseExpires = time.Now().Add(3 * time.Hour).Unix()
	r.ctl.add(stale, fresh) // one dialer.next answer, in this order
	eventually(t, 10*time.Second, "the fresh lease's result", func() bool { _, ok := r.ctl.result("fresh"); return ok })
	if got, ok := r.ctl.result("stale"); ok {
		t.Errorf("expired lease got a result: %+v", got)
	}
	if n := r.sim.Stats().Originates; n != 1 {
		t.Errorf("%d originates, want 1 (the fresh lease only)", n)
	}
}
