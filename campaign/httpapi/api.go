// Package httpapi is the campaign managers' REST API: JSON over HTTP,
// authenticated with API tokens, mounted at /api/v1/ by the controller.
package httpapi

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// MaxJSONBytes bounds a JSON request body; dial lists stream and have their
// own per-line bound.
const MaxJSONBytes = 1 << 20

// MaxListBytes bounds a dial-list or do-not-call upload: a few million rows.
const MaxListBytes = 256 << 20

// API serves /api/v1/.
type API struct {
	Store *sqlstore.Store
	Log   *slog.Logger
	Now   func() time.Time // the clock; time.Now when nil
	// ValidateFlow checks a flow document before it is saved; nil accepts
	// any JSON object.
	ValidateFlow func(ctx context.Context, doc []byte) error
	// FlowLength computes a valid flow's longest call (flow.Length with
	// the audio library's prompt lengths), shown on the campaign and used
	// to keep long calls off spot nodes; nil leaves it unknown.
	FlowLength func(ctx context.Context, doc []byte) (campaign.FlowLength, error)
	// CheckColumns checks the campaign's flow against its dial lists'
	// columns when it is started or resumed (flow.CheckColumns); nil
	// skips the check. A campaign with no list imported yet is not
	// checked.
	CheckColumns func(doc []byte, columns []string) error
	// DemandChanged is told, after the change is stored, that a campaign
	// was created, updated, started, paused, stopped or given contacts, or
	// a trunk's limits changed, so the scaler can act on it before its
	// next tick; nil = nobody.
	DemandChanged func()
	// SignRecording, when set, makes a link to a recording that works
	// without an API token until expires (storage.Recordings.SignedPath).
	SignRecording func(key string, expires time.Time) string
	// MaxListBytes bounds one dial-list or do-not-call request body; 0
	// means MaxListBytes.
	MaxListBytes int64
}

