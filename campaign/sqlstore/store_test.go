package sqlstore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/xmlrpc"
)

// eachStore runs a test against SQLite and PostgreSQL: the contract suite.
func eachStore(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := Open(context.Background(), testenv.PostgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
}

// Noon in New York, 09:00 in Los Angeles, 17:00 in London.
var noonNY = time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)

// setup makes a trunk and a running campaign with n New York contacts.
func setup(t testing.TB, s *Store, n int, mod func(*campaign.Campaign)) campaign.Campaign {
	t.Helper()
	ctx := context.Background()
	if err := s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 1000, MaxCPS: 1000}); err != nil {
		t.Fatal(err)
	}
	c := campaign.Campaign{Name: "Spring survey", Trunk: "carrier", CallerID: "+14155550100", Target: 1000, MaxCPS: 1000}
	if mod != nil {
		mod(&c)
	}
	c, err := s.CreateCampaign(ctx, c, noonNY)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("phone,account\n")
	for i := range n {
		fmt.Fprintf(&b, "+1212555%04d,A%d\n", i, i)
	}
	if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, noonNY); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), noonNY); err != nil {
		t.Fatal(err)
	}
	if c, err = s.SetStatus(ctx, c.ID, campaign.StatusRunning, noonNY); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestImportAccountsForEveryRowAndRollsBack(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 0, nil)
		if err := s.AddDNC(ctx, []string{"+12125550003"}, "test", noonNY); err != nil {
			t.Fatal(err)
		}
		in := "phone,name\n2125550001,a\n2125550002,b\n212-555-0001,dup\n2125550003,dnc\nxyz,bad\n"
		res, err := s.ImportContacts(ctx, c.ID, strings.NewReader(in), importer.Options{DefaultRegion: "US"}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 5 || res.Imported != 2 || res.Rejected != 3 {
			t.Fatalf("report = %+v", res.Report)
		}
		var lines []string
		s.Rejections(ctx, res.ID, func(r importer.Rejection) error {
			lines = append(lines, fmt.Sprintf("%d:%s", r.Line, r.Reason))
			return nil
		})
		want := []string{"4:duplicate of line 2 (+12125550001)", "5:on the do-not-call list (+12125550003)", `6:"xyz" is not a phone number (no digits)`}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Errorf("rejections = %q, want %q", lines, want)
		}
		// Importing the same list again: all already there.
		res, err = s.ImportContacts(ctx, c.ID, strings.NewReader("phone\n2125550001\n"), importer.Options{}, noonNY)
		if err != nil || res.Rejected != 1 || res.Rejections[0].Reason != "already in this campaign (+12125550001)" {
			t.Fatalf("reimport: %+v %v", res, err)
		}
		// An upload that breaks part-way, after several batches were
		// stored, leaves nothing behind.
		var b strings.Builder
		b.WriteString("phone\n")
		for i := range 5000 {
			fmt.Fprintf(&b, "+1212556%04d\n", i)
		}
		broken := io.MultiReader(strings.NewReader(b.String()), iotest.ErrReader(errors.New("connection reset by peer")))
		_, err = s.ImportContacts(ctx, c.ID, broken, importer.Options{BatchSize: 500}, noonNY)
		if err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("err = %v, want the read error", err)
		}
		// A binary file is refused whole.
		_, err = s.ImportContacts(ctx, c.ID, strings.NewReader("PK\x03\x04\x14\x00\x00\x00binary"), importer.Options{}, noonNY)
		var fe *importer.FileError
		if !errors.As(err, &fe) {
			t.Fatalf("err = %v, want a FileError", err)
		}
		st, _ := s.Stats(ctx, c.ID)
		if st.Contacts[campaign.ContactPending] != 2 {
			t.Fatalf("after failed import: %v, want only the 2 earlier contacts", st.Contacts)
		}
		if _, err := s.ImportContacts(ctx, "c_nope", strings.NewReader(in), importer.Options{}, noonNY); !errors.Is(err, campaign.ErrNotFound) {
			t.Fatalf("unknown campaign: %v", err)
		}
	})
}

func TestLeaseLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 100, func(c *campaign.Campaign) { c.Target = 30; c.MaxCPS = 1000 })
		got, err := s.Lease(ctx, "n1", 50, noonNY)
		if err != nil || len(got) != 30 {
			t.Fatalf("target 30: leased %d, %v", len(got), err)
		}
		l := got[0]
		if l.CampaignID != c.ID || l.FlowVersion != 1 || l.Trunk != "carrier" || l.CallerID != "+14155550100" || l.Fields["account"] == "" || l.Token == "" || !l.Expires.After(noonNY) {
			t.Errorf("lease = %+v", l)
		}
		if more, _ := s.Lease(ctx, "n2", 50, noonNY.Add(time.Second)); len(more) != 0 {
			t.Fatalf("leased %d past the target", len(more))
		}
		// The trunk's channel limit holds across campaigns and nodes.
		s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 35, MaxCPS: 1000})
		c2 := setup(t, s, 0, nil)
		s.ImportContacts(ctx, c2.ID, strings.NewReader("phone\n+12125559001\n+12125559002\n+12125559003\n+12125559004\n+12125559005\n+12125559006\n"), importer.Options{}, noonNY)
		s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 35, MaxCPS: 1000})
		more, _ := s.Lease(ctx, "n2", 50, noonNY.Add(2*time.Second))
		if len(more) != 5 {
			t.Fatalf("trunk of 35 with 30 live: leased %d, want 5", len(more))
		}
	})
}

func TestLeasePacingAndWindows(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		setup(t, s, 100, func(c *campaign.Campaign) { c.MaxCPS = 5 })
		got, _ := s.Lease(ctx, "n1", 50, noonNY)
		if len(got) != 5 {
			t.Fatalf("5 cps: leased %d in the first second", len(got))
		}
		if got, _ := s.Lease(ctx, "n1", 50, noonNY.Add(200*time.Millisecond)); len(got) != 1 {
			t.Fatalf("0.2 s later: leased %d, want 1", len(got))
		}
		if got, _ := s.Lease(ctx, "n1", 50, noonNY.Add(10*time.Second)); len(got) != 5 {
			t.Fatalf("burst is capped at one second: leased %d", len(got))
		}
		// 07:00 in New York: the window is closed.
		if got, _ := s.Lease(ctx, "n1", 50, time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)); len(got) != 0 {
			t.Fatalf("leased %d outside the calling window", len(got))
		}
	})
}

func TestWindowMustHoldInEveryZone(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 0, nil)
		// Idaho's 208 spans Boise (Mountain) and Los Angeles (Pacific).
		in := "phone\n+12125550001\n+12085550002\n"
		if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(in), importer.Options{}, noonNY); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Lease(ctx, "n1", 10, time.Date(2026, 3, 10, 14, 30, 0, 0, time.UTC)) // 08:30 in Boise, 07:30 in Los Angeles
		if len(got) != 1 || got[0].Number != "+12125550001" {
			t.Fatalf("leased %+v", got)
		}
	})
}

func TestConcurrentLeasingNeverDoubleLeases(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		setup(t, s, 1500, nil)
		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					got, err := s.Lease(ctx, fmt.Sprintf("n%d", w), 50, noonNY.Add(time.Duration(i)*time.Second))
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, l := range got {
						if prev, dup := seen[l.Number]; dup {
							errs <- fmt.Errorf("%s leased twice (%s and %s)", l.Number, prev, l.CallID)
						}
						seen[l.Number] = l.CallID
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(seen) != 1000 { // the campaign's target
			t.Fatalf("leased %d distinct contacts, want 1000", len(seen))
		}
	})
}

func TestResultsRetriesAndStaleTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 3, nil)
		ls, _ := s.Lease(ctx, "n1", 3, noonNY)
		if len(ls) != 3 {
			t.Fatalf("leased %d", len(ls))
		}
		res := func(l campaign.Lease, disp string, tags map[string]string) campaign.Result {
			r := campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: disp, StartedAt: noonNY, EndedAt: noonNY.Add(65 * time.Second), Path: []string{"start", "bye"}, Tags: tags}
			if disp == campaign.Answered {
				r.AnsweredAt = noonNY.Add(5 * time.Second)
			}
			return r
		}
		if _, err := s.Record(ctx, "n2", res(ls[0], campaign.Answered, nil), noonNY); !errors.Is(err, campaign.ErrForbidden) {
			t.Fatalf("other node: %v", err)
		}
		bad := res(ls[0], campaign.Answered, nil)
		bad.Token = "forged"
		if _, err := s.Record(ctx, "n1", bad, noonNY); !errors.Is(err, campaign.ErrStaleLease) {
			t.Fatalf("forged token: %v", err)
		}
		if ok, err := s.Record(ctx, "n1", res(ls[0], campaign.Answered, nil), noonNY); !ok || err != nil {
			t.Fatalf("record: %v %v", ok, err)
		}
		if ok, err := s.Record(ctx, "n1", res(ls[0], campaign.Answered, nil), noonNY); ok || err != nil {
			t.Fatalf("repeat: %v %v", ok, err)
		}
		s.Record(ctx, "n1", res(ls[1], campaign.Busy, nil), noonNY)
		s.Record(ctx, "n1", res(ls[2], campaign.Answered, map[string]string{"dnc": "true"}), noonNY)
		st, _ := s.Stats(ctx, c.ID)
		if st.Contacts[campaign.ContactDone] != 1 || st.Contacts[campaign.ContactPending] != 1 || st.Contacts[campaign.ContactDNC] != 1 || st.AnsweredCalls != 2 || st.TalkSeconds != 120 {
			t.Fatalf("stats = %+v", st)
		}
		// Busy is retried after the campaign's delay, not before.
		if got, _ := s.Lease(ctx, "n1", 5, noonNY.Add(9*time.Minute)); len(got) != 0 {
			t.Fatalf("busy retried after 9 minutes")
		}
		if got, _ := s.Lease(ctx, "n1", 5, noonNY.Add(11*time.Minute)); len(got) != 1 || got[0].Number != ls[1].Number {
			t.Fatalf("busy not retried after 11 minutes: %+v", got)
		}
		if n, sec, err := s.Answered(ctx, noonNY, noonNY.Add(2*time.Minute)); n != 2 || sec != 120 || err != nil {
			t.Fatalf("answered: %d calls, %g s, %v", n, sec, err)
		}
		if cs, err := s.CallSeconds(ctx, noonNY, noonNY.Add(2*time.Minute)); cs[c.ID] != 3*65 || err != nil {
			t.Fatalf("call seconds: %v %v", cs, err)
		}
		if _, err := s.Record(ctx, "n1", campaign.Result{CallID: "k_nope", Token: "x", Disposition: "answered"}, noonNY); !errors.Is(err, campaign.ErrNotFound) {
			t.Fatalf("unknown call: %v", err)
		}
		if _, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[0].CallID, Token: "x", Disposition: "maybe"}, noonNY); !errors.Is(err, campaign.ErrInvalid) {
			t.Fatalf("bad disposition: %v", err)
		}
	})
}

func TestExpiredLeaseComesBackAndLateResultIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 1, nil)
		s.LeaseTTL = time.Minute
		first, _ := s.Lease(ctx, "dead-node", 1, noonNY)
		if n, err := s.Reap(ctx, noonNY.Add(2*time.Minute)); n != 1 || err != nil {
			t.Fatalf("reaped %d, %v", n, err)
		}
		// cut_off retries after 5 minutes by default.
		second, _ := s.Lease(ctx, "n2", 1, noonNY.Add(8*time.Minute))
		if len(second) != 1 || second[0].Number != first[0].Number || second[0].Token == first[0].Token {
			t.Fatalf("contact did not come back: %+v", second)
		}
		late := campaign.Result{CallID: first[0].CallID, Token: first[0].Token, Disposition: campaign.Answered}
		if _, err := s.Record(ctx, "dead-node", late, noonNY.Add(9*time.Minute)); !errors.Is(err, campaign.ErrStaleLease) {
			t.Fatalf("late result: %v", err)
		}
		s.Record(ctx, "n2", campaign.Result{CallID: second[0].CallID, Token: second[0].Token, Disposition: campaign.Answered}, noonNY.Add(9*time.Minute))
		st, _ := s.Stats(ctx, c.ID)
		if st.Contacts[campaign.ContactDone] != 1 || st.Attempts[campaign.CutOff] != 1 || st.Attempts[campaign.Answered] != 1 {
			t.Fatalf("stats = %+v", st)
		}
		// ReleaseNode frees a gone node's calls at once.
		c2 := setup(t, s, 0, nil)
		s.ImportContacts(ctx, c2.ID, strings.NewReader("phone\n+12125558888\n"), importer.Options{}, noonNY)
		s.Lease(ctx, "n3", 1, noonNY.Add(10*time.Minute))
		if n, _ := s.ReleaseNode(ctx, "n3", noonNY.Add(10*time.Minute)); n != 1 {
			t.Fatalf("released %d", n)
		}
	})
}

func TestCampaignValidationAndTransitions(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 1})
		_, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "x", Trunk: "nope", CallerID: "+14155550100", Target: 5}, noonNY)
		var fe *campaign.FieldError
		if !errors.As(err, &fe) || fe.Field != "trunk" {
			t.Fatalf("unknown trunk: %v", err)
		}
		c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "x", Trunk: "carrier", CallerID: "+14155550100", Target: 5}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetStatus(ctx, c.ID, campaign.StatusRunning, noonNY); !errors.Is(err, campaign.ErrConflict) {
			t.Fatalf("start without a flow: %v", err)
		}
		if _, err := s.SetStatus(ctx, c.ID, campaign.StatusPaused, noonNY); !errors.Is(err, campaign.ErrConflict) {
			t.Fatalf("pause a draft: %v", err)
		}
		v, _ := s.SaveFlow(ctx, c.ID, []byte(`{"v":1}`), noonNY)
		v2, _ := s.SaveFlow(ctx, c.ID, []byte(`{"v":2}`), noonNY)
		if doc, _ := s.FlowDocument(ctx, c.ID, v); v != 1 || v2 != 2 || string(doc) != `{"v":1}` {
			t.Fatalf("flow versions %d %d, v1 = %s", v, v2, doc)
		}
		tok, _ := s.CreateToken(ctx, "ops", noonNY)
		if name, err := s.CheckToken(ctx, tok); name != "ops" || err != nil {
			t.Fatalf("token: %q %v", name, err)
		}
		if _, err := s.CheckToken(ctx, tok+"x"); !errors.Is(err, campaign.ErrUnauthorized) {
			t.Fatalf("bad token: %v", err)
		}
	})
}

// BenchmarkImportStore is a dial list through the store, as an upload
// goes: parse and normalise, dedupe against the campaign and the
// do-not-call lists, staged inserts a batch per transaction, rejection
// log, then publication. Its floor, in the same run, is the importer
// alone reading the same CSV into a sink that keeps nothing. Rows from
// -import-rows (default 200,000; the million: 1000000).
//
//	RACE= GOTESTFLAGS="-run x -bench ImportStore -benchtime 1x -args -import-rows 1000000" scripts/test ./campaign/sqlstore
func BenchmarkImportStore(b *testing.B) {
	ctx := context.Background()
	rows := *importRows
	var sb strings.Builder
	sb.WriteString("phone,first_name,account\n")
	for i := range rows {
		fmt.Fprintf(&sb, "+1%03d%03d%04d,Name%d,ACC%07d\n", 212+i/10_000_000%8*101, 200+i/10000%800, i%10000, i, i)
	}
	csv := sb.String()
	opt := importer.Options{DefaultRegion: "US"}
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "import.db")
			if db == "postgres" {
				dsn = testenv.PostgresDSN(b)
			}
			s, err := Open(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 100, MaxCPS: 10})
			var took, floor time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := importer.Import(ctx, strings.NewReader(csv), opt, keepNothing{}); err != nil {
					b.Fatal(err)
				}
				floor += time.Since(t0)
				c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "bench", Trunk: "carrier", CallerID: "+14155550100", Target: 10}, noonNY)
				if err != nil {
					b.Fatal(err)
				}
				t0 = time.Now()
				res, err := s.ImportContacts(ctx, c.ID, strings.NewReader(csv), opt, noonNY)
				if err != nil {
					b.Fatal(err)
				}
				took += time.Since(t0)
				if res.Imported != rows {
					b.Fatalf("imported %d of %d: %+v", res.Imported, rows, res.Report.ByReason)
				}
			}
			n := float64(rows * b.N)
			b.ReportMetric(n/took.Seconds(), "rows/s")
			b.ReportMetric(n/floor.Seconds(), "floor-rows/s")
			b.ReportMetric(floor.Seconds()/took.Seconds(), "x-floor")
		})
	}
}

