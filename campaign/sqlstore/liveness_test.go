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
			if err := s.RenewNode(ctx, "alive", at); err != nil {
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