func (a *API) demandChanged() {
	if a.DemandChanged != nil {
		a.DemandChanged()
	}
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Routes lists the campaign API's endpoints. Every route names the
// permission it needs (see campaign.Role); a route on one campaign answers
// 404 to a token scoped to other campaigns, as if it did not exist.
func (a *API) Routes() []Route {
	r := func(pattern string, p campaign.Perm, h http.HandlerFunc) Route {
		return Route{Pattern: pattern, Perm: p, Handler: h}
	}
	return []Route{
		{Pattern: "GET /api/v1/openapi.json", Public: true, Handler: http.HandlerFunc(serveOpenAPI)},
		r("GET /api/v1/whoami", "", a.whoami),
		r("GET /api/v1/trunks", campaign.PermRead, a.listTrunks),
		r("PUT /api/v1/trunks/{name}", campaign.PermTrunks, a.putTrunk),
		r("DELETE /api/v1/trunks/{name}", campaign.PermTrunks, a.deleteTrunk),
		r("GET /api/v1/campaigns", campaign.PermRead, a.listCampaigns),
		r("POST /api/v1/campaigns", campaign.PermAllCamps, a.requirePerm(campaign.PermWrite, a.createCampaign)),
		r("GET /api/v1/campaigns/{id}", campaign.PermRead, a.getCampaign),
		r("PUT /api/v1/campaigns/{id}", campaign.PermWrite, a.updateCampaign),
		r("PATCH /api/v1/campaigns/{id}", campaign.PermWrite, a.patchCampaign),
		r("PUT /api/v1/campaigns/{id}/flow", campaign.PermWrite, a.putFlow),
		r("GET /api/v1/campaigns/{id}/flow", campaign.PermRead, a.getFlow),
		r("POST /api/v1/campaigns/{id}/contacts", campaign.PermWrite, a.importContacts),
		r("POST /api/v1/campaigns/{id}/start", campaign.PermControl, a.setStatus(campaign.StatusRunning)),
		r("POST /api/v1/campaigns/{id}/resume", campaign.PermControl, a.setStatus(campaign.StatusRunning)),
		r("POST /api/v1/campaigns/{id}/pause", campaign.PermControl, a.setStatus(campaign.StatusPaused)),
		r("POST /api/v1/campaigns/{id}/stop", campaign.PermControl, a.setStatus(campaign.StatusCompleted)),
		r("GET /api/v1/campaigns/{id}/stats", campaign.PermRead, a.stats),
		r("GET /api/v1/campaigns/{id}/results.csv", campaign.PermResults, a.results),
		r("GET /api/v1/campaigns/{id}/results", campaign.PermResults, a.searchResults), // live.go
		r("GET /api/v1/campaigns/{id}/outcomes", campaign.PermRead, a.outcomes),
		r("GET /api/v1/trunk-usage", campaign.PermRead, a.trunkUsage),
		r("POST /api/v1/campaigns/{id}/recycle", campaign.PermWrite, a.recycle), // changes who is called, like a dial list
		r("GET /api/v1/campaigns/{id}/recordings", campaign.PermResults, a.recordings),
		r("GET /api/v1/campaigns/{id}/webhook/deliveries", campaign.PermRead, a.deliveries),
		r("GET /api/v1/campaigns/{id}/webhook/deliveries/{did}", campaign.PermResults, a.delivery),
		r("POST /api/v1/campaigns/{id}/webhook/deliveries/{did}/redeliver", campaign.PermResults, a.redeliver), // sends contact data out
		r("GET /api/v1/imports/{import}/rejections.csv", campaign.PermResults, a.rejections),
		r("POST /api/v1/dnc", campaign.PermWrite, a.importDNC),
		r("GET /api/v1/dnc", campaign.PermRead, a.searchDNC),
		r("DELETE /api/v1/dnc/{phone}", campaign.PermWrite, a.deleteDNC),
		r("GET /api/v1/dnc/imports", campaign.PermRead, a.dncImports),
		r("GET /api/v1/audit", campaign.PermTokens, a.audit),
		r("GET /api/v1/tokens", campaign.PermTokens, a.listTokens),
		r("POST /api/v1/tokens", campaign.PermTokens, a.createToken),
		r("DELETE /api/v1/tokens/{tid}", campaign.PermTokens, a.revokeToken),
	}
}

// Handler serves the API's routes and extra ones (the controller's fleet,
// cost, audio and recordings), each behind authentication with its
// permission; anything else under /api/v1/ gets a JSON 404 or 405.
func (a *API) Handler(extra ...Route) http.Handler {
	m := http.NewServeMux()
	for _, rt := range append(a.Routes(), extra...) {
		if rt.Public {
			m.Handle(rt.Pattern, rt.Handler)
		} else {
			m.Handle(rt.Pattern, a.Require(rt.Perm, rt.Handler))
		}
	}
	return JSONErrors(m)
}

type callerKey struct{}

// Caller returns the API token a request was authenticated with.
func Caller(ctx context.Context) (campaign.Token, bool) {
	t, ok := ctx.Value(callerKey{}).(campaign.Token)
	return t, ok
}

// Auth admits requests bearing a live API token, whatever its role, and
// hands the token on in the request's context (see Caller).
func (a *API) Auth(next http.Handler) http.Handler {
	return a.Require("", next)
}

// Require admits requests whose API token has permission p ("" for any
// live token) and, when the route names a campaign ({id}), sees it. The
// controller wraps the fleet, cost and audio routes with it too.
func (a *API) Require(p campaign.Perm, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeError(w, http.StatusUnauthorized, "send an API token as 'Authorization: Bearer <token>' (create one with 'controller token')", "")
			return
		}
		t, err := a.Store.Authenticate(r.Context(), tok, a.now())
		if err != nil {
			if errors.Is(err, campaign.ErrUnauthorized) {
				writeError(w, http.StatusUnauthorized, "this API token is not valid (unknown, expired or revoked)", "")
				return
			}
			a.fail(w, r, err)
			return
		}
		if p != "" && !t.Allows(p) {
			forbidden(w, t, p)
			return
		}
		if id := r.PathValue("id"); id != "" && !t.Sees(id) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("campaign %s: not found", id), "")
			return
		}
		a.audited(next, t.Name).ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, t)))
	})
}

