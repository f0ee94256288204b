package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

const transferFlow = `{"start":"hello","states":{"hello":{"play":["x/hello"],"next":"agent"},
	"agent":{"transfer":{"to":"+14155550199","timeout_seconds":20},"next":"bye","failed":"sorry"},
	"sorry":{"play":["x/sorry"],"next":"bye"},"bye":{"hangup":true}}}`

// A campaign whose flow transfers to people starts slow and climbs while
// no one is left waiting; abandons bring it down at once; its 30-day
// abandon rate is in its stats, and the forecast asks only for what it
// may dial.
func TestAbandonPacing(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 300, func(c *campaign.Campaign) { c.Target = 100 })
		if _, err := s.SaveFlow(ctx, c.ID, []byte(transferFlow), noonNY); err != nil {
			t.Fatal(err)
		}
		if c, _ = s.Campaign(ctx, c.ID); !c.Transfers {
			t.Fatal("a flow with a transfer state is not seen as transferring")
		}
		now := noonNY
		answer := func(l campaign.Lease, outcome string) {
			t.Helper()
			now = now.Add(time.Second)
			if _, err := s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered,
				Tags: map[string]string{campaign.TagTransfer: outcome, "result": "talked"}}, now); err != nil {
				t.Fatal(err)
			}
		}
		ls := leaseAll(t, s, "n1", now)
		if len(ls) != 1 {
			t.Fatalf("first lease: %d calls, want the slow start's 1", len(ls))
		}
		answer(ls[0], campaign.TransferConnected)
		for range 9 {
			ls := leaseAll(t, s, "n1", now)
			if len(ls) != 1 {
				t.Fatalf("leased %d before ten clean answers", len(ls))
			}
			answer(ls[0], campaign.TransferConnected)
		}
		ls = leaseAll(t, s, "n1", now)
		if len(ls) != 2 {
			t.Fatalf("after ten answers all taken: %d, want 2", len(ls))
		}
		// Both abandoned: down at once.
		answer(ls[0], campaign.TransferNoOneFree)
		answer(ls[1], campaign.TransferNoOneFree)
		ls = leaseAll(t, s, "n1", now)
		if len(ls) != 1 {
			t.Fatalf("after two abandons: %d, want 1", len(ls))
		}
		ds, err := s.Demand(ctx, now)
		if err != nil || len(ds) != 1 || ds[0].Target != 1 {
			t.Fatalf("demand %+v %v, want the paced target 1", ds, err)
		}
		answer(ls[0], campaign.TransferConnected)

		st, err := s.StatsAt(ctx, c.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		a := st.Abandon
		if a == nil || a.Live != 13 || a.Abandoned != 2 || a.Cap != campaign.DefaultAbandonCap || a.Pace != 1 || a.Rate < 0.153 || a.Rate > 0.154 {
			t.Fatalf("abandon stats %+v", a)
		}
		// Folded into hourly counts, the rate is the same.
		if n, err := s.foldAbandons(ctx); err != nil || n != 13 {
			t.Fatalf("fold moved %d answers (%v), want 13", n, err)
		}
		if st, err := s.StatsAt(ctx, c.ID, now); err != nil || *st.Abandon != *a {
			t.Fatalf("after the fold: %+v (%v), want %+v", st.Abandon, err, a)
		}
		// Thirty days on, those calls are out of the window.
		if st, _ = s.StatsAt(ctx, c.ID, now.Add(31*24*time.Hour)); st.Abandon.Live != 0 {
			t.Fatalf("31 days later: %+v", st.Abandon)
		}

		// A campaign that does not transfer is not paced.
		other := setup(t, s, 50, func(c *campaign.Campaign) { c.Target = 100; c.Name = "Plain" })
		s.Caps = campaign.Caps{}
		n := 0
		for _, l := range leaseAll(t, s, "n1", now) {
			if l.CampaignID == other.ID {
				n++
			}
		}
		if n != 50 {
			t.Fatalf("a campaign without transfers leased %d of 50", n)
		}
		if st, _ := s.StatsAt(ctx, other.ID, now); st.Abandon != nil {
			t.Fatalf("abandon stats for a campaign without transfers: %+v", st.Abandon)
		}
	})
}

// Results append answers while folds move them into hourly counts: no
// answer is lost or counted twice (on PostgreSQL the two run at once).
func TestAbandonFoldLosesNoAnswer(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const calls = 600
		c := setup(t, s, calls, func(c *campaign.Campaign) { c.MaxCPS = campaign.MaxCPS })
		var ls []campaign.Lease
		for now := noonNY; len(ls) < calls; now = now.Add(time.Second) {
			got := leaseAll(t, s, "n1", now)
			if len(got) == 0 {
				t.Fatalf("leased %d of %d", len(ls), calls)
			}
			ls = append(ls, got...)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 9)
		done := make(chan struct{})
		folded := 0
		wg.Go(func() {
			for {
				n, err := s.foldAbandons(ctx)
				if err != nil {
					errs <- err
					return
				}
				folded += n
				select {
				case <-done:
					return
				default:
				}
			}
		})
		var rg sync.WaitGroup
		for w := range 8 {
			rg.Go(func() {
				for i := w; i < calls; i += 8 {
					// Two hours, so the fold adds to rows it made before.
					at := noonNY.Add(time.Duration(i%2) * time.Hour)
					tags := map[string]string{}
					if i%3 == 0 {
						tags[campaign.TagTransfer] = campaign.TransferNoOneFree
					}
					if _, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[i].CallID, Token: ls[i].Token, Disposition: campaign.Answered, Tags: tags}, at); err != nil {
						errs <- fmt.Errorf("record: %w", err)
						return
					}
				}
			})
		}
		rg.Wait()
		close(done)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if folded == 0 {
			t.Fatal("no fold moved an answer while results came in")
		}
		a, err := s.abandonMonth(ctx, s.db, c.ID, noonNY.Add(2*time.Hour))
		if err != nil || a.Live != calls || a.Abandoned != calls/3 {
			t.Fatalf("counted %+v (%v), want %d answers, %d abandoned", a, err, calls, calls/3)
		}
		n, err := s.foldAbandons(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if folded+n != calls {
			t.Fatalf("folds moved %d answers, want %d", folded+n, calls)
		}
		if b, err := s.abandonMonth(ctx, s.db, c.ID, noonNY.Add(2*time.Hour)); err != nil || b != a {
			t.Fatalf("after the last fold %+v (%v), want %+v", b, err, a)
		}
	})
}
