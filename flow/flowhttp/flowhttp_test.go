package flowhttp_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/flow/flowhttp"
	"github.com/elastidial/elastidial/nodeapi"
)

// crmFlow looks the contact up in a CRM and branches on the answer; any
// error or timeout takes the fallback.
const crmFlow = `{"start": "lookup", "states": {
  "lookup": {"http": {"method": "GET", "url": "URL/customers/{{account}}?src={{src}}", "params": {"phone": "{{phone}}"},
             "timeout_ms": 300, "vars": {"tier": "customer.tier", "owed": "balance", "missing": "nope.x"}},
             "next": "check", "failed": "fallback"},
  "check": {"branch": [{"value": "{{tier}}", "op": "eq", "arg": "gold", "goto": "gold"}], "next": "post"},
  "gold": {"set": {"result": "gold", "owed": "{{owed}}", "missing": "{{missing}}"}, "next": "post"},
  "post": {"http": {"method": "POST", "url": "URL/outcomes", "params": {"account": "{{account}}", "tier": "{{tier}}"}}, "next": "bye", "failed": "fallback"},
  "fallback": {"set": {"result": "crm_down"}, "next": "bye"},
  "bye": {"hangup": true}}}`

func TestHTTPStepAgainstACRM(t *testing.T) {
	var mu sync.Mutex
	var posted map[string]string
	var slow atomic.Bool
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case slow.Load():
			time.Sleep(time.Second)
		case r.Method == "GET" && r.URL.EscapedPath() == "/customers/A%2F1%20x":
			if r.URL.Query().Get("phone") != "+14155550100" || r.URL.Query().Get("src") != "a&b=c" {
				http.Error(w, "bad query "+r.URL.RawQuery, 400)
				return
			}
			w.Write([]byte(`{"customer": {"tier": "gold"}, "balance": 12.5}`))
			return
		case r.Method == "POST" && r.URL.Path == "/outcomes":
			mu.Lock()
			json.NewDecoder(r.Body).Decode(&posted)
			mu.Unlock()
			w.WriteHeader(204)
			return
		}
		http.NotFound(w, r)
	}))
	defer crm.Close()
	f, err := flow.Parse([]byte(strings.ReplaceAll(crmFlow, "URL", crm.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(nil); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{"account": "A/1 x", "src": "a&b=c", "phone": "+14155550100"}
	loopback := &flowhttp.Client{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	run := func(c flow.Fetcher) flow.Outcome {
		o, err := flow.RunHTTP(t.Context(), c, f, "", flow.Input{Kind: nodeapi.InputStart}, fields, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := run(loopback)
	if o.Tags["result"] != "gold" || o.Tags["owed"] != "12.5" || o.Tags["missing"] != "" || o.Vars["tier"] != "gold" {
		t.Fatalf("lookup: %+v", o)
	}
	mu.Lock()
	if posted["account"] != "A/1 x" || posted["tier"] != "gold" {
		t.Fatalf("posted %v", posted)
	}
	mu.Unlock()
	// The CRM times out: the fallback branch, within the step.
	slow.Store(true)
	start := time.Now()
	o = run(loopback)
	if o.Tags["result"] != "crm_down" || !strings.Contains(o.Tags["http_error"], "deadline") || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("timeout: %+v after %v", o, time.Since(start))
	}
	slow.Store(false)
	// The default client never reaches loopback: the fallback, and why.
	o = run(&flowhttp.Client{})
	if o.Tags["result"] != "crm_down" || !strings.Contains(o.Tags["http_error"], "127.0.0.1 is not a public address") {
		t.Fatalf("loopback refused: %+v", o)
	}
	// No fetcher at all (a node's simulator): the fallback.
	if o = run(nil); o.Tags["result"] != "crm_down" {
		t.Fatalf("no fetcher: %+v", o)
	}
}

func TestAddressesRefused(t *testing.T) {
	c := &flowhttp.Client{}
	for _, a := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:169.254.169.254", "224.0.0.1"} {
		if c.Permitted(netip.MustParseAddr(a)) {
			t.Errorf("%s permitted", a)
		}
	}
	for _, a := range []string{"93.184.216.34", "2606:4700::1"} {
		if !c.Permitted(netip.MustParseAddr(a)) {
			t.Errorf("%s refused", a)
		}
	}
	// A public-looking redirect to the metadata service is refused at
	// connect time.
	meta := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data/", http.StatusFound))
	defer meta.Close()
	lb := &flowhttp.Client{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	_, err := lb.Fetch(t.Context(), flow.Request{Method: "GET", URL: meta.URL, Timeout: time.Second}, nil)
	if !errors.Is(err, flowhttp.ErrRefused) {
		t.Fatalf("redirect to the metadata service: %v", err)
	}
}

func TestHTTPValidation(t *testing.T) {
	for _, tc := range []struct{ http, want string }{
		{`{"method":"PUT","url":"https://crm.example/x"}`, `http method "PUT"`},
		{`{"method":"GET","url":"ftp://crm.example/x"}`, `http url "ftp://crm.example/x": want an absolute http:// or https:// URL`},
		{`{"method":"GET","url":"https://user:pw@crm.example/x"}`, `without credentials`},
		{`{"method":"GET","url":"https://{{host}}/x"}`, `never the host`},
		{`{"method":"GET","url":"https://crm.example/x","timeout_ms":9000}`, `http timeout_ms 9000: want 100 to 4000`},
		{`{"method":"GET","url":"https://crm.example/x","vars":{"t":"a..b"}}`, `http vars "t": path "a..b"`},
	} {
		doc := `{"start":"a","states":{"a":{"http":` + tc.http + `,"next":"b","failed":"b"},"b":{"hangup":true}}}`
		err := flow.Check([]byte(doc), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `state "a": http`) {
			t.Errorf("%s: %v\nwant %s", tc.http, err, tc.want)
		}
	}
	if err := flow.Check([]byte(`{"start":"a","states":{"a":{"http":{"method":"GET","url":"https://crm.example/x"},"next":"b"},"b":{"hangup":true}}}`), nil); err == nil || !strings.Contains(err.Error(), "needs failed") {
		t.Errorf("no failed: %v", err)
	}
}
