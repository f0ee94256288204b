package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testenv"
)

// walkthrough extracts the README's walkthrough: every ```sh block that
// follows a "<!-- walkthrough -->" line, in order.
func walkthrough(t *testing.T, readme string) []string {
	t.Helper()
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)<!-- walkthrough -->\n```sh\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d walkthrough blocks; the markers moved?", len(blocks))
	}
	return blocks
}

// TestREADMEWalkthrough runs the README's curl walkthrough literally, with
// bash, from the repository's root, against a running serve with the
// default data folder (HOME is a fresh folder), as a new user would.
func TestREADMEWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve, go run and a campaign for a couple of minutes")
	}
	for _, tool := range []string{"bash", "curl", "sed", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough needs %s: %v", tool, err)
		}
	}
	root, _ := filepath.Abs("../..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := walkthrough(t, string(readme))

	// The Go caches stay the machine's, so 'go run' in a fresh HOME does
	// not rebuild the world.
	goenv := map[string]string{}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatal(err)
		}
		goenv[k] = strings.TrimSpace(string(out))
	}
	home := t.TempDir()
	env := func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-listen", addr, "-agent-path", nodeAgent(t), "-tick", "1s"}, os.Stdout, os.Stderr, env)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
	}

	script := "set -euo pipefail\nset -x\n" + strings.Join(blocks, "\n")
	sctx, scancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer scancel()
	cmd := exec.CommandContext(sctx, "bash", "-c", script)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "ELASTIDIAL_URL=" + base, "TMPDIR=" + t.TempDir(),
		"GOCACHE=" + goenv["GOCACHE"], "GOMODCACHE=" + goenv["GOMODCACHE"], "GOPATH=" + goenv["GOPATH"], "GOFLAGS=" + os.Getenv("GOFLAGS"),
		"GOTOOLCHAIN=local"}
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"name": "carrier"`,   // the trunk
		`"stored"`,            // the prompts
		`"flow_version": 1`,   // the flow
		`"imported": 30`,      // the dial list
		`"target": 30`,        // the PATCH
		`"status": "running"`, // start
		`"answered_calls"`,    // stats
		"phone,attempt,call_id,state,disposition,cause,cause_text,started_at", // results.csv
		"per answered call", // the cost report
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the walkthrough's output lacks %q:\n%s", want, out)
		}
	}
	// It is daytime somewhere on the sample list: some calls were made.
	if !regexp.MustCompile(`(?m)^\+[0-9]+,1,`).MatchString(out) {
		t.Errorf("no call in results.csv after a minute:\n%s", out)
	}
	// serve kept its state in the default data folder.
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "elastidial", "elastidial.db")); err != nil {
		t.Errorf("data folder: %v", err)
	}
}
