package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// The dashboard's live campaign view: what the flow captured, and the
// results searched a page at a time.
//
//	GET /api/v1/campaigns/{id}/outcomes  (read)
//	GET /api/v1/campaigns/{id}/results?q=&disposition=&limit=&offset=  (results)
//	GET /api/v1/trunk-usage  (read): calls in progress per trunk against its limits

// Outcomes counts a campaign's finished attempts by disposition and by
// the tags its flow set ("result": "confirmed").
type Outcomes struct {
	Attempts      int                       `json:"attempts"` // finished attempts
	Answered      int                       `json:"answered"`
	ByDisposition map[string]int            `json:"by_disposition"`
	Tags          map[string]map[string]int `json:"tags"` // tag → value → attempts
	// AnsweredWithoutOutcome counts answered calls that ended before the
	// flow set any tag: the callee hung up first (the IVR's abandon).
	AnsweredWithoutOutcome int `json:"answered_without_outcome"`
}

func (a *API) outcomes(w http.ResponseWriter, r *http.Request) {
	out := Outcomes{ByDisposition: map[string]int{}, Tags: map[string]map[string]int{}}
	err := a.Store.Results(r.Context(), r.PathValue("id"), func(row sqlstore.ResultRow) error {
		out.Attempts++
		out.ByDisposition[row.Disposition]++
		tags := map[string]string{}
		json.Unmarshal([]byte(row.Tags), &tags) // stored by us; an unreadable one counts as none
		for k, v := range tags {
			if out.Tags[k] == nil {
				out.Tags[k] = map[string]int{}
			}
			out.Tags[k][v]++
		}
		if row.Disposition == campaign.Answered {
			out.Answered++
			if len(tags) == 0 {
				out.AnsweredWithoutOutcome++
			}
		}
		return nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

// ResultView is one attempt as the dashboard lists it.
type ResultView struct {
	Phone       string            `json:"phone"`
	Attempt     int               `json:"attempt"`
	Disposition string            `json:"disposition"`
	Cause       int               `json:"cause"`
	StartedAt   time.Time         `json:"started_at"`
	TalkSeconds float64           `json:"talk_seconds"`
	Tags        map[string]string `json:"tags"`
	Fields      map[string]string `json:"fields"`
	Recording   string            `json:"recording,omitempty"` // URL
}

// ResultPage is one page of the attempts that match a search.
type ResultPage struct {
	Total   int          `json:"total"`   // attempts in the campaign
	Matched int          `json:"matched"` // attempts matching the search
	Rows    []ResultView `json:"rows"`
}

const maxResultPage = 500

func (a *API) searchResults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := 50, 0
	var err error
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxResultPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", s, maxResultPage), "limit")
			return
		}
	}
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("offset %q: want 0 or more", s), "offset")
			return
		}
	}
	disp := q.Get("disposition")
	if disp != "" && !validDisposition(disp) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("disposition %q: want one of %s", disp, strings.Join(campaign.Dispositions, ", ")), "disposition")
		return
	}
	// Digits match phone numbers however they were typed; other text
	// matches a tag or contact field, case-insensitively.
	needle := strings.ToLower(strings.TrimSpace(q.Get("q")))
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, needle)
	page := ResultPage{Rows: []ResultView{}}
	err = a.Store.Results(r.Context(), r.PathValue("id"), func(row sqlstore.ResultRow) error {
		page.Total++
		if disp != "" && row.Disposition != disp {
			return nil
		}
		if needle != "" {
			phoneHit := digits != "" && strings.Map(keepPhone, needle) == needle && strings.Contains(row.Phone, digits)
			if !phoneHit && !strings.Contains(strings.ToLower(row.Tags), needle) && !strings.Contains(strings.ToLower(row.Fields), needle) {
				return nil
			}
		}
		page.Matched++
		if page.Matched <= offset || len(page.Rows) >= limit {
			return nil
		}
		v := ResultView{Phone: row.Phone, Attempt: row.Attempt, Disposition: row.Disposition, Cause: row.Cause, StartedAt: row.StartedAt,
			Tags: map[string]string{}, Fields: map[string]string{}, Recording: recordingURL(row.Recording)}
		if !row.AnsweredAt.IsZero() && row.EndedAt.After(row.AnsweredAt) {
			v.TalkSeconds = row.EndedAt.Sub(row.AnsweredAt).Seconds()
		}
		json.Unmarshal([]byte(row.Tags), &v.Tags)
		json.Unmarshal([]byte(row.Fields), &v.Fields)
		page.Rows = append(page.Rows, v)
		return nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, page)
}

// keepPhone keeps what people type in a phone number: digits and + ( ) - . and spaces.
func keepPhone(r rune) rune {
	if (r >= '0' && r <= '9') || strings.ContainsRune("+()-. ", r) {
		return r
	}
	return -1
}

func validDisposition(d string) bool {
	for _, x := range campaign.Dispositions {
		if x == d {
			return true
		}
	}
	return false
}

// TrunkUsage is one trunk's calls in progress against its limits.
type TrunkUsage struct {
	campaign.Trunk
	Calls int `json:"calls"`
}

func (a *API) trunkUsage(w http.ResponseWriter, r *http.Request) {
	ts, err := a.Store.Trunks(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	calls, err := a.Store.TrunkCalls(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]TrunkUsage, len(ts))
	for i, t := range ts {
		out[i] = TrunkUsage{Trunk: t, Calls: calls[t.Name]}
	}
	jsonhttp.Write(w, http.StatusOK, out)
}
