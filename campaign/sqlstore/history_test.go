package sqlstore

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestHistoryKeptInTheDatabase(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := noonNY
		for i := range 10 {
			at := t0.Add(time.Duration(i) * 5 * time.Second)
			if err := s.AddHistory(ctx, at, map[string]float64{"nodes": float64(i), "cost_per_hour": math.NaN()}, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		// A second leader's sample of the same moment is dropped.
		if err := s.AddHistory(ctx, t0.Add(45*time.Second), map[string]float64{"nodes": 99}, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		got, err := s.HistorySince(ctx, time.Time{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		// Kept: the samples of the last 30 s before the newest (15 s to 45 s).
		if len(got) != 7 || !got[0].At.Equal(t0.Add(15*time.Second)) || got[6].Values["nodes"] != 9 {
			t.Fatalf("kept %d samples: %+v", len(got), got)
		}
		if _, ok := got[0].Values["cost_per_hour"]; ok {
			t.Errorf("NaN stored: %v", got[0].Values)
		}
		page, err := s.HistorySince(ctx, t0.Add(30*time.Second), 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 || !page[0].At.Equal(t0.Add(35*time.Second)) || !page[1].At.Equal(t0.Add(40*time.Second)) {
			t.Fatalf("page after 30 s: %+v", page)
		}
	})
}
