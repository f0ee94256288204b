package history

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRingKeepsTheNewestAndReadsARange(t *testing.T) {
	r := New(5)
	t0 := time.Unix(1_000_000, 0)
	for i := range 8 {
		r.Add(t0.Add(time.Duration(i)*time.Second), map[string]float64{"x": float64(i)})
	}
	r.Add(t0, map[string]float64{"x": 99}) // older than the newest: dropped
	s := r.Range(t0, t0.Add(time.Hour), 100, "", []string{"x", "missing"})
	if got, want := len(s.Times), 5; got != want {
		t.Fatalf("kept %d samples, want %d", got, want)
	}
	for i, v := range s.Values["x"] {
		if *v != float64(i+3) || s.Times[i] != t0.Unix()+int64(i+3) {
			t.Fatalf("sample %d = %v at %d, want %d", i, *v, s.Times[i], i+3)
		}
	}
	for _, v := range s.Values["missing"] {
		if v != nil {
			t.Fatal("a value never taken reads as a number")
		}
	}
	s = r.Range(t0.Add(4*time.Second), t0.Add(5*time.Second), 100, "", []string{"x"})
	if len(s.Times) != 2 || *s.Values["x"][0] != 4 || *s.Values["x"][1] != 5 {
		t.Fatalf("range [4,5]: %v %v", s.Times, s.Values["x"])
	}
}

func TestRangeMergesIntoBucketsAndLeavesGapsOut(t *testing.T) {
	r := New(1000)
	t0 := time.Unix(2_000_000, 0)
	for i := range 100 { // 0..99 s, then a gap, then 200..299 s
		r.Add(t0.Add(time.Duration(i)*time.Second), map[string]float64{"x": 1})
	}
	for i := 200; i < 300; i++ {
		r.Add(t0.Add(time.Duration(i)*time.Second), map[string]float64{"x": 3})
	}
	s := r.Range(t0, t0.Add(300*time.Second), 10, "", []string{"x"})
	if s.Step != 30 {
		t.Fatalf("step %v s, want 30", s.Step)
	}
	// Buckets 0-29 .. 90-119 hold samples (4), 120-199 none, 200..299 (4).
	if len(s.Times) != 8 {
		t.Fatalf("%d points %v, want 8 (empty buckets left out)", len(s.Times), s.Times)
	}
	if *s.Values["x"][0] != 1 || *s.Values["x"][7] != 3 {
		t.Fatalf("bucket means %v %v", *s.Values["x"][0], *s.Values["x"][7])
	}
	if s.Times[0] != t0.Unix()+15 { // mean of 0..29, 14.5, rounded
		t.Fatalf("first bucket at %d, want %d", s.Times[0], t0.Unix()+15)
	}
}

func TestHandlerReadsARangeAndNamesBadInput(t *testing.T) {
	r := New(100)
	now := time.Unix(3_000_000, 0)
	for i := 9; i >= 0; i-- {
		r.Add(now.Add(-time.Duration(i)*time.Minute), map[string]float64{"x": float64(i)})
	}
	h := Handler(r, func() time.Time { return now }, func(*http.Request) (string, []string) { return "", []string{"x"} })
	get := func(q string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/h?"+q, nil))
		return w.Code, w.Body.String()
	}
	for _, c := range []struct {
		q      string
		code   int
		points int
	}{
		{"last=5m", 200, 6}, // 0..5 minutes ago, both ends in
		{"", 200, 10},
		{"from=" + strconv.FormatInt(now.Add(-2*time.Minute).Unix(), 10), 200, 3},
		{"from=" + now.Add(-3*time.Minute).UTC().Format(time.RFC3339) + "&to=" + now.Add(-2*time.Minute).UTC().Format(time.RFC3339), 200, 2},
		{"last=yesterday", 400, 0},
		{"last=-1h", 400, 0},
		{"from=noon", 400, 0},
		{"from=20&to=10", 400, 0},
		{"points=1", 400, 0},
	} {
		code, body := get(c.q)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.q, code, body, c.code)
			continue
		}
		if code != 200 {
			if !strings.Contains(body, `"error"`) {
				t.Errorf("%s: error not JSON: %s", c.q, body)
			}
			continue
		}
		var s Series
		json.Unmarshal([]byte(body), &s)
		if len(s.Times) != c.points || len(s.Values["x"]) != c.points {
			t.Errorf("%s: %d points, want %d", c.q, len(s.Times), c.points)
		}
	}
}
