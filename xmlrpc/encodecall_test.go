package xmlrpc

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	kolo "github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/nodeapi"
)

// requests is every nodeapi request with the method it is sent to.
var requests = []struct {
	method string
	req    any
}{
	{nodeapi.MethodRegister, nodeapi.RegisterRequest{}},
	{nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{}},
	{nodeapi.MethodNext, nodeapi.NextRequest{}},
	{nodeapi.MethodStep, nodeapi.StepRequest{}},
	{nodeapi.MethodResult, nodeapi.ResultRequest{}},
	{nodeapi.MethodFailover, nodeapi.FailoverRequest{}},
	{nodeapi.MethodTrunks, nodeapi.TrunksRequest{}},
	{nodeapi.MethodManifest, nodeapi.ManifestRequest{}},
}

// filled is a value of t with every field set, each differently (seed),
// strings with what XML must escape; maps hold one key, so that kolo's
// map order cannot change its bytes.
func filled(t *testing.T, typ reflect.Type, seed int) reflect.Value {
	v := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.String:
		v.SetString("s" + strconv.Itoa(seed) + " <&>\"' é€😀\n\t\r]]>")
	case reflect.Int, reflect.Int32:
		v.SetInt(int64(seed)*1000 + 7)
	case reflect.Int64:
		v.SetInt(1_800_000_000 + int64(seed)) // Unix seconds: within 32 bits until 2038
	case reflect.Float64:
		v.SetFloat(0.25 * float64(seed+1))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Map: // kolo does not escape a member name: keep it plain (see TestEncodeCallEscapesNames)
		v.Set(reflect.MakeMap(typ))
		v.SetMapIndex(reflect.ValueOf("k"+strconv.Itoa(seed)), filled(t, typ.Elem(), seed+1))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(typ, 2, 2))
		v.Index(0).Set(filled(t, typ.Elem(), seed+1))
		v.Index(1).Set(filled(t, typ.Elem(), seed+2))
	case reflect.Struct:
		for i := range typ.NumField() {
			v.Field(i).Set(filled(t, typ.Field(i).Type, seed+i))
		}
	default:
		t.Fatalf("filled: no value for %s: teach the test this kind", typ)
	}
	if v.IsZero() {
		t.Fatalf("filled: %s left zero", typ)
	}
	return v
}

// For every nodeapi request, with every field set and with none, the
// bytes are kolo's (the agent's encoder), and DecodeCall then Unmarshal
// give the request back: the server sees what the agent would send.
func TestEncodeCallIsKolos(t *testing.T) {
	for _, r := range requests {
		typ := reflect.TypeOf(r.req)
		for _, v := range []reflect.Value{reflect.Zero(typ), filled(t, typ, 1)} {
			req := v.Interface()
			var got bytes.Buffer
			if err := EncodeCall(&got, r.method, req); err != nil {
				t.Fatalf("%s: %v", r.method, err)
			}
			want, err := kolo.EncodeMethodCall(r.method, req)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("%s %+v:\n got %s\nkolo %s", r.method, req, got.Bytes(), want)
			}
			method, params, err := DecodeCall(&got, Limits{})
			if err != nil || method != r.method || len(params) != 1 {
				t.Fatalf("DecodeCall: %q %d params, %v", method, len(params), err)
			}
			back := reflect.New(typ)
			if err := Unmarshal(params[0], back.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Elem().Interface(), emptied(v).Interface()) {
				t.Errorf("%s: round trip\n got %+v\nwant %+v", r.method, back.Elem().Interface(), req)
			}
		}
	}
}

// emptied is v with its nil maps and slices empty: XML-RPC has no nil
// struct or array, so that is how they come back.
func emptied(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	out.Set(v)
	for i := range out.NumField() {
		switch f := out.Field(i); {
		case f.Kind() == reflect.Map && f.IsNil():
			f.Set(reflect.MakeMap(f.Type()))
		case f.Kind() == reflect.Slice && f.IsNil():
			f.Set(reflect.MakeSlice(f.Type(), 0, 0))
		}
	}
	return out
}

// A member name is escaped like any text. (kolo writes a map key as it
// is, so the agent's request is malformed XML when a contact field's
// name holds '<' or '&'.)
func TestEncodeCallEscapesNames(t *testing.T) {
	req := nodeapi.StepRequest{Fields: map[string]string{"a<b&c": "x"}}
	var b bytes.Buffer
	if err := EncodeCall(&b, nodeapi.MethodStep, req); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "<name>a&lt;b&amp;c</name>") {
		t.Errorf("member name not escaped: %s", b.Bytes())
	}
	_, params, err := DecodeCall(&b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got nodeapi.StepRequest
	if err := Unmarshal(params[0], &got); err != nil || got.Fields["a<b&c"] != "x" {
		t.Errorf("fields %v, %v", got.Fields, err)
	}
}