// requirePerm checks one more permission of an authenticated caller.
func (a *API) requirePerm(p campaign.Perm, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if t, _ := Caller(r.Context()); !t.Allows(p) {
			forbidden(w, t, p)
			return
		}
		next(w, r)
	}
}

var permWords = map[campaign.Perm]string{
	campaign.PermRead: "read campaigns", campaign.PermWrite: "change campaigns, dial lists or audio",
	campaign.PermControl: "start, pause or stop campaigns", campaign.PermResults: "export results (contact data)",
	campaign.PermTrunks: "change trunks", campaign.PermFleet: "see the fleet and its cost",
	campaign.PermTokens: "manage API tokens", campaign.PermAllCamps: "create campaigns",
}

func forbidden(w http.ResponseWriter, t campaign.Token, p campaign.Perm) {
	scope := ""
	if len(t.Campaigns) > 0 {
		scope = " scoped to campaigns " + strings.Join(t.Campaigns, ", ")
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("this token (%s, role %s%s) may not %s", t.Name, t.Role, scope, permWords[p]), "")
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	jsonhttp.Write(w, status, errorBody{Error: msg, Field: field})
}

// fail maps a store error to a status and a message a person can act on.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *campaign.FieldError
	var file *importer.FileError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, fe.Error(), fe.Field)
	case errors.As(err, &file):
		writeError(w, http.StatusUnprocessableEntity, "dial list rejected: "+file.Error(), "file")
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d bytes", mbe.Limit), "")
	case errors.Is(err, campaign.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), "")
	case errors.Is(err, campaign.ErrConflict):
		writeError(w, http.StatusConflict, err.Error(), "")
	case errors.Is(err, campaign.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error(), "")
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request cancelled", "")
	default:
		if a.Log != nil {
			a.Log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, http.StatusInternalServerError, "internal error; see the controller log", "")
	}
}

// decode reads a bounded JSON body, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" && !(r.Method == http.MethodPatch && mt == "application/merge-patch+json") {
			return &campaign.FieldError{Field: "Content-Type", Reason: fmt.Sprintf("%q: send application/json", ct)}
		}
	}
	return decodeJSON(http.MaxBytesReader(w, r.Body, MaxJSONBytes), v)
}

// decodeJSON reads one JSON value into v, refusing unknown fields by name.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var fe *campaign.FieldError
		if errors.As(err, &fe) { // from a type's own UnmarshalJSON
			return fe
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return &campaign.FieldError{Field: strings.Trim(name, `"`), Reason: "unknown field"}
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &campaign.FieldError{Field: cmp.Or(ute.Field, "body"), Reason: fmt.Sprintf("want a JSON %s", jsonType(ute.Type))}
		}
		return &campaign.FieldError{Field: "body", Reason: "not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return &campaign.FieldError{Field: "body", Reason: "one JSON object expected, found more"}
	}
	return nil
}

