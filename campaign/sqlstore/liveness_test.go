package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// TestLeasesLiveWithTheirNode: a node's heartbeats renew its leases, so a
// call longer than the lease lifetime stays the node's and its contact
// is not handed out again; once the heartbeats stop for a lifetime, the
// lease ends (cut off) and the contact comes back.
func TestLeasesLiveWithTheirNode(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 2, nil)
		s.LeaseTTL = time.Minute
		alive, _ := s.Lease(ctx, "alive", 1, noonNY)
		dead, _ := s.Lease(ctx, "dead", 1, noonNY)
		if len(alive) != 1 || len(dead) != 1 {
			t.Fatalf("leased %d and %d", len(alive), len(dead))
		}
		// An hour-long call on "alive", heartbeating every 10 s.
		for at := noonNY; at.Before(noonNY.Add(time.Hour)); at = at.Add(10 * time.Second) {
			if err := s.RenewNode(ctx, "alive", nil, at); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Reap(ctx, at); err != nil {
				t.Fatal(err)
			}
		}
		end := noonNY.Add(time.Hour)
		if got, err := s.Record(ctx, "alive", campaign.Result{CallID: alive[0].CallID, Token: alive[0].Token, Disposition: campaign.Answered}, end); err != nil || !got {
			t.Fatalf("the hour-long call's result: %v %v", got, err)
		}
		st, _ := s.Stats(ctx, c.ID)
		if st.Attempts[campaign.Answered] != 1 || st.Attempts[campaign.CutOff] != 1 {
			t.Fatalf("attempts %+v: want the live call answered and only the silent node's cut off", st.Attempts)
		}
	})
}

// TestLeasesTheNodeDoesNotHoldEnd: a live node whose heartbeat leaves a
// lease out never got that call (its dialer.next answer was lost); once
// the lease is older than HeldGrace it ends as cut off and frees its
// slot, while the calls the node lists stay its own and their results
// record. A heartbeat that lists nothing (an older agent) ends nothing.
func TestLeasesTheNodeDoesNotHoldEnd(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 4, nil)
		if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 3, MaxCPS: 1000}); err != nil {
			t.Fatal(err)
		}
		s.LeaseTTL, s.HeldGrace = time.Minute, 30*time.Second
		ls, err := s.Lease(ctx, "n1", 3, noonNY)
		if err != nil || len(ls) != 3 {
			t.Fatalf("leased %d: %v", len(ls), err)
		}
		if more, _ := s.Lease(ctx, "n2", 1, noonNY); len(more) != 0 {
			t.Fatalf("leased %d past the trunk's 3 channels", len(more))
		}
		// Within the grace the unlisted lease may be an answer on its way.
		held := []string{ls[0].CallID, ls[1].CallID}
		if err := s.RenewNode(ctx, "n1", held, noonNY.Add(29*time.Second)); err != nil {
			t.Fatal(err)
		}
		// An older agent lists nothing: every lease is renewed, none ends.
		if err := s.RenewNode(ctx, "n1", nil, noonNY.Add(31*time.Second)); err != nil {
			t.Fatal(err)
		}
		st, _ := s.Stats(ctx, c.ID)
		if st.Attempts[campaign.CutOff] != 0 {
			t.Fatalf("attempts %+v: a lease ended within the grace or without a list", st.Attempts)
		}
		after := noonNY.Add(32 * time.Second)
		if err := s.RenewNode(ctx, "n1", held, after); err != nil {
			t.Fatal(err)
		}
		st, _ = s.Stats(ctx, c.ID)
		if st.Attempts[campaign.CutOff] != 1 {
			t.Fatalf("attempts %+v: want the unheld lease cut off", st.Attempts)
		}
		if got, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[2].CallID, Token: ls[2].Token, Disposition: campaign.Answered}, after); err == nil || got {
			t.Fatalf("the ended lease's late result: recorded %v, %v", got, err)
		}
		// Its channel is free again: the fourth contact can be leased.
		if more, err := s.Lease(ctx, "n2", 3, after); err != nil || len(more) != 1 {
			t.Fatalf("leased %d after the unheld lease ended, want 1: %v", len(more), err)
		}
		// The held leases were renewed: no reap ends them a lifetime on.
		if n, err := s.Reap(ctx, after.Add(50*time.Second)); err != nil || n != 0 {
			t.Fatalf("reaped %d: %v", n, err)
		}
		for _, l := range ls[:2] {
			if got, err := s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered}, after.Add(time.Minute)); err != nil || !got {
				t.Fatalf("held call %s: recorded %v, %v", l.CallID, got, err)
			}
		}
	})
}
