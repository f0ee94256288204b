package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// TestConcurrentLeasesKeepCapsAndChannels: leasers race over four
// campaigns that share the same numbers, two campaigns on each of two
// small trunks, with no result coming in. Leasing on one trunk never
// waits for leasing on the other (PostgreSQL locks per campaign and per
// trunk), so this is where a per-number frequency cap counted across
// campaigns, a trunk's channels, a campaign's target or a pool caller
// ID's daily cap could be overrun by two leases that each saw the other's
// dials or calls not yet committed. None may be, and no contact may be
// leased twice.
func TestConcurrentLeasesKeepCapsAndChannels(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const numbers, channels, target, poolCap = 12, 14, 8, 10
		for _, name := range []string{"a", "b"} {
			if err := s.PutTrunk(ctx, campaign.Trunk{Name: name, MaxChannels: channels, MaxCPS: campaign.MaxCPS}); err != nil {
				t.Fatal(err)
			}
		}
		var list strings.Builder
		list.WriteString("phone\n")
		for i := range numbers {
			fmt.Fprintf(&list, "+1212555%04d\n", i)
		}
		pool := []string{"+12125550900"} // every contact is in 212: one pool number, shared
		camps := map[string]campaign.Campaign{}
		for i := range 4 {
			trunk := []string{"a", "b"}[i%2]
			c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: fmt.Sprint("shared ", i), Trunk: trunk, CallerID: "+14155550100",
				CallerIDPool: pool, CallerIDDailyCap: poolCap, Target: target, MaxCPS: campaign.MaxCPS}, noonNY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(list.String()), importer.Options{DefaultRegion: "US"}, noonNY); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), noonNY); err != nil {
				t.Fatal(err)
			}
			if c, err = s.SetStatus(ctx, c.ID, campaign.StatusRunning, noonNY); err != nil {
				t.Fatal(err)
			}
			camps[c.ID] = c
		}
		var mu sync.Mutex
		var all []campaign.Lease
		err := concurrently(8, func(w int) error {
			for range 30 {
				// One clock for all: a dial a moment ahead of a leaser's
				// now would not count against it.
				got, err := s.Lease(ctx, fmt.Sprint("n", w), 3, noonNY)
				if err != nil {
					return err
				}
				mu.Lock()
				all = append(all, got...)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		perNumber, perTrunk, perCampaign, perCaller := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
		calls := map[string]bool{}
		for _, l := range all {
			if calls[l.CallID] {
				t.Fatalf("call %s leased twice", l.CallID)
			}
			calls[l.CallID] = true
			perNumber[l.Number]++
			perTrunk[l.Trunk]++
			perCampaign[l.CampaignID]++
			if l.CallerID != camps[l.CampaignID].CallerID {
				perCaller[l.CallerID]++
			}
		}
		for n, k := range perNumber {
			if k > s.Caps.PerDay {
				t.Errorf("%s leased %d times in a day, over the cap of %d", n, k, s.Caps.PerDay)
			}
		}
		for tr, k := range perTrunk {
			if k > channels {
				t.Errorf("trunk %s holds %d calls, over its %d channels", tr, k, channels)
			}
		}
		for c, k := range perCampaign {
			if k > target {
				t.Errorf("campaign %s holds %d calls, over its target %d", c, k, target)
			}
		}
		for n, k := range perCaller {
			if k > poolCap {
				t.Errorf("pool caller ID %s shown %d times today, over its cap of %d", n, k, poolCap)
			}
		}
		// Enough leasing happened for the limits to bind: every number
		// is in four campaigns and leased in the same order by each.
		capped := 0
		for _, k := range perNumber {
			if k == s.Caps.PerDay {
				capped++
			}
		}
		if max(perTrunk["a"], perTrunk["b"]) != channels || capped == 0 || perCaller[pool[0]] != poolCap {
			t.Fatalf("trunks %v, %d numbers at their cap, pool number shown %d times: the limits were never reached", perTrunk, capped, perCaller[pool[0]])
		}
	})
}
