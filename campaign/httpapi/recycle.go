package httpapi

import (
	"net/http"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// recycle re-runs a campaign's contacts by the outcome of their last
// attempt (campaign.Recycle): POST {"dispositions": ["no_answer", "busy"],
// "after": "...", "before": "...", "max_total_attempts": 0, "dry_run": false}.
func (a *API) recycle(w http.ResponseWriter, r *http.Request) {
	var req campaign.Recycle
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	rep, err := a.Store.Recycle(r.Context(), r.PathValue("id"), req, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !req.DryRun && rep.Recycled > 0 {
		a.demandChanged()
	}
	jsonhttp.Write(w, http.StatusOK, rep)
}
