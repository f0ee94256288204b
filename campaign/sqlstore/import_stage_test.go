package sqlstore

import (
	"context"
	"database/sql/driver"
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

// stageRows writes what an import cut off mid-upload leaves: rows
// staged under its id, the import never recorded.
func stageRows(t *testing.T, s *Store, campaignID, importID string, phones ...string) {
	t.Helper()
	for i, p := range phones {
		if _, err := s.DB().ExecContext(context.Background(), s.q(`INSERT INTO contacts (campaign_id, phone, zgroup, fields, state, attempts, next_at, import_id, line) VALUES (?, ?, 1, '{}', 'staged', 0, ?, ?, ?)`),
			campaignID, p, ms(time.Now()), importID, i+2); err != nil {
			t.Fatal(err)
		}
	}
}

// holdElsewhere holds import id as another controller reading it does
// (PostgreSQL): its lock on a session of its own, until the test ends.
func holdElsewhere(t *testing.T, s *Store, id string) {
	t.Helper()
	conn, err := s.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock($1, $2)`, lockImport, lockKey(id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Raw(func(any) error { return driver.ErrBadConn }); conn.Close() })
}

// TestOpenFinishesCrashedImports: an import recorded before a crash is
// published on the next Open; the staged rows of one never recorded are
// discarded, unless (PostgreSQL) another controller still reads it.
func TestOpenFinishesCrashedImports(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 0, nil)
		stageRows(t, s, c.ID, "i_done", "+12125559000")
		stageRows(t, s, c.ID, "i_dead", "+12125559001")
		want := map[string]string{"i_done": "pending"}
		if s.postgres {
			stageRows(t, s, c.ID, "i_live", "+12125559002")
			holdElsewhere(t, s, "i_live")
			want["i_live"] = "staged"
		}
		if _, err := s.DB().ExecContext(ctx, s.q(`INSERT INTO imports (id, campaign_id, created_at, report) VALUES ('i_done', ?, 0, '{}')`), c.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.recoverImports(ctx); err != nil { // what Open runs
			t.Fatal(err)
		}
		got := map[string]string{}
		rows, _ := s.DB().QueryContext(ctx, `SELECT import_id, state FROM contacts`)
		for rows.Next() {
			var imp, st string
			rows.Scan(&imp, &st)
			got[imp] = st
		}
		rows.Close()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after recovery: %v, want %v", got, want)
		}
	})
}

// TestImportAgainAfterACrash: a list uploaded again after its first
// upload was cut off (the controller killed mid-read) is imported whole:
// the dead upload's staged rows are not "already in this campaign". A
// list whose first upload another controller still reads is refused row
// by row as being imported, and nothing of it is lost.
func TestImportAgainAfterACrash(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 0, nil)
		phones := []string{"+12125559100", "+12125559101", "+12125559102"}
		stageRows(t, s, c.ID, "i_cut", phones...)
		csv := "phone\n" + strings.Join(phones, "\n") + "\n"
		res, err := s.ImportContacts(ctx, c.ID, strings.NewReader(csv), importer.Options{DefaultRegion: "US"}, noonNY)
		if err != nil || res.Report.Imported != 3 {
			t.Fatalf("upload again: %+v %v", res.Report, err)
		}
		if st, _ := s.Stats(ctx, c.ID); st.Contacts[campaign.ContactPending] != 3 || len(st.Contacts) != 1 {
			t.Fatalf("contacts: %+v", st.Contacts)
		}
		if !s.postgres {
			return
		}
		more := []string{"+12125559200", "+12125559201"}
		stageRows(t, s, c.ID, "i_reading", more...)
		holdElsewhere(t, s, "i_reading")
		res, err = s.ImportContacts(ctx, c.ID, strings.NewReader("phone\n"+strings.Join(more, "\n")+"\n"), importer.Options{DefaultRegion: "US"}, noonNY)
		if err != nil || res.Report.Imported != 0 || len(res.Rejections) != 2 || !strings.Contains(res.Rejections[0].Reason, "being imported by another upload") {
			t.Fatalf("upload beside a live one: %+v %+v %v", res.Report, res.Rejections, err)
		}
		var staged int
		s.DB().QueryRowContext(ctx, `SELECT count(*) FROM contacts WHERE import_id = 'i_reading' AND state = 'staged'`).Scan(&staged)
		if staged != 2 {
			t.Fatalf("the live upload's rows: %d staged, want 2", staged)
		}
	})
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
