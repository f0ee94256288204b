package campaign

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWindowJSON(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: the window read, or the error's text
	}{
		{`{"start":"08:00","end":"21:00"}`, "{480 1260}"},
		{`{"start":"22:30","end":"24:00"}`, "{1350 1440}"},
		{`{"start":480,"end":1260}`, "{480 1260}"}, // the older form
		{`{"start":"8:00","end":"21:00"}`, `window.start: "8:00": want a time of day`},
		{`{"start":"08:00","end":"24:01"}`, `window.end: "24:01"`},
		{`{"start":"08:60","end":"21:00"}`, `window.start: "08:60"`},
		{`{"start":"08:00"}`, `window.end: is required`},
		{`{"start":1441,"end":1260}`, `window.start: 1441`},
		{`{"start":"08:00","end":"21:00","tz":"x"}`, `window.tz: unknown field`},
		{`"08:00-21:00"`, `window: want {"start": "HH:MM", "end": "HH:MM"}`},
	} {
		var w Window
		err := json.Unmarshal([]byte(tc.in), &w)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = "{" + itoa(w.Start) + " " + itoa(w.End) + "}"
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.in, got, tc.want)
		}
	}
	b, _ := json.Marshal(Window{Start: 8*60 + 5, End: 24 * 60})
	if string(b) != `{"start":"08:05","end":"24:00"}` {
		t.Errorf("marshal: %s", b)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCauseText(t *testing.T) {
	for code, want := range map[int]string{0: "", 16: "Normal call clearing", 17: "User busy", 1: "Unallocated (unassigned) number", 250: "cause 250"} {
		if got := CauseText(code); got != want {
			t.Errorf("CauseText(%d) = %q, want %q", code, got, want)
		}
	}
}
