package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procUsage reads a process's CPU time (user+system) and resident memory.
func procUsage(pid int) (cpu time.Duration, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields, rss the 24th (in pages).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, pages * int64(os.Getpagesize()), nil
}

// BenchmarkConcurrentRealCalls measures what one call costs the node (its
// Asterisk and the agent) on this machine, from lease to result: calls
// answered by the carrier, each playing a 25-second prompt through the IVR,
// all up at once. The floor, measured in the same run, is the carrier's
// Asterisk holding the other leg of the same calls (SIP, RTP, no IVR): the
// ratio says what the node adds over bare media.
//
//	scripts/test -run x -bench ConcurrentRealCalls -benchtime 1x ./e2e
func BenchmarkConcurrentRealCalls(b *testing.B) {
	for _, calls := range []int{20, 60, 120} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			for range b.N {
				measureCalls(b, calls)
			}
		})
	}
}

func measureCalls(b *testing.B, calls int) {
	s := startWith(b, calls, "-min-nodes", "1") // the node is up before the clock starts
	region, prefix := numbering(time.Now())
	s.upload("e2e", map[string][]byte{"long": prompt(25)})
	s.json("PUT", "/trunks/carrier", map[string]any{"max_channels": calls * 2, "max_cps": 50}, nil)
	var c struct{ ID string }
	s.json("POST", "/campaigns", map[string]any{"name": "load", "trunk": "carrier", "caller_id": "+14155550100",
		"target": calls, "max_cps": 20, "ring_seconds": 20, "max_attempts": 1}, &c)
	s.api("PUT", "/campaigns/"+c.ID+"/flow", "application/json", strings.NewReader(`{"name":"load","start":"long",
		"states":{"long":{"play":["e2e/long"],"next":"bye"},"bye":{"hangup":true}}}`), nil)
	var list strings.Builder
	list.WriteString("phone\n")
	for i := range calls {
		fmt.Fprintf(&list, "%s%03d13\n", prefix[:len(prefix)-3], i) // 13: answers and listens
	}
	s.api("POST", "/campaigns/"+c.ID+"/contacts?region="+region, "text/csv", strings.NewReader(list.String()), nil)
	agent := s.agentPIDWhenUp(b)
	pids := map[string]int{"node": s.node.PID(), "agent": agent, "carrier": s.carrier.PID()}
	cpu0, rss0, peak := map[string]time.Duration{}, map[string]int64{}, map[string]int64{}
	for k, pid := range pids {
		cpu0[k], rss0[k], _ = procUsage(pid)
	}
	begin := time.Now()
	s.api("POST", "/campaigns/"+c.ID+"/start", "", nil, nil)
	most := 0
	waitFor(b, s, 3*time.Minute, fmt.Sprintf("%d calls over", calls), func() bool {
		n := 0
		for _, k := range s.carrier.LiveCalls(b) {
			n += k
		}
		most = max(most, n)
		for k, pid := range pids {
			_, rss, _ := procUsage(pid)
			peak[k] = max(peak[k], rss)
		}
		return len(s.results(c.ID)) >= calls
	})
	elapsed := time.Since(begin)
	if most < calls {
		b.Fatalf("at most %d of %d calls were up at once", most, calls)
	}
	cpu := func(k string) float64 {
		c, _, err := procUsage(pids[k])
		if err != nil {
			b.Fatal(err)
		}
		return float64(c-cpu0[k]) / float64(time.Millisecond) / float64(calls)
	}
	node, agentCPU, floor := cpu("node"), cpu("agent"), cpu("carrier")
	b.ReportMetric(node, "asterisk-cpu-ms/call")
	b.ReportMetric(agentCPU, "agent-cpu-ms/call")
	b.ReportMetric(floor, "floor-carrier-cpu-ms/call")
	if floor > 0 {
		b.ReportMetric((node+agentCPU)/floor, "node/floor")
	}
	b.ReportMetric(float64(peak["node"]-rss0["node"])/1e3/float64(calls), "asterisk-KB/call")
	b.ReportMetric(float64(peak["agent"]-rss0["agent"])/1e3/float64(calls), "agent-KB/call")
	b.ReportMetric(elapsed.Seconds(), "campaign-s")
}
