package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testenv"
)

var (
	agentOnce sync.Once
	agentDir  string // removed by TestMain
	agentBin  string
	agentErr  error
)

func TestMain(m *testing.M) {
	code := testenv.RunInTree(m)
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
	os.Exit(code)
}

// nodeAgent builds the node-agent once per test binary.
func nodeAgent(t *testing.T) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "elastidial-agent-")
		if err != nil {
			agentErr = err
			return
		}
		agentDir, agentBin = dir, filepath.Join(dir, "node-agent")
		if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/elastidial/elastidial/cmd/node-agent").CombinedOutput(); err != nil {
			agentErr = err
			agentBin = string(out)
		}
	})
	if agentErr != nil {
		t.Fatalf("build node-agent: %v\n%s", agentErr, agentBin)
	}
	return agentBin
}

// atoi reads the first submatch of re in s, failing the test if absent.
func atoi(t *testing.T, re, s string) int {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in:\n%s", re, s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestDemo runs `controller demo` at a small size with real node-agent
// processes and their simulated Asterisks: nodes scale up, every contact
// is accounted for, the fleet goes back to zero, and the summary's calls,
// outcomes, nodes and cost agree with each other.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system for about a minute")
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"demo", "-contacts", "150", "-calls", "120", "-node-slots", "50",
		"-agent-path", nodeAgent(t), "-dir", t.TempDir(), "-timeout", "4m"}, &out, io.Discard, bareEnv(t))
	text := out.String()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, text)
	}
	if !strings.Contains(text, "Summary (finished after") {
		t.Fatalf("no finished summary in:\n%s", text)
	}
	// Progress lines: honest counters that add up.
	for _, m := range regexp.MustCompile(`done +(\d+)/150 +remaining +(\d+)`).FindAllStringSubmatch(text, -1) {
		done, rem := atoi(t, `(\d+)`, m[1]), atoi(t, `(\d+)`, m[2])
		if done+rem > 150 {
			t.Errorf("progress: done %d + remaining %d > 150 contacts", done, rem)
		}
	}
	if peak := atoi(t, `nodes +(\d+) at most at once`, text); peak < 3 {
		t.Errorf("peak %d nodes, want at least 3 (120 calls on 50-call nodes)", peak)
	}
	reached, failed, dnc, remaining := atoi(t, `(\d+) reached`, text), atoi(t, `(\d+) failed,`, text), atoi(t, `(\d+) opted out`, text), atoi(t, `(\d+) remaining\n`, text)
	if reached+failed+dnc != 150 || remaining != 0 {
		t.Errorf("contacts: %d reached + %d failed + %d opted out, %d remaining; want 150 and 0", reached, failed, dnc, remaining)
	}
	attempts := atoi(t, `calls +(\d+) finished`, text)
	if attempts < 150 || attempts > 300 { // one or two attempts each
		t.Errorf("%d attempts for 150 contacts with at most 2 each", attempts)
	}
	// The cost report counts the same answered calls as the outcomes.
	answered := atoi(t, `calls +\d+ finished: (\d+) answered`, text)
	if got := atoi(t, `per answered call \((\d+) answered\)`, text); got != answered {
		t.Errorf("cost per answered call counts %d calls, the outcomes %d", got, answered)
	}
	if m := regexp.MustCompile(`cost +\$(\S+) for the fleet`).FindStringSubmatch(text); m == nil || m[1] == "0.00" {
		t.Errorf("no cost in:\n%s", text)
	}
}

// syncBuffer is a bytes.Buffer safe to read while the demo writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoEndsOnCtrlCAndTimeout: Ctrl-C mid-campaign and -timeout both end
// the demo promptly with a partial summary, and its temporary working
// folder is removed.
func TestDemoEndsOnCtrlCAndTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system twice")
	}
	agent := nodeAgent(t)
	for _, tc := range []struct {
		name      string
		args      []string
		interrupt bool
		title     string
	}{
		{"ctrl-c", nil, true, "Summary (interrupted after"},
		{"timeout", []string{"-timeout", "10s"}, false, "Summary (stopped at -timeout after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp) // where the demo makes its working folder
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out syncBuffer
			errc := make(chan error, 1)
			env := bareEnv(t)
			go func() {
				errc <- run(ctx, append([]string{"demo", "-contacts", "3000", "-calls", "40", "-agent-path", agent}, tc.args...), &out, io.Discard, env)
			}()
			if tc.interrupt {
				for !regexp.MustCompile(`remaining +\d+`).MatchString(out.String()) { // a progress line: the campaign is dialling
					select {
					case err := <-errc:
						t.Fatalf("demo ended early: %v\n%s", err, out.String())
					case <-time.After(200 * time.Millisecond):
					}
				}
				cancel()
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(2 * time.Minute):
				t.Fatalf("demo did not end:\n%s", out.String())
			}
			text := out.String()
			if tc.interrupt && err != nil || !tc.interrupt && (err == nil || !strings.Contains(err.Error(), "not finished after 10s")) {
				t.Errorf("err = %v", err)
			}
			if !strings.Contains(text, tc.title) || !strings.Contains(text, "remaining\n") || !strings.Contains(text, "nodes ") {
				t.Errorf("no partial summary:\n%s", text)
			}
			if rem := atoi(t, `(\d+) remaining\n`, text); rem == 0 {
				t.Errorf("a partial summary with nothing remaining:\n%s", text)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("the demo left %v in the temporary folder", left[0].Name())
			}
		})
	}
}
