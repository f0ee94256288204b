package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// TestImportNeverBlocksDialling: while a dial list is still arriving (a
// slow or large upload), leasing and result recording go on; the import's
// contacts become callable only when it ends, all of them at once, and a
// failed import leaves nothing behind.
func TestImportNeverBlocksDialling(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 10, nil)
		pr, pw := io.Pipe()
		type result struct {
			res ImportResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := s.ImportContacts(ctx, c.ID, pr, importer.Options{DefaultRegion: "US"}, noonNY)
			done <- result{res, err}
		}()
		fmt.Fprintln(pw, "phone,account")
		for i := range 5000 {
			fmt.Fprintf(pw, "+1646555%04d,B%d\n", i, i)
		}
		// The upload stalls mid-file. Dialling must not wait for it.
		dial := make(chan error, 1)
		go func() {
			ls, err := s.Lease(ctx, "n1", 5, noonNY)
			if err == nil && len(ls) != 5 {
				err = fmt.Errorf("leased %d, want 5 of the campaign's first 10", len(ls))
			}
			for _, l := range ls {
				if err == nil {
					_, err = s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered}, noonNY)
				}
			}
			dial <- err
		}()
		select {
		case err := <-dial:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			pw.Close()
			t.Fatal("leasing and recording waited for the import's upload")
		}
		// Nothing of the unfinished import is callable yet.
		if st, _ := s.Stats(ctx, c.ID); st.Contacts[campaign.ContactPending] != 5 {
			t.Fatalf("contacts during the import: %+v", st.Contacts)
		}
		for i := 5000; i < 6000; i++ {
			fmt.Fprintf(pw, "+1646555%04d,B%d\n", i, i)
		}
		pw.Close()
		r := <-done
		if r.err != nil || r.res.Report.Imported != 6000 {
			t.Fatalf("import: %+v %v", r.res.Report, r.err)
		}
		if st, _ := s.Stats(ctx, c.ID); st.Contacts[campaign.ContactPending] != 6005 {
			t.Fatalf("contacts after the import: %+v", st.Contacts)
		}

		// A failed upload keeps nothing.
		pr, pw = io.Pipe()
		go func() {
			fmt.Fprintln(pw, "phone")
			for i := range 3000 {
				fmt.Fprintf(pw, "+1718555%04d\n", i)
			}
			pw.CloseWithError(errors.New("client went away"))
		}()
		if _, err := s.ImportContacts(ctx, c.ID, pr, importer.Options{DefaultRegion: "US"}, noonNY); err == nil {
			t.Fatal("a broken upload was accepted")
		}
		if st, _ := s.Stats(ctx, c.ID); st.Contacts[campaign.ContactPending] != 6005 || len(st.Contacts) != 2 {
			t.Fatalf("contacts after a failed import: %+v", st.Contacts)
		}
		// The same numbers import cleanly afterwards: nothing was left staged.
		var b strings.Builder
		b.WriteString("phone\n")
		for i := range 3000 {
			fmt.Fprintf(&b, "+1718555%04d\n", i)
		}
		if res, err := s.ImportContacts(ctx, c.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, noonNY); err != nil || res.Report.Imported != 3000 {
			t.Fatalf("re-import: %+v %v", res.Report, err)
		}
	})
}

// TestOpenFinishesCrashedImports: an import recorded before a crash is
// published on the next Open; the staged rows of one never recorded are
// discarded once abandoned.
func TestOpenFinishesCrashedImports(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/crash.db"
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c := setup(t, s, 0, nil)
	old := ms(time.Now().Add(-2 * abandonAfter))
	for i, imp := range []string{"i_done", "i_dead", "i_live"} {
		at := old
		if imp == "i_live" {
			at = ms(time.Now()) // another controller may still be reading it
		}
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO contacts (campaign_id, phone, zgroup, fields, state, attempts, next_at, import_id, line) VALUES (?, ?, 1, '{}', 'staged', 0, ?, ?, 2)`,
			c.ID, fmt.Sprintf("+1212555900%d", i), at, imp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO imports (id, campaign_id, created_at, report) VALUES ('i_done', ?, 0, '{}')`, c.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[string]string{}
	rows, _ := s.DB().QueryContext(ctx, `SELECT import_id, state FROM contacts`)
	for rows.Next() {
		var imp, st string
		rows.Scan(&imp, &st)
		got[imp] = st
	}
	rows.Close()
	if want := map[string]string{"i_done": "pending", "i_live": "staged"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopening: %v, want %v", got, want)
	}
}

// BenchmarkLeaseDuringImport: how long leasing (and recording) waits
// while a 200,000-row dial list is imported into another campaign on
// SQLite, against the same loop with no import (the floor, same run).
func BenchmarkLeaseDuringImport(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		s, err := Open(ctx, b.TempDir()+"/lease-import.db")
		if err != nil {
			b.Fatal(err)
		}
		c := setup(b, s, 20000, nil)
		other, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "big", Trunk: "carrier", CallerID: "+14155550100", Target: 10}, noonNY)
		if err != nil {
			b.Fatal(err)
		}
		var csv strings.Builder
		csv.WriteString("phone\n")
		for i := range 200_000 {
			fmt.Fprintf(&csv, "+1646%07d\n", 1000000+i)
		}
		start := time.Now()
		// dial leases and records one call at a time until stop, and
		// returns each round's duration.
		dial := func(stop <-chan struct{}) []time.Duration {
			var ds []time.Duration
			for {
				select {
				case <-stop:
					return ds
				default:
				}
				t0 := time.Now()
				at := noonNY.Add(t0.Sub(start)) // pacing refills as time goes
				ls, err := s.Lease(ctx, "n1", 1, at)
				if err != nil {
					b.Fatalf("lease: %v", err)
				}
				for _, l := range ls {
					if _, err := s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered}, at); err != nil {
						b.Fatal(err)
					}
				}
				ds = append(ds, time.Since(t0))
			}
		}
		stop := make(chan struct{})
		go func() { time.Sleep(2 * time.Second); close(stop) }()
		floor := dial(stop)
		stop = make(chan struct{})
		var during []time.Duration
		done := make(chan struct{})
		go func() { during = dial(stop); close(done) }()
		t0 := time.Now()
		if _, err := s.ImportContacts(ctx, other.ID, strings.NewReader(csv.String()), importer.Options{DefaultRegion: "US"}, noonNY); err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		close(stop)
		<-done
		if st, _ := s.Stats(ctx, c.ID); st.Contacts[campaign.ContactDone] == 0 {
			b.Fatal("nothing dialled")
		}
		pct := func(ds []time.Duration, p float64) time.Duration {
			ds = append([]time.Duration(nil), ds...)
			slices.Sort(ds)
			return ds[int(float64(len(ds)-1)*p)]
		}
		b.ReportMetric(float64(len(during))/took.Seconds(), "rounds/s-during")
		b.ReportMetric(float64(len(floor))/2, "rounds/s-floor")
		b.ReportMetric(float64(pct(during, 0.99).Microseconds())/1000, "p99-ms-during")
		b.ReportMetric(float64(pct(floor, 0.99).Microseconds())/1000, "p99-ms-floor")
		b.ReportMetric(float64(pct(during, 1).Microseconds())/1000, "max-ms-during")
		b.ReportMetric(took.Seconds(), "import-s")
		s.Close()
	}
}