var importRows = flag.Int("import-rows", 200_000, "rows BenchmarkImportStore imports")

// keepNothing is an importer.Sink that keeps nothing: the floor of an
// import through the store.
type keepNothing struct{}

func (keepNothing) Exclude(context.Context, []string) (map[string]string, error) { return nil, nil }
func (keepNothing) Contacts(context.Context, []importer.Contact) error           { return nil }
func (keepNothing) Reject(context.Context, importer.Rejection) error             { return nil }

// Two controllers share one database and one memcached. The dialing
// configuration every lease needs comes from the process or memcached,
// yet an update made through either controller is seen by the next lease
// of both; with memcached killed, leasing goes on from the database.
func TestDialingConfigCachedNeverStale(t *testing.T) {
	mc := testenv.StartMemcached(t)
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "test.db") },
		"postgres": func(t *testing.T) string { return testenv.PostgresDSN(t) },
	} {
		t.Run(name, func(t *testing.T) { testDialingConfig(t, mc, dsn(t)) })
	}
}

func testDialingConfig(t *testing.T, mc *testenv.Memcached, dsn string) {
	ctx := context.Background()
	client := memcache.New(mc.Addr)
	client.Timeout = 200 * time.Millisecond
	open := func() *Store {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.Cache = xmlrpc.MemcacheTTL{Client: client}
		return s
	}
	a, b := open(), open()
	c := setup(t, a, 100, nil)
	{

		lease := func(s *Store, node string, at time.Time) campaign.Lease {
			t.Helper()
			got, err := s.Lease(ctx, node, 1, at)
			if err != nil || len(got) != 1 {
				t.Fatalf("lease: %v %v", got, err)
			}
			return got[0]
		}
		at := noonNY
		if l := lease(a, "n1", at); l.CallerID != "+14155550100" {
			t.Fatalf("caller id %q", l.CallerID)
		}
		lease(a, "n1", at)
		lease(b, "n2", at)
		if sa, sb := a.ConfigStats(), b.ConfigStats(); sa.StoreReads.Load() != 1 || sa.LocalHits.Load() != 1 || sb.CacheHits.Load() != 1 || sb.StoreReads.Load() != 0 {
			t.Fatalf("reads: a store %d local %d; b memcached %d store %d", sa.StoreReads.Load(), sa.LocalHits.Load(), sb.CacheHits.Load(), sb.StoreReads.Load())
		}

		c.CallerID = "+14155550199"
		if _, err := b.UpdateCampaign(ctx, c, at); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Store{a, b} {
			if l := lease(s, "n1", at); l.CallerID != "+14155550199" {
				t.Fatalf("after the update: caller id %q", l.CallerID)
			}
		}

		mc.Kill()
		c.CallerID = "+14155550142"
		if _, err := a.UpdateCampaign(ctx, c, at); err != nil {
			t.Fatal(err)
		}
		if l := lease(b, "n2", at); l.CallerID != "+14155550142" {
			t.Fatalf("memcached down: caller id %q", l.CallerID)
		}
		if b.ConfigStats().CacheErrors.Load() == 0 {
			t.Fatal("memcached down, yet no cache error counted")
		}
		mc.Start()
	}
}

