package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/httpapi"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/campaign/webhook"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/internal/testenv"
)

// Noon in New York.
var noon = time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)

const secret = "s3cret-shared-with-the-crm"

// receiver is a CRM's webhook endpoint: it checks every signature with
// the receiver's own clock and counts events by id. While down it
// answers 503; while hung it holds requests until released.
type receiver struct {
	t     *testing.T
	clock *testclock.Clock
	srv   *httptest.Server

	mu       sync.Mutex
	down     bool
	hang     chan struct{}
	seen     map[string]int // event id → deliveries accepted
	events   []campaign.AttemptEvent
	refused  int
	arrived  chan string
	badSigns int
}

func newReceiver(t *testing.T, c *testclock.Clock) *receiver {
	r := &receiver{t: t, clock: c, seen: map[string]int{}, arrived: make(chan string, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := webhook.Verify(secret, req.Header.Get(webhook.SignatureHeader), body, r.clock.Now(), webhook.DefaultTolerance); err != nil {
		r.mu.Lock()
		r.badSigns++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	down, hang := r.down, r.hang
	r.mu.Unlock()
	if hang != nil {
		r.arrived <- "hung"
		<-hang
	}
	if down {
		r.mu.Lock()
		r.refused++
		r.mu.Unlock()
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	var ev campaign.AttemptEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.t.Errorf("receiver: %v in %s", err, body)
	}
	r.mu.Lock()
	r.seen[ev.ID]++
	r.events = append(r.events, ev)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setDown(v bool) { r.mu.Lock(); r.down = v; r.mu.Unlock() }

func (r *receiver) counts() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.seen {
		distinct++
		total += n
	}
	return
}

// api is the REST API over a store, as a campaign manager reaches it.
type api struct {
	t     testing.TB
	url   string
	token string
}

func (a *api) call(method, path string, in, out any) int {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.url+path, body)
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func serveAPI(t testing.TB, s *sqlstore.Store, c *testclock.Clock) *api {
	srv := httptest.NewServer((&httpapi.API{Store: s, Now: c.Now}).Handler())
	t.Cleanup(srv.Close)
	tok, err := s.CreateToken(context.Background(), "manager", noon)
	if err != nil {
		t.Fatal(err)
	}
	return &api{t: t, url: srv.URL, token: tok}
}

// eachDSN runs a test against a SQLite file and a PostgreSQL database;
// the test opens the store itself (twice, for a restart).
func eachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "webhook.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, testenv.PostgresDSN(t)) })
}

func open(t testing.TB, dsn string) *sqlstore.Store {
	s, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runningCampaign creates, through the API, a running campaign with a
// webhook to url and n contacts.
func runningCampaign(t testing.TB, s *sqlstore.Store, a *api, url string, n int) string {
	ctx := context.Background()
	if st := a.call("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 1000, "max_cps": 1000}, nil); st != 200 {
		t.Fatalf("trunk: %d", st)
	}
	var c campaign.Campaign
	if st := a.call("POST", "/api/v1/campaigns", map[string]any{"name": "Reminders", "trunk": "carrier", "caller_id": "+14155550100", "target": 1000, "max_cps": 1000,
		"webhook": map[string]any{"url": url, "secret": secret}}, &c); st != 201 {
		t.Fatalf("create: %d %+v", st, c)
	}
	var b strings.Builder
	b.WriteString("phone,name\n")
	for i := range n {
		fmt.Fprintf(&b, "+1212555%04d,N%d\n", i, i)
	}
	if _, err := s.ImportContacts(ctx, c.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, noon); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), noon); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, c.ID, campaign.StatusRunning, noon); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// callAll leases every contact and records disp for each, as nodes do.
func callAll(t testing.TB, s *sqlstore.Store, n int, disp string) []string {
	ctx := context.Background()
	ls, err := s.Lease(ctx, "node-1", n, noon)
	if err != nil || len(ls) != n {
		t.Fatalf("lease: %d of %d, %v", len(ls), n, err)
	}
	var ids []string
	for _, l := range ls {
		r := campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: disp, StartedAt: noon, EndedAt: noon.Add(30 * time.Second)}
		if disp == campaign.Answered {
			r.AnsweredAt = noon.Add(5 * time.Second)
			r.Tags = map[string]string{"result": "confirmed"}
		}
		if ok, err := s.Record(ctx, "node-1", r, noon.Add(30*time.Second)); err != nil || !ok {
			t.Fatalf("record %s: %v %v", l.CallID, ok, err)
		}
		ids = append(ids, l.CallID)
	}
	return ids
}

