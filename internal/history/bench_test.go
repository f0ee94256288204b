package history

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRange reads a full day of 5-second samples (17,280, ten series
// each) into 300 points, as a chart asks. The floor, measured in the same
// run, is one pass over the same samples reading the same values with no
// bucketing: what any read must at least do.
func BenchmarkRange(b *testing.B) {
	const n = 24 * 3600 / 5
	r := New(n)
	t0 := time.Unix(1_700_000_000, 0)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for i := range n {
		v := make(map[string]float64, len(names))
		for k, name := range names {
			v[name] = float64(i * k)
		}
		r.Add(t0.Add(time.Duration(i)*5*time.Second), v)
	}
	to := t0.Add(24 * time.Hour)
	var floor, got time.Duration
	b.Run("floor", func(b *testing.B) {
		sum := 0.0
		start := time.Now()
		for range b.N {
			r.mu.Lock()
			for i := 0; i < r.len(); i++ {
				s := r.at(i)
				for _, name := range names {
					sum += s.values[name]
				}
			}
			r.mu.Unlock()
		}
		floor = time.Since(start) / time.Duration(b.N)
		_ = sum
	})
	b.Run("range", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			if s := r.Range(t0, to, 300, "", names); len(s.Times) != 300 {
				b.Fatalf("%d points", len(s.Times))
			}
		}
		got = time.Since(start) / time.Duration(b.N)
	})
	if floor > 0 && got > 0 {
		fmt.Printf("history.Range, a day at 5 s into 300 points: %v; floor (one pass reading the values) %v; ratio %.2f\n", got, floor, float64(got)/float64(floor))
	}
}
