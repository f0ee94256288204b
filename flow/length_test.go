package flow

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/flow/examples"
)

// prompts gives every prompt the same length; "unknown/…" has none.
func prompts(sec float64) Timing {
	return Timing{Prompt: func(name string) (float64, bool) {
		return sec, !strings.HasPrefix(name, "unknown/")
	}}
}

func TestLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		states string
		start  string
		want   float64 // seconds; -1: unbounded
		why    string  // part of Why when unbounded
	}{
		{"hangup alone", `"a": {"hangup": true}`, "a", 0, ""},
		{"plays in a row", `"a": {"play": ["s/x", "s/y"], "next": "b"}, "b": {"play": ["s/z"], "next": "c"}, "c": {"hangup": true}`, "a", 3 * 4, ""},
		// 20 characters at 10 a second; one field stands for 64.
		{"speech", `"a": {"say": "twenty characters...", "next": "z"}, "z": {"hangup": true}`, "a", 2, ""},
		{"speech with a field", `"a": {"say": "Hi {{name}}", "next": "z"}, "z": {"hangup": true}`, "a", (3 + 64) / 10.0, ""},
		// (prompt 4 + 3 keys × 5 s) × (1 + 2 retries)
		{"gather retries", `"g": {"gather": {"prompt": "s/menu", "max_digits": 3, "timeout_ms": 5000, "retries": 2}, "on": {"*": "z"}, "timeout": "z", "invalid": "z", "failed": "z"}, "z": {"hangup": true}`, "g", (4 + 15) * 3, ""},
		// The longest branch wins: record 90 s, not the 4 s play.
		{"longest path", `"g": {"gather": {"prompt": "s/menu", "max_digits": 1, "timeout_ms": 1000, "retries": 0}, "on": {"1": "p", "2": "r"}, "timeout": "z", "invalid": "z"}, "p": {"play": ["s/a"], "next": "z"}, "r": {"record": {"name": "m", "max_seconds": 90}, "next": "z", "failed": "z"}, "z": {"hangup": true}`, "g", 4 + 1 + 90, ""},
		{"http and detect", `"d": {"detect": true, "human": "h", "machine": "h", "failed": "h"}, "h": {"http": {"method": "GET", "url": "https://x.example/a", "timeout_ms": 1500}, "next": "z", "failed": "z"}, "z": {"hangup": true}`, "d", 25 + 1.5, ""},
		{"say as digits and date", `"a": {"say": "{{acct}}", "as": "digits", "next": "b"}, "b": {"say": "{{d}}", "as": "date", "next": "z"}, "z": {"hangup": true}`, "a", 64 + 5, ""},
		// Hostile: a loop a caller can go round forever.
		{"repeat loop", `"m": {"gather": {"prompt": "s/menu", "max_digits": 1, "timeout_ms": 1000, "retries": 0}, "on": {"9": "m2", "1": "z"}, "timeout": "z", "invalid": "z"}, "m2": {"play": ["s/again"], "next": "m"}, "z": {"hangup": true}`, "m", -1, `goes back to "m"`},
		{"self loop", `"a": {"play": ["s/x"], "next": "a", "failed": "z"}, "z": {"hangup": true}`, "a", -1, `state "a": goes back to "a"`},
		{"transfer", `"t": {"transfer": {"to": "+14155550123", "timeout_seconds": 30}, "next": "z", "failed": "z"}, "z": {"hangup": true}`, "t", -1, "transfer"},
		{"prompt of unknown length", `"a": {"play": ["unknown/x"], "next": "z"}, "z": {"hangup": true}`, "a", -1, `prompt "unknown/x"`},
		// Hostile: values no validated flow has. Huge ones saturate;
		// negative ones cannot shorten a path.
		{"huge gather timeout", `"g": {"gather": {"prompt": "s/m", "max_digits": 2000000000, "timeout_ms": 2000000000, "retries": 2000000000}, "on": {"*": "z"}, "timeout": "z", "invalid": "z"}, "z": {"hangup": true}`, "g", -1, "longer than"},
		{"huge record", `"r": {"record": {"name": "m", "max_seconds": 9000000000000000000}, "next": "z"}, "z": {"hangup": true}`, "r", -1, "longer than"},
		{"negative values", `"r": {"record": {"name": "m", "max_seconds": 60}, "next": "h"}, "h": {"http": {"method": "GET", "url": "https://x.example", "timeout_ms": -100000000}, "next": "g", "failed": "g"}, "g": {"gather": {"prompt": "s/m", "max_digits": -5, "timeout_ms": -9000, "retries": -3}, "on": {"*": "z"}, "timeout": "z", "invalid": "z"}, "z": {"hangup": true}`, "r", 60 + 4, ""},
		{"unknown target ends the call", `"a": {"play": ["s/x"], "next": "nowhere"}`, "a", 4, ""},
		{"no start", `"a": {"hangup": true}`, "b", -1, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(fmt.Sprintf(`{"start": %q, "states": {%s}}`, tc.start, tc.states)))
			if err != nil {
				t.Fatal(err)
			}
			got := f.Length(prompts(4))
			switch {
			case tc.want < 0 && (!got.Unbounded || !strings.Contains(got.Why, tc.why)):
				t.Fatalf("got %+v, want unbounded because %q", got, tc.why)
			case tc.want >= 0 && (got.Unbounded || got.Seconds < tc.want-0.001 || got.Seconds > tc.want+0.001):
				t.Fatalf("got %+v, want %g s", got, tc.want)
			}
		})
	}
}