func (a *API) listTrunks(w http.ResponseWriter, r *http.Request) {
	ts, err := a.Store.TrunksAt(r.Context(), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for i := range ts {
		ts[i].Password = "" // write-only
	}
	jsonhttp.Write(w, http.StatusOK, orEmpty(ts))
}

func (a *API) putTrunk(w http.ResponseWriter, r *http.Request) {
	var t campaign.Trunk
	if err := decode(w, r, &t); err != nil {
		a.fail(w, r, err)
		return
	}
	t.Name = r.PathValue("name")
	t.Health, t.HasPassword = nil, false // read-only
	if err := a.Store.PutTrunk(r.Context(), t); err != nil {
		a.fail(w, r, err)
		return
	}
	a.demandChanged()
	ts, err := a.Store.TrunksAt(r.Context(), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, x := range ts {
		if x.Name == t.Name {
			x.Password = "" // write-only
			jsonhttp.Write(w, http.StatusOK, x)
			return
		}
	}
	a.fail(w, r, fmt.Errorf("trunk %q: %w", t.Name, campaign.ErrNotFound))
}

func (a *API) deleteTrunk(w http.ResponseWriter, r *http.Request) {
	if err := a.Store.DeleteTrunk(r.Context(), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	a.demandChanged()
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listCampaigns(w http.ResponseWriter, r *http.Request) {
	cs, err := a.Store.Campaigns(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, _ := Caller(r.Context())
	cs = slices.DeleteFunc(cs, func(c campaign.Campaign) bool { return !t.Sees(c.ID) })
	jsonhttp.Write(w, http.StatusOK, orEmpty(cs))
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request) {
	var c campaign.Campaign
	if err := decode(w, r, &c); err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.Store.CreateCampaign(r.Context(), c, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.demandChanged()
	w.Header().Set("Location", "/api/v1/campaigns/"+c.ID)
	jsonhttp.Write(w, http.StatusCreated, c)
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request) {
	c, err := a.Store.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, c)
}

func (a *API) updateCampaign(w http.ResponseWriter, r *http.Request) {
	var c campaign.Campaign
	if err := decode(w, r, &c); err != nil {
		a.fail(w, r, err)
		return
	}
	c.ID = r.PathValue("id")
	c, err := a.Store.UpdateCampaign(r.Context(), c, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.demandChanged()
	jsonhttp.Write(w, http.StatusOK, c)
}

func (a *API) putFlow(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := decode(w, r, &raw); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(raw) == 0 || raw[0] != '{' {
		a.fail(w, r, &campaign.FieldError{Field: "body", Reason: "a flow is a JSON object"})
		return
	}
	if a.ValidateFlow != nil {
		if err := a.ValidateFlow(r.Context(), raw); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "flow rejected: "+err.Error(), "flow")
			return
		}
	}
	var length *campaign.FlowLength
	if a.FlowLength != nil {
		l, err := a.FlowLength(r.Context(), raw)
		if err != nil {
			a.fail(w, r, fmt.Errorf("flow length: %w", err))
			return
		}
		length = &l
	}
	v, err := a.Store.SaveFlowLength(r.Context(), r.PathValue("id"), raw, length, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.demandChanged() // the campaign may now need on-demand nodes, or no longer
	jsonhttp.Write(w, http.StatusOK, putFlowReply{FlowVersion: v, FlowLength: length})
}

// putFlowReply answers PUT /campaigns/{id}/flow.
type putFlowReply struct {
	FlowVersion int                  `json:"flow_version"`
	FlowLength  *campaign.FlowLength `json:"flow_length,omitempty"`
}

func (a *API) getFlow(w http.ResponseWriter, r *http.Request) {
	c, err := a.Store.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if c.FlowVersion == 0 {
		writeError(w, http.StatusNotFound, "campaign "+c.ID+" has no flow yet", "")
		return
	}
	doc, err := a.Store.FlowDocument(r.Context(), c.ID, c.FlowVersion)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

// csvBody returns the uploaded CSV: the "file" part of a multipart form, or
// the raw body.
func (a *API) csvBody(w http.ResponseWriter, r *http.Request) (io.Reader, error) {
	r.Body = http.MaxBytesReader(w, r.Body, cmp.Or(a.MaxListBytes, MaxListBytes))
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return r.Body, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, &campaign.FieldError{Field: "body", Reason: "bad multipart form: " + err.Error()}
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, &campaign.FieldError{Field: "file", Reason: "the form has no part named \"file\""}
		}
		if err != nil {
			return nil, &campaign.FieldError{Field: "body", Reason: "bad multipart form: " + err.Error()}
		}
		if p.FormName() == "file" {
			return p, nil
		}
	}
}

// spooled is an upload read whole into a temporary file (mode 0600: it
// holds phone numbers), removed once imported.
type spooled struct{ *os.File }

func (f *spooled) remove() {
	f.Close()
	os.Remove(f.Name())
}

// spool reads an upload to its end before the store sees a row. The
// upload then takes only as long as the network, and the import as long
// as the database: a million rows on a busy database ran the upload into
// the server's read timeout (2 minutes) and were lost, and a slow client
// held the import's database session open for as long as it sent.
func spool(r io.Reader) (*spooled, error) {
	f, err := os.CreateTemp("", "elastidial-upload-*.csv")
	if err != nil {
		return nil, fmt.Errorf("spool the upload: %w", err)
	}
	s := &spooled{f}
	if _, err := io.Copy(f, r); err != nil {
		s.remove()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err // 413
		}
		return nil, &campaign.FieldError{Field: "body", Reason: "the upload broke off: " + err.Error()}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.remove()
		return nil, fmt.Errorf("spool the upload: %w", err)
	}
	return s, nil
}

func importOptions(r *http.Request) importer.Options {
	q := r.URL.Query()
	return importer.Options{DefaultRegion: q.Get("region"), PhoneColumn: q.Get("phone_column"), TimezoneColumn: q.Get("timezone_column"), CallerIDColumn: q.Get("caller_id_column")}
}

func (a *API) importContacts(w http.ResponseWriter, r *http.Request) {
	upload, err := a.csvBody(w, r)
	var body *spooled
	if err == nil {
		body, err = spool(upload)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer body.remove()
	res, err := a.Store.ImportContacts(r.Context(), r.PathValue("id"), body, importOptions(r), a.now())
	if err != nil {
		if a.Log != nil { // whatever the cause, a lost upload is worth a line
			a.Log.Warn("dial list not imported", "campaign", r.PathValue("id"), "err", err)
		}
		a.fail(w, r, err)
		return
	}
	a.demandChanged()
	if res.Rejections == nil {
		res.Rejections = []importer.Rejection{}
	}
	jsonhttp.Write(w, http.StatusOK, struct {
		sqlstore.ImportResult
		RejectionsURL string `json:"rejections_url"`
	}{res, "/api/v1/imports/" + res.ID + "/rejections.csv"})
}

func (a *API) rejections(w http.ResponseWriter, r *http.Request) {
	cw := csv.NewWriter(w)
	started := false
	start := func() {
		if !started { // the import exists: the header goes out with the first row
			started = true
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			cw.Write([]string{"line", "reason"})
		}
	}
	id := r.PathValue("import")
	if t, _ := Caller(r.Context()); len(t.Campaigns) > 0 {
		c, err := a.Store.ImportCampaign(r.Context(), id)
		if err == nil && !t.Sees(c) {
			err = fmt.Errorf("import %q: %w", id, campaign.ErrNotFound)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
	}
	err := a.Store.Rejections(r.Context(), id, func(rj importer.Rejection) error {
		start()
		return cw.Write([]string{fmt.Sprint(rj.Line), rj.Reason})
	})
	if err != nil && !started {
		a.fail(w, r, err)
		return
	}
	start()
	cw.Flush()
	if err != nil && a.Log != nil {
		a.Log.Error("rejections export", "err", err)
	}
}

// importDNC streams a do-not-call file into a list: ?list= (a campaign
// id; none for the internal list), ?source= (e.g. us-ftc, uk-tps),
// ?version= (the registry download's date or release; required for the
// internal list), ?reason= (why; required), ?region= for national
// numbers (GB for the TPS). The import is recorded with the token's name.
func (a *API) importDNC(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t, _ := Caller(r.Context())
	d := sqlstore.DNCImport{List: q.Get("list"), Source: q.Get("source"), Version: q.Get("version"), Reason: q.Get("reason"), Actor: t.Name}
	if err := d.Validate(); err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.seesList(w, r, d.List) {
		return
	}
	body, err := a.csvBody(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d, rep, err := a.Store.ImportDNCFile(r.Context(), d, body, importOptions(r), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, struct {
		sqlstore.DNCImport
		ByReason map[string]int       `json:"by_reason"`
		Blank    int                  `json:"blank"`
		Samples  []importer.Rejection `json:"samples"`
	}{d, rep.ByReason, rep.Blank, orEmpty(rep.Samples)})
}

// dncImports lists the do-not-call imports, newest first: ?limit=
// (default and at most 1000).
func (a *API) dncImports(w http.ResponseWriter, r *http.Request) {
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			a.fail(w, r, &campaign.FieldError{Field: "limit", Reason: fmt.Sprintf("%q: want 1 to 1000", v)})
			return
		}
		limit = n
	}
	got, err := a.Store.DNCImports(r.Context(), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, _ := Caller(r.Context())
	got = slices.DeleteFunc(got, func(d sqlstore.DNCImport) bool { return d.List != "internal" && !t.Sees(d.List) })
	jsonhttp.Write(w, http.StatusOK, got)
}

// searchDNC lists a do-not-call list's numbers: ?list= (a campaign id;
// none for the internal list), ?prefix=+1212, ?after= (the last number of
// the previous page), ?limit= (default and at most 1000).
func (a *API) searchDNC(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			a.fail(w, r, &campaign.FieldError{Field: "limit", Reason: fmt.Sprintf("%q: want 1 to 1000", v)})
			return
		}
		limit = n
	}
	if !a.seesList(w, r, q.Get("list")) {
		return
	}
	got, err := a.Store.SearchDNC(r.Context(), q.Get("list"), q.Get("prefix"), q.Get("after"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, got)
}

// seesList answers 404 (and false) when the caller's token is scoped to
// other campaigns than the one whose list it names.
func (a *API) seesList(w http.ResponseWriter, r *http.Request, list string) bool {
	if t, _ := Caller(r.Context()); list != sqlstore.InternalDNC && !t.Sees(list) {
		a.fail(w, r, fmt.Errorf("campaign %q: %w", list, campaign.ErrNotFound))
		return false
	}
	return true
}

// deleteDNC takes a number off a list; ?reason= is required and kept in
// the audit log with the token's name.
func (a *API) deleteDNC(w http.ResponseWriter, r *http.Request) {
	if err := sqlstore.CheckReason(r.URL.Query().Get("reason")); err != nil {
		a.fail(w, r, err)
		return
	}
	list := r.URL.Query().Get("list")
	if !a.seesList(w, r, list) {
		return
	}
	if t, _ := Caller(r.Context()); list == sqlstore.InternalDNC && len(t.Campaigns) > 0 {
		writeError(w, http.StatusForbidden, fmt.Sprintf("this token (%s) is scoped to campaigns %s: it may take numbers off their own lists, not off the internal list every campaign honours", t.Name, strings.Join(t.Campaigns, ", ")), "")
		return
	}
	if err := a.Store.DeleteDNC(r.Context(), list, r.PathValue("phone")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) setStatus(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if to == campaign.StatusRunning && a.CheckColumns != nil {
			if msg, err := a.flowFits(r.Context(), r.PathValue("id")); err != nil {
				a.fail(w, r, err)
				return
			} else if msg != "" {
				writeError(w, http.StatusConflict, msg, "flow")
				return
			}
		}
		c, err := a.Store.SetStatus(r.Context(), r.PathValue("id"), to, a.now())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.demandChanged()
		jsonhttp.Write(w, http.StatusOK, c)
	}
}

// flowFits checks the campaign's current flow against its dial lists'
// columns; it returns what does not fit, "" when all does.
func (a *API) flowFits(ctx context.Context, id string) (string, error) {
	c, err := a.Store.Campaign(ctx, id)
	if err != nil || c.FlowVersion == 0 {
		return "", err // no flow: SetStatus refuses the start with its own reason
	}
	doc, err := a.Store.FlowDocument(ctx, id, c.FlowVersion)
	if err != nil {
		return "", err
	}
	cols, err := a.Store.Columns(ctx, id)
	if err != nil || len(cols) == 0 {
		return "", err
	}
	if err := a.CheckColumns(doc, cols); err != nil {
		return fmt.Sprintf("the flow (version %d) does not fit the dial list: %v", c.FlowVersion, err), nil
	}
	return "", nil
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.Store.StatsAt(r.Context(), r.PathValue("id"), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, st)
}

// recordingURL is where the API serves a recording, "" for none.
func recordingURL(key string) string {
	if key == "" {
		return ""
	}
	return "/api/v1/recordings/" + key
}

// results streams a campaign's attempts as CSV: one row per attempt, the
// Q.850 cause with its text, the IVR path, then one column per contact
// field ("contact.<name>") and per tag the flow set ("tag.<name>"), so a
// spreadsheet sorts and filters them without parsing JSON. The columns are
// found in a first pass over the rows, which are written in a second.
func (a *API) results(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fieldSet, tagSet := map[string]bool{}, map[string]bool{}
	err := a.Store.Results(r.Context(), id, func(row sqlstore.ResultRow) error {
		for k := range jsonObject(row.Fields) {
			fieldSet[k] = true
		}
		for k := range jsonObject(row.Tags) {
			tagSet[k] = true
		}
		return nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	fields, tags := slices.Sorted(maps.Keys(fieldSet)), slices.Sorted(maps.Keys(tagSet))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"-results.csv"))
	cw := csv.NewWriter(w)
	head := []string{"phone", "attempt", "call_id", "state", "disposition", "cause", "cause_text", "started_at", "answered_at", "ended_at", "path", "recording"}
	for _, f := range fields {
		head = append(head, "contact."+f)
	}
	for _, t := range tags {
		head = append(head, "tag."+t)
	}
	cw.Write(head)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	err = a.Store.Results(r.Context(), id, func(row sqlstore.ResultRow) error {
		cause := ""
		if row.Cause != 0 {
			cause = strconv.Itoa(row.Cause)
		}
		var path []string
		json.Unmarshal([]byte(row.Path), &path)
		rec := []string{row.Phone, strconv.Itoa(row.Attempt), row.CallID, row.State, row.Disposition, cause, campaign.CauseText(row.Cause),
			ts(row.StartedAt), ts(row.AnsweredAt), ts(row.EndedAt), strings.Join(path, " > "), recordingURL(row.Recording)}
		fv, tv := jsonObject(row.Fields), jsonObject(row.Tags)
		for _, f := range fields {
			rec = append(rec, fv[f])
		}
		for _, t := range tags {
			rec = append(rec, tv[t])
		}
		return cw.Write(rec)
	})
	cw.Flush()
	if err != nil && a.Log != nil {
		a.Log.Error("results export", "campaign", id, "err", err)
	}
}

// jsonObject reads a stored JSON object of strings; values of other types
// keep their JSON text.
func jsonObject(doc string) map[string]string {
	var raw map[string]json.RawMessage
	if json.Unmarshal([]byte(doc), &raw) != nil {
		return nil
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else if string(v) != "null" {
			out[k] = string(v)
		}
	}
	return out
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request) {
	t, _ := Caller(r.Context())
	perms := []campaign.Perm{}
	for _, p := range []campaign.Perm{campaign.PermRead, campaign.PermWrite, campaign.PermControl, campaign.PermResults, campaign.PermTrunks, campaign.PermFleet, campaign.PermTokens, campaign.PermAllCamps} {
		if t.Allows(p) {
			perms = append(perms, p)
		}
	}
	jsonhttp.Write(w, http.StatusOK, struct {
		campaign.Token
		Perms []campaign.Perm `json:"perms"`
	}{t, perms})
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := a.Store.Tokens(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, orEmpty(ts))
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string        `json:"name"`
		Role      campaign.Role `json:"role"`
		Campaigns []string      `json:"campaigns"`
		ExpiresIn int64         `json:"expires_in_seconds"` // 0: never
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	t := campaign.Token{Name: req.Name, Role: req.Role, Campaigns: req.Campaigns}
	if req.ExpiresIn < 0 {
		a.fail(w, r, &campaign.FieldError{Field: "expires_in_seconds", Reason: "must not be negative"})
		return
	}
	if req.ExpiresIn > 0 {
		t.ExpiresAt = a.now().Add(time.Duration(req.ExpiresIn) * time.Second)
	}
	tok, t, err := a.Store.CreateAPIToken(r.Context(), t, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusCreated, struct {
		campaign.Token
		Secret string `json:"token"` // shown once; only its hash is kept
	}{t, tok})
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := a.Store.RevokeToken(r.Context(), r.PathValue("tid"), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, t)
}
