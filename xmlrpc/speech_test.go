package xmlrpc

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/speech"
	"github.com/elastidial/elastidial/storage"
)

// toneEngine speaks every text as a tone, and can be told to fail.
type toneEngine struct {
	calls atomic.Int64
	down  atomic.Bool
}

func (e *toneEngine) Name() string { return "tone" }
func (e *toneEngine) Synthesize(_ context.Context, voice, language, text string) ([]byte, error) {
	e.calls.Add(1)
	if e.down.Load() {
		return nil, errors.New("engine down")
	}
	return storage.Tone(200+float64(len(text)), 0.3), nil
}

// call.step renders a spoken state through the speech store: the node
// gets the file to fetch and the name to play; the same sentence for
// another call is not synthesised again; an engine that fails leaves
// the action with no audio (the node fails the step).
func TestStepRendersSpeech(t *testing.T) {
	engine := &toneEngine{}
	store := &storage.Folder{Dir: t.TempDir(), Secret: []byte("k")}
	files := httptest.NewServer(store.Handler())
	defer files.Close()
	store.BaseURL = files.URL + "/"
	svc := &Service{Secret: []byte("s3cret"), Nodes: &fakeNodes{}, Dialer: &fakeDialer{owner: map[string]string{}},
		Flows: &Flows{Source: &countingSource{}, Local: true}, Speech: &speech.Renderer{Engine: engine, Store: store}}
	srv := httptest.NewServer(svc.Server())
	defer srv.Close()
	n := &node{t: t, url: srv.URL, token: "s3cret"}
	var reg nodeapi.RegisterResponse
	if err := n.call(nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: "i-1", Capacity: 10}, &reg); err != nil {
		t.Fatal(err)
	}
	n.token = reg.Token
	var next nodeapi.NextResponse
	if err := n.call(nodeapi.MethodNext, nodeapi.NextRequest{Free: 3}, &next); err != nil || len(next.Calls) != 3 {
		t.Fatalf("next: %+v %v", next, err)
	}
	greet := func(c nodeapi.Call) nodeapi.Action {
		var r nodeapi.StepResponse
		if err := n.call(nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: "c1", FlowVersion: 1,
			State: "hello", Input: nodeapi.InputDone, Fields: map[string]string{"first_name": "Ann"}}, &r); err != nil || r.State != "greet" {
			t.Fatalf("greet: %+v %v", r, err)
		}
		return r.Action
	}
	a := greet(next.Calls[0])
	if a.Kind != nodeapi.ActionSpeak || len(a.Files) != 1 || len(a.Prompts) != 1 ||
		a.Prompts[0] != nodeapi.SpeechPrefix+strings.TrimSuffix(a.Files[0].Name, ".wav") || !strings.HasPrefix(a.Files[0].URL, files.URL) {
		t.Fatalf("spoken action: %+v", a)
	}
	node := &storage.Syncer{Dir: t.TempDir()}
	if err := node.Fetch(context.Background(), a.Files[0]); err != nil {
		t.Fatalf("the node fetches it: %v", err)
	}
	if b := greet(next.Calls[1]); b.Files[0].SHA256 != a.Files[0].SHA256 || engine.calls.Load() != 1 {
		t.Fatalf("second call: %+v, %d syntheses", b, engine.calls.Load())
	}
	engine.down.Store(true)
	var r nodeapi.StepResponse
	if err := n.call(nodeapi.MethodStep, nodeapi.StepRequest{CallID: next.Calls[2].CallID, Token: next.Calls[2].Token, CampaignID: "c1", FlowVersion: 1,
		State: "hello", Input: nodeapi.InputDone, Fields: map[string]string{"first_name": "Bo"}}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Action.Kind != nodeapi.ActionSpeak || len(r.Action.Files) != 0 || r.Action.Text == "" {
		t.Fatalf("engine down: %+v", r.Action)
	}
}
