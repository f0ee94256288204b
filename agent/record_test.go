package agent

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// newBareAgent is an agent that is not run: enough to finish calls and
// record their results into a real queue and in-flight folder.
func newBareAgent(tb testing.TB) *Agent {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	dir := tb.TempDir()
	a, err := New(Config{Controller: newFake(), AMIAddr: "127.0.0.1:1", AGIListener: ln,
		Queue: &Queue{Dir: filepath.Join(dir, "queue")}, Identity: Identity{InstanceID: "i-bare"},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.cfg.Queue.Open(); err != nil {
		tb.Fatal(err)
	}
	if err := a.inflight.open(); err != nil {
		tb.Fatal(err)
	}
	return a
}

// dialled puts a call in flight as the dial loop does.
func dialled(tb testing.TB, a *Agent, id string) *callState {
	tb.Helper()
	cs := &callState{lease: nodeapi.Call{CallID: id, Token: "tok-" + id}, started: time.Now()}
	if err := a.inflight.add(cs.lease, cs.chanID, cs.started); err != nil {
		tb.Fatal(err)
	}
	a.mu.Lock()
	a.calls[id] = cs
	a.mu.Unlock()
	return cs
}

// TestFinishDoesNotWaitForTheQueue: while a result is being written to
// the durable queue (the recorder holds recordMu, as during its fsyncs),
// finishing another call and reading the agent's status go on, and the
// finished result is counted as pending throughout, so a draining node
// never reports itself empty with a result not yet on disk.
func TestFinishDoesNotWaitForTheQueue(t *testing.T) {
	a := newBareAgent(t)
	cs := dialled(t, a, "c1")
	a.recordMu.Lock() // a queue write in progress
	done := make(chan Status)
	go func() {
		a.mu.Lock()
		a.finishLocked(cs, "test")
		a.mu.Unlock()
		done <- a.Status()
	}()
	select {
	case st := <-done:
		if st.ActiveCalls != 0 || st.Pending != 1 {
			t.Errorf("after finish: %d active, %d pending; want 0 and 1", st.ActiveCalls, st.Pending)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("finishing a call waited for the queue writer")
	}
	a.recordMu.Unlock()
	a.recordResults()
	if st := a.Status(); st.Pending != 1 || a.cfg.Queue.Pending() != 1 {
		t.Errorf("after recording: status %d pending, queue %d; want 1 and 1", st.Pending, a.cfg.Queue.Pending())
	}
	if names, err := filepath.Glob(filepath.Join(a.inflight.dir, "*")); err != nil || len(names) != 0 {
		t.Errorf("in-flight records left after the result was queued: %v %v", names, err)
	}
}

// BenchmarkFinishLockHeld: how long finishing a call holds Agent.mu (the
// lock every AMI event, AGI step and dial takes), against its floor in the
// same run: one durable queue write, the two fsyncs that used to run under
// that lock. ratio-to-floor well below 1 says the write is out of the lock.
func BenchmarkFinishLockHeld(b *testing.B) {
	a := newBareAgent(b)
	floorDir := b.TempDir()
	data := []byte(`{"call_id":"floor","token":"t","disposition":"answered"}`)
	var held, floor time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := writeDurable(filepath.Join(floorDir, fmt.Sprint(i)), data); err != nil {
			b.Fatal(err)
		}
		floor += time.Since(t0)

		cs := dialled(b, a, fmt.Sprint("c", i))
		t1 := time.Now()
		a.mu.Lock()
		a.finishLocked(cs, "bench")
		a.mu.Unlock()
		held += time.Since(t1)
		a.recordResults()
	}
	n := float64(b.N)
	b.ReportMetric(float64(held.Nanoseconds())/n, "lock-ns/call")
	b.ReportMetric(float64(floor.Nanoseconds())/n, "fsync-floor-ns/call")
	b.ReportMetric(float64(held)/float64(floor), "ratio-to-floor")
}