// drain runs the sender's passes until it finds nothing due.
func drain(t *testing.T, s *webhook.Sender) {
	t.Helper()
	for range 100 {
		n, err := s.Once(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("outbox never drained")
}

func deliveries(t *testing.T, a *api, campaignID, query string) []sqlstore.DeliveryInfo {
	var ds []sqlstore.DeliveryInfo
	if st := a.call("GET", "/api/v1/campaigns/"+campaignID+"/webhook/deliveries"+query, nil, &ds); st != 200 {
		t.Fatalf("deliveries: %d", st)
	}
	return ds
}

func TestWebhookSignedDeliveryAndSecretNeverShown(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		clk := testclock.New(noon.Add(time.Minute))
		s := open(t, dsn)
		a := serveAPI(t, s, clk)
		rcv := newReceiver(t, clk)
		id := runningCampaign(t, s, a, rcv.srv.URL+"/hooks/elastidial", 5)

		// The secret is never shown, and a change that leaves it out keeps it.
		var c map[string]any
		a.call("GET", "/api/v1/campaigns/"+id, nil, &c)
		if b, _ := json.Marshal(c); strings.Contains(string(b), secret) || c["webhook"] == nil {
			t.Fatalf("campaign as shown: %s", b)
		}
		c["name"] = "Reminders (March)"
		if st := a.call("PUT", "/api/v1/campaigns/"+id, c, nil); st != 200 {
			t.Fatalf("update without secret: %d", st)
		}
		var bad struct{ Error, Field string }
		if st := a.call("PUT", "/api/v1/campaigns/"+id, map[string]any{"name": "x", "trunk": "carrier", "caller_id": "+14155550100", "target": 1,
			"webhook": map[string]any{"url": "ftp://crm.example/hook", "secret": secret}}, &bad); st != 400 || bad.Field != "webhook.url" {
			t.Fatalf("bad url: %d %+v", st, bad)
		}

		var audit []struct{ Detail string }
		a.call("GET", "/api/v1/audit", nil, &audit)
		if b, _ := json.Marshal(audit); len(audit) == 0 || strings.Contains(string(b), secret) || !strings.Contains(string(b), "(redacted)") {
			t.Fatalf("audit log: %s", b)
		}

		calls := callAll(t, s, 5, campaign.Answered)
		snd := &webhook.Sender{Outbox: s, Now: clk.Now}
		drain(t, snd)
		distinct, total := rcv.counts()
		if distinct != 5 || total != 5 || rcv.badSigns != 0 {
			t.Fatalf("receiver: %d events, %d deliveries, %d bad signatures", distinct, total, rcv.badSigns)
		}
		ev := rcv.events[0]
		if ev.Event != "attempt.finished" || ev.CampaignID != id || ev.Disposition != campaign.Answered || ev.ContactState != campaign.ContactDone ||
			ev.AnsweredAt == nil || ev.Tags["result"] != "confirmed" || !strings.HasPrefix(ev.Phone, "+1212555") || ev.Fields["name"] == "" || ev.Attempt != 1 {
			t.Fatalf("event: %+v", ev)
		}
		for _, d := range deliveries(t, a, id, "") {
			if d.State != campaign.DeliveryDelivered || d.Tries != 1 || d.LastStatus != 204 || len(d.Log) != 1 || d.Log[0].Status != 204 || d.NextTry != nil {
				t.Fatalf("delivery log: %+v", d)
			}
		}
		if len(deliveries(t, a, id, "?state=pending")) != 0 || len(calls) != 5 {
			t.Fatal("pending deliveries left")
		}
	})
}

