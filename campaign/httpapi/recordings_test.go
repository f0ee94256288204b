package httpapi

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/storage"
)

// silence is a playable WAV: 8 kHz mono, n samples of silence.
func silence(n int) []byte {
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	return b
}

func eachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "api.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, testenv.PostgresDSN(t)) })
}

// recordingServer is the controller's routes for recordings: the API,
// the token-authenticated download and the signed links.
func recordingServer(t *testing.T, dsn string, clk *testclock.Clock) (*client, *sqlstore.Store, *storage.Recordings, *httptest.Server) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rec := &storage.Recordings{Store: &storage.Folder{Dir: t.TempDir()}, SignKey: []byte("derived-from-the-cluster-secret"), Now: clk.Now}
	a := &API{Store: s, Now: clk.Now, SignRecording: rec.SignedPath}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", a.Handler())
	mux.Handle("GET /api/v1/recordings/", a.Require(campaign.PermResults, http.StripPrefix("/api/v1/recordings", rec.Handler())))
	mux.Handle("GET "+storage.SignedPrefix, rec.SignedHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tok, err := s.CreateToken(ctx, "manager", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, url: srv.URL, token: tok}, s, rec, srv
}

// recordedCalls makes a running campaign of n contacts whose calls are
// answered and recorded at the clock's now; it returns the call ids.
func recordedCalls(t *testing.T, c *client, s *sqlstore.Store, rec *storage.Recordings, clk *testclock.Clock, retentionDays, n int) (string, []string) {
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 100, "max_cps": 100}, 200, nil)
	var camp campaign.Campaign
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Survey", "trunk": "carrier", "caller_id": "+14155550100", "target": 10, "recording_retention_days": retentionDays}, 201, &camp)
	var b strings.Builder
	b.WriteString("phone\n")
	for i := range n {
		fmt.Fprintf(&b, "+1212555%04d\n", i)
	}
	if _, err := s.ImportContacts(ctx, camp.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	s.SaveFlow(ctx, camp.ID, []byte(`{"start":"bye"}`), clk.Now())
	if _, err := s.SetStatus(ctx, camp.ID, campaign.StatusRunning, clk.Now()); err != nil {
		t.Fatal(err)
	}
	ls, err := s.Lease(ctx, "node-1", n, clk.Now())
	if err != nil || len(ls) != n {
		t.Fatalf("lease: %d %v", len(ls), err)
	}
	var ids []string
	for i, l := range ls {
		key := fmt.Sprintf("calls/%s-%d.wav", l.CallID, i)
		if err := rec.Put(ctx, key, silence(800*(i+1))); err != nil {
			t.Fatal(err)
		}
		now := clk.Now()
		if _, err := s.Record(ctx, "node-1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered, AnsweredAt: now, EndedAt: now, Recording: key, Tags: map[string]string{"result": "done"}}, now); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, l.CallID)
	}
	return camp.ID, ids
}

type recordingItem struct {
	sqlstore.RecordingRow
	URL           string    `json:"url"`
	SignedURL     string    `json:"signed_url"`
	SignedExpires time.Time `json:"signed_url_expires"`
}

// get fetches u without an API token: its status, the start of its
// body and its length.
func get(t *testing.T, u string) (int, string, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b[:min(len(b), 200)]), len(b)
}

