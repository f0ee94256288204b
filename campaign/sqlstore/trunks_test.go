package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// The trunk contract on both stores: a group leases in order within each
// trunk's channels; a congested call moves to the next trunk as the same
// attempt; unreachable and paused trunks are out of rotation; a higher
// priority campaign short of a trunk keeps lower ones off it.
func TestTrunkContract(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, tr := range []campaign.Trunk{
			{Name: "a", MaxChannels: 2, MaxCPS: 100, Host: "a.example:5060", Username: "u", Password: "p"},
			{Name: "b", MaxChannels: 3, MaxCPS: 100, Host: "b.example"},
		} {
			if err := s.PutTrunk(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
		v, cfg, err := s.TrunkConfig(ctx)
		if err != nil || v == "" || len(cfg) != 2 || cfg[0].Password != "p" {
			t.Fatalf("trunk config: %q %+v %v", v, cfg, err)
		}
		routine := setup(t, s, 10, func(c *campaign.Campaign) { c.Name, c.Trunk, c.Trunks = "Routine", "", []string{"b"} })
		urgent := setup(t, s, 10, func(c *campaign.Campaign) {
			c.Name, c.Trunk, c.Trunks, c.Priority = "Urgent", "", []string{"a", "b"}, 100
		})
		count := func(ls []campaign.Lease) string {
			m := map[string]int{}
			for _, l := range ls {
				who := "routine"
				if l.CampaignID == urgent.ID {
					who = "urgent"
				}
				m[who+"@"+l.Trunk]++
			}
			return fmt.Sprint(m)
		}
		ls, err := s.Lease(ctx, "n1", 10, noonNY)
		if err != nil || count(ls) != "map[urgent@a:2 urgent@b:3]" {
			t.Fatalf("lease: %s %v", count(ls), err)
		}
		if more, _ := s.Lease(ctx, "n2", 10, noonNY); len(more) != 0 {
			t.Fatalf("routine got a trunk the urgent campaign is short of: %s", count(more))
		}
		// A congested call on a has no room on b: reported as is.
		if next, err := s.Failover(ctx, "n1", ls[0].CallID, ls[0].Token, 34, noonNY); err != nil || next != "" {
			t.Fatalf("failover into a full trunk: %q %v", next, err)
		}
		// A call on b ends; the congested one on a moves there.
		if _, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[4].CallID, Token: ls[4].Token, Disposition: campaign.Busy, Cause: 17}, noonNY); err != nil {
			t.Fatal(err)
		}
		if next, err := s.Failover(ctx, "n1", ls[0].CallID, ls[0].Token, 34, noonNY); err != nil || next != "b" {
			t.Fatalf("failover: %q %v", next, err)
		}
		if _, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Answered}, noonNY); err != nil {
			t.Fatal(err)
		}
		if fo, err := s.Failovers(ctx, urgent.ID); err != nil || fo["a"] != 1 {
			t.Fatalf("failovers: %v %v", fo, err)
		}
		// a unreachable from the only node that qualifies it: a's room is
		// not used; b has one channel, urgent takes it.
		if err := s.ReportQualify(ctx, "n1", map[string]bool{"a": false, "b": true}, noonNY); err != nil {
			t.Fatal(err)
		}
		ts, err := s.TrunksAt(ctx, noonNY)
		if err != nil || ts[0].Health.Up || ts[1].Health.Reachable != 1 {
			t.Fatalf("health: %+v %+v %v", ts[0].Health, ts[1].Health, err)
		}
		if got, _ := s.Lease(ctx, "n2", 10, noonNY.Add(time.Second)); count(got) != "map[urgent@b:1]" {
			t.Fatalf("lease with a out: %s", count(got))
		}
		_ = routine
	})
}

func TestDeleteTrunkKeepsCampaignRecords(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 1, nil) // on "carrier"
		if _, err := s.SetStatus(ctx, c.ID, campaign.StatusCompleted, noonNY); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTrunk(ctx, "carrier"); err == nil || !errors.Is(err, campaign.ErrConflict) {
			t.Fatalf("deleted the first trunk of a completed campaign: %v", err)
		}
		if err := s.PutTrunk(ctx, campaign.Trunk{Name: "spare", MaxChannels: 1, MaxCPS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTrunk(ctx, "spare"); err != nil {
			t.Fatal(err)
		}
	})
}