// TestLengthExamples: the shipped reminder is bounded (under two minutes
// with prompts of 5 s), and without prompt lengths it is no bound at all.
func TestLengthExamples(t *testing.T) {
	f := mustParse(t, examples.Reminder)
	got := f.Length(prompts(5))
	// hello 5 + greet (49+64)/10 + date 5 + menu (5+6)×3 + a message 5.
	if want := 5 + 11.3 + 5 + 33 + 5; got.Unbounded || got.Seconds < want-0.001 || got.Seconds > want+0.001 {
		t.Fatalf("reminder: %+v, want %g s", got, want)
	}
	if got := f.Length(Timing{}); !got.Unbounded {
		t.Fatalf("reminder without prompt lengths: %+v, want unbounded", got)
	}
}

// TestLengthDeepAndWide: the longest of 500 states in a chain, and a
// flow whose every state branches to every later one (paths without
// number), are computed at once.
func TestLengthDeepAndWide(t *testing.T) {
	states := map[string]*State{}
	for i := range MaxStates {
		s := &State{Play: []string{"s/x"}, Next: fmt.Sprintf("s%d", i+1)}
		if i == MaxStates-1 {
			s = &State{Hangup: true}
		}
		states[fmt.Sprintf("s%d", i)] = s
	}
	f := &Flow{Start: "s0", States: states}
	if got := f.Length(prompts(1)); got.Unbounded || got.Seconds != MaxStates-1 {
		t.Fatalf("chain: %+v", got)
	}
	// Wide: state i's gather goes to every later state.
	wide := map[string]*State{}
	const n = 60
	for i := range n {
		s := &State{Gather: &Gather{Prompt: "s/x", MaxDigits: 2, TimeoutMS: 1000}, On: map[string]string{}, Timeout: "end", Invalid: "end"}
		for j := i + 1; j < n; j++ {
			s.On[fmt.Sprint(j)] = fmt.Sprintf("w%d", j)
		}
		wide[fmt.Sprintf("w%d", i)] = s
	}
	wide["end"] = &State{Hangup: true}
	f = &Flow{Start: "w0", States: wide}
	if got := f.Length(prompts(1)); got.Unbounded || got.Seconds != n*3 {
		t.Fatalf("wide: %+v", got)
	}
	if _, err := json.Marshal(f.Length(prompts(1))); err != nil {
		t.Fatal(err)
	}
}