func TestRecordingsListedAndSignedLinks(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		clk := testclock.New(noonUTC)
		c, s, rec, srv := recordingServer(t, dsn, clk)
		id, calls := recordedCalls(t, c, s, rec, clk, 0, 3)
		var items []recordingItem
		c.json("GET", "/api/v1/campaigns/"+id+"/recordings?expires_in=600", nil, 200, &items)
		if len(items) != 3 {
			t.Fatalf("%d recordings listed", len(items))
		}
		var one []recordingItem
		c.json("GET", "/api/v1/campaigns/"+id+"/recordings?call_id="+calls[1], nil, 200, &one)
		if len(one) != 1 || one[0].CallID != calls[1] || one[0].Attempt != 1 || one[0].Disposition != campaign.Answered || !strings.HasPrefix(one[0].Phone, "+1212555") {
			t.Fatalf("one attempt's recording: %+v", one)
		}
		it := items[0]
		if !it.SignedExpires.Equal(noonUTC.Add(10*time.Minute)) || !strings.HasPrefix(it.SignedURL, storage.SignedPrefix+it.Key+"?") {
			t.Fatalf("signed link: %+v", it)
		}
		// The signed link works without a token; the token link needs one.
		status, body, n := get(t, srv.URL+it.SignedURL)
		if status != 200 || n != 44+2*800*indexOf(calls, it.CallID)+2*800 || !strings.HasPrefix(body, "RIFF") {
			t.Fatalf("signed download: %d, %d bytes %q", status, n, body)
		}
		if status, _, _ := get(t, srv.URL+it.URL); status != 401 {
			t.Fatalf("token link without a token: %d", status)
		}
		if st, _ := c.do("GET", it.URL, "", nil); st != 200 {
			t.Fatalf("token link: %d", st)
		}
		// Tampered links are refused: another key, a later expiry, another signature.
		u, _ := url.Parse(it.SignedURL)
		q := u.Query()
		other := items[1].Key
		for name, bad := range map[string]string{
			"other recording": storage.SignedPrefix + other + "?" + u.RawQuery,
			"longer expiry":   u.Path + "?expires=" + fmt.Sprint(noonUTC.Add(time.Hour).Unix()) + "&sig=" + q.Get("sig"),
			"flipped sig":     u.Path + "?expires=" + q.Get("expires") + "&sig=" + flip(q.Get("sig")),
			"no sig":          u.Path + "?expires=" + q.Get("expires"),
			"path escape":     storage.SignedPrefix + "../" + it.Key + "?" + u.RawQuery,
		} {
			if status, body, _ := get(t, srv.URL+bad); status != 403 && status != 404 {
				t.Errorf("%s: %d %s", name, status, body)
			} else if status == 200 {
				t.Errorf("%s: served", name)
			}
		}
		// Expired: refused, saying so.
		clk.Add(10 * time.Minute)
		if status, body, _ := get(t, srv.URL+it.SignedURL); status != 403 || !strings.Contains(body, "expired") {
			t.Fatalf("expired link: %d %s", status, body)
		}
		// Bad parameters name themselves.
		var e errorBody
		c.json("GET", "/api/v1/campaigns/"+id+"/recordings?expires_in=10", nil, 400, &e)
		if e.Field != "expires_in" {
			t.Fatalf("bad expires_in: %+v", e)
		}
	})
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func flip(hex string) string {
	if hex == "" {
		return "00"
	}
	b := []byte(hex)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

// Recordings older than their campaign's retention are deleted, files
// and references, by the sweeper on an injected clock; the attempts (the
// results) stay, and a campaign without retention keeps its recordings.
func TestRecordingRetentionSweep(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		clk := testclock.New(noonUTC)
		c, s, rec, srv := recordingServer(t, dsn, clk)
		ctx := context.Background()
		keep, _ := recordedCalls(t, c, s, rec, clk, 0, 2)
		clk.Add(24 * time.Hour)
		short, calls := recordedCalls(t, c, s, rec, clk, 7, 3)
		var items []recordingItem
		c.json("GET", "/api/v1/campaigns/"+short+"/recordings", nil, 200, &items)
		link := items[0].SignedURL

		clk.Add(7*24*time.Hour - time.Second) // not yet
		if n, err := rec.Sweep(ctx, s, clk.Now(), 100); err != nil || n != 0 {
			t.Fatalf("sweep before retention: %d %v", n, err)
		}
		clk.Add(2 * time.Second)
		if n, err := rec.Sweep(ctx, s, clk.Now(), 2); err != nil || n != 2 {
			t.Fatalf("sweep (limit 2): %d %v", n, err)
		}
		if n, err := rec.Sweep(ctx, s, clk.Now(), 100); err != nil || n != 1 {
			t.Fatalf("second sweep: %d %v", n, err)
		}
		if n, _ := rec.Sweep(ctx, s, clk.Now().Add(365*24*time.Hour), 100); n != 0 {
			t.Fatalf("a campaign without retention lost %d recordings", n)
		}
		c.json("GET", "/api/v1/campaigns/"+short+"/recordings", nil, 200, &items)
		if len(items) != 0 {
			t.Fatalf("listed after retention: %+v", items)
		}
		c.json("GET", "/api/v1/campaigns/"+keep+"/recordings", nil, 200, &items)
		if len(items) != 2 {
			t.Fatalf("kept campaign: %d recordings", len(items))
		}
		for _, call := range calls {
			if _, err := rec.Store.Get(ctx, fmt.Sprintf("calls/%s-%d.wav", call, indexOf(calls, call))); err == nil {
				t.Errorf("file of %s still there", call)
			}
		}
		// The results stay, without the recording.
		status, csv := c.do("GET", "/api/v1/campaigns/"+short+"/results.csv", "", nil)
		if status != 200 || strings.Count(string(csv), "\n") != 4 || strings.Contains(string(csv), "calls/") {
			t.Fatalf("results after retention: %d %s", status, csv)
		}
		// A link made before, still unexpired by its own clock, finds nothing.
		rec.Now = func() time.Time { return noonUTC.Add(24 * time.Hour) }
		if status, _, _ := get(t, srv.URL+link); status != 404 {
			t.Fatalf("link to a deleted recording: %d", status)
		}
		var bad errorBody
		c.json("PUT", "/api/v1/campaigns/"+short, map[string]any{"name": "x", "trunk": "carrier", "caller_id": "+14155550100", "target": 1, "recording_retention_days": -1}, 400, &bad)
		if bad.Field != "recording_retention_days" {
			t.Fatalf("bad retention: %+v", bad)
		}
	})
}

var noonUTC = time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
