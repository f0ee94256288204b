package sim

import (
	"sort"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Epoch is the wall-clock time at which every simulation starts: a Monday,
// 00:00 UTC.
var Epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// Rules put a trace campaign under the dialler's rules engine: its contacts
// (numbers like Phone, in Zones) are dialled only when campaign.Decide
// allows it, so calling windows and start_at shape its demand exactly as
// they shape leasing and the live forecast.
type Rules struct {
	Campaign campaign.Campaign // window, weekdays, start_at, countries; taken as running
	Phone    string            // a number typical of its list, for the jurisdiction and destination rules
	Zones    []*time.Location  // the zones its numbers may be in
}

// scheduleLead is how far ahead a window opening or a start_at is known:
// both are on the calendar, so the scaler hears of them early.
const scheduleLead = time.Hour

// UnderRules returns the trace as the rules engine lets it be dialled:
// each ruled campaign's calls are held at zero, minute by minute, while
// campaign.Decide refuses its contacts, and come back when it allows them,
// announced scheduleLead ahead. Campaigns without rules are unchanged.
func (t *Trace) UnderRules(rules map[string]Rules) *Trace {
	if len(rules) == 0 {
		return t
	}
	allowed := func(name string, at time.Duration) bool {
		r, ok := rules[name]
		if !ok {
			return true
		}
		c := r.Campaign
		c.Status = campaign.StatusRunning
		c.MaxAttempts = max(c.MaxAttempts, 1)
		k := campaign.Contact{Phone: r.Phone, Jurisdiction: campaign.Jurisdiction(r.Phone), Zones: r.Zones, State: campaign.ContactPending}
		return campaign.Decide(&c, k, campaign.Facts{}, campaign.Caps{}, Epoch.Add(at)).OK()
	}
	// Evaluate at every change and every minute; emit what moved.
	points := map[time.Duration]bool{}
	for _, c := range t.Changes {
		points[c.At] = true
	}
	for m := time.Duration(0); m <= t.End; m += time.Minute {
		points[m] = true
	}
	times := make([]time.Duration, 0, len(points))
	for p := range points {
		times = append(times, p)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })

	out := &Trace{Name: t.Name, End: t.End}
	raw := map[string]int{}      // the trace's calls now
	rawAt := map[string]Change{} // the trace's last change
	gated := map[string]int{}    // what was emitted
	var names []string
	next := 0
	for _, at := range times {
		for next < len(t.Changes) && t.Changes[next].At <= at {
			c := t.Changes[next]
			if _, ok := raw[c.Campaign]; !ok {
				names = append(names, c.Campaign)
			}
			raw[c.Campaign], rawAt[c.Campaign] = c.Calls, c
			next++
		}
		for _, n := range names {
			want := 0
			if allowed(n, at) {
				want = raw[n]
			}
			if g, ok := gated[n]; ok && g == want {
				continue
			}
			ann := at
			switch {
			case rawAt[n].At == at:
				ann = rawAt[n].Announced // the trace moved: as it announced
			case want > 0:
				ann = max(0, at-scheduleLead) // a window opened or start_at came: on the calendar
			}
			out.Changes = append(out.Changes, Change{At: at, Campaign: n, Calls: want, Announced: ann})
			gated[n] = want
		}
	}
	return out
}
