package campaign

import (
	"math/rand/v2"
	"testing"
)

func TestAbandoned(t *testing.T) {
	for _, tc := range []struct {
		disp string
		tags map[string]string
		want bool
	}{
		{Answered, map[string]string{TagTransfer: TransferNoOneFree}, true},
		{Answered, map[string]string{TagTransfer: TransferConnected}, false},
		{Answered, nil, false},
		{Machine, map[string]string{TagTransfer: TransferNoOneFree}, false}, // not a live answer
	} {
		if got := Abandoned(tc.disp, tc.tags); got != tc.want {
			t.Errorf("%s %v: %v", tc.disp, tc.tags, got)
		}
	}
}

func TestPace(t *testing.T) {
	for _, tc := range []struct {
		name          string
		prev          float64
		sample, month AbandonCounts
		want          float64
		judged        bool
	}{
		{"first step starts slow", 0, AbandonCounts{}, AbandonCounts{}, StartPace, false},
		{"a quick run with no abandon: up a tenth", 50, AbandonCounts{Live: 10}, AbandonCounts{Live: 100}, 55, true},
		{"at least one call up", 3, AbandonCounts{Live: 10}, AbandonCounts{Live: 100}, 4, true},
		{"never above the target", 99, AbandonCounts{Live: 50}, AbandonCounts{Live: 100}, 100, true},
		{"too few to judge", 50, AbandonCounts{Live: 30, Abandoned: 1}, AbandonCounts{Live: 1000}, 50, false},
		{"one in 50: hold", 50, AbandonCounts{Live: 50, Abandoned: 1}, AbandonCounts{Live: 1000, Abandoned: 20}, 50, true},
		{"two abandons: down in proportion at once", 50, AbandonCounts{Live: 20, Abandoned: 2}, AbandonCounts{Live: 1000, Abandoned: 20}, 25, true},
		{"just over: down a tenth", 50, AbandonCounts{Live: 80, Abandoned: 2}, AbandonCounts{Live: 1000, Abandoned: 20}, 45, true},
		{"30 days over the cap: no higher", 40, AbandonCounts{Live: 50}, AbandonCounts{Live: 1000, Abandoned: 40}, 40, true},
		{"never below one", 1, AbandonCounts{Live: 50, Abandoned: 50}, AbandonCounts{Live: 50, Abandoned: 50}, 1, true},
	} {
		got, judged := Pace(tc.prev, 100, tc.sample, tc.month, DefaultAbandonCap)
		if got != tc.want || judged != tc.judged {
			t.Errorf("%s: %g %v, want %g %v", tc.name, got, judged, tc.want, tc.judged)
		}
	}
}

// A campaign that transfers answered calls to people (10 busy a minute a
// call, a third of calls answered; and two other mixes): dialled at its
// full target it abandons a large share of answers; paced by Pace on its own
// measured abandons, it stays under the 3% cap over a simulated day.
func TestPacingHoldsTheAbandonRate(t *testing.T) {
	run := func(paced bool, agents, talkS int, pAnswer float64) (rate float64, answered int) {
		rng := rand.New(rand.NewPCG(uint64(agents), uint64(talkS)))
		const target, ringS = 100, 20
		var ringing []int // times calls finish ringing
		var talking []int // times agents are free again
		var month, sample AbandonCounts
		pace := 0.0
		for now := 0; now < 24*3600; now++ {
			t2 := talking[:0]
			for _, f := range talking {
				if f > now {
					t2 = append(t2, f)
				}
			}
			talking = t2
			// Calls that stop ringing now: answered or not.
			keep := ringing[:0]
			for _, at := range ringing {
				if at > now {
					keep = append(keep, at)
					continue
				}
				if rng.Float64() >= pAnswer {
					continue
				}
				ab := len(talking) >= agents
				if !ab {
					talking = append(talking, now+talkS)
				}
				month.Live++
				sample.Live++
				if ab {
					month.Abandoned++
					sample.Abandoned++
				}
			}
			ringing = keep
			limit := target
			if paced {
				var judged bool
				if pace, judged = Pace(pace, target, sample, month, DefaultAbandonCap); judged {
					sample = AbandonCounts{}
				}
				limit = int(pace)
			}
			live := len(ringing) + len(talking) // connected calls hold their line
			for ; live < limit; live++ {
				ringing = append(ringing, now+ringS)
			}
		}
		return month.Rate(), month.Live
	}
	for _, tc := range []struct {
		agents, talkS int
		pAnswer       float64
	}{{10, 60, 0.33}, {3, 120, 0.5}, {25, 90, 0.4}} {
		unpaced, _ := run(false, tc.agents, tc.talkS, tc.pAnswer)
		paced, answered := run(true, tc.agents, tc.talkS, tc.pAnswer)
		capacity := tc.agents * 24 * 3600 / tc.talkS // answers a day the people could take
		t.Logf("%d people, %ds talks, %.0f%% answered: abandon rate over a day %.1f%% at full target, %.2f%% paced (%d live answers, %d%% of the people's capacity)",
			tc.agents, tc.talkS, 100*tc.pAnswer, 100*unpaced, 100*paced, answered, 100*answered/capacity)
		if unpaced < 0.10 {
			t.Fatalf("the unpaced run abandons %.1f%%: the simulation does not overload its people", 100*unpaced)
		}
		if paced > DefaultAbandonCap || answered < capacity*2/5 {
			t.Errorf("paced: %.2f%% abandoned of %d live answers, want under %.0f%% and the people busy at least 40%% of the day", 100*paced, answered, 100*DefaultAbandonCap)
		}
	}
}
