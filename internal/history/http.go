package history

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// MaxRange is the longest time range one request may ask for.
const MaxRange = 31 * 24 * time.Hour

// Handler serves a time range of the named series as JSON (see Series).
// The range is either ?last=DURATION (Go syntax: 15m, 1h, 24h; default
// 1h) ending now, or ?from= and ?to= as RFC 3339 times or Unix seconds;
// ?points= (default 300, at most 2000) bounds the points returned. series
// tells which series the request reads: names stored under a prefix.
func Handler(r *Ring, now func() time.Time, series func(*http.Request) (prefix string, names []string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		from, to, err := parseRange(req, now())
		if err != nil {
			jsonhttp.Write(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		points := 300
		if p := req.URL.Query().Get("points"); p != "" {
			points, err = strconv.Atoi(p)
			if err != nil || points < 2 || points > 2000 {
				jsonhttp.Write(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("points %q: want a whole number from 2 to 2000", p)})
				return
			}
		}
		prefix, names := series(req)
		jsonhttp.Write(w, http.StatusOK, r.Range(from, to, points, prefix, names))
	})
}

func parseRange(req *http.Request, now time.Time) (from, to time.Time, err error) {
	q := req.URL.Query()
	if q.Get("from") == "" && q.Get("to") == "" {
		last := time.Hour
		if s := q.Get("last"); s != "" {
			last, err = time.ParseDuration(s)
			if err != nil || last <= 0 || last > MaxRange {
				return from, to, fmt.Errorf("last %q: want a duration such as 15m, 1h or 24h, at most %s", s, MaxRange)
			}
		}
		return now.Add(-last), now, nil
	}
	if from, err = parseTime("from", q.Get("from")); err != nil {
		return
	}
	to = now
	if q.Get("to") != "" {
		if to, err = parseTime("to", q.Get("to")); err != nil {
			return
		}
	}
	switch {
	case !to.After(from):
		err = fmt.Errorf("from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	case to.Sub(from) > MaxRange:
		err = fmt.Errorf("from %s to %s is longer than %s", from.Format(time.RFC3339), to.Format(time.RFC3339), MaxRange)
	}
	return
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s: missing (an RFC 3339 time or Unix seconds)", name)
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%s %q: want an RFC 3339 time (2026-03-10T16:00:00Z) or Unix seconds", name, s)
	}
	return t, nil
}
