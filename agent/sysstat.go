package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// loadAvg reads the 1-minute load average from /proc/loadavg.
func loadAvg(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("%s: empty", path)
	}
	return strconv.ParseFloat(f[0], 64)
}

// cpuTimes reads the aggregate "cpu" line of /proc/stat: busy and total
// jiffies.
func cpuTimes(path string) (busy, total uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("%s: no cpu line", path)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: field %d: %w", path, i+1, err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// cpuMeter turns successive /proc/stat samples into a busy share.
type cpuMeter struct {
	path        string
	busy, total uint64
}

func (m *cpuMeter) sample() float64 {
	b, t, err := cpuTimes(m.path)
	if err != nil {
		return 0
	}
	defer func() { m.busy, m.total = b, t }()
	if m.total == 0 || t <= m.total {
		return 0
	}
	return float64(b-m.busy) / float64(t-m.total)
}
