package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/speech/pollyfake"
	"github.com/elastidial/elastidial/storage/s3fake"
)

// TestServeSpeaksThroughPolly is the production speech path through the
// real SDK against protocol fakes: -tts polly renders the reminder's
// greeting with Polly, keeps it in S3 beside the audio library, and a
// node stepping the call gets a presigned URL to the rendering.
func TestServeSpeaksThroughPolly(t *testing.T) {
	s3 := httptest.NewServer(s3fake.New("audio-bucket"))
	defer s3.Close()
	polly := pollyfake.New()
	defer polly.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv := startServe(t, "-audio", "s3://audio-bucket/prod/audio", "-s3-endpoint", s3.URL, "-tts", "polly", "-polly-endpoint", polly.URL)
	for _, p := range []string{"hello", "menu", "confirmed", "cancelled", "opted_out"} {
		if code, body := srv.upload("reminder", p+".wav", silence(8000, 0.3)); code != 201 {
			t.Fatalf("upload %s: %d %s", p, code, body)
		}
	}
	where := daytime(time.Now())
	srv.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":10,"max_cps":1}`)
	_, body := srv.call("POST", "/api/v1/campaigns", `{"name":"Polly","trunk":"carrier","caller_id":"`+where.callerID+`","target":5}`)
	var camp struct{ ID string }
	json.Unmarshal([]byte(body), &camp)
	if code, body := srv.call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", string(examples.Reminder)); code != 200 {
		t.Fatalf("flow: %d %s", code, body)
	}
	if code, body := srv.call("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "phone,first_name,appointment_date\n"+where.number(7)+",Ann,2026-03-14\n"); code != 200 {
		t.Fatalf("contacts: %d %s", code, body)
	}
	if code, body := srv.call("POST", "/api/v1/campaigns/"+camp.ID+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	reg := srv.register(t, srv.waitNodes(t, 1, 15*time.Second)[0], 10)
	rpc := func(method string, arg, reply any) {
		t.Helper()
		if err := srv.rpc(t, reg.Token, method, arg, reply); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}
	// Ask as an agent does: with the versions the last answer named, until
	// the contact is leased (its qualification may not have run yet).
	var next nodeapi.NextResponse
	for deadline := time.Now().Add(15 * time.Second); len(next.Calls) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			_, c := srv.call("GET", "/api/v1/campaigns/"+camp.ID, "")
			_, st := srv.call("GET", "/api/v1/campaigns/"+camp.ID+"/stats", "")
			t.Fatalf("dialer.next: %+v\ncampaign %s\nstats %s", next, c, st)
		}
		rpc(nodeapi.MethodNext, nodeapi.NextRequest{Free: 1, AudioVersion: next.AudioVersion, TrunksVersion: next.TrunksVersion}, &next)
	}
	if len(next.Calls) != 1 {
		t.Fatalf("dialer.next: %+v", next)
	}
	c := next.Calls[0]
	var step nodeapi.StepResponse
	rpc(nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: c.CampaignID, FlowVersion: c.FlowVersion,
		State: "hello", Input: nodeapi.InputDone, Fields: c.Fields}, &step)
	a := step.Action
	if step.State != "greet" || a.Kind != nodeapi.ActionSpeak || len(a.Files) != 1 || !strings.HasPrefix(a.Files[0].URL, s3.URL) {
		t.Fatalf("greet: %+v", step)
	}
	reqs := polly.Requests()
	if len(reqs) != 1 || reqs[0].Text != "Hello Ann. This is a reminder of your appointment on" || reqs[0].VoiceId != "Joanna" || reqs[0].SampleRate != "8000" {
		t.Fatalf("polly requests: %+v", reqs)
	}
	resp, err := http.Get(a.Files[0].URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned rendering: %v %v", resp, err)
	}
	wav, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(wav)
	if hex.EncodeToString(sum[:]) != a.Files[0].SHA256 || int64(len(wav)) != a.Files[0].Size {
		t.Fatalf("rendering of %d bytes does not match %+v", len(wav), a.Files[0])
	}
	// The speech store is not the audio library: nodes' manifests do not
	// grow with every sentence.
	var m nodeapi.ManifestResponse
	rpc(nodeapi.MethodManifest, nodeapi.ManifestRequest{}, &m)
	if len(m.Files) != 5 || m.Version != next.AudioVersion {
		t.Fatalf("manifest after speech: %d files, version %s (was %s)", len(m.Files), m.Version, next.AudioVersion)
	}
}
