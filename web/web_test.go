package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/httpapi"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/browser"
	"github.com/elastidial/elastidial/internal/history"
	"github.com/elastidial/elastidial/storage"
)

// TestDashboardCampaignJourney drives the dashboard in headless Chromium
// as a campaign manager would: sign in, add a trunk, create a campaign,
// upload a dial list and read the import report, save a flow, start the
// campaign and watch calls in progress appear without reloading.
func TestDashboardCampaignJourney(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	token, _ := store.CreateToken(ctx, "manager", time.Now())
	mux := http.NewServeMux()
	api := &httpapi.API{Store: store, ValidateFlow: func(_ context.Context, doc []byte) error { return flow.Check(doc, nil) }}
	mux.Handle("/api/v1/", api.Handler())
	ring := history.New(1000)
	sample := func() { // what serve's sampler does every 5 s
		v := map[string]float64{}
		if err := history.SampleCampaigns(ctx, store, v); err != nil {
			t.Fatal(err)
		}
		ring.Add(time.Now(), v)
	}
	mux.Handle("GET /api/v1/campaigns/{id}/history", api.Require(campaign.PermRead, history.CampaignHandler(ring, time.Now)))
	recordings := &storage.Recordings{Store: &storage.Folder{Dir: t.TempDir()}}
	mux.Handle("GET /api/v1/recordings/", api.Require(campaign.PermResults, http.StripPrefix("/api/v1/recordings", recordings.Handler())))
	mux.Handle("/", Handler())
	d := openDashboard(t, serve(t, mux), 1280, 1100)
	signIn(d, "edt_wrong")
	d.WaitText("#login-error", "refused")
	signIn(d, token)
	d.Must("#view-campaigns:not([hidden])")

	d.Click("#tab-trunks")
	d.Type("#trunk-form [name=name]", "carrier")
	d.Click("#trunk-form button")
	d.WaitText("#trunks tbody", "carrier")

	d.Click("#tab-campaigns")
	d.Click("#new-campaign-box summary")
	d.Type("#new-campaign [name=name]", "Flu shots")
	d.Click(`#new-campaign [name=trunk] option[value=carrier]`)
	d.Type("#new-campaign [name=caller_id]", "555")
	d.Click("#campaign-submit")
	d.WaitText("#new-campaign-error", "caller_id")
	d.Type("#new-campaign [name=caller_id]", "+14155550100")
	// Calling hours in HH:MM per weekday; a typo is named before sending.
	d.Type("#new-campaign [name=from-mon]", "25:00")
	d.Click("#campaign-submit")
	d.WaitText("#new-campaign-error", `Monday from: "25:00" is not a time of day`)
	d.Must("#new-campaign [name=from-mon].bad")
	for _, day := range []string{"mon", "tue", "wed", "thu", "fri"} {
		d.Type("#new-campaign [name=from-"+day+"]", "09:00")
		d.Type("#new-campaign [name=to-"+day+"]", "20:00")
	}
	d.Type("#new-campaign [name=from-sat]", "10:00")
	d.Type("#new-campaign [name=to-sat]", "14:00")
	d.Click("#new-campaign [name=closed-sun]")
	d.Type("#new-campaign [name=retry-busy]", "15")
	d.Type("#new-campaign [name=max_attempts]", "4")
	d.Must("#new-campaign [name=retry-invalid_number]:disabled")
	d.Script(`document.querySelector("#new-campaign fieldset:nth-of-type(3)").scrollIntoView()`)
	d.Screenshot(browser.ScreenshotDir(), "campaign-form")
	d.Click("#campaign-submit")
	d.WaitText("#detail-name", "Flu shots")
	d.WaitText("#detail-status", "draft")
	d.WaitText("#detail-summary", "calls 09:00–20:00, Sat 10:00–14:00, Sun closed; up to 4 attempts per contact")
	cs, _ := store.Campaigns(ctx)
	c := cs[0]
	if c.Window != (campaign.Window{Start: 540, End: 1200}) || c.Weekdays["sat"] != (campaign.Window{Start: 600, End: 840}) ||
		c.Weekdays["sun"] != (campaign.Window{}) || len(c.Weekdays) != 2 || c.Retry[campaign.Busy].AfterSeconds != 900 || c.MaxAttempts != 4 || c.Trunk != "carrier" {
		t.Fatalf("stored campaign: window %+v weekdays %+v retry busy %+v attempts %d trunk %q", c.Window, c.Weekdays, c.Retry[campaign.Busy], c.MaxAttempts, c.Trunk)
	}
	// Only what the status allows is enabled.
	d.Must("[data-action=start]:enabled")
	d.Must("[data-action=pause]:disabled")
	d.Must("[data-action=resume]:disabled")
	// Editing shows the stored settings in the same units.
	d.Click("#edit-campaign")
	if v, _ := d.Eval(`return document.querySelector("#new-campaign [name=to-sat]").value`).(string); v != "14:00" {
		t.Fatalf("editing shows Saturday until %q", v)
	}
	d.Type("#new-campaign [name=name]", "Flu shots 2026")
	d.Script(`document.querySelector("#new-campaign [name=start_at]").value = "2026-03-10T09:30"`) // the date picker's value
	d.Click("#campaign-submit")
	d.WaitText("#detail-name", "Flu shots 2026")
	d.WaitText("#detail-summary", "starts")
	if c, _ := store.Campaign(ctx, c.ID); c.StartAt == nil || !c.StartAt.Equal(time.Date(2026, 3, 10, 9, 30, 0, 0, time.Local)) || c.Weekdays["sat"].End != 840 {
		t.Fatalf("after editing: start %v, Saturday %+v", c.StartAt, c.Weekdays["sat"])
	}
	d.WaitText("#campaigns tbody", "Flu shots 2026")

	list := filepath.Join(t.TempDir(), "list.csv")
	os.WriteFile(list, []byte("phone,first_name,appointment_date\n212-555-0101,Ann,2026-03-14\nnot a number,Bo,2026-03-15\n212-555-0102,Cy,2026-03-16\n"), 0o644)
	d.Upload("#dial-list", list)
	d.Click("#upload button")
	d.WaitText("#import-summary", "3 rows: 2 imported, 1 rejected")
	d.WaitText("#rejections", "is not a phone number")

	d.Script(`document.querySelector("#flow").value = arguments[0]`, `{"start": "a", "states": {"a": {"play": ["x/y"], "next": "b"}}}`)
	d.Click("#save-flow")
	d.WaitText("#flow-result", `unknown state "b"`)
	d.Script(`document.querySelector("#flow").value = arguments[0]`, string(examples.Reminder))
	d.Click("#save-flow")
	d.WaitText("#flow-result", "Saved as version 1")

	d.Click(`[data-action=start]`)
	d.WaitText("#detail-status", "running")
	d.Must("[data-action=start]:disabled")
	d.Must("[data-action=pause]:enabled")
	sample()

	// Nodes lease both contacts; the page shows them without a reload. The
	// campaign's window is 08:00-21:00 New York time, so lease at noon there.
	id := d.Text("#detail-id")
	noonNY := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	ls, err := store.Lease(ctx, "node-1", 10, noonNY)
	if err != nil || len(ls) != 2 {
		t.Fatalf("lease %s: %d %v", id, len(ls), err)
	}
	d.WaitText("#stat-inprogress", "2")
	d.WaitText("#by-state", "leased")
	time.Sleep(1100 * time.Millisecond) // the next sample a second later
	sample()
	// One callee confirms, the other line is busy.
	at := noonNY.Add(time.Minute)
	if err := recordings.Put(ctx, "calls/flu-0101.wav", storage.Tone(300, 1.2)); err != nil {
		t.Fatal(err)
	}
	for i, r := range []campaign.Result{
		{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Answered, Cause: 16, StartedAt: noonNY, AnsweredAt: noonNY.Add(5 * time.Second), EndedAt: at,
			Path: []string{"hello", "menu", "confirm"}, Tags: map[string]string{"result": "confirmed"}, Recording: "calls/flu-0101.wav"},
		{CallID: ls[1].CallID, Token: ls[1].Token, Disposition: campaign.Busy, Cause: 17, StartedAt: noonNY, EndedAt: noonNY.Add(3 * time.Second)},
	} {
		if ok, err := store.Record(ctx, "node-1", r, at); !ok || err != nil {
			t.Fatalf("result %d: %v %v", i, ok, err)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	sample()
	d.WaitText("#stat-eta-note", "attempts/min") // the pace of the last ten minutes
	d.WaitText("#stat-answer-rate", "50%")
	d.WaitText("#outcomes tbody", "confirmed")
	d.WaitText("#by-disposition tbody", "Busy")
	d.WaitText("#abandon-box", "0%")
	d.WaitText("#stat-done", "50%") // the busy one waits for its retry
	// Results: by the phone number as people write it, by outcome, by how
	// the call ended.
	d.WaitText("#result-count", "2 matching attempts")
	local := "(" + ls[0].Number[2:5] + ") " + ls[0].Number[5:8] + "-" + ls[0].Number[8:]
	d.Type("#result-q", local)
	d.Click("#result-search button")
	d.WaitText("#result-count", "1 matching attempts (2 in all)")
	d.WaitText("#results tbody", "confirmed")
	d.Click("#results tbody button.play") // the callee's recording, played in the page
	d.WaitFor("the recording to load in the player", func() bool {
		v, _ := d.Eval(`const a = document.querySelector("#results audio"); return a ? a.duration : 0`).(float64)
		return v > 1.15 && v < 1.25
	})
	time.Sleep(2500 * time.Millisecond) // a refresh of the live view
	d.Must("#results audio")
	d.Type("#result-q", "")
	d.Click(`#result-disposition option[value=busy]`)
	d.Click("#result-search button")
	d.WaitText("#results tbody", "Busy")
	if strings.Contains(d.Text("#results tbody"), "confirmed") {
		t.Fatal("the busy filter shows the answered call")
	}
	d.Script(`document.querySelector("#stat-answer-rate").scrollIntoView()`)
	d.Screenshot(browser.ScreenshotDir(), "campaign-rates")
	d.CheckChart("#chart", 2, []string{"in progress", "answered (total)"}, browser.Blue)
	d.Screenshot(browser.ScreenshotDir(), "campaign-live")

	d.Click(`[data-action=pause]`)
	d.WaitText("#detail-status", "paused")
	d.Must("[data-action=pause]:disabled")
	d.Must("[data-action=resume]:enabled")
	// Stop asks first; keeping the campaign changes nothing.
	d.Click(`[data-action=stop]`)
	d.WaitText("#confirm-stop", "Stop Flu shots 2026?")
	d.Screenshot(browser.ScreenshotDir(), "confirm-stop")
	d.Click("#confirm-stop-no")
	time.Sleep(300 * time.Millisecond)
	if got := d.Text("#detail-status"); got != "paused" {
		t.Fatalf("after keeping it, the campaign is %q", got)
	}
	d.Click(`[data-action=stop]`)
	d.Click("#confirm-stop-yes")
	d.WaitText("#detail-status", "completed")
	for _, a := range []string{"start", "pause", "resume", "stop"} {
		d.Must("[data-action=" + a + "]:disabled")
	}
}

// TestDashboardFollowsTheRole: a viewer signs in and sees no control its
// role may not use; the page forbids being framed by another site.
func TestDashboardFollowsTheRole(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	token, _, err := store.CreateAPIToken(ctx, campaign.Token{Name: "wallboard", Role: campaign.RoleViewer}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", (&httpapi.API{Store: store}).Handler())
	mux.Handle("/", Handler())
	url := serve(t, mux)
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("the dashboard may be framed: CSP %q, X-Frame-Options %q", csp, resp.Header.Get("X-Frame-Options"))
	}

	d := openDashboard(t, url, 0, 0)
	signIn(d, token)
	d.Must("#view-campaigns:not([hidden])")
	d.WaitText("#whoami", "wallboard (viewer)")
	for _, css := range []string{"#tab-ops", "#new-campaign", "#trunk-form", "#audio-form", "#upload", "#save-flow", "#download-results", "#edit-campaign",
		"#result-search", ".flow-tools", ".actions"} {
		d.Must(css + "[hidden]")
	}
	d.Must("#tab-trunks:not([hidden])")

	// Ops run the fleet and may start and stop campaigns, but see no
	// contact data and change no campaign.
	opsToken, _, err := store.CreateAPIToken(ctx, campaign.Token{Name: "night shift", Role: campaign.RoleOps}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d.Click("#logout")
	signIn(d, opsToken)
	d.WaitText("#whoami", "night shift (ops)")
	for _, css := range []string{"#tab-ops", ".actions", "#trunk-form"} {
		d.Must(css + ":not([hidden])")
	}
	for _, css := range []string{"#result-search", "#download-results", "#new-campaign-box", ".flow-tools", "#upload"} {
		d.Must(css + "[hidden]")
	}
}

// TestDashboardListsRecordings: a campaign manager opens a campaign and
// finds its calls' recordings, each with a signed link that plays
// without the API token.
func TestDashboardListsRecordings(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	noonNY := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	token, _ := store.CreateToken(ctx, "manager", time.Now())
	store.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 10})
	c, err := store.CreateCampaign(ctx, campaign.Campaign{Name: "Survey", Trunk: "carrier", CallerID: "+14155550100", Target: 5}, noonNY)
	if err != nil {
		t.Fatal(err)
	}
	store.ImportContacts(ctx, c.ID, strings.NewReader("phone\n+12125550101\n"), importer.Options{}, noonNY)
	store.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), noonNY)
	store.SetStatus(ctx, c.ID, campaign.StatusRunning, noonNY)
	ls, err := store.Lease(ctx, "node-1", 1, noonNY)
	if err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	rec := &storage.Recordings{Store: &storage.Folder{Dir: t.TempDir()}, SignKey: []byte("link-key")}
	key := "calls/" + ls[0].CallID + ".wav"
	wav := make([]byte, 44+1600)
	copy(wav, "RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x40\x06\x00\x00")
	if err := rec.Put(ctx, key, wav); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Record(ctx, "node-1", campaign.Result{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Answered, AnsweredAt: noonNY, Recording: key}, noonNY.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", (&httpapi.API{Store: store, SignRecording: rec.SignedPath}).Handler())
	mux.Handle("GET "+storage.SignedPrefix, rec.SignedHandler())
	mux.Handle("/", Handler())
	d := openDashboard(t, serve(t, mux), 0, 0)
	signIn(d, token)
	d.Click(`#campaigns tr[data-id="` + c.ID + `"]`)
	d.WaitText("#recordings", ls[0].CallID)
	d.WaitText("#recordings", "+12125550101")
	d.Must(`#recordings audio[src^="/recordings/calls/"]`)
	// The link plays without the token (fetch sends none).
	d.Script(`fetch(document.querySelector("#recordings a").href).then(r => {
		const p = document.createElement("p"); p.id = "probe"; p.textContent = r.status + " " + r.headers.get("Content-Type"); document.body.append(p);
	})`)
	d.WaitText("#probe", "200 audio/wav")
}

// newStore opens a fresh SQLite store, closed when the test ends.
func newStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	store, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "web.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// serve serves h on loopback until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// openDashboard starts headless Chromium (width by height, or its own
// size given 0) on the dashboard at url, signed out.
func openDashboard(t *testing.T, url string, width, height int) *browser.Browser {
	t.Helper()
	d := browser.Start(t)
	if width > 0 {
		d.Resize(width, height)
	}
	d.Open(url)
	return d
}

// signIn submits token on the sign-in form, as a user pastes it.
func signIn(d *browser.Browser, token string) {
	d.Type("#token", token)
	d.Click("#login-form button")
}
