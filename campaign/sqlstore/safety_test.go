package sqlstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// leaseAll leases everything leasable at now.
func leaseAll(t *testing.T, s *Store, node string, now time.Time) []campaign.Lease {
	t.Helper()
	got, err := s.Lease(context.Background(), node, 1000, now)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func record(t *testing.T, s *Store, node string, l campaign.Lease, disp string, tags map[string]string, now time.Time) {
	t.Helper()
	if _, err := s.Record(context.Background(), node, campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: disp, Tags: tags, EndedAt: now}, now); err != nil {
		t.Fatal(err)
	}
}

// A number put on the do-not-call list while its call is live must never
// be dialled again: not after a busy result, not after its lease is reaped.
func TestDNCAddedMidCallIsNeverRedialled(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		setup(t, s, 2, nil)
		ls := leaseAll(t, s, "n1", noonNY)
		if len(ls) != 2 {
			t.Fatalf("leased %d, want 2", len(ls))
		}
		if err := s.AddDNC(ctx, []string{ls[0].Number, ls[1].Number}, "complaint", noonNY.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		// One call ends busy; the other's node dies and its lease is reaped.
		record(t, s, "n1", ls[0], campaign.Busy, nil, noonNY.Add(time.Minute))
		if _, err := s.Reap(ctx, noonNY.Add(s.LeaseTTL+time.Minute)); err != nil {
			t.Fatal(err)
		}
		for h := 1; h <= 6; h++ {
			if got := leaseAll(t, s, "n1", noonNY.Add(time.Duration(h)*time.Hour)); len(got) != 0 {
				t.Fatalf("%dh later: leased %s, which is on the do-not-call list", h, got[0].Number)
			}
		}
	})
}

// A timezone column narrows a number's zones but never widens them: a New
// York number declared as Kiritimati obeys New York's calling hours.
func TestDeclaredZoneNeverWidens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 0, nil)
		if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader("phone,timezone\n+12125550100,Pacific/Kiritimati\n"), importer.Options{DefaultRegion: "US"}, noonNY); err != nil {
			t.Fatal(err)
		}
		// 23:00 in New York (EST), 18:00 in Kiritimati.
		night := time.Date(2026, 1, 14, 4, 0, 0, 0, time.UTC)
		if got := leaseAll(t, s, "n1", night); len(got) != 0 {
			t.Fatalf("leased %s at 23:00 New York time", got[0].Number)
		}
		if got := leaseAll(t, s, "n1", night.Add(10*time.Hour)); len(got) != 1 {
			t.Fatalf("at 09:00 New York time leased %d, want 1", len(got))
		}
	})
}

// Windows outside the legal hours are refused with the rule they break.
func TestWindowOutsideLegalHoursIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 10}); err != nil {
			t.Fatal(err)
		}
		for _, w := range []campaign.Window{{Start: 0, End: 1440}, {Start: 21 * 60, End: 8 * 60}, {Start: 7 * 60, End: 12 * 60}, {Start: 9 * 60, End: 21*60 + 1}} {
			_, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Night", Trunk: "carrier", CallerID: "+14155550100", Target: 1, Window: w}, noonNY)
			var fe *campaign.FieldError
			if !errors.As(err, &fe) || fe.Field != "window" || !strings.Contains(fe.Reason, "47 CFR 64.1200") {
				t.Errorf("window %+v: got %v, want a window error naming the legal rule", w, err)
			}
		}
	})
}

// Premium-rate, foreign and emergency numbers are refused when the list is
// imported, each with its reason.
func TestDestinationPolicyAtImport(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 0, nil)
		res, err := s.ImportContacts(ctx, c.ID, strings.NewReader("phone\n+19002345678\n+449098790000\n+611900123456\n+442079460018\n911\n+12125550100\n"), importer.Options{DefaultRegion: "US"}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 1 {
			t.Fatalf("imported %d, want only the New York number: %+v", res.Imported, res.Rejections)
		}
		want := []string{"premium-rate", "premium-rate", "premium-rate", "GB", "emergency"}
		for i, r := range res.Rejections {
			if i < len(want) && !strings.Contains(r.Reason, want[i]) {
				t.Errorf("line %d: %q, want it to mention %q", r.Line, r.Reason, want[i])
			}
		}
		if got := leaseAll(t, s, "n1", noonNY); len(got) != 1 || got[0].Number != "+12125550100" {
			t.Fatalf("leased %+v", got)
		}
	})
}

