package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// ivrFlow greets, says the contact's code, asks for a key and thanks.
const ivrFlow = `{
  "name": "e2e ivr",
  "start": "hello",
  "states": {
    "hello": {"play": ["e2e/hello"], "next": "code"},
    "code": {"say_digits": "{{code}}", "next": "menu"},
    "menu": {
      "gather": {"prompt": "e2e/menu", "max_digits": 1, "timeout_ms": 6000, "retries": 0},
      "on": {"1": "confirm"},
      "invalid": "unsure",
      "timeout": "unsure"
    },
    "confirm": {"set": {"result": "confirmed"}, "next": "thanks"},
    "thanks": {"play": ["e2e/thanks"], "next": "bye"},
    "unsure": {"set": {"result": "no_response"}, "next": "bye"},
    "bye": {"hangup": true}
  }
}`

// amdFlow tells people from answering machines and leaves machines a
// message.
const amdFlow = `{
  "name": "e2e amd",
  "start": "detect",
  "states": {
    "detect": {"detect": true, "human": "person", "machine": "voicemail"},
    "person": {"set": {"amd": "human"}, "next": "hello"},
    "hello": {"play": ["e2e/hello"], "next": "bye"},
    "voicemail": {"set": {"amd": "machine"}, "next": "message"},
    "message": {"play": ["e2e/message"], "next": "bye"},
    "bye": {"hangup": true}
  }
}`

// recordFlow greets and records what the callee says, for three seconds.
const recordFlow = `{
  "name": "e2e record",
  "start": "hello",
  "states": {
    "hello": {"play": ["e2e/hello"], "next": "listen"},
    "listen": {"record": {"name": "message", "max_seconds": 3}, "next": "bye"},
    "bye": {"hangup": true}
  }
}`

// callee is one carrier behaviour (internal/realasterisk/carrier's last two
// digits) and what elastidial must record for it.
type callee struct {
	digits, what string
	code         string   // the contact's code field
	disposition  string   // of the first attempt
	cause        int      // Q.850 cause; -1: any
	path         []string // states with an action, in order; nil: not checked
	tags         map[string]string
	retried      bool          // a second attempt follows
	minTalk      time.Duration // answered calls: at least this long connected
}