func TestVerifyRefusesTamperedAndReplayed(t *testing.T) {
	body := []byte(`{"id":"k1-1"}`)
	sig := webhook.Sign(secret, noon, body)
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", secret, sig, body, noon.Add(time.Minute), nil},
		{"other secret", "another-secret-of-16", sig, body, noon, webhook.ErrBadSignature},
		{"tampered body", secret, sig, []byte(`{"id":"k1-2"}`), noon, webhook.ErrBadSignature},
		{"replayed later", secret, sig, body, noon.Add(6 * time.Minute), webhook.ErrStale},
		{"from the future", secret, sig, body, noon.Add(-6 * time.Minute), webhook.ErrStale},
		{"time changed", secret, strings.Replace(sig, fmt.Sprint(noon.Unix()), fmt.Sprint(noon.Unix()+60), 1), body, noon, webhook.ErrBadSignature},
		{"no signature", secret, "t=1", body, noon, webhook.ErrMalformed},
		{"empty", secret, "", body, noon, webhook.ErrMalformed},
	} {
		if got := webhook.Verify(tc.secret, tc.header, tc.body, tc.now, webhook.DefaultTolerance); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The receiver is down: each try fails and is retried later, each wait
// longer (with jitter), until it is back; past the give-up age a delivery
// is dead, and redelivery on request sends it again.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		clk := testclock.New(noon.Add(time.Minute))
		s := open(t, dsn)
		a := serveAPI(t, s, clk)
		rcv := newReceiver(t, clk)
		id := runningCampaign(t, s, a, rcv.srv.URL, 3)
		rcv.setDown(true)
		callAll(t, s, 3, campaign.NoAnswer)
		snd := &webhook.Sender{Outbox: s, Now: clk.Now, Jitter: func() float64 { return 0.5 }}
		var waits []time.Duration
		for range 4 {
			drain(t, snd)
			ds := deliveries(t, a, id, "?state=pending")
			if len(ds) != 3 || ds[0].NextTry == nil {
				t.Fatalf("pending while down: %+v", ds)
			}
			wait := ds[0].NextTry.Sub(clk.Now())
			waits = append(waits, wait)
			clk.Add(wait / 2)
			if n, _ := snd.Once(context.Background()); n != 0 {
				t.Fatalf("retried %d before its time", n)
			}
			clk.Add(wait - wait/2)
		}
		// 10 s, 20 s, 40 s, 80 s, each 3/4 of it with jitter 0.5.
		want := []time.Duration{7500 * time.Millisecond, 15 * time.Second, 30 * time.Second, 60 * time.Second}
		if fmt.Sprint(waits) != fmt.Sprint(want) {
			t.Fatalf("waits %v, want %v", waits, want)
		}
		rcv.setDown(false)
		drain(t, snd)
		if distinct, total := rcv.counts(); distinct != 3 || total != 3 {
			t.Fatalf("after the receiver came back: %d events in %d deliveries", distinct, total)
		}
		ds := deliveries(t, a, id, "")
		if d := ds[0]; d.State != campaign.DeliveryDelivered || d.Tries != 5 || len(d.Log) != 5 || d.Log[0].Status != 204 || d.Log[4].Status != 503 || !strings.Contains(d.Log[4].Error, "maintenance") {
			t.Fatalf("log: %+v", d)
		}

		// Down for good: dead after a day of tries, then redelivered on request.
		rcv.setDown(true)
		ls, _ := s.Lease(context.Background(), "node-1", 3, clk.Now())
		if len(ls) != 0 {
			t.Fatalf("no-answers not due yet, leased %d", len(ls))
		}
		clk.Add(31 * time.Minute)
		ls, err := s.Lease(context.Background(), "node-1", 1, clk.Now())
		if err != nil || len(ls) != 1 {
			t.Fatalf("lease retry: %v %v", ls, err)
		}
		s.Record(context.Background(), "node-1", campaign.Result{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Busy}, clk.Now())
		for i := 0; i < 100; i++ {
			drain(t, snd)
			if len(deliveries(t, a, id, "?state=dead")) == 1 {
				break
			}
			clk.Add(time.Hour)
		}
		dead := deliveries(t, a, id, "?state=dead")
		if len(dead) != 1 || !strings.Contains(dead[0].LastError, "gave up after 24h0m0s") || dead[0].EventID != ls[0].CallID {
			t.Fatalf("dead: %+v", dead)
		}
		rcv.setDown(false)
		var red sqlstore.DeliveryInfo
		if st := a.call("POST", fmt.Sprintf("/api/v1/campaigns/%s/webhook/deliveries/%d/redeliver", id, dead[0].ID), nil, &red); st != 202 || red.State != campaign.DeliveryPending {
			t.Fatalf("redeliver: %d %+v", st, red)
		}
		drain(t, snd)
		var one sqlstore.DeliveryInfo
		a.call("GET", fmt.Sprintf("/api/v1/campaigns/%s/webhook/deliveries/%d", id, dead[0].ID), nil, &one)
		if one.State != campaign.DeliveryDelivered || !bytes.Contains(one.Body, []byte(ls[0].CallID)) {
			t.Fatalf("after redelivery: %+v", one)
		}
		if distinct, _ := rcv.counts(); distinct != 4 {
			t.Fatalf("%d distinct events, want 4", distinct)
		}
		if st := a.call("POST", fmt.Sprintf("/api/v1/campaigns/%s/webhook/deliveries/%d/redeliver", id, 99999), nil, nil); st != 404 {
			t.Fatalf("redeliver unknown: %d", st)
		}
	})
}

