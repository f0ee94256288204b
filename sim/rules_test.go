package sim

import (
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// A campaign's calling window and start_at shape the simulated demand
// through the dialler's own rules engine: nothing is wanted outside
// 09:00-17:00 New York time or before start_at, and the openings are on
// the calendar, so the scaler has nodes ready when the window opens.
func TestDemandUnderRules(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	raw := &Trace{Name: "ruled", End: 72 * time.Hour, Changes: []Change{{At: 0, Campaign: "ny", Calls: 500}}}
	start := Epoch.Add(30 * time.Hour) // Tuesday 06:00 UTC: Monday's window is skipped
	c := campaign.Campaign{Window: campaign.Window{Start: 9 * 60, End: 17 * 60}, CallerID: "+14155550100", StartAt: &start}
	tr := raw.UnderRules(map[string]Rules{"ny": {Campaign: c, Phone: "+12125550100", Zones: []*time.Location{ny}}})

	var opens []string
	for _, ch := range tr.Changes {
		local := Epoch.Add(ch.At).In(ny)
		if ch.Calls > 0 {
			opens = append(opens, local.Format("Mon 15:04"))
			if ch.At-ch.Announced != time.Hour {
				t.Errorf("opening at %s announced %s ahead, want 1h", local, ch.At-ch.Announced)
			}
		}
	}
	if got := opens; len(got) != 2 || got[0] != "Tue 09:00" || got[1] != "Wed 09:00" {
		t.Fatalf("openings %v, want Tue 09:00 and Wed 09:00 (Monday is before start_at)", got)
	}

	res, err := Run(tr, Settings{Cloud: CloudModel{Seed: 1, FailuresPerHour: -1}}, "elastidial")
	if err != nil {
		t.Fatal(err)
	}
	if want := 500.0 * 16 * 3600; res.DemandCallSec != want {
		t.Errorf("demand %.0f call-seconds, want %.0f (two 8-hour windows)", res.DemandCallSec, want)
	}
	for _, s := range res.Series {
		local := Epoch.Add(s.At).In(ny)
		m := local.Hour()*60 + local.Minute()
		if s.Demand > 0 && (m < 9*60 || m >= 17*60 || Epoch.Add(s.At).Before(start)) {
			t.Fatalf("demand %d at %s, outside the window or before start_at", s.Demand, local)
		}
	}
	if res.UnservedShare > 0.0005 {
		t.Errorf("unserved %.2f%%: the scaler did not pre-warm for the calendar's openings", 100*res.UnservedShare)
	}
	t.Logf("cost %.2f, unserved %.3f%%, peak %d nodes", res.Cost, 100*res.UnservedShare, res.PeakNodes)
}
