package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// Route is one endpoint of the REST API.
type Route struct {
	Pattern string        // a ServeMux pattern with its method: "GET /api/v1/campaigns/{id}"
	Perm    campaign.Perm // the permission it needs; "" for any live token
	Public  bool          // served without a token (the API's own description)
	Handler http.Handler
}

// OpenAPI is the API's OpenAPI 3 description, served at
// /api/v1/openapi.json. A test in cmd/controller checks it against the
// routes the controller mounts: every route documented, nothing documented
// that is not served.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
}

// JSONErrors answers, in the API's JSON error form, the requests that mux
// has no route for (404) or no route for with this method (405, with the
// Allow header); everything else passes through untouched.
func JSONErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&muxErrorWriter{ResponseWriter: w, r: r}, r)
	})
}

// muxErrorWriter turns ServeMux's plain-text 404 and 405 into JSON.
type muxErrorWriter struct {
	http.ResponseWriter
	r       *http.Request
	replied bool
}

func (e *muxErrorWriter) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("no such endpoint: %s %s (the endpoints are listed at /api/v1/openapi.json)", e.r.Method, e.r.URL.Path)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("%s is not allowed on %s; allowed: %s", e.r.Method, e.r.URL.Path, e.Header().Get("Allow"))
	default:
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.replied = true
	e.Header().Del("X-Content-Type-Options")
	writeError(e.ResponseWriter, code, msg, "")
}

func (e *muxErrorWriter) Write(b []byte) (int, error) {
	if e.replied { // ServeMux's own text: already answered in JSON
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

// jsonType names a Go type the way the API's documentation does.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.String()
}

// readOnly are the campaign fields the store keeps; PATCH refuses them.
var readOnly = map[string]string{
	"id":           "is the campaign's identity",
	"status":       "changes through POST .../start, pause, resume or stop",
	"flow_version": "changes with PUT .../flow",
	"created_at":   "is kept by the controller",
	"updated_at":   "is kept by the controller",
	"transfers":    "follows the flow: set when it has a transfer state",
	"flow_length":  "follows the flow: its longest call, computed when it is saved",
}

// campaignFields are the JSON names of campaign.Campaign's fields.
func campaignFields() []string {
	var names []string
	t := reflect.TypeFor[campaign.Campaign]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// patchCampaign changes only the fields the body names, as a JSON merge
// patch (RFC 7396): an object merges into the stored one (retry, weekdays),
// null resets a field to its default, anything else replaces it. Unknown
// and read-only fields are refused by name, before anything changes.
func (a *API) patchCampaign(w http.ResponseWriter, r *http.Request) {
	var patch map[string]json.RawMessage
	if err := decode(w, r, &patch); err != nil {
		a.fail(w, r, err)
		return
	}
	if patch == nil {
		a.fail(w, r, &campaign.FieldError{Field: "body", Reason: "a patch is a JSON object of the fields to change"})
		return
	}
	known := campaignFields()
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		if why, ok := readOnly[k]; ok {
			a.fail(w, r, &campaign.FieldError{Field: k, Reason: "cannot be patched: it " + why})
			return
		}
		if !slices.Contains(known, k) {
			a.fail(w, r, &campaign.FieldError{Field: k, Reason: "unknown field; a campaign has " + strings.Join(slices.DeleteFunc(known, func(n string) bool { _, ro := readOnly[n]; return ro }), ", ")})
			return
		}
	}
	c, err := a.Store.ModifyCampaign(r.Context(), r.PathValue("id"), func(c *campaign.Campaign) error {
		cur, err := json.Marshal(c)
		if err != nil {
			return err
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(cur, &doc); err != nil {
			return err
		}
		if _, group := patch["trunks"]; !group && len(c.Trunks) <= 1 {
			// A campaign on one trunk: its group follows the trunk a
			// patch names. A longer group changes only by naming it.
			delete(doc, "trunks")
		}
		for k, v := range patch {
			if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				delete(doc, k) // back to the default
				continue
			}
			doc[k] = mergePatch(doc[k], v)
		}
		merged, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		var next campaign.Campaign
		if err := decodeJSON(bytes.NewReader(merged), &next); err != nil {
			return err
		}
		*c = next
		return nil
	}, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.demandChanged()
	jsonhttp.Write(w, http.StatusOK, c)
}

// mergePatch applies a JSON merge patch (RFC 7396) to a document.
func mergePatch(doc, patch json.RawMessage) json.RawMessage {
	var p map[string]json.RawMessage
	if json.Unmarshal(patch, &p) != nil || p == nil {
		return patch // not an object: it replaces
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(doc, &d) != nil || d == nil {
		d = map[string]json.RawMessage{}
	}
	for k, v := range p {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(d, k)
			continue
		}
		d[k] = mergePatch(d[k], v)
	}
	out, _ := json.Marshal(d)
	return out
}
