package web

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/httpapi"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/browser"
	"github.com/elastidial/elastidial/internal/history"
	"github.com/elastidial/elastidial/storage"
)

// guarded is a dashboard over a store with one campaign, its flow and
// prompts, counting API requests and refusals.
type guarded struct {
	store          *sqlstore.Store
	url            string
	campaign       campaign.Campaign
	requests, r401 atomic.Int64
}

func newGuarded(t *testing.T) *guarded {
	ctx := context.Background()
	store := newStore(t)
	g := &guarded{store: store}
	var err error
	store.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 30, MaxCPS: 5})
	g.campaign, err = store.CreateCampaign(ctx, campaign.Campaign{Name: "Flu shots", Trunk: "carrier", CallerID: "+14155550100", Target: 5}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SaveFlow(ctx, g.campaign.ID, examples.Reminder, time.Now()); err != nil {
		t.Fatal(err)
	}
	audio := &storage.Library{Store: &storage.Folder{Dir: t.TempDir()}}
	for _, p := range []string{"hello", "menu", "confirmed", "cancelled", "opted_out"} {
		audio.Put(ctx, "reminder", p+".wav", storage.Tone(440, 0.6))
	}
	api := &httpapi.API{Store: store}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api.Handler())
	mux.Handle("GET /api/v1/audio", api.Require(campaign.PermRead, audio.Handler()))
	mux.Handle("GET /api/v1/audio/{set}/{name}", api.Require(campaign.PermRead, audio.PlayHandler()))
	ring := history.New(100)
	for i := 5; i >= 0; i-- {
		ring.Add(time.Now().Add(-time.Duration(i)*time.Minute), map[string]float64{"c/" + g.campaign.ID + "/in_progress": float64(i), "c/" + g.campaign.ID + "/attempts": float64(10 * (5 - i))})
	}
	mux.Handle("GET /api/v1/campaigns/{id}/history", api.Require(campaign.PermRead, history.CampaignHandler(ring, time.Now)))
	mux.Handle("/", Handler())
	g.url = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &status{ResponseWriter: w, code: 200}
		mux.ServeHTTP(rec, r)
		if len(r.URL.Path) > 8 && r.URL.Path[:8] == "/api/v1/" {
			g.requests.Add(1)
			if rec.code == http.StatusUnauthorized {
				g.r401.Add(1)
			}
		}
	}))
	return g
}

type status struct {
	http.ResponseWriter
	code int
}

func (s *status) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// TestSignInGuardsEveryTab: signed out, no tab shows or loads anything;
// a role sees only its tabs; a token revoked mid-session signs the page
// out at once and nothing keeps polling with it.
func TestSignInGuardsEveryTab(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t)
	tok, desc, err := g.store.CreateAPIToken(ctx, campaign.Token{Name: "maria", Role: campaign.RoleManager}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := openDashboard(t, g.url, 1280, 1000)
	d.Must("#login:not([hidden])")
	d.Must("#tabs[hidden]")
	// Even forced from the console, a tab does not load while signed out.
	for _, v := range []string{"campaigns", "trunks", "audio", "ops"} {
		d.Script(`show(arguments[0])`, v)
	}
	time.Sleep(2500 * time.Millisecond)
	if n := g.requests.Load(); n != 0 {
		t.Fatalf("signed out, the page made %d API requests", n)
	}
	d.Must("#view-campaigns[hidden]")

	signIn(d, tok)
	d.WaitText("#whoami", "maria (manager)")
	d.Must("#tab-ops[hidden]") // a manager has no fleet permission
	before := g.requests.Load()
	d.Script(`show("ops")`)
	time.Sleep(2500 * time.Millisecond)
	if d.Find("#view-ops:not([hidden])") != "" {
		t.Fatal("a manager opened the ops view")
	}
	d.Click(`#campaigns tr[data-id="` + g.campaign.ID + `"]`)
	d.WaitText("#detail-name", "Flu shots")
	d.Must("#results") // managers see results
	_ = before

	// The token is revoked while the campaign view polls: the page signs
	// out with the reason, and stops.
	if _, err := g.store.RevokeToken(ctx, desc.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	d.WaitText("#login-error", "Your session ended")
	d.Must("#tabs[hidden]")
	d.Must("#view-campaigns[hidden]")
	refused := g.r401.Load()
	time.Sleep(5 * time.Second) // two and a half polling periods
	if n := g.r401.Load(); n != refused || n > 4 {
		t.Fatalf("refused requests: %d when signed out, %d five seconds later", refused, n)
	}
	if errs := d.ConsoleErrors("status of 401"); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// TestDashboardAtPhoneWidth: at 500 px every tab fits the screen, with no
// sideways scrolling, and the charts and the flow graph shrink to fit.
func TestDashboardAtPhoneWidth(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t)
	tok, _ := g.store.CreateToken(ctx, "admin", time.Now())
	d := openDashboard(t, g.url, 500, 1000)
	fits := func(where string) {
		t.Helper()
		w, _ := d.Eval(`return [document.documentElement.scrollWidth, document.documentElement.clientWidth]`).([]any)
		if w[0].(float64) > w[1].(float64) {
			t.Errorf("%s: the page is %v px wide on a %v px screen", where, w[0], w[1])
		}
	}
	fits("sign-in")
	signIn(d, tok)
	d.Click(`#campaigns tr[data-id="` + g.campaign.ID + `"]`)
	d.WaitText("#detail-name", "Flu shots")
	// The range picker sets the time axis; the last five minutes fill
	// the chart at 15 minutes, the default.
	span := func(want string) {
		t.Helper()
		d.WaitFor("a time axis of "+want+" s", func() bool {
			span, _ := d.Eval(`return document.querySelector("#chart").dataset.span`).(string)
			return span == want
		})
	}
	span("900")
	d.Click(`#campaign-range option[value="6h"]`)
	span("21600")
	d.Click(`#campaign-range option[value="15m"]`)
	span("900")
	d.CheckChart("#chart", 6, []string{"in progress"}, browser.Blue)
	d.Script(`document.querySelector("#chart").scrollIntoView()`)
	d.Screenshot(browser.ScreenshotDir(), "phone-chart")
	d.Must(`#flow-graph .node[data-state="menu"]`)
	fits("campaign")
	d.Screenshot(browser.ScreenshotDir(), "phone-campaign")
	d.Script(`document.querySelector("#flow-graph").scrollIntoView()`)
	d.Click(`#flow-graph .node[data-state="menu"]`)
	d.WaitText("#state-title", "State menu")
	fits("flow builder")
	d.Screenshot(browser.ScreenshotDir(), "phone-flow")
	d.Click("#new-campaign-box summary")
	d.Script(`document.querySelector("#new-campaign").scrollIntoView()`)
	fits("campaign form")
	d.Screenshot(browser.ScreenshotDir(), "phone-form")
	d.Click("#tab-trunks")
	d.WaitText("#trunks tbody", "carrier")
	fits("trunks")
	d.Click("#tab-audio")
	d.WaitText("#audio-files tbody", "reminder/hello.wav")
	d.WaitText("#audio-files tbody", "0.6 s")
	fits("audio")
	d.Screenshot(browser.ScreenshotDir(), "phone-audio")
	if errs := d.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
