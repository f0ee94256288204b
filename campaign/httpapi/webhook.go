package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// deliveries lists a campaign's webhook deliveries, newest first, each
// with its latest tries: ?state=pending|delivered|dead, ?before=<id> (the
// last id of the previous page), ?limit= (default 100, at most 1000).
func (a *API) deliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", campaign.DeliveryPending, campaign.DeliveryDelivered, campaign.DeliveryDead:
	default:
		a.fail(w, r, &campaign.FieldError{Field: "state", Reason: fmt.Sprintf("%q: want pending, delivered or dead", state)})
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", 100, 1, 1000)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	before, err := intParam(q.Get("before"), "before", 0, 1, 1<<62)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ds, err := a.Store.Deliveries(r.Context(), r.PathValue("id"), state, int64(before), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, ds)
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(v, name string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &campaign.FieldError{Field: name, Reason: fmt.Sprintf("%q: want %d to %d", v, lo, hi)}
	}
	return n, nil
}

func deliveryID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("did"), 10, 64)
	if err != nil || id < 1 {
		return 0, &campaign.FieldError{Field: "delivery", Reason: fmt.Sprintf("%q: a delivery id is a positive number", r.PathValue("did"))}
	}
	return id, nil
}

// delivery shows one delivery with the body sent (contact data: it needs
// the results permission).
func (a *API) delivery(w http.ResponseWriter, r *http.Request) {
	id, err := deliveryID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d, err := a.Store.DeliveryByID(r.Context(), r.PathValue("id"), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, d)
}

// redeliver sends a delivery again at once, whatever its state.
func (a *API) redeliver(w http.ResponseWriter, r *http.Request) {
	id, err := deliveryID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d, err := a.Store.Redeliver(r.Context(), r.PathValue("id"), id, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusAccepted, d)
}
