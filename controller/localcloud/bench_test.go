package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkInstances is what the scaler pays every tick to list the
// local cloud now that the folder, not memory, is the fleet: one read of
// a folder of 300 instance folders, all known (records are read once).
// The floor, measured in the same run, is that bare os.ReadDir; a cost
// near 1x means listing costs what the folder read does.
//
//	RACE= GOTESTFLAGS="-run x -bench Instances" scripts/test ./controller/localcloud
func BenchmarkInstances(b *testing.B) {
	const n = 300
	dir := b.TempDir()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("local-%04d", i)
		os.Mkdir(filepath.Join(dir, id), 0o755)
		// Ended processes (pid -1 runs nothing): listed, never watched.
		r, _ := json.Marshal(record{ID: id, PID: -1, ControllerURL: "http://127.0.0.1:1", Tags: map[string]string{"k": "v"}, LaunchedAt: time.Now()})
		os.WriteFile(filepath.Join(dir, id, "instance.json"), r, 0o644)
	}
	c := newCloudIn(b, dir, "http://127.0.0.1:1")
	defer c.Close(context.Background())
	if insts, err := c.Instances(context.Background()); err != nil || len(insts) != n {
		b.Fatalf("%d instances, %v", len(insts), err)
	}
	const rounds = 2000
	t0 := time.Now()
	for range rounds {
		if _, err := os.ReadDir(dir); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(t0) / rounds
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Instances(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(floor.Microseconds()), "µs-readdir-floor")
	b.ReportMetric(float64(per)/float64(floor), "cost-ratio")
}
