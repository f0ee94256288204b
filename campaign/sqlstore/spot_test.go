package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// TestSpotNodeGetsNoLongCalls: with spot nodes in the fleet, a campaign
// whose calls may outlast a spot node's interruption notice is leased to
// on-demand nodes only, and its demand asks for them; a short campaign
// goes anywhere. On both stores.
func TestSpotNodeGetsNoLongCalls(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.SpotCallLimit = 105 * time.Second             // two minutes less a margin
		s.Caps = campaign.Caps{PerDay: 10, PerWeek: 10} // setup gives every campaign the same numbers
		// Ring 30 s (the default) plus the flow's longest call.
		short := setup(t, s, 5, func(c *campaign.Campaign) { c.Name = "Short" })
		long := setup(t, s, 5, func(c *campaign.Campaign) { c.Name = "Long" })
		loop := setup(t, s, 5, func(c *campaign.Campaign) { c.Name = "Loop" })
		unknown := setup(t, s, 5, func(c *campaign.Campaign) { c.Name = "Unknown" }) // SaveFlow: length unknown
		for id, l := range map[string]*campaign.FlowLength{
			short.ID: {Seconds: 75}, // 105 s with the ring: fits
			long.ID:  {Seconds: 76},
			loop.ID:  {Unbounded: true, Why: `state "menu": goes back to "hello"`},
		} {
			if _, err := s.SaveFlowLength(ctx, id, []byte(`{"start":"bye"}`), l, noonNY); err != nil {
				t.Fatal(err)
			}
		}
		if c, err := s.Campaign(ctx, long.ID); err != nil || c.FlowLength == nil || c.FlowLength.Seconds != 76 {
			t.Fatalf("campaign shows its flow length: %+v %v", c.FlowLength, err)
		}
		count := func(ls []campaign.Lease) string {
			m := map[string]int{}
			for _, l := range ls {
				for _, c := range []campaign.Campaign{short, long, loop, unknown} {
					if c.ID == l.CampaignID {
						m[c.Name]++
					}
				}
			}
			return fmt.Sprint(m)
		}
		ls, err := s.LeaseFor(ctx, "spot-1", true, 2, noonNY)
		if err != nil || count(ls) != "map[Short:2]" {
			t.Fatalf("spot node leased %s %v; want the short campaign's calls only", count(ls), err)
		}
		ls, err = s.LeaseFor(ctx, "spot-2", true, 100, noonNY)
		if err != nil || count(ls) != "map[Short:3]" {
			t.Fatalf("spot node leased %s %v; want the short campaign's calls only", count(ls), err)
		}
		ls, err = s.LeaseFor(ctx, "od-1", false, 100, noonNY)
		if err != nil || count(ls) != "map[Long:5 Loop:5 Unknown:5]" {
			t.Fatalf("on-demand node leased %s %v; want every long campaign's calls", count(ls), err)
		}
		ds, err := s.Demand(ctx, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, d := range ds {
			got[d.CampaignID] = d.OnDemand
		}
		if got[short.ID] || !got[long.ID] || !got[loop.ID] || !got[unknown.ID] {
			t.Fatalf("demand on-demand flags: %v", got)
		}
		// Limit 0: nothing is kept off spot.
		s.SpotCallLimit = 0
		if ds, _ = s.Demand(ctx, noonNY); len(ds) != 4 || ds[0].OnDemand || ds[1].OnDemand {
			t.Fatalf("limit 0: %+v", ds)
		}
	})
}
