package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// Shipped traces, generated deterministically; testdata/ holds their CSV
// (regenerate with `go test ./sim -run TestShippedTraces -update`).
var Shipped = map[string]func() *Trace{
	"ramp-day":     RampDay,
	"diurnal-week": DiurnalWeek,
	"spikes":       Spikes,
	"noisy":        Noisy,
	"election-50h": Election,
}

const announce = 30 * time.Minute

func hm(h, m int) time.Duration { return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute }

// ramp adds steps from a to b (calls) between from and to, every step.
func ramp(t *Trace, campaign string, from, to time.Duration, a, b int, step time.Duration, scheduled bool) {
	n := int((to - from) / step)
	for i := 0; i <= n; i++ {
		at := from + time.Duration(i)*step
		calls := a + (b-a)*i/max(n, 1)
		c := Change{At: at, Campaign: campaign, Calls: calls, Announced: at}
		if scheduled {
			c.Announced = max(0, at-announce)
		}
		t.Changes = append(t.Changes, c)
	}
}

// RampDay is one scheduled campaign: up from 08:00 to 1,000 calls at
// 10:00, steady until 18:00, down to nothing by 21:00.
func RampDay() *Trace {
	t := &Trace{Name: "ramp-day", End: 24 * time.Hour}
	ramp(t, "day", hm(8, 0), hm(10, 0), 0, 1000, 10*time.Minute, true)
	ramp(t, "day", hm(18, 0), hm(21, 0), 1000, 0, 10*time.Minute, true)
	return t
}

// DiurnalWeek is a week of calling windows: each day demand follows a
// smooth curve from 08:00 to 21:00, peaking at 1,500 calls (900 at the
// weekend), in announced 15-minute steps.
func DiurnalWeek() *Trace {
	t := &Trace{Name: "diurnal-week", End: 7 * 24 * time.Hour}
	for day := range 7 {
		peak := 1500.0
		if day >= 5 {
			peak = 900
		}
		base := time.Duration(day) * 24 * time.Hour
		for m := 8 * 60; m <= 21*60; m += 15 {
			x := float64(m-8*60) / (13 * 60)
			calls := int(peak * math.Sin(math.Pi*x))
			if m == 21*60 {
				calls = 0
			}
			at := base + time.Duration(m)*time.Minute
			t.Changes = append(t.Changes, Change{At: at, Campaign: "reminders", Calls: calls, Announced: max(0, at-announce)})
		}
	}
	return t
}

// Spikes is a steady 300 calls with unannounced 5× spikes of 20 minutes.
func Spikes() *Trace {
	t := &Trace{Name: "spikes", End: 12 * time.Hour}
	t.Changes = append(t.Changes, Change{At: 0, Campaign: "base", Calls: 300})
	for _, h := range []int{1, 3, 6, 9} {
		at := time.Duration(h) * time.Hour
		t.Changes = append(t.Changes,
			Change{At: at, Campaign: "base", Calls: 1500, Announced: at},
			Change{At: at + 20*time.Minute, Campaign: "base", Calls: 300, Announced: at + 20*time.Minute})
	}
	t.Changes = append(t.Changes, Change{At: 11 * time.Hour, Campaign: "base", Calls: 0, Announced: 11 * time.Hour})
	return t
}

// Noisy is 800 calls moving ±10% every minute, unannounced, for 6 hours.
func Noisy() *Trace {
	t := &Trace{Name: "noisy", End: 6 * time.Hour}
	r := rand.New(rand.NewPCG(7, 7))
	for m := 0; m < 6*60-30; m++ {
		at := time.Duration(m) * time.Minute
		calls := int(800 * (0.9 + 0.2*r.Float64()))
		t.Changes = append(t.Changes, Change{At: at, Campaign: "noisy", Calls: calls, Announced: at})
	}
	t.Changes = append(t.Changes, Change{At: 6*time.Hour - 30*time.Minute, Campaign: "noisy", Calls: 0, Announced: 6*time.Hour - 30*time.Minute})
	return t
}

// Election is a 50-hour get-out-the-vote campaign: two calling days and an
// election-eve push peaking at 3,500 concurrent calls, as in the 2009
// deployment, in announced steps.
func Election() *Trace {
	t := &Trace{Name: "election-50h", End: 50 * time.Hour}
	day := func(d int, peak int) {
		base := time.Duration(d) * 24 * time.Hour
		ramp(t, "gotv", base+hm(9, 0), base+hm(11, 0), 0, peak*2/3, 15*time.Minute, true)
		ramp(t, "gotv", base+hm(17, 0), base+hm(19, 0), peak*2/3, peak, 15*time.Minute, true)
		ramp(t, "gotv", base+hm(20, 30), base+hm(21, 0), peak, 0, 10*time.Minute, true)
	}
	day(0, 2400)
	day(1, 3500)
	return t
}
