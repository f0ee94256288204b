package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/campaign/httpapi"
)

// openAPIOps lists the operations an OpenAPI document describes, as
// "METHOD /path", with the path parameters each declares.
func openAPIOps(t *testing.T, doc []byte) map[string][]string {
	t.Helper()
	var d struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Parameters []struct {
				Ref  string `json:"$ref"`
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
		Components struct {
			Parameters map[string]struct{ Name, In string } `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", d.OpenAPI)
	}
	ops := map[string][]string{}
	for path, methods := range d.Paths {
		for m, op := range methods {
			var params []string
			for _, p := range op.Parameters {
				if p.Ref != "" {
					c, ok := d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
					if !ok {
						t.Errorf("%s %s: parameter %s is not defined", m, path, p.Ref)
					}
					p.Name, p.In = c.Name, c.In
				}
				if p.In == "path" {
					params = append(params, p.Name)
				}
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s: no responses", m, path)
			}
			ops[strings.ToUpper(m)+" "+path] = params
		}
	}
	return ops
}

var wildcard = regexp.MustCompile(`\{([a-z_]+)(\.\.\.)?\}`)

// TestOpenAPIMatchesRoutes: every route the controller mounts under
// /api/v1/ is documented, with its path parameters, and the document
// describes no route that is not mounted.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ops := openAPIOps(t, httpapi.OpenAPI)
	routes := append((&httpapi.API{}).Routes(), controllerRoutes(controllerHandlers{})...)
	mounted := map[string]bool{}
	for _, r := range routes {
		op := wildcard.ReplaceAllString(r.Pattern, "{$1}")
		mounted[op] = true
		params, ok := ops[op]
		if !ok {
			t.Errorf("route %s is not in openapi.json", r.Pattern)
			continue
		}
		var want []string
		for _, m := range wildcard.FindAllStringSubmatch(r.Pattern, -1) {
			want = append(want, m[1])
		}
		slices.Sort(want)
		slices.Sort(params)
		if !slices.Equal(params, want) {
			t.Errorf("%s: openapi.json declares path parameters %v, the route has %v", op, params, want)
		}
	}
	for op := range ops {
		if !mounted[op] {
			t.Errorf("openapi.json documents %s, which the controller does not serve", op)
		}
	}
}

// TestOpenAPIKnowsEveryPatternInTheSource: a route registered anywhere
// (the API's table, the controller's mux, the audio library's own mux) is
// documented, even one mounted outside the route table.
func TestOpenAPIKnowsEveryPatternInTheSource(t *testing.T) {
	ops := openAPIOps(t, httpapi.OpenAPI)
	pattern := regexp.MustCompile("\"((?:GET|POST|PUT|PATCH|DELETE) /api/v1/[^\" ]*)\"")
	found := 0
	for _, dir := range []string{".", "../../campaign/httpapi", "../../storage"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range pattern.FindAllStringSubmatch(string(src), -1) {
				found++
				if _, ok := ops[wildcard.ReplaceAllString(m[1], "{$1}")]; !ok {
					t.Errorf("%s registers %s, which openapi.json does not document", f, m[1])
				}
			}
		}
	}
	if found < 20 {
		t.Fatalf("found %d route patterns in the source; the scan is broken", found)
	}
}

// TestOpenAPIServed: the running controller serves the document without a
// token, and answers every operation it lists (with 401 here: no token)
// rather than "no such endpoint"; unknown paths and methods get JSON.
func TestOpenAPIServed(t *testing.T) {
	srv := startServe(t)
	resp, err := http.Get(srv.base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fill := strings.NewReplacer("{id}", "c_x", "{name}", "x", "{set}", "x", "{key}", "calls/x.wav", "{phone}", "+12125550100", "{tid}", "t_x", "{import}", "i_x")
	for op := range openAPIOps(t, doc) {
		method, path, _ := strings.Cut(op, " ")
		req, _ := http.NewRequest(method, srv.base+fill.Replace(path), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusUnauthorized
		if path == "/api/v1/openapi.json" {
			want = http.StatusOK
		}
		if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s without a token: %d %s, want %d", op, resp.StatusCode, b, want)
		}
	}
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/v1/campaign", `"error": "no such endpoint: GET /api/v1/campaign`},
		{"GET", "/api/v1", `"error": "no such endpoint: GET /api/v1 `},
		{"POST", "/api/v1/fleet", `"error": "POST is not allowed on /api/v1/fleet; allowed: GET, HEAD"`},
		{"GET", "/api/v1/cost?format=xml", `"error": "cost report: format \"xml\" is not json, csv or table"`},
	} {
		code, body := srv.call(tc.method, tc.path, "")
		if code < 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s, want %s", tc.method, tc.path, code, body, tc.want)
		}
	}
	// The cost report speaks snake_case like the rest of the API.
	if _, body := srv.call("GET", "/api/v1/cost", ""); !strings.Contains(body, `"total"`) || strings.Contains(body, `"Total"`) {
		t.Errorf("cost report keys: %s", body)
	}
}
