package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/browser"
	"github.com/elastidial/elastidial/nodeapi"
)

// TestOpsDashboard: ops open the dashboard in a browser and see the node
// the scaler launched for a running campaign, and what it costs.
func TestOpsDashboard(t *testing.T) {
	srv := startServe(t)
	call := srv.call
	call("PUT", "/api/v1/trunks/carrier", `{"max_channels":120,"max_cps":20}`)
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	_, body := call("POST", "/api/v1/campaigns", `{"name":"Ops view","trunk":"carrier","caller_id":"`+where.callerID+`","target":50}`)
	id := body[strings.Index(body, `"c_`)+1:]
	id = id[:strings.Index(id, `"`)]
	call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"bye","states":{"bye":{"hangup":true}}}`)
	call("POST", "/api/v1/campaigns/"+id+"/contacts", "phone\n"+where.number(101)+"\n"+where.number(102)+"\n")
	if code, body := call("POST", "/api/v1/campaigns/"+id+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}

	d := browser.Start(t)
	d.Resize(1280, 1100)
	d.Open(srv.base)
	d.Type("#token", srv.token)
	d.Click("#login-form button")
	d.Must("#view-campaigns:not([hidden])")
	// Audio: a prompt Asterisk cannot play is refused with what is needed;
	// a good one lands in the library.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "song.mp3"), []byte("ID3 not audio"), 0o644)
	os.WriteFile(filepath.Join(dir, "welcome.wav"), silence(8000, 0.5), 0o644)
	d.Click("#tab-audio")
	d.Upload("#audio-file", filepath.Join(dir, "song.mp3"))
	d.Click("#audio-form button")
	d.WaitText("#audio-result", "WAV PCM 16-bit mono")
	d.Upload("#audio-file", filepath.Join(dir, "welcome.wav"))
	d.Click("#audio-form button")
	d.WaitText("#audio-result", "Stored prompts/welcome.wav")
	d.WaitText("#audio-files tbody", "prompts/welcome.wav")
	// Each prompt shows its length and format, and plays in the page.
	row := `#audio-files tr[data-key="prompts/welcome.wav"]`
	d.WaitText(row, "0.5 s")
	d.WaitText(row, "WAV PCM 16-bit mono, 8 kHz")
	d.Click(row + " button.play")
	d.WaitFor("the prompt to load in the player", func() bool {
		v, _ := d.Eval(`const a = document.querySelector(arguments[0] + " audio"); return a ? a.duration : 0`, row).(float64)
		return v > 0.45 && v < 0.55
	})
	d.Screenshot(browser.ScreenshotDir(), "audio")

	// The launched node registers, takes both calls and reports one
	// answered: its own numbers, and the campaign's share of the cost.
	nodeID := srv.waitNodes(t, 1, 15*time.Second)[0] // the scaler launched it
	rpc := func(cred, method string, arg, reply any) {
		t.Helper()
		if err := srv.rpc(t, cred, method, arg, reply); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}
	reg := srv.register(t, nodeID, 100)
	var next nodeapi.NextResponse
	rpc(reg.Token, nodeapi.MethodNext, nodeapi.NextRequest{Free: 5}, &next)
	var hb nodeapi.HeartbeatResponse
	rpc(reg.Token, nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{ActiveCalls: 2, Capacity: 100, CPU: 0.37, Load1: 0.8, AMIConnected: true, TimingOK: true,
		ChannelOK: true, TrunkOK: true, AudioVersion: next.AudioVersion, PendingResults: 1}, &hb)
	rpc(reg.Token, nodeapi.MethodNext, nodeapi.NextRequest{Free: 5, AudioVersion: next.AudioVersion}, &next)
	if len(next.Calls) != 2 {
		t.Fatalf("the node got %d calls, want 2", len(next.Calls))
	}
	now := time.Now().Unix()
	var res nodeapi.ResultResponse
	rpc(reg.Token, nodeapi.MethodResult, nodeapi.ResultRequest{CallID: next.Calls[0].CallID, Token: next.Calls[0].Token, Disposition: nodeapi.DispAnswered,
		Cause: 16, StartedAt: now - 40, AnsweredAt: now - 30, EndedAt: now, Path: []string{"bye"}}, &res)

	d.Click("#tab-trunks")
	d.WaitText(`#trunks tr[data-trunk="carrier"]`, "1 of 120 (1%)")
	d.Must(`#trunks tr[data-trunk="carrier"] meter`)

	d.Click("#tab-ops")
	nodeRow := `#nodes tr[data-node="` + nodeID + `"]`
	d.WaitText(nodeRow, "2 / 100 (2%)")
	d.WaitText(nodeRow, " ago")
	d.WaitText(nodeRow, "0.80")
	d.WaitText("#ops-cpu-note", "CPU 37% is the host's") // local nodes share this machine
	d.WaitText("#cost-campaigns tbody", "Ops view")
	d.WaitText("#cost-campaigns tbody", "100%")
	d.WaitText("#nodes tbody", nodeID)
	d.WaitText("#ops-demand", "1") // one call still live, the other answered and done
	d.WaitText("#ops-cost", "$0.0850")
	d.WaitText("#ops-nodes", "1")
	// The chart spans the 15 minutes picked and its lines reach only as far
	// back as the samples (the leader stores one every 5 s): on a loaded
	// machine the page got here with too short a line to find. Wait for
	// 60 s of them, about 80 px of line. The node keeps beating
	// meanwhile, or the scaler ends it as silent.
	beat := time.Now()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if time.Since(beat) > 5*time.Second {
			rpc(reg.Token, nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{ActiveCalls: 1, Capacity: 100, CPU: 0.37, Load1: 0.8, AMIConnected: true, TimingOK: true,
				ChannelOK: true, TrunkOK: true, AudioVersion: next.AudioVersion}, &hb)
			beat = time.Now()
		}
		_, body := srv.call("GET", "/api/v1/history?last=15m", "")
		var h struct{ Times []int64 }
		json.Unmarshal([]byte(body), &h)
		if len(h.Times) > 0 && h.Times[len(h.Times)-1]-h.Times[0] >= 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after two minutes the history holds %d samples: %s", len(h.Times), body)
		}
	}
	// The line looked for is ready capacity's (green, along the top): the
	// demand of one or two calls lies on the axis once 100 ready slots set
	// the scale, and a longer history only made that likelier.
	d.CheckChart("#ops-chart", 2, []string{"demand", "ready capacity", "active calls", "cost"}, [3]int{22, 163, 74})
	if y2, _ := d.Eval(`return document.querySelector("#ops-chart").dataset.y2ticks`).(string); !strings.Contains(y2, "$") {
		t.Errorf("the cost axis reads %q, not dollars", y2)
	}
	d.CheckChart("#cost-chart", 1, []string{"cost in the hour", "mean nodes"}, [3]int{180, 35, 24})
	png := d.Screenshot(browser.ScreenshotDir(), "ops")
	if n := browser.PNGPixels(t, png, browser.Blue); n < 50 {
		t.Errorf("the ops screenshot shows %d pixels of the demand line", n)
	}
	// On a phone: the same view, nothing wider than the screen.
	d.Resize(500, 1000)
	d.WaitFor("the charts to shrink to the screen", func() bool {
		w, _ := d.Eval(`return [document.documentElement.scrollWidth, document.documentElement.clientWidth, document.querySelector("#ops-chart canvas").width / devicePixelRatio]`).([]any)
		return len(w) == 3 && w[0].(float64) <= w[1].(float64) && w[2].(float64) <= w[1].(float64)
	})
	d.Screenshot(browser.ScreenshotDir(), "phone-ops")
	if errs := d.ConsoleErrors("/api/v1/audio/prompts - Failed to load resource: the server responded with a status of 422"); len(errs) > 0 { // the MP3 refused on purpose
		t.Errorf("console errors: %q", errs)
	}
}
