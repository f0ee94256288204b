package campaign

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// A window travels as {"start": "08:00", "end": "21:00"}: local times of
// day, "24:00" for midnight at the end of the day. The older form in
// minutes since midnight ({"start": 480, "end": 1260}) is still read, so
// campaigns stored before the change and scripts written for it keep
// working.

// MarshalJSON writes the window as HH:MM strings.
func (w Window) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}{hhmm(w.Start), hhmm(w.End)})
}

// UnmarshalJSON reads HH:MM strings or minutes since midnight, and names
// the end at fault when it is neither.
func (w *Window) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return &FieldError{"window", `want {"start": "HH:MM", "end": "HH:MM"}`}
	}
	for k := range raw {
		if k != "start" && k != "end" {
			return &FieldError{"window." + k, `unknown field; a window has "start" and "end"`}
		}
	}
	var out Window
	for _, f := range []struct {
		name string
		dst  *int
	}{{"start", &out.Start}, {"end", &out.End}} {
		v, ok := raw[f.name]
		if !ok {
			return &FieldError{"window." + f.name, `is required, as "HH:MM"`}
		}
		m, err := parseTimeOfDay(v)
		if err != nil {
			return &FieldError{"window." + f.name, err.Error()}
		}
		*f.dst = m
	}
	*w = out
	return nil
}

// parseTimeOfDay reads "HH:MM" (00:00 to 24:00) or a number of minutes
// (0 to 1440).
func parseTimeOfDay(v json.RawMessage) (int, error) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, fmt.Errorf("%s: want a time of day such as \"08:30\"", v)
		}
		h, m, ok := strings.Cut(s, ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
			return 0, fmt.Errorf("%q: want a time of day from \"00:00\" to \"24:00\" such as \"08:30\"", s)
		}
		return hh*60 + mm, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n > 24*60 {
		return 0, fmt.Errorf("%s: want a time of day such as \"08:30\" (or minutes since midnight, 0 to 1440)", v)
	}
	return n, nil
}
