package xmlrpc

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	kolo "github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/nodeapi"
)

// echoServer answers test.echo with its first param, test.fail with a
// fault and test.panic by panicking.
func echoServer(t *testing.T) *httptest.Server {
	s := NewServer()
	s.Register("test.echo", "Returns its param.", []string{"any", "any"}, func(_ context.Context, p []any) (any, error) {
		if len(p) == 0 {
			return nil, nil
		}
		return p[0], nil
	})
	s.Register("test.fail", "Always faults.", nil, func(context.Context, []any) (any, error) {
		return nil, &Fault{Code: 42, String: "as asked"}
	})
	s.Register("test.panic", "Panics.", nil, func(context.Context, []any) (any, error) { panic("boom") })
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

type everything struct {
	I     int               `xmlrpc:"i"`
	Big   int64             `xmlrpc:"big"`
	B     bool              `xmlrpc:"b"`
	S     string            `xmlrpc:"s"`
	F     float64           `xmlrpc:"f"`
	T     time.Time         `xmlrpc:"t"`
	List  []string          `xmlrpc:"list"`
	Map   map[string]string `xmlrpc:"map"`
	Inner struct {
		N int `xmlrpc:"n"`
	} `xmlrpc:"inner"`
}

// TestKoloClientRoundTrip drives the server with the node agent's client
// library. (kolo/xmlrpc sends []byte as an array of ints, not base64, so
// base64 is proven with the Python client instead.)
func TestKoloClientRoundTrip(t *testing.T) {
	srv := echoServer(t)
	c, err := kolo.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := everything{I: -7, Big: 1 << 40, B: true, S: "<Zoë & \"friends\">", F: 2.5, T: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC),
		List: []string{"a", ""}, Map: map[string]string{"k": "v"}}
	in.Inner.N = 3
	var out everything
	if err := c.Call("test.echo", in, &out); err != nil {
		t.Fatal(err)
	}
	out.T = out.T.UTC()
	in.T = in.T.UTC()
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in  %+v\n out %+v", in, out)
	}
	// nodeapi structs go through unchanged too.
	step := nodeapi.StepResponse{State: "menu~1", Action: nodeapi.Action{Kind: "gather", Prompts: []string{"a/b"}, MaxDigits: 1, TimeoutMS: 5000,
		Text: "Enter your PIN", Format: "ABdY", Language: "en", Voice: "slt",
		Files: []nodeapi.AudioFile{{Name: "0a1b.wav", Size: 44, SHA256: "ff", URL: "http://127.0.0.1/tts/0a1b.wav"}}},
		Tags: map[string]string{"result": "yes"}, Vars: map[string]string{"pin": "0042"}}
	var back nodeapi.StepResponse
	if err := c.Call("test.echo", step, &back); err != nil || !reflect.DeepEqual(step, back) {
		t.Fatalf("step: %v\n%+v\n%+v", err, step, back)
	}
	// Faults, the way the agent reads them: kolo's encoder and Response.
	kcall := func(method string) error {
		body, _ := kolo.EncodeMethodCall(method)
		resp, err := http.Post(srv.URL, "text/xml", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return kolo.Response(b).Err()
	}
	for _, tc := range []struct {
		method string
		code   int
	}{{"test.fail", 42}, {"no.such", nodeapi.FaultUnknownMethod}, {"test.panic", nodeapi.FaultInternal}} {
		var fe kolo.FaultError
		if err := kcall(tc.method); !errorsAs(err, &fe) || fe.Code != tc.code {
			t.Errorf("%s: %#v, want fault %d", tc.method, err, tc.code)
		}
	}
}

func errorsAs(err error, fe *kolo.FaultError) bool {
	switch f := err.(type) {
	case kolo.FaultError:
		*fe = f
	case *kolo.FaultError:
		*fe = *f
	default:
		return false
	}
	return true
}

