package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

func TestQueueDurableAndDropsStale(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := &Queue{Dir: dir, Log: log}
	if err := q.Open(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := q.Put(nodeapi.ResultRequest{CallID: id, Token: "t", Disposition: nodeapi.DispAnswered, Path: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "00000000000000000000-junk.json"), []byte("{not json"), 0o640)
	os.WriteFile(filepath.Join(dir, "half.json.tmp"), []byte("{"), 0o640)

	// A fresh queue on the same folder (agent restart) sees everything.
	q2 := &Queue{Dir: dir, Log: log}
	if err := q2.Open(); err != nil {
		t.Fatal(err)
	}
	if q2.Pending() != 4 {
		t.Fatalf("pending after reopen: %d", q2.Pending())
	}
	ctl := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q2.Deliver(ctx, &staleB{ctl}); close(done) }()
	eventually(t, 5*time.Second, "delivery", func() bool { return q2.Pending() == 0 })
	cancel()
	<-done
	if _, ok := ctl.result("a"); !ok {
		t.Error("a not delivered")
	}
	if _, ok := ctl.result("b"); ok {
		t.Error("stale b recorded")
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000000-junk.json.bad")); err != nil {
		t.Errorf("unreadable result not set aside: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

// staleB answers FaultStaleLease for call b.
type staleB struct{ *fakeController }

func (s *staleB) Result(ctx context.Context, r nodeapi.ResultRequest) (nodeapi.ResultResponse, error) {
	if r.CallID == "b" {
		return nodeapi.ResultResponse{}, &Fault{Code: nodeapi.FaultStaleLease, Message: "stale"}
	}
	return s.fakeController.Result(ctx, r)
}

func TestQueueBackoffWhileControllerDown(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		q := &Queue{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := q.Open(); err != nil {
			t.Fatal(err)
		}
		ctl := newFake()
		ctl.resultDown = true
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := q.Put(nodeapi.ResultRequest{CallID: "a", Token: "t", Disposition: nodeapi.DispBusy}); err != nil {
			t.Fatal(err)
		}
		go q.Deliver(ctx, ctl)
		// Tries at 0, 1, 3, 7, 15 s: backoff doubles from 1 s.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		ctl.mu.Lock()
		tries := ctl.resultTries
		ctl.resultDown = false
		ctl.mu.Unlock()
		if tries != 4 {
			t.Errorf("tries in 10s: %d, want 4", tries)
		}
		if q.Pending() != 1 {
			t.Errorf("pending while down: %d", q.Pending())
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if _, ok := ctl.result("a"); !ok || q.Pending() != 0 {
			t.Errorf("not delivered once the controller came back (pending %d)", q.Pending())
		}
		cancel()
	})
}
