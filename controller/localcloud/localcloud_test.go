package localcloud

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testenv"
)

// The test binary doubles as a stand-in node agent: with
// LOCALCLOUD_HELPER set it prints its arguments and waits for SIGTERM
// ("ignore-term" makes it wait for SIGKILL instead).
func TestMain(m *testing.M) {
	if mode := os.Getenv("LOCALCLOUD_HELPER"); mode != "" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("args:", strings.Join(os.Args[1:], " "))
		fmt.Println("secret from env:", os.Getenv("ELASTIDIAL_CLUSTER_SECRET"))
		if mode == "exit" {
			os.Exit(3)
		}
		for range sig {
			if mode != "ignore-term" {
				fmt.Println("got SIGTERM")
				os.Exit(0)
			}
		}
	}
	os.Exit(testenv.RunInTree(m))
}

func newCloud(t *testing.T, mode string) *Cloud {
	t.Helper()
	c, err := New(Config{Binary: os.Args[0], ControllerURL: "http://127.0.0.1:1", Secret: "s3cret", Dir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Env: []string{"LOCALCLOUD_HELPER=" + mode}, Grace: 300 * time.Millisecond, MaxInstances: 3, Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// waitState polls until every id is in state want.
func waitState(t *testing.T, c *Cloud, want string, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		insts, _ := c.Instances(context.Background())
		got := map[string]string{}
		for _, in := range insts {
			got[in.ID] = in.State
		}
		ok := true
		for _, id := range ids {
			ok = ok && got[id] == want
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances %v, want %v %s", got, ids, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLaunchTerminate(t *testing.T) {
	ctx := context.Background()
	c := newCloud(t, "term")
	got, err := c.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "tok", Tags: map[string]string{"k": "v"}})
	if err != nil || len(got) != 2 || got[0].ID != "local-0001" || got[1].ID != "local-0002" {
		t.Fatalf("launch: %+v %v", got, err)
	}
	if got[0].Tags[controller.TagCluster] != "test" || got[0].Tags["k"] != "v" {
		t.Errorf("tags %v", got[0].Tags)
	}
	again, err := c.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "tok"})
	if err != nil || len(again) != 2 || again[0].ID != "local-0001" {
		t.Fatalf("same token launched again: %+v %v", again, err)
	}
	waitState(t, c, controller.InstanceRunning, "local-0001", "local-0002")
	waitLog(t, c, "local-0002", "args:")

	// The command line follows CONVENTIONS.md.
	log := waitLog(t, c, "local-0001", "secret from env:") // printed after the arguments
	for _, want := range []string{"-controller http://127.0.0.1:1", "-instance-id local-0001", "-capacity 100", "-simulate", "-imds off", "secret from env: s3cret"} {
		if !strings.Contains(log, want) {
			t.Errorf("command line %q lacks %q", log, want)
		}
	}
	if args, _, _ := strings.Cut(log[strings.Index(log, "args:"):], "\n"); strings.Contains(args, "s3cret") {
		t.Errorf("the cluster secret is on the command line: %q", args)
	}

	if err := c.Terminate(ctx, []string{"local-0001", "local-9999"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, controller.InstanceTerminated, "local-0001")
	waitState(t, c, controller.InstanceRunning, "local-0002")
	if log, _ := os.ReadFile(c.LogPath("local-0001")); !strings.Contains(string(log), "got SIGTERM") {
		t.Errorf("agent did not get SIGTERM: %q", log)
	}

	// The instance limit: 1 live, limit 3, 4 asked → 2 started and an error.
	more, err := c.Launch(ctx, controller.LaunchRequest{Count: 4, Token: "t2"})
	if err == nil || len(more) != 2 {
		t.Errorf("over the limit: %d started, err %v", len(more), err)
	}
	if _, err := c.Launch(ctx, controller.LaunchRequest{Count: 0}); err == nil {
		t.Error("count 0 accepted")
	}
}

func TestKillAfterGrace(t *testing.T) {
	ctx := context.Background()
	c := newCloud(t, "ignore-term")
	c.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "x"})
	waitState(t, c, controller.InstanceRunning, "local-0001")
	waitLog(t, c, "local-0001", "args:") // its signal handler is in place
	start := time.Now()
	c.Terminate(ctx, []string{"local-0001"})
	waitState(t, c, controller.InstanceTerminated, "local-0001")
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("ended after %s, before the grace", d)
	}
}

func TestProcessExitIsTerminated(t *testing.T) {
	c := newCloud(t, "exit")
	c.Launch(context.Background(), controller.LaunchRequest{Count: 1, Token: "x"})
	waitState(t, c, controller.InstanceTerminated, "local-0001")
}

func TestBadBinary(t *testing.T) {
	c, err := New(Config{Binary: "/nonexistent/node-agent", ControllerURL: "u", Secret: "s", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	c.Launch(context.Background(), controller.LaunchRequest{Count: 1})
	waitState(t, c, controller.InstanceTerminated, "local-0001")
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Binary"},
		{Config{Binary: "b"}, "ControllerURL"},
		{Config{Binary: "b", ControllerURL: "u"}, "Secret"},
		{Config{Binary: "b", ControllerURL: "u", Secret: "s"}, "Dir"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want mention of %s", tc.cfg, err, tc.want)
		}
	}
}

func waitLog(t *testing.T, c *Cloud, id, want string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, _ := os.ReadFile(c.LogPath(id))
		if strings.Contains(string(log), want) {
			return string(log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s %q lacks %q", id, log, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type demand struct{ target int }

func (d *demand) Demand(context.Context, time.Time) ([]controller.Demand, error) {
	return []controller.Demand{{CampaignID: "c", Target: d.target, Callable: 1000}}, nil
}

// TestWithController drives real processes through the controller: it
// launches two agents, and when they never register (the stand-in agent
// does not speak XML-RPC) it terminates them at the deadline: nothing leaks.
func TestWithController(t *testing.T) {
	ctx := context.Background()
	lc := newCloud(t, "term")
	d := &demand{target: 150}
	ctrl, err := controller.New(ctx, lc, d, nil, controller.Options{
		Plan:   planner.Config{RegisterDeadline: 700 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctrl.Tick(ctx)
	waitState(t, lc, controller.InstanceRunning, "local-0001", "local-0002")
	d.target = 0
	ctrl.Tick(ctx)
	time.Sleep(800 * time.Millisecond)
	ctrl.Tick(ctx)
	waitState(t, lc, controller.InstanceTerminated, "local-0001", "local-0002")
	ctrl.Tick(ctx)
	for _, n := range ctrl.Nodes() {
		if n.State != planner.StateGone {
			t.Errorf("node %s %s, want gone", n.ID, n.State)
		}
	}
	if insts, _ := lc.Instances(ctx); len(insts) != 2 {
		t.Errorf("%d instances, want exactly the 2 launched", len(insts))
	}
}