const pyClient = `
import sys, xmlrpc.client, datetime
p = xmlrpc.client.ServerProxy(sys.argv[1], allow_none=True, use_builtin_types=True)
methods = p.system.listMethods()
assert "test.echo" in methods and "system.multicall" in methods, methods
v = {"i": 7, "neg": -2**31, "b": False, "s": "caf\u00e9 <&>", "f": 0.1, "none": None,
     "t": datetime.datetime(2026, 11, 22, 9, 30, 0), "raw": b"\x00\xff", "list": [1, "two", [3]], "empty": {}}
got = p.test.echo(v)
assert got == v, (got, v)
try:
    p.test.fail()
    raise SystemExit("no fault")
except xmlrpc.client.Fault as f:
    assert f.faultCode == 42 and f.faultString == "as asked", f
try:
    p.nope()
    raise SystemExit("no fault")
except xmlrpc.client.Fault as f:
    assert f.faultCode == -32601, f
m = xmlrpc.client.MultiCall(p)
m.test.echo(1)
m.test.fail()
m.test.echo("x")
res = m()
assert res[0] == 1 and res[2] == "x"
try:
    res[1]
    raise SystemExit("no fault in multicall")
except xmlrpc.client.Fault as f:
    assert f.faultCode == 42
assert p.system.methodHelp("test.echo") == "Returns its param."
print("ok")
`

func TestPythonClientConformance(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	srv := echoServer(t)
	script := filepath.Join(t.TempDir(), "client.py")
	os.WriteFile(script, []byte(pyClient), 0o644)
	out, err := exec.Command(py, script, srv.URL).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python client: %v\n%s", err, out)
	}
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// faultCode extracts the fault code of a response, or 0.
func faultCode(t *testing.T, body string) int {
	t.Helper()
	var r struct {
		Fault *struct {
			Members []struct {
				Name  string `xml:"name"`
				Value struct {
					Int string `xml:"int"`
				} `xml:"value"`
			} `xml:"value>struct>member"`
		} `xml:"fault"`
	}
	if err := xml.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("response is not XML: %v: %s", err, body)
	}
	if r.Fault == nil {
		return 0
	}
	for _, m := range r.Fault.Members {
		if m.Name == "faultCode" {
			var n int
			for _, c := range m.Value.Int {
				n = n*10 + int(c-'0')
			}
			if strings.HasPrefix(m.Value.Int, "-") {
				n = 0
				for _, c := range m.Value.Int[1:] {
					n = n*10 + int(c-'0')
				}
				n = -n
			}
			return n
		}
	}
	return 0
}

func call(method, value string) string {
	return `<?xml version="1.0"?><methodCall><methodName>` + method + `</methodName><params><param><value>` + value + `</value></param></params></methodCall>`
}

