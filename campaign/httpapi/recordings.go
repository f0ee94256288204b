package httpapi

import (
	"net/http"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// recordings lists a campaign's recordings, one per attempt that has
// one, by call id: ?call_id= (one attempt), ?after=<call id> (the last of
// the previous page), ?limit= (default 100, at most 1000), and
// ?expires_in=<seconds> (60 to 604800, default 3600) for the signed
// download links, which need no API token until they expire.
func (a *API) recordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 100, 1, 1000)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ttl, err := intParam(q.Get("expires_in"), "expires_in", 3600, 60, 7*24*3600)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rows, err := a.Store.CampaignRecordings(r.Context(), r.PathValue("id"), q.Get("call_id"), q.Get("after"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	type item struct {
		sqlstore.RecordingRow
		URL           string     `json:"url"` // with an API token
		SignedURL     string     `json:"signed_url,omitempty"`
		SignedExpires *time.Time `json:"signed_url_expires,omitempty"`
	}
	out := make([]item, 0, len(rows))
	exp := a.now().Add(time.Duration(ttl) * time.Second).Truncate(time.Second).UTC()
	for _, row := range rows {
		it := item{RecordingRow: row, URL: recordingURL(row.Key)}
		if a.SignRecording != nil {
			it.SignedURL, it.SignedExpires = a.SignRecording(row.Key, exp), &exp
		}
		out = append(out, it)
	}
	jsonhttp.Write(w, http.StatusOK, out)
}
