package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// A registry file is streamed: each batch is on the list (and honoured)
// as soon as it is read, leasing goes on meanwhile, and an upload that
// breaks part-way keeps what it stored and is recorded as incomplete.
func TestDNCImportStreams(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		setup(t, s, 5, nil) // +12125550000 … 0004, running
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		var d DNCImport
		go func() {
			var err error
			d, _, err = s.ImportDNCFile(ctx, DNCImport{Source: "us-ftc", Version: "2026-12-01", Reason: "refresh", Actor: "cli:ops"}, pr, importer.Options{BatchSize: 1000}, noonNY)
			done <- err
		}()
		// Past the 64 KiB the reader sniffs, in batches of 1000; the first
		// holds a number of the running campaign.
		fmt.Fprintf(pw, "2125550000\n")
		for i := 1; i < 10000; i++ {
			fmt.Fprintf(pw, "31255%05d\n", i)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := s.SearchDNC(ctx, InternalDNC, "+1212", "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first batch is not on the list while the upload goes on")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The upload is still open: leasing is not held up, and the number
		// already listed is not dialled.
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ls, err := s.Lease(lctx, "n1", 10, noonNY)
		cancel()
		if err != nil {
			t.Fatalf("lease during an import: %v", err)
		}
		for _, l := range ls {
			if l.Number == "+12125550000" {
				t.Fatal("dialled a number listed by the running import")
			}
		}
		if len(ls) != 4 {
			t.Fatalf("leased %d during the import, want 4", len(ls))
		}
		pw.CloseWithError(errors.New("connection reset"))
		if err := <-done; err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("broken upload: %v", err)
		}
		imps, err := s.DNCImports(ctx, 10)
		if err != nil || len(imps) != 1 || imps[0].Complete || imps[0].Imported < 1000 || !strings.Contains(imps[0].Error, "connection reset") || imps[0].Actor != "cli:ops" {
			t.Fatalf("imports %+v %v", imps, err)
		}
		if d.ID != imps[0].ID {
			t.Fatalf("import id %q vs %q", d.ID, imps[0].ID)
		}
	})
}

// Hostile do-not-call files: refused whole when not a list, row by row
// when rows are bad; nothing of a refused file is kept or recorded.
func TestDNCImportHostile(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		imp := DNCImport{Source: "x", Version: "1", Reason: "test"}
		for name, body := range map[string]string{
			"binary":    "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00",
			"utf-16":    "\xff\xfe2\x001\x002\x00",
			"no number": "name,city\nann,paris\n",
			"empty":     "\n\n\n",
		} {
			_, _, err := s.ImportDNCFile(ctx, imp, strings.NewReader(body), importer.Options{}, noonNY)
			var fe *importer.FileError
			if !errors.As(err, &fe) {
				t.Errorf("%s: %v, want the file refused", name, err)
			}
		}
		long := strings.Repeat("9", importer.MaxRowBytes+10)
		d, rep, err := s.ImportDNCFile(ctx, imp, strings.NewReader("2125550100\n"+long+"\n911\n+1 (212) 555-0101\n'2125550102\nDROP TABLE dnc;\n2125550103\x00\n"), importer.Options{}, noonNY)
		var fe *importer.FileError
		if !errors.As(err, &fe) {
			t.Fatalf("a NUL byte in the file: %+v %v, want it refused whole", rep, err)
		}
		d, rep, err = s.ImportDNCFile(ctx, imp, strings.NewReader("2125550100\n"+long+"\n911\n+1 (212) 555-0101\n'2125550102\nDROP TABLE dnc;\n"), importer.Options{}, noonNY)
		if err != nil || !d.Complete || d.Imported != 3 || d.Rejected != 3 || rep.Rows != 6 {
			t.Fatalf("mixed file: %+v %+v %v", d, rep, err)
		}
		got, _ := s.SearchDNC(ctx, InternalDNC, "", "", 100)
		if len(got) != 3 {
			t.Fatalf("list %+v", got)
		}
		imps, _ := s.DNCImports(ctx, 100)
		if len(imps) != 1 {
			t.Fatalf("recorded %d imports, want the one that stored numbers: %+v", len(imps), imps)
		}
		for _, bad := range []DNCImport{{Source: "x", Reason: "r"}, {Source: "x", Version: "1"}, {Version: "1", Reason: "r"}, {Source: "x\x1b[2J", Version: "1", Reason: "r"}} {
			var fe *campaign.FieldError
			if _, _, err := s.ImportDNCFile(ctx, bad, strings.NewReader("2125550199\n"), importer.Options{}, noonNY); !errors.As(err, &fe) {
				t.Errorf("%+v: %v, want a field error", bad, err)
			}
		}
	})
}

// BenchmarkDNCImport streams a registry file of a million numbers into
// SQLite holding a campaign of 300,000 contacts; its floor, measured in the same run, is reading and normalising
// the same file with nowhere to put it.
func BenchmarkDNCImport(b *testing.B) {
	const n = 1_000_000
	var file strings.Builder
	areas := []int{212, 312, 415, 617, 202, 305, 713, 404, 206, 303}
	for i := range n {
		fmt.Fprintf(&file, "%03d,%07d\n", areas[i%len(areas)], 2000000+i)
	}
	ctx := context.Background()
	start := time.Now()
	if _, err := importer.ReadDNC(ctx, strings.NewReader(file.String()), importer.Options{}, func([]string) error { return nil }); err != nil {
		b.Fatal(err)
	}
	floor := time.Since(start)
	// The store holds a campaign of 300,000 contacts, whom each batch
	// must scrub.
	var list strings.Builder
	list.WriteString("phone\n")
	for i := range 300_000 {
		fmt.Fprintf(&list, "%03d%07d\n", areas[i%len(areas)], 2000000+2*i)
	}
	for i := 0; i < b.N; i++ {
		s, err := Open(ctx, filepath.Join(b.TempDir(), "dnc.db"))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 10}); err != nil {
			b.Fatal(err)
		}
		c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Big", Trunk: "carrier", CallerID: "+14155550100", Target: 10}, noonNY)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(list.String()), importer.Options{}, noonNY); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		d, _, err := s.ImportDNCFile(ctx, DNCImport{Source: "us-ftc", Version: "bench", Reason: "bench"}, strings.NewReader(file.String()), importer.Options{}, noonNY)
		took := time.Since(start)
		if err != nil || d.Imported < n*9/10 {
			b.Fatalf("%+v %v", d, err)
		}
		b.ReportMetric(float64(d.Imported)/took.Seconds(), "numbers/s")
		b.ReportMetric(float64(n)/floor.Seconds(), "floor-numbers/s")
		b.ReportMetric(took.Seconds()/floor.Seconds(), "x-floor")
		st, _ := s.Stats(ctx, c.ID)
		b.Logf("%d numbers in %s (%d of 300000 contacts scrubbed); floor (read and normalise only) %s; ratio %.2f", d.Imported, took, st.Contacts["dnc"], floor, took.Seconds()/floor.Seconds())
		s.Close()
	}
}
