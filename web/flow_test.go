package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/httpapi"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/internal/browser"
	"github.com/elastidial/elastidial/internal/history"
	"github.com/elastidial/elastidial/storage"
)

// TestFlowBuilder: a campaign manager builds an appointment confirmation
// in the visual builder: prompts picked from the audio library and played,
// a menu key leading to a new state, problems shown while editing, the
// graph drawn, the JSON one click away, and the flow saved.
func TestFlowBuilder(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	token, _ := store.CreateToken(ctx, "manager", time.Now())
	if err := store.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 5}); err != nil {
		t.Fatal(err)
	}
	c, err := store.CreateCampaign(ctx, campaign.Campaign{Name: "Dental reminders", Trunk: "carrier", CallerID: "+14155550100", Target: 5}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	audio := &storage.Library{Store: &storage.Folder{Dir: t.TempDir()}}
	for _, p := range []string{"hello", "menu", "thanks"} {
		if _, err := audio.Put(ctx, "dental", p+".wav", storage.Tone(440, 0.8)); err != nil {
			t.Fatal(err)
		}
	}
	api := &httpapi.API{Store: store, ValidateFlow: func(ctx context.Context, doc []byte) error {
		return flow.Check(doc, func(p string) bool { ok, _ := audio.Exists(ctx, p); return ok })
	}}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api.Handler())
	mux.Handle("GET /api/v1/audio", api.Require(campaign.PermRead, audio.Handler()))
	mux.Handle("GET /api/v1/audio/{set}/{name}", api.Require(campaign.PermRead, audio.PlayHandler()))
	mux.Handle("GET /api/v1/campaigns/{id}/history", api.Require(campaign.PermRead, history.CampaignHandler(history.New(10), time.Now)))
	mux.Handle("/", Handler())
	d := openDashboard(t, serve(t, mux), 1280, 1100)
	signIn(d, token)
	d.Click(`#campaigns tr[data-id="` + c.ID + `"]`)
	d.WaitText("#detail-name", "Dental reminders")
	d.WaitText("#flow-graph", "No states yet")

	// The first state plays a greeting picked from the library.
	d.Type("#new-state-name", "hello")
	d.Click("#add-state")
	d.WaitText("#state-title", "State hello (start)")
	d.WaitText("#flow-problems", "hello: has nowhere to go")
	d.Click(`#state-form [name=play-0] option[value="dental/hello"]`)
	d.Click("#state-form .prompt-pick button.play")
	d.WaitFor("the greeting to load in the player", func() bool {
		v, _ := d.Eval(`const a = document.querySelector("#state-form audio"); return a ? a.duration : 0`).(float64)
		return v > 0.75 && v < 0.85
	})
	// Then a menu: "+ new state…" makes it; it is renamed and made a
	// question whose key 1 leads to a thank-you.
	d.Click(`#state-form [name=go-Then] option[value="+new"]`)
	d.Must(`#flow-graph .edge[data-from="hello"][data-to="hello_next"]`)
	d.Click(`#flow-graph [data-state="hello_next"]`)
	d.Type("#state-form [name=state-name]", "menu\n")
	d.WaitText("#state-title", "State menu")
	d.Click(`#state-form [name=action] option[value=gather]`)
	d.WaitText("#flow-problems", "menu: asks for digits but no key leads anywhere")
	d.Must(`#flow-graph .node.bad[data-state="menu"]`)
	d.Click(`#state-form [name=gather-prompt] option[value="dental/menu"]`)
	d.Type("#state-form [name=new-key]", "1")
	d.Click("#add-key")
	d.Click(`#flow-graph [data-state="menu_1"]`)
	d.Type("#state-form [name=state-name]", "confirm\n")
	d.WaitText("#state-title", "State confirm")
	d.Click(`#state-form [name=action] option[value=set]`)
	d.Type(`#state-form [name=tag-result]`, "confirmed\n")
	d.Click(`#state-form [name=go-Then] option[value="+new"]`)
	d.WaitFor("the problems to clear", func() bool { return d.Text("#flow-ok") == "No problems found." })
	d.Must(`#flow-graph .edge[data-from="menu"][data-to="confirm"]`)
	d.WaitText(`#flow-graph .edge[data-from="menu"][data-to="confirm"]`, "key 1")

	// The JSON is one click away and follows the builder; a prompt typed
	// there that the library lacks is named at once.
	d.Click("#flow-json summary")
	var doc struct {
		Start  string
		States map[string]map[string]any
	}
	text, _ := d.Eval(`return document.querySelector("#flow").value`).(string)
	if err := json.Unmarshal([]byte(text), &doc); err != nil || doc.Start != "hello" || doc.States["menu"]["on"].(map[string]any)["1"] != "confirm" {
		t.Fatalf("the JSON box holds %s (%v)", text, err)
	}
	d.Script(`const f = document.querySelector("#flow"); f.value = f.value.replace('"dental/hello"', '"dental/nope"'); f.dispatchEvent(new Event("input"))`)
	d.WaitText("#flow-problems", `hello: prompt "dental/nope" is not in the audio library`)
	d.Must(`#flow-graph .node.bad[data-state="hello"]`)
	d.Click("#save-flow")
	d.WaitText("#flow-result", `prompt "dental/nope" is not in the audio library`)
	d.Script(`const f = document.querySelector("#flow"); f.value = f.value.replace('"dental/nope"', '"dental/hello"'); f.dispatchEvent(new Event("input"))`)
	d.Click("#save-flow")
	d.WaitText("#flow-result", "Saved as version 1")
	saved, err := store.FlowDocument(ctx, c.ID, 1)
	if err != nil || !strings.Contains(string(saved), `"confirmed"`) {
		t.Fatalf("stored flow %s (%v)", saved, err)
	}
	if n, _ := d.Eval(`return document.querySelectorAll("#flow-graph .node").length`).(float64); n != 4 {
		t.Errorf("the graph draws %v states, want 4", n)
	}
	d.Script(`document.querySelector("#flow-graph").scrollIntoView()`)
	png := d.Screenshot(browser.ScreenshotDir(), "flow-builder")
	if n := browser.PNGPixels(t, png, [3]int{239, 246, 255}); n < 2000 { // the states' boxes
		t.Errorf("the screenshot shows %d pixels of state boxes", n)
	}
	if errs := d.ConsoleErrors(c.ID + "/flow - Failed to load resource: the server responded with a status of 422"); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