// A controller is killed while its try hangs at the receiver; another
// controller, started on the same database, delivers everything once the
// dead one's lease runs out. Nothing is lost; an event is delivered at
// most twice (the hung try may have reached the receiver). Two live
// controllers never deliver the same event twice.
func TestWebhookControllerRestartMidRetry(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		clk := testclock.New(noon.Add(time.Minute))
		s1 := open(t, dsn)
		a := serveAPI(t, s1, clk)
		rcv := newReceiver(t, clk)
		id := runningCampaign(t, s1, a, rcv.srv.URL, 40)
		rcv.setDown(true)
		callAll(t, s1, 40, campaign.Busy)
		first := &webhook.Sender{Outbox: s1, Now: clk.Now, Owner: "ctl-1", Batch: 40}
		drain(t, first) // every delivery failed once
		rcv.mu.Lock()
		rcv.down, rcv.hang = false, make(chan struct{})
		rcv.mu.Unlock()
		clk.Add(time.Minute)

		ctx, kill := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { first.Once(ctx); close(done) }()
		<-rcv.arrived // a try is in flight at the receiver
		kill()        // the controller dies mid-try
		<-done
		s1.Close()
		rcv.mu.Lock()
		close(rcv.hang)
		rcv.hang = nil
		rcv.mu.Unlock()

		// Two new controllers on the same database; the dead one's leases
		// still hold until they expire.
		s2, s3 := open(t, dsn), open(t, dsn)
		second := &webhook.Sender{Outbox: s2, Now: clk.Now, Owner: "ctl-2", Batch: 7}
		third := &webhook.Sender{Outbox: s3, Now: clk.Now, Owner: "ctl-3", Batch: 7}
		if n, _ := second.Once(context.Background()); n != 0 {
			t.Fatalf("claimed %d deliveries under the dead controller's lease", n)
		}
		clk.Add(2 * time.Minute) // lease (1 min) and any backoff over
		for _, snd := range []*webhook.Sender{second, third} {
			if n, err := snd.Once(context.Background()); n != 7 || err != nil {
				t.Fatalf("%s tried %d: %v", snd.Owner, n, err)
			}
		}
		var wg sync.WaitGroup
		for _, snd := range []*webhook.Sender{second, third} {
			wg.Add(1)
			go func() { defer wg.Done(); drain(t, snd) }()
		}
		wg.Wait()
		distinct, total := rcv.counts()
		if distinct != 40 {
			t.Fatalf("%d of 40 events delivered", distinct)
		}
		rcv.mu.Lock()
		for ev, n := range rcv.seen {
			if n > 2 {
				t.Errorf("event %s delivered %d times", ev, n)
			}
		}
		rcv.mu.Unlock()
		if total > 40+first.Batch {
			t.Fatalf("%d deliveries of 40 events", total)
		}
		a2 := serveAPI(t, s2, clk)
		ds := deliveries(t, a2, id, "?state=delivered&limit=1000")
		if len(ds) != 40 {
			t.Fatalf("%d delivered in the log", len(ds))
		}
		// The live controllers shared the work and never both sent one.
		by := map[string]int{}
		for _, d := range ds {
			n := 0
			for _, try := range d.Log {
				if try.Status == 204 {
					n++
					by[try.Owner]++
				}
			}
			if n != 1 {
				t.Errorf("delivery %d: %d successful tries by the live controllers: %+v", d.ID, n, d.Log)
			}
		}
		if by["ctl-2"] < 7 || by["ctl-3"] < 7 {
			t.Errorf("work not shared: %v", by)
		}
		t.Logf("40 events, %d deliveries (at least once)", total)
	})
}

func TestWebhookValidation(t *testing.T) {
	for _, tc := range []struct {
		w     campaign.Webhook
		field string
	}{
		{campaign.Webhook{URL: "https://crm.example/hook", Secret: secret}, ""},
		{campaign.Webhook{URL: "crm.example/hook", Secret: secret}, "webhook.url"},
		{campaign.Webhook{URL: "https://u:p@crm.example/hook", Secret: secret}, "webhook.url"},
		{campaign.Webhook{URL: "https://crm.example/hook", Secret: "short"}, "webhook.secret"},
		{campaign.Webhook{URL: "https://crm.example/hook"}, "webhook.secret"},
		{campaign.Webhook{URL: "https://crm.example/hook", Secret: secret, GiveUpAfterSeconds: -1}, "webhook.give_up_after_seconds"},
	} {
		err := tc.w.Validate(false)
		var fe *campaign.FieldError
		if got := ""; err != nil {
			if !errorsAs(err, &fe) {
				t.Fatalf("%+v: %v", tc.w, err)
			}
			got = fe.Field
			if got != tc.field {
				t.Errorf("%+v: field %q, want %q", tc.w, got, tc.field)
			}
		} else if tc.field != "" {
			t.Errorf("%+v: accepted, want %s refused", tc.w, tc.field)
		}
	}
}