func TestHostileRequests(t *testing.T) {
	srv := echoServer(t)
	deep := strings.Repeat("<array><data><value>", 100) + "<int>1</int>" + strings.Repeat("</value></data></array>", 100)
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><methodCall><methodName>test.echo</methodName><params><param><value>&lol2;</value></param></params></methodCall>`
	external := `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><methodCall><methodName>test.echo</methodName><params><param><value>&e;</value></param></params></methodCall>`
	many := call("test.echo", "<array><data>"+strings.Repeat("<value><int>1</int></value>", 100_001)+"</data></array>")
	for _, tc := range []struct {
		name, body string
		code       int
	}{
		{"garbage", "hello", nodeapi.FaultParse},
		{"empty", "", nodeapi.FaultParse},
		{"truncated", `<methodCall><methodName>test.echo</methodName><params><param><value><int>1`, nodeapi.FaultParse},
		{"billion laughs", laughs, nodeapi.FaultParse},
		{"external entity", external, nodeapi.FaultParse},
		{"undefined entity", call("test.echo", "&nope;"), nodeapi.FaultParse},
		{"invalid utf-8", call("test.echo", "<string>\xff\xfe</string>"), nodeapi.FaultParse},
		{"latin-1 declared", `<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>x</methodName></methodCall>`, nodeapi.FaultEncoding},
		{"unknown type", call("test.echo", "<bigdecimal>1</bigdecimal>"), nodeapi.FaultInvalidRequest},
		{"bad int", call("test.echo", "<int>12x</int>"), nodeapi.FaultInvalidRequest},
		{"bad boolean", call("test.echo", "<boolean>yes</boolean>"), nodeapi.FaultInvalidRequest},
		{"nan", call("test.echo", "<double>NaN</double>"), nodeapi.FaultInvalidRequest},
		{"bad base64", call("test.echo", "<base64>!!!</base64>"), nodeapi.FaultInvalidRequest},
		{"member without value", call("test.echo", "<struct><member><name>a</name></member></struct>"), nodeapi.FaultInvalidRequest},
		{"deep nesting", call("test.echo", deep), nodeapi.FaultTooLarge},
		{"too many values", many, nodeapi.FaultTooLarge},
		{"oversized body", call("test.echo", "<string>"+strings.Repeat("a", 2<<20)+"</string>"), nodeapi.FaultTooLarge},
		{"no method name", `<methodCall><methodName> </methodName></methodCall>`, nodeapi.FaultInvalidRequest},
		{"wrong root", `<methodResponse/>`, nodeapi.FaultInvalidRequest},
		{"trailing junk", call("test.echo", "<int>1</int>") + "<x/>", nodeapi.FaultInvalidRequest},
		{"multicall with a string", call("system.multicall", `<string>x</string>`), nodeapi.FaultInvalidParams},
		{"multicall with no params", `<methodCall><methodName>system.multicall</methodName><params/></methodCall>`, nodeapi.FaultInvalidParams},
		{"multicall with a struct", call("system.multicall", `<struct></struct>`), nodeapi.FaultInvalidParams},
		{"nested multicall", call("system.multicall", `<array><data><value><struct><member><name>methodName</name><value>system.multicall</value></member><member><name>params</name><value><array><data/></array></value></member></struct></value></data></array>`), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, srv.URL, tc.body)
			if status != 200 {
				t.Fatalf("HTTP %d: %s", status, body)
			}
			if got := faultCode(t, body); got != tc.code {
				t.Fatalf("fault code %d, want %d: %s", got, tc.code, clip(body))
			}
		})
	}
	resp, _ := http.Get(srv.URL)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

func TestValueForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"plain text", "plain text"},
		{"", ""},
		{"<string/>", ""},
		{" <i4>-5</i4> ", int64(-5)},
		{"<i8>9007199254740993</i8>", int64(9007199254740993)},
		{"<boolean>1</boolean>", true},
		{"<double>-0.5</double>", -0.5},
		{"<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>", time.Date(1998, 7, 17, 14, 8, 55, 0, time.UTC)},
		{"<base64>aGk=</base64>", []byte("hi")},
		{"<nil/>", nil},
		{"<array><data></data></array>", []any{}},
		{"<struct><member><name>a</name><value><int>1</int></value></member></struct>", map[string]any{"a": int64(1)}},
	} {
		_, params, err := DecodeCall(strings.NewReader(call("m", tc.in)), Limits{})
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(params[0], tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.in, params[0], tc.want)
		}
	}
}

func TestUnmarshalNamesTheMember(t *testing.T) {
	var req nodeapi.NextRequest
	err := Unmarshal(map[string]any{"free": "lots"}, &req)
	if err == nil || !strings.Contains(err.Error(), `member "free": want int, got string`) {
		t.Fatalf("err = %v", err)
	}
}

// Every place a mismatch can be is named the same way, however deep.
func TestUnmarshalPaths(t *testing.T) {
	for _, tc := range []struct {
		src  any
		dst  any
		want string
	}{
		{int64(1), new(nodeapi.NextResponse), "value: want struct, got int"},
		{[]any{"a", int64(2)}, new([]string), "[1]: want string, got int"},
		{map[string]any{"calls": []any{map[string]any{}, map[string]any{"flow_version": "x"}}}, new(nodeapi.NextResponse),
			`member "calls"[1].flow_version: want int, got string`},
		{map[string]any{"calls": []any{map[string]any{"fields": map[string]any{"a b": int64(1)}}}}, new(nodeapi.NextResponse),
			`member "calls"[0].fields.a b: want string, got int`},
		{map[string]any{"action": map[string]any{"prompts": []any{"a", "b", true}}}, new(nodeapi.StepResponse),
			`member "action".prompts[2]: want string, got boolean`},
		{map[string]any{"x": map[string]any{"y": int64(300)}}, new(map[string]map[string]int8), `member "x".y: 300 is out of range`},
		{int64(300), new(int8), "value: 300 is out of range"},
	} {
		err := Unmarshal(tc.src, tc.dst)
		var f *Fault
		if !errors.As(err, &f) || f.Code != nodeapi.FaultInvalidParams || f.String != tc.want {
			t.Errorf("%v into %T: %v, want %q", tc.src, tc.dst, err, tc.want)
		}
	}
}

func BenchmarkUnmarshalStepResponse(b *testing.B) {
	var buf bytes.Buffer
	EncodeResponse(&buf, nodeapi.StepResponse{State: "menu", Action: nodeapi.Action{Kind: nodeapi.ActionGather, Prompts: []string{"welcome", "menu"}, MaxDigits: 1, TimeoutMS: 5000},
		Tags: map[string]string{"result": "sale"}, Vars: map[string]string{"choice": "1", "account": "123"}})
	v, err := DecodeResponse(buf.Bytes(), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var st nodeapi.StepResponse
		if err := Unmarshal(v, &st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStep(b *testing.B) {
	body, _ := kolo.EncodeMethodCall(nodeapi.MethodStep, nodeapi.StepRequest{CallID: "k_1234567890", Token: "abcdef-12", CampaignID: "c_1", FlowVersion: 3, State: "menu", Input: "digits", Digits: "1", Fields: map[string]string{"account": "123"}})
	for b.Loop() {
		if _, _, err := DecodeCall(bytes.NewReader(body), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// What EncodeResponse and EncodeFault write, DecodeResponse reads back:
// the value (into the same struct through Unmarshal), or the fault as a
// *Fault; anything else in a response is an error naming the problem.
func TestDecodeResponse(t *testing.T) {
	want := nodeapi.StepResponse{State: "menu", Action: nodeapi.Action{Kind: nodeapi.ActionPlay, Prompts: []string{"x/hello"}, Files: []nodeapi.AudioFile{}},
		Tags: map[string]string{"lang": "fr"}, Vars: map[string]string{}}
	var buf bytes.Buffer
	if err := EncodeResponse(&buf, want); err != nil {
		t.Fatal(err)
	}
	v, err := DecodeResponse(buf.Bytes(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got nodeapi.StepResponse
	if err := Unmarshal(v, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	buf.Reset()
	EncodeFault(&buf, &Fault{Code: nodeapi.FaultForbidden, String: "not yours"})
	_, err = DecodeResponse(buf.Bytes(), Limits{})
	var f *Fault
	if !errors.As(err, &f) || f.Code != nodeapi.FaultForbidden || f.String != "not yours" {
		t.Fatalf("fault: %v", err)
	}

	for name, doc := range map[string]string{
		"a call":         `<methodCall><methodName>x</methodName></methodCall>`,
		"no param":       `<methodResponse><params></params></methodResponse>`,
		"two params":     `<methodResponse><params><param><value>a</value></param><param><value>b</value></param></params></methodResponse>`,
		"trailing":       `<methodResponse><params><param><value>a</value></param></params></methodResponse><x/>`,
		"unclosed":       `<methodResponse><params><param><value>a`,
		"fault not code": `<methodResponse><fault><value><struct><member><name>faultCode</name><value>x</value></member></struct></value></fault></methodResponse>`,
	} {
		_, err := DecodeResponse([]byte(doc), Limits{})
		if err == nil || errors.As(err, &f) {
			t.Errorf("%s: %v, want an error that is not a fault", name, err)
		}
	}
}

func BenchmarkDecodeResponseStep(b *testing.B) {
	var buf bytes.Buffer
	EncodeResponse(&buf, nodeapi.StepResponse{State: "menu", Action: nodeapi.Action{Kind: nodeapi.ActionGather, Prompts: []string{"welcome", "menu"}, MaxDigits: 1, TimeoutMS: 5000},
		Tags: map[string]string{"result": "sale"}, Vars: map[string]string{"choice": "1", "account": "123"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResponse(buf.Bytes(), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