// Demand reports the minute more contacts become callable, from a calling
// window opening or retries falling due, so the scaler (whose boot lead is
// a few minutes) has nodes ready when they do.
func TestDemandForeseesWindowsAndRetries(t *testing.T) {
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
		// 07:58 in New York: the window opens at 08:00.
		early := time.Date(2026, 3, 10, 11, 58, 0, 0, time.UTC)
		d := demand(early)
		if d.Callable != 0 || len(d.Upcoming) != 1 || !d.Upcoming[0].At.Equal(early.Add(2*time.Minute)) || d.Upcoming[0].Target != 60 {
			t.Fatalf("before the window: callable %d, upcoming %+v; want 60 at 08:00", d.Callable, d.Upcoming)
		}
		// Noon, every contact waiting for a retry: 30 due in 4 minutes,
		// the rest in two hours.
		if _, err := s.DB().ExecContext(ctx, s.q(`UPDATE contacts SET next_at = CASE WHEN id % 10 < 3 THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END WHERE campaign_id = ?`),
			ms(noonNY.Add(4*time.Minute)), ms(noonNY.Add(2*time.Hour)), c.ID); err != nil {
			t.Fatal(err)
		}
		d = demand(noonNY)
		if d.Callable != 0 || len(d.Upcoming) != 1 || !d.Upcoming[0].At.Equal(noonNY.Add(4*time.Minute)) || d.Upcoming[0].Target != 30 {
			t.Fatalf("retries due: callable %d, upcoming %+v; want 30 at 12:04", d.Callable, d.Upcoming)
		}
	})
}

// The dispositions a node derives from Q.850 causes and failed IVRs are
// recorded, counted, and retried by the campaign's default rules: an
// invalid number never again, a failed IVR after 30 minutes, a rejected
// call after 4 hours.
func TestCauseAndIVRDispositionsRecordedAndRetried(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := setup(t, s, 3, nil)
		ls, _ := s.Lease(ctx, "n1", 3, noonNY)
		if len(ls) != 3 {
			t.Fatalf("leased %d", len(ls))
		}
		disps := []string{campaign.InvalidNumber, campaign.IVRFailed, campaign.Rejected}
		for i, d := range disps {
			r := campaign.Result{CallID: ls[i].CallID, Token: ls[i].Token, Disposition: d, StartedAt: noonNY, EndedAt: noonNY.Add(time.Minute)}
			if ok, err := s.Record(ctx, "n1", r, noonNY); !ok || err != nil {
				t.Fatalf("record %s: %v %v", d, ok, err)
			}
		}
		st, err := s.Stats(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range disps {
			if st.Attempts[d] != 1 {
				t.Errorf("stats attempts %v lack %s", st.Attempts, d)
			}
		}
		if st.Contacts[campaign.ContactFailed] != 1 || st.Contacts[campaign.ContactPending] != 2 || st.AnsweredCalls != 0 {
			t.Fatalf("contacts %v, answered %d", st.Contacts, st.AnsweredCalls)
		}
		if got, _ := s.Lease(ctx, "n1", 5, noonNY.Add(29*time.Minute)); len(got) != 0 {
			t.Fatalf("retried before 30 minutes: %+v", got)
		}
		if got, _ := s.Lease(ctx, "n1", 5, noonNY.Add(31*time.Minute)); len(got) != 1 || got[0].Number != ls[1].Number {
			t.Fatalf("ivr_failed not retried after 31 minutes: %+v", got)
		}
		if got, _ := s.Lease(ctx, "n1", 5, noonNY.Add(4*time.Hour+time.Minute)); len(got) != 1 || got[0].Number != ls[2].Number {
			t.Fatalf("rejected not retried after 4 hours: %+v", got)
		}
	})
}
