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
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/browser"
)

// TestDashboardCampaignJourney drives the dashboard in headless Chromium
// as a campaign manager would: sign in, add a trunk, create a campaign,
// upload a dial list and read the import report, save a flow, start the
// campaign and watch calls in progress appear without reloading.
func TestDashboardCampaignJourney(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "web.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	token, _ := store.CreateToken(ctx, "manager", time.Now())
	mux := http.NewServeMux()
	api := &httpapi.API{Store: store, ValidateFlow: func(_ context.Context, doc []byte) error { return flow.Check(doc, nil) }}
	mux.Handle("/api/v1/", api.Handler())
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	d := browser.Start(t)
	d.Open(srv.URL)
	d.Type("#token", "edt_wrong")
	d.Click("#login-form button")
	d.WaitText("#login-error", "refused")
	d.Type("#token", token)
	d.Click("#login-form button")
	d.Must("#view-campaigns:not([hidden])")

	d.Click("#tab-trunks")
	d.Type("#trunk-form [name=name]", "carrier")
	d.Click("#trunk-form button")
	d.WaitText("#trunks tbody", "carrier")

	d.Click("#tab-campaigns")
	d.Type("#new-campaign [name=name]", "Flu shots")
	d.Type("#new-campaign [name=trunk]", "carrier")
	d.Type("#new-campaign [name=caller_id]", "555")
	d.Click("#new-campaign button")
	d.WaitText("#new-campaign-error", "caller_id")
	d.Type("#new-campaign [name=caller_id]", "+14155550100")
	d.Click("#new-campaign button")
	d.WaitText("#detail-name", "Flu shots")
	d.WaitText("#detail-status", "draft")

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

	// Nodes lease both contacts; the page shows them without a reload. The
	// campaign's window is 08:00-21:00 New York time, so lease at noon there.
	id := d.Text("#detail-id")
	noonNY := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	if ls, err := store.Lease(ctx, "node-1", 10, noonNY); err != nil || len(ls) != 2 {
		t.Fatalf("lease %s: %d %v", id, len(ls), err)
	}
	d.WaitText("#stat-inprogress", "2")
	d.WaitText("#by-state", "leased")

	d.Click(`[data-action=pause]`)
	d.WaitText("#detail-status", "paused")
	d.Click(`[data-action=pause]`)
	d.WaitText("#action-error", "cannot become paused")
}

// TestDashboardFollowsTheRole: a viewer signs in and sees no control its
// role may not use; the page forbids being framed by another site.
func TestDashboardFollowsTheRole(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "web.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	token, _, err := store.CreateAPIToken(ctx, campaign.Token{Name: "wallboard", Role: campaign.RoleViewer}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", (&httpapi.API{Store: store}).Handler())
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("the dashboard may be framed: CSP %q, X-Frame-Options %q", csp, resp.Header.Get("X-Frame-Options"))
	}

	d := browser.Start(t)
	d.Open(srv.URL)
	d.Type("#token", token)
	d.Click("#login-form button")
	d.Must("#view-campaigns:not([hidden])")
	d.WaitText("#whoami", "wallboard (viewer)")
	for _, css := range []string{"#tab-ops", "#new-campaign", "#trunk-form", "#audio-form", "#upload", "#save-flow", "#download-results"} {
		d.Must(css + "[hidden]")
	}
	d.Must("#tab-trunks:not([hidden])")
}
