package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testenv"
)

// Demand counts what is callable now only as far as the target: the
// planner's demand is the same either way, and a campaign found short is
// counted in full (and foreseen) on every call until it has its target
// again.
func TestDemandCountsToTheTarget(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 100, func(c *campaign.Campaign) { c.Target = 60 })
		demand := func(now time.Time) campaign.Demand {
			t.Helper()
			ds, err := s.Demand(ctx, now)
			if err != nil || len(ds) != 1 {
				t.Fatalf("demand: %v %v", ds, err)
			}
			return ds[0]
		}
		cfg := planner.Config{DefaultAttemptSeconds: 30, BootLead: 3 * time.Minute}
		want := func(d campaign.Demand, callable, planned int) {
			t.Helper()
			v := planner.CampaignView{Target: d.Target, Callable: d.Callable, Active: d.Active, Upcoming: d.Upcoming}
			if d.Callable != callable || planner.CampaignDemand(v, noonNY, cfg) != planned {
				t.Fatalf("callable %d, demand %d; want %d, %d", d.Callable, planner.CampaignDemand(v, noonNY, cfg), callable, planned)
			}
		}
		want(demand(noonNY), 60, 60) // 100 callable: counted to the target
		// 30 callable now, 70 in two minutes: short, counted in full
		// and foreseen.
		if _, err := s.DB().ExecContext(ctx, s.q(`UPDATE contacts SET next_at = CASE WHEN id % 10 < 3 THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END WHERE campaign_id = ?`),
			ms(noonNY), ms(noonNY.Add(2*time.Minute)), c.ID); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			d := demand(noonNY)
			want(d, 30, 60) // the upcoming 60 is within the boot lead
			if len(d.Upcoming) != 1 || !d.Upcoming[0].At.Equal(noonNY.Add(2*time.Minute)) || d.Upcoming[0].Target != 60 {
				t.Fatalf("upcoming %+v; want 60 at 12:02", d.Upcoming)
			}
		}
		// All callable again: counted to the target again.
		if _, err := s.DB().ExecContext(ctx, s.q(`UPDATE contacts SET next_at = ? WHERE campaign_id = ?`), ms(noonNY), c.ID); err != nil {
			t.Fatal(err)
		}
		want(demand(noonNY), 100, 60) // the full count, once: it finds the target
		want(demand(noonNY), 60, 60)
	})
}

// BenchmarkDemand is the scaler's demand read (every tick, 1 s in the
// fleet benchmark) of a running campaign of 100,000 contacts due now on
// PostgreSQL, with its target (3,500) callable: counted to the target,
// against the count of every contact due within the hour by zone group
// and minute (what it was, and still is for a campaign short of its
// target), in alternating calls of the same run.
func BenchmarkDemand(b *testing.B) {
	const contacts = 100_000
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 5000, MaxCPS: 2000}); err != nil {
		b.Fatal(err)
	}
	c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "bench", Trunk: "carrier", CallerID: "+14155550100", Target: 3500, MaxCPS: 2000}, noonNY)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("phone\n")
	for k := range contacts {
		fmt.Fprintf(&sb, "+1212%03d%04d\n", 200+k/10000, k%10000)
	}
	if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(sb.String()), importer.Options{}, noonNY); err != nil {
		b.Fatal(err)
	}
	if _, err := s.SaveFlow(ctx, c.ID, []byte(`{}`), noonNY); err != nil {
		b.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, c.ID, campaign.StatusRunning, noonNY); err != nil {
		b.Fatal(err)
	}
	s.db.ExecContext(ctx, `ANALYZE contacts`)
	var took [2]time.Duration // counted to the target, counted in full
	n := 0
	for b.Loop() {
		for k := range 2 {
			s.setDemandShort(c.ID, k == 1)
			t0 := time.Now()
			ds, err := s.Demand(ctx, noonNY)
			took[k] += time.Since(t0)
			if err != nil || len(ds) != 1 || ds[0].Callable < 3500 {
				b.Fatalf("demand %+v: %v", ds, err)
			}
		}
		n++
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(took[0].Microseconds())/1000/float64(n), "ms/demand")
	b.ReportMetric(float64(took[1].Microseconds())/1000/float64(n), "ms/demand-full-count")
	b.ReportMetric(float64(took[1])/float64(took[0]), "full/target")
}
