package sqlstore

import (
	"context"
	"sync"
	"testing"

	"github.com/elastidial/elastidial/campaign"
)

// TestModifyCampaignConcurrent: partial updates of one campaign from many
// goroutines (the REST API's PATCH) never undo each other: each changes
// its own field, and every change is there at the end.
func TestModifyCampaignConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 1, nil)
		const n = 8
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 5 {
					_, err := s.ModifyCampaign(ctx, c.ID, func(c *campaign.Campaign) error {
						if c.Retry == nil {
							c.Retry = map[string]campaign.Retry{}
						}
						r := c.Retry[campaign.Dispositions[i]] // one disposition per goroutine
						if campaign.Dispositions[i] != campaign.InvalidNumber {
							r.AfterSeconds = 100*i + j + 1
						}
						c.Retry[campaign.Dispositions[i]] = r
						return nil
					}, noonNY)
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		got, err := s.Campaign(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			d := campaign.Dispositions[i]
			if want := 100*i + 5; d != campaign.InvalidNumber && got.Retry[d].AfterSeconds != want {
				t.Errorf("retry %s = %d, want %d: a concurrent update was lost", d, got.Retry[d].AfterSeconds, want)
			}
		}
		if got.Status != campaign.StatusRunning || got.FlowVersion != c.FlowVersion {
			t.Errorf("status %s, flow version %d changed", got.Status, got.FlowVersion)
		}
	})
}

// TestResultSettlesByTheCampaignNow: a result is settled by its
// campaign's configuration as it is when the result comes, not as it was
// when an earlier result decoded it (the store keeps decoded campaigns
// by revision). On both stores.
func TestResultSettlesByTheCampaignNow(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 2, nil)
		ls, err := s.Lease(ctx, "node-1", 2, noonNY)
		if err != nil || len(ls) != 2 {
			t.Fatalf("lease: %d %v", len(ls), err)
		}
		state := func(l campaign.Lease) string {
			contact, _, _ := parseCallID(l.CallID)
			var st string
			if err := s.DB().QueryRowContext(ctx, s.q(`SELECT state FROM contacts WHERE id = ?`), contact).Scan(&st); err != nil {
				t.Fatal(err)
			}
			return st
		}
		noAnswer := func(l campaign.Lease) {
			t.Helper()
			if ok, err := s.Record(ctx, "node-1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.NoAnswer}, noonNY); !ok || err != nil {
				t.Fatalf("record %s: %v %v", l.CallID, ok, err)
			}
		}
		noAnswer(ls[0])
		if got := state(ls[0]); got != campaign.ContactPending {
			t.Fatalf("no answer with attempts left: %s, want pending", got)
		}
		if _, err := s.ModifyCampaign(ctx, c.ID, func(c *campaign.Campaign) error { c.MaxAttempts = 1; return nil }, noonNY); err != nil {
			t.Fatal(err)
		}
		noAnswer(ls[1])
		if got := state(ls[1]); got != campaign.ContactFailed {
			t.Fatalf("no answer after the campaign allowed one attempt: %s, want failed", got)
		}
	})
}
