package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/internal/testenv"
)

// BenchmarkRecordWithWebhook: what writing each result's webhook delivery
// to the outbox, in the result's transaction, costs a node reporting
// results. The floor is the same store recording results of a campaign
// without a webhook, in alternating blocks of the same run.
func BenchmarkRecordWithWebhook(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			ctx := context.Background()
			dsn := filepath.Join(b.TempDir(), "bench.db")
			if db == "postgres" {
				dsn = testenv.PostgresDSN(b)
			}
			s, err := Open(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.Caps = campaign.Caps{}
			const n = 2000
			plain := setup(b, s, n, nil)
			hooked := setup(b, s, n, func(c *campaign.Campaign) {
				c.Webhook = &campaign.Webhook{URL: "https://crm.example/hook", Secret: "0123456789abcdef"}
			})
			// The contacts can be recorded once: one pass, whatever b.N.
			var took [2]time.Duration // plain, hooked
			var count [2]int
			at := noonNY
			camps := []campaign.Campaign{plain, hooked}
			for block := 0; block < 2*n/100; block++ {
				k := block % 2
				at = at.Add(time.Second)
				// Only this block's campaign dials.
				if _, err := s.SetStatus(ctx, camps[1-k].ID, campaign.StatusPaused, at); err != nil {
					b.Fatal(err)
				}
				if block > 0 {
					if _, err := s.SetStatus(ctx, camps[k].ID, campaign.StatusRunning, at); err != nil {
						b.Fatal(err)
					}
				}
				ls, err := s.Lease(ctx, "n1", 100, at)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				for _, l := range ls {
					if l.CampaignID != camps[k].ID {
						b.Fatalf("leased from %s in %s's block", l.CampaignID, camps[k].ID)
					}
					if _, err := s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered, Tags: map[string]string{"result": "ok"}}, at); err != nil {
						b.Fatal(err)
					}
				}
				took[k] += time.Since(t0)
				count[k] += len(ls)
			}
			var queued int
			s.db.QueryRow(`SELECT COUNT(*) FROM webhook_outbox`).Scan(&queued)
			if count[0] != n || count[1] != n || queued != n {
				b.Fatalf("recorded %v, queued %d, want %d each", count, queued, n)
			}
			floor := float64(count[0]) / took[0].Seconds()
			with := float64(count[1]) / took[1].Seconds()
			b.ReportMetric(floor, "results/s-floor")
			b.ReportMetric(with, "results/s-webhook")
			b.ReportMetric(floor/with, "cost-ratio")
		})
	}
}