// Every call path on the real thing: the node's Asterisk on the image's
// configuration, the real agent and controller, and the carrier's callees.
func TestCallPathsOnRealAsterisk(t *testing.T) {
	s := start(t)
	region, prefix := numbering(time.Now())
	s.upload("e2e", map[string][]byte{"hello": prompt(1), "menu": prompt(1), "thanks": prompt(1), "message": prompt(2)})
	s.json("PUT", "/trunks/carrier", map[string]any{"max_channels": 40, "max_cps": 20}, nil)

	retry := map[string]any{}
	for _, d := range []string{"busy", "no_answer", "congestion", "cut_off"} {
		retry[d] = map[string]int{"after_seconds": 2}
	}
	newCampaign := func(name, flow string) string {
		var c struct{ ID string }
		s.json("POST", "/campaigns", map[string]any{"name": name, "trunk": "carrier", "caller_id": "+14155550100",
			"target": 10, "max_cps": 5, "ring_seconds": 8, "max_attempts": 2, "retry": retry}, &c)
		s.api("PUT", "/campaigns/"+c.ID+"/flow", "application/json", strings.NewReader(flow), nil)
		return c.ID
	}

	ivr := []callee{
		{digits: "01", what: "answers and presses 1", code: "42", disposition: "answered", cause: -1,
			path: []string{"hello", "code", "menu", "thanks", "bye"}, tags: map[string]string{"result": "confirmed"}, minTalk: 3 * time.Second},
		{digits: "02", what: "answers and stays silent", code: "42", disposition: "answered", cause: -1,
			path: []string{"hello", "code", "menu", "bye"}, tags: map[string]string{"result": "no_response"}, minTalk: 6 * time.Second},
		{digits: "03", what: "hangs up mid-IVR", code: "42", disposition: "cut_off", cause: -1, retried: true}, // Hangup says 0; 16 was a SoftHangupRequest flag
		{digits: "04", what: "is busy", code: "42", disposition: "busy", cause: 17, retried: true},
		{digits: "05", what: "is congested", code: "42", disposition: "congestion", cause: 34, retried: true},
		{digits: "06", what: "rings past the timeout", code: "42", disposition: "no_answer", cause: -1, retried: true},
		{digits: "07", what: "sends early media and never answers", code: "42", disposition: "no_answer", cause: -1, retried: true},
		{digits: "08", what: "is unallocated", code: "42", disposition: "invalid_number", cause: 1},
		{digits: "11", what: "rejects the call", code: "42", disposition: "rejected", cause: 21},
		{digits: "12", what: "answers, but the contact's code is empty", code: "", disposition: "ivr_failed", cause: -1},
	}
	amd := []callee{
		{digits: "09", what: "is an answering machine", disposition: "machine", cause: -1,
			path: []string{"detect", "message", "bye"}, tags: map[string]string{"amd": "machine"}, minTalk: 8 * time.Second},
		{digits: "10", what: "is a person saying hello", disposition: "answered", cause: -1,
			path: []string{"detect", "hello", "bye"}, tags: map[string]string{"amd": "human"}},
	}
	record := []callee{
		{digits: "01", what: "is recorded", disposition: "answered", cause: -1, path: []string{"hello", "listen", "bye"}, minTalk: 3 * time.Second},
	}
	recordID := newCampaign("record", recordFlow)
	campaigns := map[string][]callee{newCampaign("ivr", ivrFlow): ivr, newCampaign("amd", amdFlow): amd, recordID: record}
	for id, cs := range campaigns {
		var csv strings.Builder
		csv.WriteString("phone,code\n")
		for _, c := range cs {
			fmt.Fprintf(&csv, "%s%s,%s\n", prefix, c.digits, c.code)
		}
		var rep struct{ Imported, Rejected int }
		s.api("POST", "/campaigns/"+id+"/contacts?region="+region, "text/csv", strings.NewReader(csv.String()), &rep)
		if rep.Imported != len(cs) {
			t.Fatalf("imported %d of %d contacts (%+v)", rep.Imported, len(cs), rep)
		}
	}
	for id := range campaigns {
		s.api("POST", "/campaigns/"+id+"/start", "", nil, nil)
	}

	want := func(cs []callee) int {
		n := 0
		for _, c := range cs {
			n++
			if c.retried {
				n++
			}
		}
		return n
	}
	for id, cs := range campaigns {
		waitFor(t, s, 4*time.Minute, "every attempt of campaign "+id, func() bool { return len(s.results(id)) >= want(cs) })
	}
	time.Sleep(3 * time.Second) // a wrong extra attempt would show by now
	// The recording was uploaded before the result, and is served.
	rec := s.results(recordID)[0]
	if rec.Recording == "" {
		t.Errorf("no recording linked from the result: %+v", rec)
	} else {
		var wav []byte
		s.api("GET", strings.TrimPrefix(rec.Recording, "/api/v1"), "", nil, &wav)
		if len(wav) < 44+2*8000*2 { // at least two seconds of 8 kHz 16-bit audio
			t.Errorf("recording of %d bytes; want about three seconds of audio", len(wav))
		}
	}
	for id, cs := range campaigns {
		byPhone := map[string][]result{}
		for _, r := range s.results(id) {
			byPhone[r.Phone] = append(byPhone[r.Phone], r)
		}
		for _, c := range cs {
			t.Run(c.what, func(t *testing.T) {
				rs := byPhone[prefix+c.digits]
				if len(rs) == 0 {
					t.Fatalf("no attempt")
				}
				r := rs[0]
				if r.Disposition != c.disposition {
					t.Errorf("disposition %q, want %q (cause %d, path %v)", r.Disposition, c.disposition, r.Cause, r.Path)
				}
				if c.cause >= 0 && r.Cause != c.cause {
					t.Errorf("cause %d, want %d", r.Cause, c.cause)
				}
				if c.path != nil && !slices.Equal(r.Path, c.path) {
					t.Errorf("path %v, want %v", r.Path, c.path)
				}
				for k, v := range c.tags {
					if r.Tags[k] != v {
						t.Errorf("tag %s = %q, want %q (tags %v)", k, r.Tags[k], v, r.Tags)
					}
				}
				if r.Talk < c.minTalk {
					t.Errorf("connected %s, want at least %s", r.Talk, c.minTalk)
				}
				if got := len(rs) > 1; got != c.retried {
					t.Errorf("%d attempts; retried=%v, want %v", len(rs), got, c.retried)
				}
			})
		}
	}
}
