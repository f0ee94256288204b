package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemo runs `controller demo` at a small size with real node-agent
// processes and their simulated Asterisks: nodes scale up, every contact
// is accounted for, the fleet goes back to zero, and the results and cost
// report agree with the calls made.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system for about a minute")
	}
	agent := filepath.Join(t.TempDir(), "node-agent")
	if out, err := exec.Command("go", "build", "-o", agent, "github.com/elastidial/elastidial/cmd/node-agent").CombinedOutput(); err != nil {
		t.Fatalf("build node-agent: %v\n%s", err, out)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"demo", "-contacts", "150", "-calls", "120", "-node-slots", "50",
		"-agent-path", agent, "-dir", t.TempDir(), "-timeout", "4m"}, &out, io.Discard, func(string) string { return "" })
	text := out.String()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, text)
	}
	m := regexp.MustCompile(`results \(peak (\d+) nodes\):\n`).FindStringSubmatchIndex(text)
	if m == nil {
		t.Fatalf("no results in:\n%s", text)
	}
	peak, _ := strconv.Atoi(text[m[2]:m[3]])
	if peak < 3 {
		t.Errorf("peak %d nodes, want at least 3 (120 calls on 50-call nodes)", peak)
	}
	var st struct {
		Contacts      map[string]int `json:"contacts"`
		Attempts      map[string]int `json:"attempts"`
		InProgress    int            `json:"in_progress"`
		AnsweredCalls int            `json:"answered_calls"`
	}
	if err := json.NewDecoder(strings.NewReader(text[m[1]:])).Decode(&st); err != nil {
		t.Fatalf("stats: %v\n%s", err, text)
	}
	if got := st.Contacts["done"] + st.Contacts["failed"] + st.Contacts["dnc"]; got != 150 || st.InProgress != 0 {
		t.Errorf("contacts accounted for: %d of 150 (%v), %d in progress", got, st.Contacts, st.InProgress)
	}
	attempts := 0
	for _, n := range st.Attempts {
		attempts += n
	}
	if attempts < 150 || attempts > 300 { // one or two attempts each
		t.Errorf("%d attempts for 150 contacts with at most 2 each", attempts)
	}
	// The cost report counts the same answered calls, and some cost.
	if !strings.Contains(text, strconv.Itoa(st.AnsweredCalls)+" calls") {
		t.Errorf("cost report does not count %d answered calls:\n%s", st.AnsweredCalls, text)
	}
	if c := regexp.MustCompile(`total\s+\$(\d+\.\d+)`).FindStringSubmatch(text); c == nil || c[1] == "0.00" && !strings.Contains(text, "node-hours") {
		t.Errorf("no cost total in:\n%s", text)
	}
}
