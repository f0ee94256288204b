package sqlstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// TestNeverCallsWhomItMustNot drives the store as nodes would, over random
// contacts, declared zones, campaign windows, start times, do-not-call
// changes (numbers added while their calls are live included), results
// and clock jumps, and checks every lease against an oracle written apart
// from the rules engine: no attempt outside the legal hours or the
// campaign's window in any zone the number may be in, none to a number on
// a do-not-call list, none past a frequency cap, none after a final
// outcome, none before start_at; and every caller ID shown is a local
// pool number under its daily cap, or the campaign's when none was free.
func TestNeverCallsWhomItMustNot(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	eachStore(t, func(t *testing.T, s *Store) {
		n := seeds
		if s.postgres {
			n = max(1, seeds/4) // the same paths, slower
		}
		for seed := range n {
			t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { propertyRun(t, s, uint64(seed)) })
		}
	})
}

// Area codes of several jurisdictions and zones: New York, Idaho (two
// zones), Florida, Texas, Louisiana, Washington, Alaska, Hawaii, and
// Toronto (Canada, allowed only where a campaign says so).
var propAreas = []string{"212", "208", "305", "214", "504", "206", "907", "808", "416"}

var propZones = []string{"", "", "America/New_York", "America/Boise", "America/Los_Angeles", "Pacific/Kiritimati", "Asia/Tokyo", "America/Chicago"}

type propLease struct {
	campaign.Lease
	at time.Time
}

