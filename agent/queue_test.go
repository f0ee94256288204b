package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
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
