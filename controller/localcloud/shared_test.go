package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller"
)

// closeLater closes c when the test ends, if the test has not.
func closeLater(t *testing.T, c *Cloud) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
}

// TestSharedFolderListsEveryNode: controllers sharing one database share
// one folder, and whichever leads lists and terminates every node of it.
// B opened the folder before A launched; when A dies (here: is simply
// abandoned) and B leads, the registry holds A's node, so B must list it
// running and be able to end it. A node B did not list would be taken
// for gone: its calls released while it still dials, its results
// refused, and its process left running for ever.
func TestSharedFolderListsEveryNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, a)
	b := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, b)

	got, err := a.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "tok", Tags: map[string]string{controller.TagLaunchToken: "tok"}})
	if err != nil || len(got) != 1 {
		t.Fatalf("launch: %v %v", got, err)
	}
	id := got[0].ID
	waitState(t, a, controller.InstanceRunning, id)
	waitLog(t, a, id, "args:") // its SIGTERM handler is in place
	waitState(t, b, controller.InstanceRunning, id)
	insts, _ := b.Instances(ctx)
	if len(insts) != 1 || insts[0].Tags[controller.TagLaunchToken] != "tok" || insts[0].Tags[controller.TagCluster] != "test" {
		t.Fatalf("B lists %+v, want %s with its tags", insts, id)
	}

	// The launch retried by the new leader starts nothing more.
	again, err := b.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "tok", Tags: map[string]string{controller.TagLaunchToken: "tok"}})
	if err != nil || len(again) != 1 || again[0].ID != id {
		t.Fatalf("B launched token tok again: %+v %v", again, err)
	}

	if err := b.Terminate(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, controller.InstanceTerminated, id)
	waitState(t, a, controller.InstanceTerminated, id)
	waitLog(t, a, id, "got SIGTERM")
}

// TestSharedFolderKillAfterGrace: a node that ignores SIGTERM is killed
// after the grace by the controller that terminates it, even when
// another one started it.
func TestSharedFolderKillAfterGrace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newCloudIn(t, dir, "http://127.0.0.1:1")
	a.cfg.Env = []string{"LOCALCLOUD_HELPER=ignore-term"}
	closeLater(t, a)
	b := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, b)
	got, _ := a.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "x"})
	id := got[0].ID
	waitState(t, a, controller.InstanceRunning, id)
	waitLog(t, a, id, "args:")
	start := time.Now()
	if err := b.Terminate(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, controller.InstanceTerminated, id)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("ended after %s, before the grace", d)
	}
	waitState(t, a, controller.InstanceTerminated, id)
}

// TestSharedFolderClaimedNotStarted: a folder another controller has
// claimed but not yet started a process in is neither listed nor
// reaped, its id is not reused, and once started it is listed.
func TestSharedFolderClaimedNotStarted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, b)
	// Another controller claims local-0001 and is about to start it.
	if err := os.Mkdir(filepath.Join(dir, "local-0001"), 0o755); err != nil {
		t.Fatal(err)
	}
	if insts, _ := b.Instances(ctx); len(insts) != 0 {
		t.Fatalf("B lists %+v for a folder claimed but not started", insts)
	}
	got, err := b.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "x"})
	if err != nil || len(got) != 1 || got[0].ID == "local-0001" {
		t.Fatalf("launch beside a claimed folder: %+v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "local-0001")); err != nil {
		t.Errorf("the claimed folder was reaped: %v", err)
	}
}

// TestSharedFolderClose: a controller that stops while another still
// has the folder open leaves the nodes running (the other lists them and
// carries on); the last one to stop terminates them all, including
// those it never listed.
func TestSharedFolderClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, a)
	b := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, b)
	ga, _ := a.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "a"})
	gb, _ := b.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "b"})
	ids := []string{ga[0].ID, gb[0].ID}
	waitState(t, a, controller.InstanceRunning, ga[0].ID)
	waitState(t, b, controller.InstanceRunning, gb[0].ID)
	waitLog(t, a, ids[0], "args:")
	waitLog(t, b, ids[1], "args:")

	// B stops (a deploy, a restart): the fleet runs on.
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, controller.InstanceRunning, ids...)
	time.Sleep(100 * time.Millisecond)
	waitState(t, a, controller.InstanceRunning, ids...)

	// A, now alone, stops: nothing is left behind.
	c := newCloudIn(t, dir, "http://127.0.0.1:1") // opened and closed again, listing nothing yet
	if err := c.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(dir, id, "instance.json"))
		var r record
		if err != nil || json.Unmarshal(b, &r) != nil || r.PID <= 0 {
			t.Fatalf("record of %s: %s %v", id, b, err)
		}
		// B's goroutine reaps its child soon after the kill.
		for deadline := time.Now().Add(2 * time.Second); syscall.Kill(r.PID, 0) == nil; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%s (pid %d) still runs after the last controller stopped", id, r.PID)
				break
			}
		}
	}
}

// TestSharedFolderScriptAgent: a node process is known by its pid and
// start time, not its command line, so an agent started by a script that
// execs (the tests' idle agent) is adopted too, not taken for ended.
func TestSharedFolderScriptAgent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	idle := filepath.Join(t.TempDir(), "idle-agent")
	if err := os.WriteFile(idle, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	open := func() *Cloud {
		c := newCloudIn(t, dir, "http://127.0.0.1:1")
		c.cfg.Binary = idle
		closeLater(t, c)
		return c
	}
	a, b := open(), open()
	got, _ := a.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "x"})
	id := got[0].ID
	waitState(t, a, controller.InstanceRunning, id)
	r, err := a.readRecord(id)
	for deadline := time.Now().Add(5 * time.Second); err != nil; r, err = a.readRecord(id) {
		if time.Now().After(deadline) {
			t.Fatalf("no record: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Wait for the exec, so B meets the process as sleep.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID)); strings.HasPrefix(string(b), "sleep\x00") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the script never exec'd sleep")
		}
	}
	waitState(t, b, controller.InstanceRunning, id)
	b.Terminate(ctx, []string{id})
	waitState(t, b, controller.InstanceTerminated, id)
	waitState(t, a, controller.InstanceTerminated, id)
}

// TestSharedFolderTerminateBeforeStart: terminating an instance another
// controller has claimed but not started yet keeps it from starting.
func TestSharedFolderTerminateBeforeStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, a)
	b := newCloudIn(t, dir, "http://127.0.0.1:1")
	closeLater(t, b)
	// A claims as Launch does, and is slow to start the process.
	a.mu.Lock()
	id, err := a.claim()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{inst: controller.Instance{ID: id, State: controller.InstancePending}, done: make(chan struct{})}
	a.insts[id] = p
	a.mu.Unlock()
	if err := b.Terminate(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	a.wg.Add(1)
	go a.run(p)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("started after another controller terminated it")
	}
	waitState(t, a, controller.InstanceTerminated, id)
	if insts, _ := b.Instances(ctx); len(insts) != 0 {
		t.Errorf("B lists %+v", insts)
	}
}