// A running campaign with a future start_at dials nothing until then, and
// the scaler's demand sees it coming; a draft one asks for nothing.
func TestStartAt(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		start := noonNY.Add(30 * time.Minute)
		setup(t, s, 5, func(c *campaign.Campaign) { c.StartAt = &start; c.Target = 5 })
		if got := leaseAll(t, s, "n1", noonNY); len(got) != 0 {
			t.Fatalf("leased %d before start_at", len(got))
		}
		ds, err := s.Demand(ctx, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Callable != 0 || len(ds[0].Upcoming) != 1 || !ds[0].Upcoming[0].At.Equal(start) || ds[0].Upcoming[0].Target != 5 {
			t.Fatalf("demand before start_at: %+v, want 0 callable and 5 upcoming at %s", ds, start)
		}
		if got := leaseAll(t, s, "n1", start); len(got) != 5 {
			t.Fatalf("leased %d at start_at, want 5", len(got))
		}

		draft, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Draft", Trunk: "carrier", CallerID: "+14155550100", Target: 5, StartAt: &start}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		ds, _ = s.Demand(ctx, noonNY)
		for _, d := range ds {
			if d.CampaignID == draft.ID {
				t.Fatalf("a draft campaign asks for capacity: %+v", d)
			}
		}
	})
}

// Once the flow captured a result, a later hang-up does not reopen the
// contact.
func TestCapturedResultIsFinal(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		setup(t, s, 1, nil)
		ls := leaseAll(t, s, "n1", noonNY)
		record(t, s, "n1", ls[0], campaign.CutOff, map[string]string{"result": "confirmed"}, noonNY.Add(time.Minute))
		if got := leaseAll(t, s, "n1", noonNY.Add(2*time.Hour)); len(got) != 0 {
			t.Fatalf("re-dialled %s after it confirmed", got[0].Number)
		}
	})
}

// The same number in several campaigns is called at most the daily cap.
func TestFrequencyCapAcrossCampaigns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		for range 4 {
			setup(t, s, 1, nil) // the same +12125550000 in four campaigns
		}
		if got := leaseAll(t, s, "n1", noonNY); len(got) != 3 {
			t.Fatalf("leased %d calls to one number, want the daily cap %d", len(got), 3)
		}
	})
}

// Caller IDs are stored in E.164 and must be valid numbers.
func TestCallerIDNormalised(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 10}); err != nil {
			t.Fatal(err)
		}
		c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Local", Trunk: "carrier", CallerID: "4155550100", Target: 1}, noonNY)
		if err != nil || c.CallerID != "+14155550100" {
			t.Fatalf("caller id %q, %v; want +14155550100", c.CallerID, err)
		}
		for _, bad := range []string{"1234567", "+10005550100", "+999123456789"} {
			_, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Bad", Trunk: "carrier", CallerID: bad, Target: 1}, noonNY)
			var fe *campaign.FieldError
			if !errors.As(err, &fe) || fe.Field != "caller_id" {
				t.Errorf("caller id %q: %v, want a caller_id error", bad, err)
			}
		}
	})
}

// A campaign's countries default to its dial list's region: a list
// imported with region=GB is called, a stray US number in it is not.
func TestCountriesDefaultToTheListsRegion(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 10}); err != nil {
			t.Fatal(err)
		}
		c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "London", Trunk: "carrier", CallerID: "+14155550100", Target: 5}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.ImportContacts(ctx, c.ID, strings.NewReader("phone\n020 7946 0018\n+12125550100\n"), importer.Options{DefaultRegion: "gb"}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 1 || len(res.Rejections) != 1 || !strings.Contains(res.Rejections[0].Reason, "calls only GB") {
			t.Fatalf("import: %+v", res)
		}
		if c, _ = s.Campaign(ctx, c.ID); len(c.Countries) != 1 || c.Countries[0] != "GB" {
			t.Fatalf("countries %v, want the list's region GB", c.Countries)
		}
		s.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), noonNY)
		if _, err := s.SetStatus(ctx, c.ID, campaign.StatusRunning, noonNY); err != nil {
			t.Fatal(err)
		}
		if got := leaseAll(t, s, "n1", noonNY); len(got) != 1 || got[0].Number != "+442079460018" { // 16:00 in London
			t.Fatalf("leased %+v", got)
		}

		// No region given: the caller ID's country.
		jp, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Tokyo", Trunk: "carrier", CallerID: "+81312340000", Target: 5}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := s.ImportContacts(ctx, jp.ID, strings.NewReader("phone\n+81312340001\n+12125550100\n"), importer.Options{}, noonNY); err != nil || res.Imported != 1 || !strings.Contains(res.Rejections[0].Reason, "calls only JP") {
			t.Fatalf("import into a Tokyo campaign: %+v %v", res, err)
		}
	})
}
