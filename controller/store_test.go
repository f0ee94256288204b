package controller

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
)

// stores runs fn against every store implementation: SQLite and PostgreSQL.
func stores(t *testing.T, fn func(t *testing.T, open func() *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nodes.db")
		fn(t, func() *Store { return openStore(t, "sqlite", path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		fn(t, func() *Store { return openStore(t, "pgx", dsn) })
	})
}

func openStore(t *testing.T, driver, dsn string) *Store {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(context.Background(), db, driver)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreContract(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		n := NodeRecord{ID: "i-1", State: planner.StateDraining, LaunchToken: "tok", Type: "c6i.large", Zone: "us-east-1a", Spot: true,
			PrivateIP: "10.0.0.1", Capacity: 100, LaunchedAt: at, RunningAt: at.Add(time.Second), DrainDeadline: at.Add(time.Hour), DrainReason: "surplus"}
		if err := s.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		n.State = planner.StateTerminating
		n.Warm = WarmRecord{StoppedAt: at.Add(2 * time.Hour), ResumedAt: at.Add(time.Hour), Starts: 1}
		n.Warm.Stops[0] = Stop{From: at.Add(10 * time.Minute), To: at.Add(time.Hour)}
		if err := s.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := s.PutNode(ctx, NodeRecord{}); err == nil {
			t.Error("empty id stored")
		}
		n.Rev = 2 // two writes
		got, err := open().Nodes(ctx)
		if err != nil || !reflect.DeepEqual(got, []NodeRecord{n}) {
			t.Fatalf("nodes %+v %v, want %+v", got, err, n)
		}
		// Every node call's check reads the same row's state, epoch and
		// capacity type.
		if c, err := s.NodeCheck(ctx, n.ID); err != nil || c != (NodeCheck{State: n.State, Epoch: n.Epoch, Spot: true}) {
			t.Fatalf("node check %+v %v", c, err)
		}
		if _, err := s.NodeCheck(ctx, "i-none"); !errors.Is(err, ErrUnknownNode) {
			t.Fatalf("node check of an unknown node: %v", err)
		}
		if err := s.AddIntent(ctx, Fence{}, LaunchIntent{Token: "a", Count: 2, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddIntent(ctx, Fence{}, LaunchIntent{Token: "a", Count: 2, CreatedAt: at}); err == nil {
			t.Error("duplicate intent token accepted")
		}
		if err := s.AddIntent(ctx, Fence{}, LaunchIntent{Token: "b", Count: 0}); err == nil {
			t.Error("zero-count intent accepted")
		}
		s.AddIntent(ctx, Fence{}, LaunchIntent{Token: "c", Count: 1, CreatedAt: at.Add(time.Second)})
		s.FinishIntent(ctx, Fence{}, "a")
		in, err := open().OpenIntents(ctx)
		if err != nil || len(in) != 1 || in[0].Token != "c" || !in[0].CreatedAt.Equal(at.Add(time.Second)) {
			t.Fatalf("open intents %+v %v", in, err)
		}
	})
}

func TestOpenStoreBadDriver(t *testing.T) {
	if _, err := OpenStore(context.Background(), nil, "mysql"); err == nil {
		t.Fatal("mysql accepted")
	}
}

// TestRestart: a controller that stops with a drain under way and a launch
// whose reply was lost restarts from the store and the cloud, keeps the
// drain, and launches nothing twice.
func TestRestart(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := newFakeCloud(clock)
		d := &fakeDemand{target: 250}
		c := newTestController(t, cloud, d, open(), clock)
		mustTick(t, c)
		cloud.boot()
		for _, id := range cloud.live() {
			c.Register(ctx, nodeapi.RegisterRequest{InstanceID: id})
			c.Heartbeat(ctx, id, readyHB(50))
		}
		d.set(150)
		for i := 0; i < 32; i++ {
			clock.Add(10 * time.Second)
			for _, id := range cloud.live() {
				c.Heartbeat(ctx, id, readyHB(50))
			}
			mustTick(t, c)
		}
		var drained string
		for id, s := range states(c) {
			if s == planner.StateDraining {
				drained = id
			}
		}
		if drained == "" {
			t.Fatalf("no drain: %v", states(c))
		}
		// Demand rises; the launch reply is lost, then the controller dies.
		d.set(600)
		cloud.loseNextReply("launch")
		c.Tick(ctx) // cancels the drain, launches; reply lost
		d.set(150)  // and the drain would come back only after the window
		launched := cloud.launched

		// The dead controller's leadership expires before c2 may act.
		c2 := newTestController(t, cloud, d, open(), clock)
		clock.Add(c.cfg.LeaderTTL + time.Second)
		for _, id := range cloud.live() {
			c2.Heartbeat(ctx, id, readyHB(50))
		}
		c2.Tick(ctx)
		if cloud.launched != launched {
			t.Fatalf("restart launched %d more instances", cloud.launched-launched)
		}
		if got := len(c2.Nodes()); got != len(cloud.live()) {
			t.Fatalf("restarted controller knows %d nodes, cloud runs %d", got, len(cloud.live()))
		}

		// A drain survives a restart.
		c3 := newTestController(t, cloud, d, open(), clock)
		if s := states(c3); !reflect.DeepEqual(s, states(c2)) {
			t.Fatalf("restart lost states: %v vs %v", s, states(c2))
		}
	})
}