func errorsAs(err error, fe **campaign.FieldError) bool {
	f, ok := err.(*campaign.FieldError)
	*fe = f
	return ok
}

// A call whose node died is cut off by the reaper: that is a finished
// attempt too, and it is delivered. Old deliveries leave the log.
func TestWebhookCutOffAndPrune(t *testing.T) {
	eachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := testclock.New(noon)
		s := open(t, dsn)
		a := serveAPI(t, s, clk)
		rcv := newReceiver(t, clk)
		id := runningCampaign(t, s, a, rcv.srv.URL, 2)
		ls, err := s.Lease(ctx, "node-1", 2, noon)
		if err != nil || len(ls) != 2 {
			t.Fatalf("lease: %v %v", ls, err)
		}
		clk.Add(s.LeaseTTL + time.Minute)
		if n, err := s.Reap(ctx, clk.Now()); err != nil || n != 2 {
			t.Fatalf("reap: %d %v", n, err)
		}
		snd := &webhook.Sender{Outbox: s, Now: clk.Now}
		drain(t, snd)
		rcv.mu.Lock()
		evs := append([]campaign.AttemptEvent(nil), rcv.events...)
		rcv.mu.Unlock()
		if len(evs) != 2 || evs[0].Disposition != campaign.CutOff || evs[0].ContactState != campaign.ContactPending || evs[0].Phone == "" {
			t.Fatalf("cut-off events: %+v", evs)
		}
		if n, err := s.PruneDeliveries(ctx, clk.Now(), 100); err != nil || n != 0 {
			t.Fatalf("pruned fresh deliveries: %d %v", n, err)
		}
		if n, err := s.PruneDeliveries(ctx, clk.Now().Add(time.Second), 1); err != nil || n != 1 {
			t.Fatalf("prune: %d %v", n, err)
		}
		if ds := deliveries(t, a, id, ""); len(ds) != 1 {
			t.Fatalf("%d deliveries after pruning one", len(ds))
		}
	})
}

// A webhook may not reach the cloud's instance metadata (link-local).
func TestWebhookRefusesLinkLocal(t *testing.T) {
	clk := testclock.New(noon)
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	a := serveAPI(t, s, clk)
	id := runningCampaign(t, s, a, "http://169.254.169.254/latest/meta-data/", 1)
	callAll(t, s, 1, campaign.Busy)
	clk.Add(time.Minute)
	drain(t, &webhook.Sender{Outbox: s, Now: clk.Now, Timeout: time.Second})
	ds := deliveries(t, a, id, "")
	if len(ds) != 1 || ds[0].State != campaign.DeliveryPending || !strings.Contains(ds[0].LastError, "link-local") {
		t.Fatalf("link-local webhook: %+v", ds)
	}
}

// Removing a campaign's webhook ends its pending deliveries (dead, saying
// why) and forgets its secret.
func TestWebhookRemoved(t *testing.T) {
	clk := testclock.New(noon.Add(time.Minute))
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	a := serveAPI(t, s, clk)
	rcv := newReceiver(t, clk)
	id := runningCampaign(t, s, a, rcv.srv.URL, 2)
	callAll(t, s, 2, campaign.Busy)
	var c map[string]any
	a.call("GET", "/api/v1/campaigns/"+id, nil, &c)
	delete(c, "webhook")
	if st := a.call("PUT", "/api/v1/campaigns/"+id, c, nil); st != 200 {
		t.Fatalf("remove webhook: %d", st)
	}
	drain(t, &webhook.Sender{Outbox: s, Now: clk.Now})
	ds := deliveries(t, a, id, "?state=dead")
	if len(ds) != 2 || ds[0].LastError != "the campaign has no webhook any more" {
		t.Fatalf("after removal: %+v", ds)
	}
	if _, total := rcv.counts(); total != 0 {
		t.Fatalf("%d sent after removal", total)
	}
	// Adding it back needs the secret again.
	c["webhook"] = map[string]any{"url": rcv.srv.URL}
	var e struct{ Field string }
	if st := a.call("PUT", "/api/v1/campaigns/"+id, c, &e); st != 400 || e.Field != "webhook.secret" {
		t.Fatalf("webhook without a secret: %d %+v", st, e)
	}
}