// kolo reads what EncodeCall writes where the bytes cannot be kolo's own
// (maps of several members, in EncodeCall's order not kolo's): each
// param's value, put in a methodResponse, is unmarshalled by kolo's
// decoder, the one the agent reads answers with.
func TestEncodeCallKoloDecodes(t *testing.T) {
	step := filled(t, reflect.TypeFor[nodeapi.StepRequest](), 3).Interface().(nodeapi.StepRequest)
	for i := range 5 {
		k := "k" + strconv.Itoa(i)
		step.Fields[k] = "<" + k + ">"
		step.Vars[k] = "&" + k
	}
	var b bytes.Buffer
	if err := EncodeCall(&b, nodeapi.MethodStep, step); err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(b.String(), "<param>")
	value, _, _ := strings.Cut(after, "</param>")
	var got nodeapi.StepRequest
	if err := kolo.Response(`<?xml version="1.0"?><methodResponse><params><param>` + value + `</param></params></methodResponse>`).Unmarshal(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, step) {
		t.Errorf("kolo read\n %+v\nwant %+v", got, step)
	}
}

// Several params, and none, as kolo writes them; what only EncodeCall
// can encode comes back from DecodeCall as it went.
func TestEncodeCallParams(t *testing.T) {
	for _, params := range [][]any{nil, {1, "two", true, 2.5, []string{"a"}}} {
		var got bytes.Buffer
		if err := EncodeCall(&got, "system.multicall", params...); err != nil {
			t.Fatal(err)
		}
		want, _ := kolo.EncodeMethodCall("system.multicall", params...)
		if got.String() != string(want) {
			t.Errorf("%v:\n got %s\nkolo %s", params, got.Bytes(), want)
		}
	}
	type holder struct {
		P     *int   `xmlrpc:"p"`
		Bytes []byte `xmlrpc:"bytes"`
		Big   int64  `xmlrpc:"big"`
		F32   float32
	}
	var b bytes.Buffer
	if err := EncodeCall(&b, "m", holder{Bytes: []byte{0, 255}, Big: math.MaxInt64, F32: 0.1}); err != nil {
		t.Fatal(err)
	}
	_, params, err := DecodeCall(&b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"p": nil, "bytes": []byte{0, 255}, "big": int64(math.MaxInt64), "F32": 0.1}
	if !reflect.DeepEqual(params[0], want) {
		t.Errorf("got %#v\nwant %#v", params[0], want)
	}
}

// What has no XML-RPC form is an error naming the param and where in it,
// and nothing is written.
func TestEncodeCallRefuses(t *testing.T) {
	type inner struct {
		Prompts []any `xmlrpc:"prompts"`
	}
	type outer struct {
		Action inner `xmlrpc:"action"`
	}
	var cycle any
	cycle = &cycle
	for _, c := range []struct {
		method string
		params []any
		want   string
	}{
		{"", []any{1}, "empty method name"},
		{"call step", []any{1}, `method name "call step": ' '`},
		{"call<step", []any{1}, `'<'`},
		{"m", []any{1, nil}, "m param 2 is nil"},
		{"m", []any{outer{inner{[]any{"a", make(chan int)}}}}, "m param 1: action.prompts[1]: cannot encode chan int"},
		{"m", []any{map[string]any{"f": func() {}}}, "m param 1: f: cannot encode func()"},
		{"m", []any{map[int]string{1: "a"}}, "m param 1: cannot encode map[int]string: struct keys are strings"},
		{"m", []any{[]float64{math.NaN()}}, "m param 1: [0]: NaN cannot be sent as a double"},
		{"m", []any{uint64(math.MaxUint64)}, "does not fit in i8"},
		{"m", []any{complex(1, 2)}, "cannot encode complex128"},
		{"m", []any{cycle}, "nested more than 64 deep"},
	} {
		var b bytes.Buffer
		err := EncodeCall(&b, c.method, c.params...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: error %v, want one with %q", c.method, c.params, err, c.want)
		}
		if b.Len() != 0 {
			t.Errorf("%q %v: wrote %q", c.method, c.params, b.Bytes())
		}
	}
	// The writer's error is the caller's.
	if err := EncodeCall(failWriter{}, "m", 1); !errors.Is(err, errWrite) {
		t.Errorf("failing writer: %v", err)
	}
}

var errWrite = errors.New("disk full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

// The encoding the simulated fleet of BenchmarkFleet sends with every
// request, ours and kolo's.
func BenchmarkEncodeCall(b *testing.B) {
	req := nodeapi.StepRequest{CallID: "k1-123456", Token: "0123456789abcdef0123456789abcdef", CampaignID: "c1", FlowVersion: 3, State: "menu", Input: nodeapi.InputDone}
	b.Run("xmlrpc", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := EncodeCall(&buf, nodeapi.MethodStep, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kolo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := kolo.EncodeMethodCall(nodeapi.MethodStep, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
