package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// speechFlow looks the contact up in a CRM, speaks the contact's name by
// text-to-speech, branches on the plan the CRM answered, says a date with
// SAY DATETIME in the contact's language, gathers a PIN ended by '#' into
// a variable, checks it against the contact's and posts the outcome back
// to the CRM.
const speechFlow = `{
  "name": "e2e speech",
  "start": "lookup",
  "language": "{{lang}}",
  "states": {
    "lookup": {"http": {"method": "GET", "url": "CRM/customers/{{phone}}", "timeout_ms": 2000, "vars": {"plan": "plan"}},
               "next": "hello", "failed": "hello"},
    "hello": {"say": "Hello {{name}}. This is a reminder of your appointment on", "next": "plan", "failed": "speech_failed"},
    "plan": {"branch": [{"value": "{{plan}}", "op": "eq", "arg": "gold", "goto": "gold"}], "next": "due"},
    "gold": {"set": {"plan": "gold"}, "next": "due"},
    "due": {"say": "{{due}}", "as": "date", "next": "pin", "failed": "say_failed"},
    "pin": {
      "gather": {"say": "Please enter your PIN, then press the hash key.", "max_digits": 8, "timeout_ms": 20000,
                 "retries": 0, "terminator": "#", "var": "entered"},
      "on": {"*": "check"}, "timeout": "no_pin", "failed": "speech_failed"
    },
    "check": {"branch": [{"value": "{{entered}}", "op": "eq", "arg": "{{pin}}", "goto": "ok"}], "next": "wrong"},
    "ok": {"set": {"result": "verified", "entered": "{{entered}}"}, "next": "report"},
    "wrong": {"set": {"result": "wrong_pin", "entered": "{{entered}}"}, "next": "report"},
    "report": {"http": {"method": "POST", "url": "CRM/outcomes", "params": {"phone": "{{phone}}", "entered": "{{entered}}"}},
               "next": "thanks", "failed": "thanks"},
    "thanks": {"say": "Thank you. Goodbye.", "next": "bye", "failed": "bye"},
    "no_pin": {"set": {"result": "no_pin"}, "next": "bye"},
    "speech_failed": {"set": {"result": "speech_failed"}, "next": "bye"},
    "say_failed": {"set": {"result": "say_failed"}, "next": "bye"},
    "bye": {"hangup": true}
  }
}`