func propertyRun(t *testing.T, s *Store, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	trunk := fmt.Sprintf("carrier%d", seed)
	if err := s.PutTrunk(ctx, campaign.Trunk{Name: trunk, MaxChannels: 10000, MaxCPS: 10000}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 6+rng.IntN(7), rng.IntN(24), rng.IntN(60), 0, 0, time.UTC)
	now := start

	// A pool of numbers shared by the campaigns, so caps bite.
	var pool []string
	for i := range 40 {
		pool = append(pool, fmt.Sprintf("+1%s555%04d", propAreas[rng.IntN(len(propAreas))], int(seed)*100+i))
	}
	camps := map[string]campaign.Campaign{}
	declared := map[string]string{} // campaign id + " " + phone → the timezone cell
	for ci := range 3 {
		c := campaign.Campaign{Name: fmt.Sprintf("P%d-%d", seed, ci), Trunk: trunk, CallerID: "+14155550100", Target: 1000, MaxCPS: 1000,
			MaxAttempts: 1 + rng.IntN(5), RingSeconds: 30}
		a := 8*60 + rng.IntN(6)*60
		c.Window = campaign.Window{Start: a, End: a + 60 + rng.IntN(21*60-a-59)}
		if rng.IntN(2) == 0 {
			c.Weekdays = map[string]campaign.Window{"sun": {}}
		}
		if rng.IntN(3) == 0 {
			c.Countries = []string{"US", "CA"}
		}
		if rng.IntN(3) == 0 {
			at := now.Add(time.Duration(rng.IntN(48)) * time.Hour)
			c.StartAt = &at
		}
		// Local presence: a few pool numbers of the areas called, each
		// capped at a few calls a day.
		for j := range 1 + rng.IntN(3) {
			c.CallerIDPool = append(c.CallerIDPool, fmt.Sprintf("+1%s555%04d", propAreas[rng.IntN(len(propAreas))], int(seed)*100+60+ci*5+j))
		}
		c.CallerIDDailyCap = 1 + rng.IntN(3)
		c.Retry = map[string]campaign.Retry{}
		for _, d := range campaign.Dispositions {
			if d != campaign.InvalidNumber { // never retried, whatever a campaign says
				c.Retry[d] = campaign.Retry{AfterSeconds: rng.IntN(3) * 600}
			}
		}
		c, err := s.CreateCampaign(ctx, c, now)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("phone,timezone\n")
		for _, p := range pool {
			if rng.IntN(4) != 0 {
				z := propZones[rng.IntN(len(propZones))]
				fmt.Fprintf(&b, "%s,%s\n", p, z)
				declared[c.ID+" "+p] = z
			}
		}
		if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), now); err != nil {
			t.Fatal(err)
		}
		if c, err = s.SetStatus(ctx, c.ID, campaign.StatusRunning, now); err != nil {
			t.Fatal(err)
		}
		camps[c.ID] = c
	}

	// The oracle's own records.
	internalDNC := map[string]bool{}
	campaignDNC := map[string]bool{} // campaign id + " " + phone
	dials := map[string][]time.Time{}
	final := map[string]bool{}  // campaign id + " " + phone
	cidUses := map[string]int{} // pool caller ID + " " + UTC day
	live := map[string]propLease{}
	leased, violations := 0, 0
	fail := func(format string, args ...any) {
		violations++
		if violations < 10 {
			t.Errorf(format, args...)
		}
	}

	check := func(l campaign.Lease) {
		c := camps[l.CampaignID]
		key := l.CampaignID + " " + l.Number
		if internalDNC[l.Number] || campaignDNC[key] {
			fail("%s: leased %s, on a do-not-call list", now, key)
		}
		if final[key] {
			fail("%s: re-dialled %s after a final outcome", now, key)
		}
		if c.StartAt != nil && now.Before(*c.StartAt) {
			fail("%s: leased %s before start_at %s", now, key, c.StartAt)
		}
		// Every zone the number may be in: libphonenumber's, which the
		// list's declared zone may narrow to itself, never widen.
		zs, _ := phonenumbers.GetTimezonesForPrefix(l.Number)
		if d := declared[key]; slices.Contains(zs, d) {
			zs = []string{d}
		}
		legal := campaign.Legal(campaign.Jurisdiction(l.Number))
		for _, z := range zs {
			loc, _ := time.LoadLocation(z)
			local := now.In(loc)
			m := local.Hour()*60 + local.Minute()
			lw := legal.Days[local.Weekday()]
			cw := c.Window
			if w, ok := c.Weekdays[strings.ToLower(local.Weekday().String()[:3])]; ok {
				cw = w
			}
			if m < lw.Start || m >= lw.End || m < cw.Start || m >= cw.End || lw == (campaign.Window{}) || cw == (campaign.Window{}) {
				fail("%s: leased %s at %s local in %s, outside %v (legal %v)", now, key, local.Format("Mon 15:04"), z, cw, lw)
			}
		}
		d := dials[l.Number]
		var day, week int
		for _, at := range d {
			if at.After(now.Add(-24 * time.Hour)) {
				day++
			}
			if at.After(now.Add(-7 * 24 * time.Hour)) {
				week++
			}
		}
		if day >= campaign.DefaultCaps.PerDay || week >= campaign.DefaultCaps.PerWeek {
			fail("%s: leased %s past the frequency cap (%d today, %d this week)", now, l.Number, day, week)
		}
		dials[l.Number] = append(d, now)

		// The caller ID: a pool number of the contact's area code under its
		// daily cap, else the campaign's, and the campaign's only when no
		// local pool number was free.
		area := l.Number[:5] // +1NPA: every number here is North American
		today := now.UTC().Format("2006-01-02")
		switch {
		case slices.Contains(c.CallerIDPool, l.CallerID):
			if l.CallerID[:5] != area {
				fail("%s: %s shown %s, a pool number of another area code", now, key, l.CallerID)
			}
			if cidUses[l.CallerID+" "+today] >= c.CallerIDDailyCap {
				fail("%s: %s shown %s past its daily cap %d", now, key, l.CallerID, c.CallerIDDailyCap)
			}
			cidUses[l.CallerID+" "+today]++
		case l.CallerID == c.CallerID:
			for _, p := range c.CallerIDPool {
				if p[:5] == area && cidUses[p+" "+today] < c.CallerIDDailyCap {
					fail("%s: %s shown the campaign's caller ID while the local %s was free", now, key, p)
				}
			}
		default:
			fail("%s: %s shown %q, neither the campaign's nor its pool's", now, key, l.CallerID)
		}
	}

	dispositions := campaign.Dispositions
	for step := 0; step < 500; step++ {
		switch r := rng.IntN(10); {
		case r < 4:
			ls, err := s.Lease(ctx, "n1", 1+rng.IntN(30), now)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls {
				check(l)
				live[l.CallID] = propLease{l, now}
				leased++
			}
		case r < 7 && len(live) > 0:
			for _, id := range sortedKeys(live) {
				if rng.IntN(2) == 0 {
					continue
				}
				l := live[id]
				disp := dispositions[rng.IntN(len(dispositions))]
				var tags map[string]string
				switch rng.IntN(6) {
				case 0:
					tags = map[string]string{"result": "confirmed"}
				case 1:
					tags = map[string]string{"result": "opted_out", "dnc": "true"}
				}
				if _, err := s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: disp, Tags: tags, StartedAt: l.at, EndedAt: now}, now); err != nil {
					t.Fatal(err)
				}
				delete(live, id)
				key := l.CampaignID + " " + l.Number
				if disp == campaign.Answered || tags["result"] != "" {
					final[key] = true
				}
				if tags["dnc"] == "true" {
					internalDNC[l.Number] = true
				}
			}
		case r < 8:
			// Some numbers go on a list, live ones among them.
			var add []string
			for _, l := range live {
				if rng.IntN(3) == 0 {
					add = append(add, l.Number)
				}
			}
			add = append(add, pool[rng.IntN(len(pool))])
			if rng.IntN(2) == 0 {
				if err := s.AddDNC(ctx, add, "complaint", now); err != nil {
					t.Fatal(err)
				}
				for _, p := range add {
					internalDNC[p] = true
				}
			} else {
				id := sortedKeys(camps)[rng.IntN(len(camps))]
				if err := s.AddToDNC(ctx, id, add, "campaign opt-out", now); err != nil {
					t.Fatal(err)
				}
				for _, p := range add {
					campaignDNC[id+" "+p] = true
				}
			}
		case r < 9:
			// A node dies: its leases expire and are reaped.
			now = now.Add(s.LeaseTTL + time.Minute)
			if _, err := s.Reap(ctx, now); err != nil {
				t.Fatal(err)
			}
			clear(live)
		default:
			now = now.Add(time.Duration(1+rng.IntN(180)) * time.Minute)
		}
		now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
	}
	for id := range camps { // the next seed shares the store
		if _, err := s.SetStatus(ctx, id, campaign.StatusCompleted, now); err != nil {
			t.Fatal(err)
		}
	}
	if violations > 0 {
		t.Fatalf("%d violations in %d leases", violations, leased)
	}
	if leased < 10 {
		t.Fatalf("only %d leases: the run proves little", leased)
	}
	t.Logf("%d leases over %s, none it must not make", leased, now.Sub(start).Round(time.Hour))
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	slices.Sort(k)
	return k
}
