// Package history keeps the dashboard's recent metrics on the server: a
// bounded ring of timestamped samples, each a set of named values, read
// back over a time range at a resolution a chart can draw. The page then
// shows the same past whatever tab or browser opens it.
//
// The ring is each controller's copy of the samples the scaler leader
// stores in the database (the controller's serve command keeps it up to
// date), so every controller serves the same past and a restart keeps it.
package history

import (
	"math"
	"sync"
	"time"
)

// Ring holds the last Cap samples, oldest first. The zero value is not
// usable: use New.
type Ring struct {
	mu      sync.Mutex
	samples []sample
	next    int // where the next sample goes once the ring is full
	full    bool
}

type sample struct {
	at     time.Time
	values map[string]float64
}

// New returns a ring holding at most capacity samples.
func New(capacity int) *Ring {
	if capacity < 1 {
		capacity = 1
	}
	return &Ring{samples: make([]sample, 0, capacity)}
}

// Add records values taken at at. Samples must come in time order; one
// older than the newest is dropped (a clock step back must not scramble
// the series).
func (r *Ring) Add(at time.Time, values map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.len(); n > 0 && at.Before(r.at(n-1).at) {
		return
	}
	s := sample{at: at, values: values}
	if !r.full {
		r.samples = append(r.samples, s)
		if len(r.samples) == cap(r.samples) {
			r.full = true
		}
		return
	}
	r.samples[r.next] = s
	r.next = (r.next + 1) % len(r.samples)
}

func (r *Ring) len() int { return len(r.samples) }

// at is the i-th oldest sample.
func (r *Ring) at(i int) sample {
	if !r.full {
		return r.samples[i]
	}
	return r.samples[(r.next+i)%len(r.samples)]
}

// Series is a time range of some named values: Times in Unix seconds and,
// for each name, one value per time, nil where the value was not taken.
type Series struct {
	From   int64                 `json:"from"`
	To     int64                 `json:"to"`
	Step   float64               `json:"step_seconds"` // 0: one point per sample
	Times  []int64               `json:"times"`
	Values map[string][]*float64 `json:"values"`
}

// Range returns the named values of the samples taken in [from, to], each
// stored as prefix+name and returned under name. With
// more samples than maxPoints, consecutive samples are merged into
// maxPoints equal time buckets, each showing the mean of its samples; an
// empty bucket is left out rather than drawn as zero.
func (r *Ring) Range(from, to time.Time, maxPoints int, prefix string, names []string) Series {
	keys := make([]string, len(names))
	for k, n := range names {
		keys[k] = prefix + n
	}
	r.mu.Lock()
	picked := make([]sample, 0, r.len())
	for i := 0; i < r.len(); i++ {
		s := r.at(i)
		if !s.at.Before(from) && !s.at.After(to) {
			picked = append(picked, s)
		}
	}
	r.mu.Unlock()

	out := Series{From: from.Unix(), To: to.Unix(), Times: []int64{}, Values: map[string][]*float64{}}
	cols := make([][]*float64, len(names))
	done := func() Series {
		for k, n := range names {
			out.Values[n] = cols[k]
		}
		return out
	}
	if maxPoints < 1 || len(picked) <= maxPoints {
		for k := range cols {
			cols[k] = make([]*float64, 0, len(picked))
		}
		for _, s := range picked {
			out.Times = append(out.Times, s.at.Unix())
			for k, key := range keys {
				cols[k] = append(cols[k], value(s.values, key))
			}
		}
		return done()
	}
	for k := range cols {
		cols[k] = make([]*float64, 0, maxPoints)
	}
	step := to.Sub(from) / time.Duration(maxPoints)
	if step <= 0 {
		step = time.Second
	}
	out.Step = step.Seconds()
	sums := make([]float64, len(names))
	counts := make([]int, len(names))
	var bucket int64 = -1
	var atSum float64
	var atN int
	flush := func() {
		if atN == 0 {
			return
		}
		out.Times = append(out.Times, int64(math.Round(atSum/float64(atN))))
		for k := range keys {
			if counts[k] == 0 {
				cols[k] = append(cols[k], nil)
			} else {
				v := sums[k] / float64(counts[k])
				cols[k] = append(cols[k], &v)
			}
			sums[k], counts[k] = 0, 0
		}
		atSum, atN = 0, 0
	}
	for _, s := range picked {
		b := int64(s.at.Sub(from) / step)
		if b != bucket {
			flush()
			bucket = b
		}
		atSum += float64(s.at.Unix())
		atN++
		for k, key := range keys {
			if v, ok := s.values[key]; ok {
				sums[k] += v
				counts[k]++
			}
		}
	}
	flush()
	return done()
}

func value(m map[string]float64, name string) *float64 {
	v, ok := m[name]
	if !ok {
		return nil
	}
	return &v
}
