package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lastAgentPID is the PID the node's agent logged at its last start, 0
// before any.
func (s *system) lastAgentPID() int {
	logs, _ := filepath.Glob(filepath.Join(s.dir, "nodes", "*", "agent.log"))
	pid := 0
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`msg="node-agent running".* pid=(\d+)`).FindAllSubmatch(b, -1) {
			pid, _ = strconv.Atoi(string(m[1]))
		}
	}
	return pid
}

// agentPID is the running agent's PID.
func (s *system) agentPID(t testing.TB) int {
	t.Helper()
	pid := s.lastAgentPID()
	if pid == 0 {
		t.Fatal("no running agent in the node logs")
	}
	return pid
}

// agentPIDWhenUp waits for the local node's agent to start.
func (s *system) agentPIDWhenUp(t testing.TB) int {
	t.Helper()
	waitFor(t, s, time.Minute, "the node's agent", func() bool { return s.lastAgentPID() != 0 })
	return s.lastAgentPID()
}

// Invariant 2 across an agent crash: kill -9 the agent while its calls
// ring. The calls ring on in Asterisk; the contacts must not be dialled
// again until those attempts are over. At no moment may the carrier see two
// live calls to one number, and every contact still gets its result.
func TestAgentKilledWhileCallsRing(t *testing.T) {
	s := start(t)
	region, prefix := numbering(time.Now())
	s.upload("e2e", map[string][]byte{"hello": prompt(1), "menu": prompt(1), "thanks": prompt(1), "message": prompt(2)})
	s.json("PUT", "/trunks/carrier", map[string]any{"max_channels": 40, "max_cps": 20}, nil)
	var c struct{ ID string }
	s.json("POST", "/campaigns", map[string]any{"name": "crash", "trunk": "carrier", "caller_id": "+14155550100",
		"target": 10, "max_cps": 10, "ring_seconds": 25, "max_attempts": 2,
		"retry": map[string]any{"no_answer": map[string]int{"after_seconds": 1}, "cut_off": map[string]int{"after_seconds": 1}}}, &c)
	s.api("PUT", "/campaigns/"+c.ID+"/flow", "application/json", strings.NewReader(ivrFlow), nil)
	const n = 5
	var list strings.Builder
	list.WriteString("phone,code\n")
	var numbers []string
	for i := 1; i <= n; i++ {
		num := fmt.Sprintf("%s%d06", prefix[:len(prefix)-1], i) // 06: rings, never answers
		numbers = append(numbers, num)
		fmt.Fprintf(&list, "%s,1\n", num)
	}
	s.api("POST", "/campaigns/"+c.ID+"/contacts?region="+region, "text/csv", strings.NewReader(list.String()), nil)

	// Watch the carrier for two live calls to one number, all along.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var doubles []string
	peak := map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			live := s.carrier.LiveCalls(t)
			mu.Lock()
			for num, k := range live {
				peak[num] = max(peak[num], k)
				if k > 1 {
					doubles = append(doubles, fmt.Sprintf("%s x%d at %s", num, k, time.Now().Format(time.TimeOnly)))
				}
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	s.api("POST", "/campaigns/"+c.ID+"/start", "", nil, nil)
	waitFor(t, s, 90*time.Second, "every contact ringing", func() bool {
		live := s.carrier.LiveCalls(t)
		for _, num := range numbers {
			if live[num] == 0 {
				return false
			}
		}
		return true
	})
	pid := s.agentPID(t)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed agent %d with %d calls ringing", pid, n)

	// Each contact: the orphaned first attempt is ended and reported, then
	// the contact is dialled again by its retry policy.
	waitFor(t, s, 2*time.Minute, "two attempts of every contact", func() bool {
		got := map[string]int{}
		for _, r := range s.results(c.ID) {
			got[r.Phone]++
		}
		for _, num := range numbers {
			if got[num] < 2 {
				return false
			}
		}
		return true
	})
	if s.agentPID(t) == pid {
		t.Error("the agent was not restarted on the node")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("most live calls to one number at once: %v", peak)
	if len(doubles) > 0 {
		t.Errorf("two live calls to one number: %v", doubles)
	}
	for _, r := range s.results(c.ID) {
		if r.Attempt == 1 && r.Disposition != "no_answer" {
			t.Errorf("%s: orphaned first attempt recorded %q, want no_answer", r.Phone, r.Disposition)
		}
	}
}
