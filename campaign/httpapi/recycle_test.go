package httpapi

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/internal/testclock"
)

// A campaign manager re-runs the no-answers, busies and rejections of
// calls made before 16:04 once the list is used up. Final outcomes, the
// opted-out and the do-not-call numbers stay out; contacts still in play
// are left alone; recycled contacts keep their attempt counter and
// history, get a new round of max_attempts, and are still held to the
// frequency caps.
func TestRecycleByOutcome(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := testclock.New(noonUTC)
		c, s, _, _ := recordingServer(t, dsn, clk)
		c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 100, "max_cps": 100}, 200, nil)
		var camp campaign.Campaign
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Reminders", "trunk": "carrier", "caller_id": "+14155550100", "target": 10, "max_attempts": 2,
			"retry": map[string]any{"no_answer": map[string]int{"after_seconds": 60}, "busy": map[string]int{"after_seconds": 300},
				"congestion": map[string]int{"after_seconds": 60}, "rejected": map[string]int{"after_seconds": 4 * 3600}}}, 201, &camp)
		names := "ABCDEFGHI"
		phone := map[string]string{}
		who := map[string]string{}
		var b strings.Builder
		b.WriteString("phone,name\n")
		for i, n := range names {
			p := fmt.Sprintf("+1212555%04d", 100+i)
			phone[string(n)], who[p] = p, string(n)
			fmt.Fprintf(&b, "%s,%c\n", p, n)
		}
		if _, err := s.ImportContacts(ctx, camp.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, clk.Now()); err != nil {
			t.Fatal(err)
		}
		s.SaveFlow(ctx, camp.ID, []byte(`{"start":"bye"}`), clk.Now())
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)

		// round leases what is due at the clock's now and records each
		// contact's outcome; it returns who was called, with call ids.
		round := func(outcome map[string]string) map[string]string {
			t.Helper()
			ls, err := s.Lease(ctx, "node-1", 100, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			called := map[string]string{}
			for _, l := range ls {
				n := who[l.Number]
				called[n] = l.CallID
				d, tags := outcome[n], map[string]string{}
				switch d {
				case "":
					t.Fatalf("%s called unexpectedly (%s)", n, l.CallID)
				case "answered":
					tags["result"] = "confirmed"
				case "opt-out":
					d, tags["dnc"] = campaign.NoAnswer, "true"
				}
				if _, err := s.Record(ctx, "node-1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: d, StartedAt: clk.Now(), Tags: tags}, clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			return called
		}
		round(map[string]string{"A": "no_answer", "B": "no_answer", "C": "answered", "D": "invalid_number", "E": "no_answer", "F": "no_answer", "G": "rejected", "H": "congestion", "I": "busy"})
		clk.Add(2 * time.Minute)
		round(map[string]string{"A": "no_answer", "B": "busy", "E": "opt-out", "F": "no_answer", "H": "congestion"})
		clk.Add(3 * time.Minute)
		round(map[string]string{"I": "busy"})
		if err := s.AddToDNC(ctx, camp.ID, []string{phone["F"]}, "complaint", clk.Now()); err != nil {
			t.Fatal(err)
		}
		clk.Add(5 * time.Minute)
		if got := round(nil); len(got) != 0 {
			t.Fatalf("list not used up: %v", got)
		}

		var e errorBody
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", map[string]any{"dispositions": []string{"no_answer", "answered"}}, 400, &e)
		if e.Field != "dispositions" || !strings.Contains(e.Error, "final") {
			t.Fatalf("answered recycled: %+v", e)
		}
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", map[string]any{"dispositions": []string{"busy"}, "after": "2026-03-10T17:00:00Z", "before": "2026-03-10T16:00:00Z"}, 400, &e)
		if e.Field != "before" {
			t.Fatalf("inverted times: %+v", e)
		}
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", map[string]any{"dispositions": []string{"busy"}, "time_of_day": map[string]int{"start": 1080, "end": 1440}, "time_zone": "Mars/Olympus"}, 400, &e)
		if e.Field != "time_zone" {
			t.Fatalf("unknown zone: %+v", e)
		}
		// Calls made after 12:03 in New York (16:03 UTC): only I's.
		var rep campaign.RecycleReport
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", map[string]any{"dispositions": []string{"no_answer", "busy", "rejected"},
			"time_of_day": map[string]int{"start": 12*60 + 3, "end": 1440}, "time_zone": "America/New_York", "dry_run": true}, 200, &rep)
		if rep.Matched != 1 || rep.Recycled != 1 {
			t.Fatalf("time of day: %+v", rep)
		}
		req := map[string]any{"dispositions": []string{"no_answer", "busy", "rejected"}, "before": "2026-03-10T16:04:00Z", "dry_run": true}
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", req, 200, &rep)
		want := campaign.RecycleReport{Matched: 5, Recycled: 2, DryRun: true, Skipped: map[string]int{campaign.SkipFinal: 1, campaign.SkipDNC: 1, campaign.SkipInPlay: 1}}
		if fmt.Sprint(rep) != fmt.Sprint(want) {
			t.Fatalf("dry run: %+v, want %+v", rep, want)
		}
		if got := round(nil); len(got) != 0 {
			t.Fatalf("a dry run recycled %v", got)
		}
		req["dry_run"] = false
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", req, 200, &rep)
		want.DryRun = false
		if fmt.Sprint(rep) != fmt.Sprint(want) {
			t.Fatalf("recycle: %+v, want %+v", rep, want)
		}

		// A and B again, their counters going on (attempt 3).
		clk.Add(time.Minute)
		got := round(map[string]string{"A": "no_answer", "B": "no_answer"})
		if len(got) != 2 || !strings.HasSuffix(got["A"], "-3") || !strings.HasSuffix(got["B"], "-3") {
			t.Fatalf("after recycling: %v", got)
		}
		// Their retry is due, but 3 calls today is the cap.
		clk.Add(2 * time.Minute)
		if got := round(nil); len(got) != 0 {
			t.Fatalf("called past the daily cap: %v", got)
		}
		// The next day: the round's second attempt, then the round is used
		// up (G's rejection is due for its retry too).
		clk.Add(24 * time.Hour)
		got = round(map[string]string{"A": "no_answer", "B": "busy", "G": "no_answer"})
		if len(got) != 3 || !strings.HasSuffix(got["A"], "-4") || !strings.HasSuffix(got["G"], "-2") {
			t.Fatalf("next day: %v", got)
		}
		clk.Add(time.Hour)
		if got := round(nil); len(got) != 0 {
			t.Fatalf("round not used up: %v", got)
		}
		// The history is whole: four attempts of A.
		status, body := c.do("GET", "/api/v1/campaigns/"+camp.ID+"/results.csv", "", nil)
		recs, _ := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		n := 0
		for _, r := range recs {
			if r[0] == phone["A"] {
				n++
			}
		}
		if status != 200 || n != 4 {
			t.Fatalf("A's attempts in the results: %d (%d)", n, status)
		}
		// A bound on attempts in all rounds leaves them out.
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", map[string]any{"dispositions": []string{"no_answer", "busy"}, "max_total_attempts": 4, "dry_run": true}, 200, &rep)
		if rep.Recycled != 2 || rep.Skipped[campaign.SkipAttempts] != 2 { // G and I (2 attempts); not A and B (4)
			t.Fatalf("max_total_attempts: %+v", rep)
		}
		// A completed campaign is not re-run.
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/stop", nil, 200, nil)
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/recycle", map[string]any{"dispositions": []string{"no_answer"}}, 409, &e)
	})
}
