package localcloud

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller"
)

func newCloudIn(t testing.TB, dir, url string) *Cloud {
	t.Helper()
	c, err := New(Config{Binary: os.Args[0], ControllerURL: url, Secret: "s3cret", Dir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Env: []string{"LOCALCLOUD_HELPER=term"}, Grace: 300 * time.Millisecond, MaxInstances: 8, Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRestartAdoptsItsNodes: a controller that dies without closing its
// cloud leaves its node processes running. The next one on the same
// folder lists them again (same ids, tags, running), can terminate them,
// and never reuses their ids.
func TestRestartAdoptsItsNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := newCloudIn(t, dir, "http://127.0.0.1:1")
	got, err := old.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "tok", Tags: map[string]string{controller.TagLaunchToken: "tok"}})
	if err != nil || len(got) != 2 {
		t.Fatalf("launch: %v %v", got, err)
	}
	waitState(t, old, controller.InstanceRunning, got[0].ID, got[1].ID)
	waitLog(t, old, got[0].ID, "args:")
	waitLog(t, old, got[1].ID, "args:")
	// old "crashes": it is simply abandoned, its processes run on.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		old.Close(ctx)
	})

	c := newCloudIn(t, dir, "http://127.0.0.1:1")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	insts, _ := c.Instances(ctx)
	if len(insts) != 2 || insts[0].ID != got[0].ID || insts[1].ID != got[1].ID ||
		insts[0].State != controller.InstanceRunning || insts[0].Tags[controller.TagLaunchToken] != "tok" || insts[0].Tags[controller.TagCluster] != "test" {
		t.Fatalf("after restart: %+v, want %v and %v running with their tags", insts, got[0].ID, got[1].ID)
	}
	again, err := c.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "tok"})
	if err != nil || len(again) != 2 || again[0].ID != got[0].ID {
		t.Fatalf("the same launch token started anew after a restart: %+v %v", again, err)
	}
	fresh, err := c.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "tok2"})
	if err != nil || len(fresh) != 1 || fresh[0].ID == got[0].ID || fresh[0].ID == got[1].ID {
		t.Fatalf("new launch reused an id: %+v %v", fresh, err)
	}
	if err := c.Terminate(ctx, []string{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, controller.InstanceTerminated, got[0].ID)
	waitState(t, c, controller.InstanceRunning, got[1].ID, fresh[0].ID)
}

// TestRestartReapsNodesOfAnotherController: node processes left by a
// controller at another address can never reach this one: they are
// terminated, not left running as orphans.
func TestRestartReapsNodesOfAnotherController(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := newCloudIn(t, dir, "http://127.0.0.1:1")
	got, _ := old.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "tok"})
	waitState(t, old, controller.InstanceRunning, got[0].ID)
	waitLog(t, old, got[0].ID, "args:")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		old.Close(ctx)
	})
	c := newCloudIn(t, dir, "http://127.0.0.1:2")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	waitState(t, c, controller.InstanceTerminated, got[0].ID)
	waitState(t, old, controller.InstanceTerminated, got[0].ID)
}
