package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/storage"
)

// speechFiles serves two renderings as the controller's speech store
// does, and returns them as call.step hands them out.
func speechFiles(t *testing.T) []nodeapi.AudioFile {
	bodies := map[string][]byte{"/a": storage.Tone(440, 0.2), "/b": storage.Tone(550, 0.2)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := bodies[r.URL.Path]; ok {
			w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	var out []nodeapi.AudioFile
	for _, p := range []string{"/a", "/b"} {
		sum := sha256.Sum256(bodies[p])
		h := hex.EncodeToString(sum[:])
		out = append(out, nodeapi.AudioFile{Name: h + ".wav", Size: int64(len(bodies[p])), SHA256: h, URL: srv.URL + p})
	}
	return out
}

// A spoken call: the node fetches each rendering before it plays it,
// says a date and an amount with Asterisk's SAY commands, gathers digits
// after a spoken prompt, and carries the call's variables from step to
// step.
func TestSpokenCall(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+7000": {Outcome: asterisksim.Answer, Digits: []string{"4321"}}}, 20*time.Millisecond)
	files := speechFiles(t)
	r.ctl.set(func(f *fakeController) { f.speech = files })
	// The stock sound money is said with (core sounds on a node).
	os.MkdirAll(filepath.Join(r.sim.Sounds, "digits"), 0o755)
	os.WriteFile(filepath.Join(r.sim.Sounds, "digits", "dollars.wav"), storage.Tone(300, 0.1), 0o644)
	c := lease("s1", "+7000")
	c.CampaignID = "speech"
	r.ctl.add(c)
	eventually(t, 10*time.Second, "result", func() bool { _, ok := r.ctl.result("s1"); return ok })
	got, _ := r.ctl.result("s1")
	if got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[greet date owe pin bye]" || got.Tags[TagIVRError] != "" {
		t.Fatalf("spoken call: %+v", got)
	}
	r.ctl.mu.Lock()
	var inputs []string
	for _, s := range r.ctl.steps {
		inputs = append(inputs, s.State+":"+s.Input+s.Digits+"/"+s.Vars["lang"]+"/"+s.Fields["phone"])
	}
	r.ctl.mu.Unlock()
	if want := "[:start//+7000 greet:done/fr/+7000 date:done/fr/+7000 owe:done/fr/+7000 pin:digits4321/fr/+7000]"; fmtPath(inputs) != want {
		t.Errorf("steps %v\nwant  %s", inputs, want)
	}
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(r.sim.Sounds, "elastidial-tts", f.Name)); err != nil || st.Size() != f.Size {
			t.Errorf("rendering %s on the node: %v", f.Name, err)
		}
	}
}

// Speech the node cannot fetch fails the step, named in ivr_error; the
// call never plays silence in its place.
func TestSpeechNotFetchedFailsTheStep(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+7001": {Outcome: asterisksim.Answer}}, 20*time.Millisecond)
	files := speechFiles(t)
	files[0].URL += "-gone"
	r.ctl.set(func(f *fakeController) { f.speech = files })
	c := lease("s2", "+7001")
	c.CampaignID = "speech"
	r.ctl.add(c)
	eventually(t, 15*time.Second, "result", func() bool { _, ok := r.ctl.result("s2"); return ok })
	got, _ := r.ctl.result("s2")
	if fmtPath(got.Path) != "[greet bye]" || got.Tags[TagIVRError] == "" {
		t.Fatalf("unfetchable speech: %+v", got)
	}
	t.Logf("ivr_error: %s", got.Tags[TagIVRError])
}