// A call on the real Asterisk that speaks the contact's name (flite, the
// embedded default, through the controller's speech store and the node's
// fetch), branches on a field, says a date with SAY DATETIME and the
// stock sounds, and gathers a PIN the callee keys ending with '#'. The
// callee records what it hears, so the test knows speech reached it.
func TestSpeechFlowOnRealAsterisk(t *testing.T) {
	region, prefix := numbering(time.Now())
	var mu sync.Mutex
	var posted []map[string]string
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/customers/"+prefix+"16":
			w.Write([]byte(`{"plan": "gold"}`))
		case r.Method == "GET" && r.URL.Path == "/customers/"+prefix+"17":
			w.Write([]byte(`{"plan": "basic"}`))
		case r.Method == "POST" && r.URL.Path == "/outcomes":
			var m map[string]string
			json.NewDecoder(r.Body).Decode(&m)
			mu.Lock()
			posted = append(posted, m)
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer crm.Close()
	flowDoc := strings.ReplaceAll(speechFlow, "CRM", crm.URL)
	// The CRM is on loopback: the operator allows it (the default refuses
	// every address that is not public).
	s := startWith(t, 20, "-flow-http-allow", "127.0.0.0/8")
	s.json("PUT", "/trunks/carrier", map[string]any{"max_channels": 10, "max_cps": 5}, nil)
	var c struct{ ID string }
	s.json("POST", "/campaigns", map[string]any{"name": "speech", "trunk": "carrier", "caller_id": "+14155550100",
		"target": 5, "max_cps": 2, "ring_seconds": 8, "max_attempts": 1}, &c)
	s.api("PUT", "/campaigns/"+c.ID+"/flow", "application/json", strings.NewReader(flowDoc), nil)

	// A list without the pin column is refused at start, the column named.
	s.api("POST", "/campaigns/"+c.ID+"/contacts?region="+region, "text/csv",
		strings.NewReader("phone,name,plan,due,lang\n"+prefix+"16,Ann,gold,2026-12-24,en\n"), nil)
	status, body := s.try("POST", "/campaigns/"+c.ID+"/start")
	if status != 409 || !strings.Contains(body, `state \"check\": branch case 1 arg uses field \"pin\", which the dial list has no column for`) {
		t.Fatalf("start with a list lacking pin: %d %s", status, body)
	}
	s.json("POST", "/campaigns", map[string]any{"name": "speech2", "trunk": "carrier", "caller_id": "+14155550100",
		"target": 5, "max_cps": 2, "ring_seconds": 8, "max_attempts": 1}, &c)
	s.api("PUT", "/campaigns/"+c.ID+"/flow", "application/json", strings.NewReader(flowDoc), nil)
	var rep struct{ Imported int }
	s.api("POST", "/campaigns/"+c.ID+"/contacts?region="+region, "text/csv", strings.NewReader(fmt.Sprintf(
		"phone,name,due,lang,pin\n%s16,Ann,2026-12-24,en,4321\n%s17,Bob,2027-01-05,en,9999\n", prefix, prefix)), &rep)
	if rep.Imported != 2 {
		t.Fatalf("imported %d of 2", rep.Imported)
	}
	s.api("POST", "/campaigns/"+c.ID+"/start", "", nil, nil)
	waitFor(t, s, 3*time.Minute, "both calls", func() bool { return len(s.results(c.ID)) >= 2 })

	byPhone := map[string]result{}
	for _, r := range s.results(c.ID) {
		byPhone[r.Phone] = r
	}
	for _, tc := range []struct {
		digits string
		tags   map[string]string
	}{
		{"16", map[string]string{"result": "verified", "entered": "4321", "plan": "gold"}},
		{"17", map[string]string{"result": "wrong_pin", "entered": "4321", "plan": ""}},
	} {
		r := byPhone[prefix+tc.digits]
		if r.Disposition != "answered" || !slices.Equal(r.Path, []string{"hello", "due", "pin", "thanks", "bye"}) {
			t.Errorf("%s: %s, path %v, tags %v", tc.digits, r.Disposition, r.Path, r.Tags)
		}
		for k, v := range tc.tags {
			if r.Tags[k] != v {
				t.Errorf("%s: tag %s = %q, want %q (tags %v)", tc.digits, k, r.Tags[k], v, r.Tags)
			}
		}
		// '#' ended the entry: without it GET DATA would wait out its
		// 20 s timeout after the last key (keyed 12 s after answer).
		if r.Talk > 28*time.Second {
			t.Errorf("%s: connected %s; the '#' did not end the PIN", tc.digits, r.Talk)
		}
		heard := filepath.Join(s.carrier.Dir, "lib", "sounds", "heard-"+prefix+tc.digits+".wav")
		sp := speechSeconds(t, heard)
		t.Logf("%s: connected %s, heard %.1f s of sound, tags %v", tc.digits, r.Talk, sp, r.Tags)
		if sp < 4 {
			t.Errorf("%s: the callee heard %.1f s of sound in its first 12 s; want the name and the date spoken", tc.digits, sp)
		}
	}
	// The outcomes reached the CRM.
	mu.Lock()
	slices.SortFunc(posted, func(a, b map[string]string) int { return strings.Compare(a["phone"], b["phone"]) })
	if len(posted) != 2 || posted[0]["phone"] != prefix+"16" || posted[0]["entered"] != "4321" || posted[1]["phone"] != prefix+"17" {
		t.Errorf("posted to the CRM: %v", posted)
	}
	mu.Unlock()
	// Four distinct sentences (two greetings, the PIN prompt, the
	// goodbye): four renderings in the store and on the node.
	stored, _ := filepath.Glob(filepath.Join(s.dir, "speech", "tts", "*.wav"))
	fetched, _ := filepath.Glob(filepath.Join(s.dir, "elastidial-tts", "*.wav"))
	if len(stored) != 4 || len(fetched) != 4 {
		t.Errorf("%d renderings stored, %d on the node; want 4 and 4", len(stored), len(fetched))
	}
}

// try calls the API and returns the status and body, whatever they are.
func (s *system) try(method, path string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+"/api/v1"+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// speechSeconds reads an 8 kHz 16-bit WAV and returns how many seconds
// of it are sound (20 ms frames above a quiet line's level).
func speechSeconds(t *testing.T, path string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("the callee's recording: %v", err)
		return 0
	}
	if len(b) < 44 {
		return 0
	}
	pcm := b[44:]
	const frame = 160 * 2
	loud := 0
	for off := 0; off+frame <= len(pcm); off += frame {
		var sum float64
		for i := off; i < off+frame; i += 2 {
			v := float64(int16(binary.LittleEndian.Uint16(pcm[i:])))
			sum += v * v
		}
		if math.Sqrt(sum/160) > 300 {
			loud++
		}
	}
	return float64(loud) * 0.02
}
