// Package xmlrpc is the node-facing tier: a server-side codec for the
// XML-RPC specification (with the common i8 and nil extensions), a server
// with the standard system.* introspection and multicall, and the node
// service behind it.
package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// Fault is an XML-RPC fault: a code and a message for the caller.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string { return fmt.Sprintf("fault %d: %s", f.Code, f.String) }

func faultf(code int, format string, a ...any) *Fault {
	return &Fault{Code: code, String: fmt.Sprintf(format, a...)}
}

// Limits bound what one request may cost.
type Limits struct {
	MaxDepth  int // nesting of arrays and structs; default 32
	MaxValues int // values in one request; default 100,000
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 32
	}
	if l.MaxValues <= 0 {
		l.MaxValues = 100_000
	}
	return l
}

// decoder reads the XML-RPC grammar from the scanner's tokens. Decoded
// values are int64, bool, string, float64, time.Time, []byte,
// map[string]any, []any or nil.
type decoder struct {
	s      *scanner
	lim    Limits
	values int
}

var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// DecodeCall reads one methodCall. Errors are *Fault with the parse (-32700)
// or invalid-request (-32600) code, or the reader's own error (such as
// *http.MaxBytesError) when the request could not be read.
func DecodeCall(r io.Reader, lim Limits) (method string, params []any, err error) {
	body := bodies.Get().(*bytes.Buffer)
	defer func() {
		if body.Cap() <= 64<<10 { // do not pin large buffers
			bodies.Put(body)
		}
	}()
	body.Reset()
	if _, err := body.ReadFrom(r); err != nil {
		return "", nil, err
	}
	return decodeCall(body.Bytes(), lim)
}

// decodeCall decodes from src; every value it returns is a copy.
func decodeCall(src []byte, lim Limits) (method string, params []any, err error) {
	defer func() {
		if e := recover(); e != nil {
			f, ok := e.(*Fault)
			if !ok {
				panic(e)
			}
			method, params, err = "", nil, f
		}
	}()
	d := &decoder{s: newScanner(src), lim: lim.withDefaults()}
	d.expectStart("methodCall")
	d.expectStart("methodName")
	method = strings.TrimSpace(d.text())
	if method == "" {
		panic(faultf(nodeapi.FaultInvalidRequest, "empty methodName"))
	}
	params = []any{}
	for d.child("params", "methodCall") {
		for d.child("param", "params") {
			d.expectStart("value")
			params = append(params, d.value(1))
			d.expectEnd()
		}
	}
	d.s.next() // only the end of the document may follow
	return method, params, nil
}

// DecodeResponse reads one methodResponse: the value of its one param,
// or, when the server answered with a fault, that *Fault as the error.
// A response that is not well-formed XML-RPC is an error that is not a
// *Fault. It is the client's side of EncodeResponse and EncodeFault.
func DecodeResponse(src []byte, lim Limits) (v any, err error) {
	defer func() {
		if e := recover(); e != nil {
			f, ok := e.(*Fault)
			if !ok {
				panic(e)
			}
			v, err = nil, fmt.Errorf("xmlrpc: malformed response: %s", f.String)
		}
	}()
	d := &decoder{s: newScanner(src), lim: lim.withDefaults()}
	d.expectStart("methodResponse")
	t := d.element()
	if t.kind != tokStart || (string(t.name) != "params" && string(t.name) != "fault") {
		panic(faultf(nodeapi.FaultInvalidRequest, "expected <params> or <fault> in methodResponse"))
	}
	fault := string(t.name) == "fault"
	if !fault {
		d.expectStart("param")
	}
	d.expectStart("value")
	v = d.value(1)
	d.expectEnd() // </param> or </fault>
	if !fault {
		d.expectEnd() // </params>
	}
	d.expectEnd() // </methodResponse>
	d.s.next()    // only the end of the document may follow
	if !fault {
		return v, nil
	}
	var f struct {
		Code   int    `xmlrpc:"faultCode"`
		String string `xmlrpc:"faultString"`
	}
	if err := Unmarshal(v, &f); err != nil {
		return nil, fmt.Errorf("xmlrpc: malformed fault: %v", err)
	}
	return nil, &Fault{Code: f.Code, String: f.String}
}

// element returns the next start or end tag; only white space may come
// before it. (The scanner never returns two text tokens in a row.)
func (d *decoder) element() token {
	t := d.s.next()
	if t.kind == tokText {
		if !isSpace(t.text) {
			panic(faultf(nodeapi.FaultInvalidRequest, "unexpected text %q", clip(string(t.text))))
		}
		t = d.s.next()
	}
	return t
}

// child reads the next child of the current element: true for a start
// tag named want, false at the current element's closing tag. Anything
// else is refused, naming the element it appeared in.
func (d *decoder) child(want, in string) bool {
	t := d.element()
	if t.kind == tokEnd {
		return false
	}
	if string(t.name) != want {
		panic(faultf(nodeapi.FaultInvalidRequest, "unexpected <%s> in %s", clip(string(t.name)), in))
	}
	return true
}

func (d *decoder) expectStart(name string) {
	if t := d.element(); t.kind != tokStart || string(t.name) != name {
		panic(faultf(nodeapi.FaultInvalidRequest, "expected <%s>", name))
	}
}

func (d *decoder) expectEnd() {
	if d.element().kind != tokEnd {
		panic(faultf(nodeapi.FaultInvalidRequest, "expected a closing tag"))
	}
}

// text reads character data up to the end of the current element.
func (d *decoder) text() string {
	var s string
	t := d.s.next()
	if t.kind == tokText {
		s = string(t.text)
		t = d.s.next()
	}
	if t.kind != tokEnd {
		panic(faultf(nodeapi.FaultInvalidRequest, "unexpected element inside a scalar"))
	}
	return s
}

// value reads the inside of a <value> element, up to and including its end.
func (d *decoder) value(depth int) any {
	d.values++
	if d.values > d.lim.MaxValues {
		panic(faultf(nodeapi.FaultTooLarge, "more than %d values in one request", d.lim.MaxValues))
	}
	if depth > d.lim.MaxDepth {
		panic(faultf(nodeapi.FaultTooLarge, "values nested deeper than %d", d.lim.MaxDepth))
	}
	var text string
	blank := true
	t := d.s.next()
	if t.kind == tokText {
		text, blank = string(t.text), isSpace(t.text)
		t = d.s.next()
	}
	if t.kind == tokEnd { // </value> with no type: a string
		return text
	}
	if !blank {
		panic(faultf(nodeapi.FaultInvalidRequest, "text mixed with <%s> in a value", clip(string(t.name))))
	}
	v := d.typed(string(t.name), depth)
	d.expectEnd() // </value>
	return v
}

func (d *decoder) typed(typ string, depth int) any {
	switch typ {
	case "int", "i4", "i8":
		// <int> is 32-bit in the specification, but common clients
		// (kolo/xmlrpc among them) send 64-bit values in it: accept them.
		s := strings.TrimSpace(d.text())
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			panic(faultf(nodeapi.FaultInvalidRequest, "<%s>%s</%s> is not an integer", typ, clip(s), typ))
		}
		return n
	case "boolean":
		switch strings.TrimSpace(d.text()) {
		case "1":
			return true
		case "0":
			return false
		}
		panic(faultf(nodeapi.FaultInvalidRequest, "<boolean> must be 0 or 1"))
	case "string":
		return d.text()
	case "double":
		s := strings.TrimSpace(d.text())
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			panic(faultf(nodeapi.FaultInvalidRequest, "<double>%s</double> is not a finite number", clip(s)))
		}
		return f
	case "dateTime.iso8601":
		s := strings.TrimSpace(d.text())
		for _, layout := range []string{"20060102T15:04:05", "20060102T15:04:05Z07:00", "2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00", "20060102T150405"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t
			}
		}
		panic(faultf(nodeapi.FaultInvalidRequest, "<dateTime.iso8601>%s</dateTime.iso8601> is not a date", clip(s)))
	case "base64":
		s := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
				return -1
			}
			return r
		}, d.text())
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			panic(faultf(nodeapi.FaultInvalidRequest, "<base64> is not valid base64"))
		}
		return b
	case "nil":
		d.text()
		return nil
	case "struct":
		m := map[string]any{}
		for d.child("member", "struct") {
			var name string
			var val any
			var haveName, haveValue bool
			for {
				t := d.element()
				if t.kind == tokEnd {
					break
				}
				switch string(t.name) {
				case "name":
					name, haveName = d.text(), true
				case "value":
					val, haveValue = d.value(depth+1), true
				default:
					panic(faultf(nodeapi.FaultInvalidRequest, "unexpected <%s> in member", clip(string(t.name))))
				}
			}
			if !haveName || !haveValue {
				panic(faultf(nodeapi.FaultInvalidRequest, "struct member needs a name and a value"))
			}
			m[name] = val
		}
		return m
	case "array":
		d.expectStart("data")
		a := []any{}
		for d.child("value", "array data") {
			a = append(a, d.value(depth+1))
		}
		d.expectEnd() // </array>
		return a
	}
	panic(faultf(nodeapi.FaultInvalidRequest, "unknown value type <%s>", clip(typ)))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// --- encoding -----------------------------------------------------------------

// encoder writes values; it reuses one buffer per response.
type encoder struct{ b bytes.Buffer }

var encoders = sync.Pool{New: func() any { return new(encoder) }}

// EncodeResponse writes a methodResponse holding v as its one param.
func EncodeResponse(w io.Writer, v any) error {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.b.Reset()
	e.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodResponse><params><param><value>")
	if err := e.value(reflect.ValueOf(v), 0); err != nil {
		return fmt.Errorf("xmlrpc: response: %w", err)
	}
	e.b.WriteString("</value></param></params></methodResponse>\n")
	_, err := w.Write(e.b.Bytes())
	return err
}

// EncodeFault writes a methodResponse holding a fault.
func EncodeFault(w io.Writer, f *Fault) error {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.b.Reset()
	e.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodResponse><fault><value>")
	e.value(reflect.ValueOf(map[string]any{"faultCode": f.Code, "faultString": f.String}), 0)
	e.b.WriteString("</value></fault></methodResponse>\n")
	_, err := w.Write(e.b.Bytes())
	return err
}

// EncodeCall writes a methodCall of method with params, one <param>
// each: the client's side of DecodeCall, as DecodeResponse is of
// EncodeResponse. For the nodeapi requests it writes the very bytes
// kolo/xmlrpc, the agent's client, writes (struct members in field order,
// <int> for an integer within 32 bits, no white space), so a stand-in for
// the agent, BenchmarkFleet's nodes, sends what the agent sends at a
// fraction of kolo's cost. Where kolo has no encoding, or a lossy one, it
// writes the one DecodeCall reads back: []byte as <base64> (kolo: an
// array of ints), an integer beyond 32 bits as <i8>, a time in UTC, a nil
// pointer inside a param as <nil/> (kolo: an empty string), map members
// sorted by name (kolo: in map order). A nil param, a method name outside
// the specification's characters, or a value with no XML-RPC form (a
// channel, a function, a map not keyed by strings, NaN) is an error that
// names the param and where in it.
func EncodeCall(w io.Writer, method string, params ...any) error {
	if err := checkMethodName(method); err != nil {
		return err
	}
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.b.Reset()
	e.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><methodCall><methodName>`)
	e.b.WriteString(method)
	e.b.WriteString("</methodName>")
	if len(params) > 0 { // as kolo: a call without params has no <params>
		e.b.WriteString("<params>")
	}
	for i, p := range params {
		if p == nil {
			return fmt.Errorf("xmlrpc: %s param %d is nil: XML-RPC has no nil param", method, i+1)
		}
		e.b.WriteString("<param><value>")
		if err := e.value(reflect.ValueOf(p), 0); err != nil {
			return fmt.Errorf("xmlrpc: %s param %d: %w", method, i+1, err)
		}
		e.b.WriteString("</value></param>")
	}
	if len(params) > 0 {
		e.b.WriteString("</params>")
	}
	e.b.WriteString("</methodCall>")
	_, err := w.Write(e.b.Bytes())
	return err
}

// checkMethodName holds a method name to the specification: "upper and
// lower-case A-Z, the numeric characters, 0-9, underscore, dot, colon
// and slash".
func checkMethodName(method string) error {
	if method == "" {
		return errors.New("xmlrpc: empty method name")
	}
	for _, c := range []byte(method) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '/') {
			return fmt.Errorf("xmlrpc: method name %q: %q is not one of A-Z a-z 0-9 _ . : /", method, c)
		}
	}
	return nil
}

// encodeError is a value with no XML-RPC form, and where it is in what
// was being encoded ("action.prompts[2]"; "" at the top).
type encodeError struct {
	path string
	msg  string
}

func (e *encodeError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return fmt.Sprintf("%s: %s", e.path, e.msg)
}

func encodeErrorf(format string, a ...any) error {
	return &encodeError{msg: fmt.Sprintf(format, a...)}
}

// within puts where (a member name, or an [index]) in front of the path
// of an encoding error as it returns through the value holding it.
func within(where string, err error) error {
	e, ok := err.(*encodeError)
	if !ok {
		return err
	}
	switch {
	case e.path == "":
		e.path = where
	case e.path[0] == '[':
		e.path = where + e.path
	default:
		e.path = where + "." + e.path
	}
	return e
}

var timeType = reflect.TypeFor[time.Time]()

func (e *encoder) value(v reflect.Value, depth int) error {
	if depth > 64 {
		return encodeErrorf("nested more than 64 deep (a cycle?)")
	}
	if !v.IsValid() {
		e.b.WriteString("<nil/>")
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.b.WriteString("<nil/>")
			return nil
		}
		return e.value(v.Elem(), depth+1) // a pointer that leads back to itself ends here
	case reflect.Bool:
		if v.Bool() {
			e.b.WriteString("<boolean>1</boolean>")
		} else {
			e.b.WriteString("<boolean>0</boolean>")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := v.Uint()
		if u > math.MaxInt64 {
			return encodeErrorf("%d does not fit in i8", u)
		}
		e.int(int64(u))
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return encodeErrorf("%g cannot be sent as a double", f)
		}
		e.b.WriteString("<double>")
		e.b.WriteString(strconv.FormatFloat(f, 'f', -1, v.Type().Bits())) // a float32's 0.1 is "0.1"
		e.b.WriteString("</double>")
	case reflect.String:
		e.b.WriteString("<string>")
		e.text(v.String())
		e.b.WriteString("</string>")
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			e.b.WriteString("<base64>")
			e.b.WriteString(base64.StdEncoding.EncodeToString(v.Bytes()))
			e.b.WriteString("</base64>")
			return nil
		}
		e.b.WriteString("<array><data>")
		for i := range v.Len() {
			e.b.WriteString("<value>")
			if err := e.value(v.Index(i), depth+1); err != nil {
				return within("["+strconv.Itoa(i)+"]", err)
			}
			e.b.WriteString("</value>")
		}
		e.b.WriteString("</data></array>")
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return encodeErrorf("cannot encode %s: struct keys are strings", v.Type())
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		e.b.WriteString("<struct>")
		for _, k := range keys {
			e.member(k.String())
			if err := e.value(v.MapIndex(k), depth+1); err != nil {
				return within(k.String(), err)
			}
			e.b.WriteString("</value></member>")
		}
		e.b.WriteString("</struct>")
	case reflect.Struct:
		if v.Type() == timeType {
			e.b.WriteString("<dateTime.iso8601>")
			e.b.WriteString(v.Interface().(time.Time).UTC().Format("20060102T15:04:05"))
			e.b.WriteString("</dateTime.iso8601>")
			return nil
		}
		e.b.WriteString("<struct>")
		for _, f := range fieldsOf(v.Type()) {
			e.member(f.name)
			if err := e.value(v.Field(f.index), depth+1); err != nil {
				return within(f.name, err)
			}
			e.b.WriteString("</value></member>")
		}
		e.b.WriteString("</struct>")
	default:
		return encodeErrorf("cannot encode %s", v.Type())
	}
	return nil
}

func (e *encoder) int(n int64) {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		e.b.WriteString("<int>")
		e.b.WriteString(strconv.FormatInt(n, 10))
		e.b.WriteString("</int>")
		return
	}
	e.b.WriteString("<i8>")
	e.b.WriteString(strconv.FormatInt(n, 10))
	e.b.WriteString("</i8>")
}

// text writes s escaped as xml.EscapeText escapes it, without copying
// the common string that needs no escaping.
func (e *encoder) text(s string) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '<' || c == '>' || c == '&' || c == '\'' || c == '"' {
			xml.EscapeText(&e.b, []byte(s))
			return
		}
	}
	e.b.WriteString(s)
}

func (e *encoder) member(name string) {
	e.b.WriteString("<member><name>")
	e.text(name)
	e.b.WriteString("</name><value>")
}

// field is one struct field as XML-RPC sees it.
type field struct {
	name  string
	index int
}

var fieldCache sync.Map // reflect.Type → []field

func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := sf.Name
		if tag, ok := sf.Tag.Lookup("xmlrpc"); ok {
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if tag != "" {
				name = tag
			}
		}
		fs = append(fs, field{name: name, index: i})
	}
	fieldCache.Store(t, fs)
	return fs
}

// --- decoding into Go values ----------------------------------------------------

// Unmarshal stores a decoded value in dst (a pointer): structs by their
// xmlrpc tags (unknown members are ignored, missing ones left zero), maps,
// slices and scalars. A mismatch is a *Fault with FaultInvalidParams naming
// the member at fault.
func Unmarshal(src any, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return errors.New("xmlrpc: Unmarshal needs a non-nil pointer")
	}
	err := assign(src, v.Elem())
	if m, ok := err.(*mismatch); ok {
		return faultf(nodeapi.FaultInvalidParams, "%s: %s", m.where(), m.msg)
	}
	return err
}

// mismatch is a value Unmarshal cannot store, on its way out: the path
// to it is built as the error returns through the values holding it, so
// that a value that fits costs no path.
type mismatch struct {
	msg  string
	path []step // innermost first
}

// step is one level of a path: a member's name, or an array index.
type step struct {
	member string
	index  int // when member is ""
}

func (m *mismatch) Error() string { return m.where() + ": " + m.msg }

// where renders the path as `member "calls"[1].flow_version`, or "value"
// when the value itself is at fault.
func (m *mismatch) where() string {
	if len(m.path) == 0 {
		return "value"
	}
	var b strings.Builder
	for i, s := range slices.Backward(m.path) {
		switch {
		case s.member == "":
			fmt.Fprintf(&b, "[%d]", s.index)
		case i == len(m.path)-1:
			fmt.Fprintf(&b, "member %q", s.member)
		default:
			b.WriteString("." + s.member)
		}
	}
	return b.String()
}

// under adds one level to a mismatch's path.
func under(s step, err error) error {
	if m, ok := err.(*mismatch); ok {
		m.path = append(m.path, s)
	}
	return err
}

func assign(src any, dst reflect.Value) error {
	bad := func(want string) error {
		return &mismatch{msg: fmt.Sprintf("want %s, got %s", want, typeName(src))}
	}
	if src == nil {
		dst.SetZero()
		return nil
	}
	switch dst.Kind() {
	case reflect.Interface:
		if dst.NumMethod() == 0 {
			dst.Set(reflect.ValueOf(src))
			return nil
		}
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := assign(src, p.Elem()); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return bad("boolean")
		}
		dst.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := src.(int64)
		if !ok {
			return bad("int")
		}
		if dst.OverflowInt(n) {
			return &mismatch{msg: fmt.Sprintf("%d is out of range", n)}
		}
		dst.SetInt(n)
		return nil
	case reflect.Float32, reflect.Float64:
		switch n := src.(type) {
		case float64:
			dst.SetFloat(n)
		case int64:
			dst.SetFloat(float64(n))
		default:
			return bad("double")
		}
		return nil
	case reflect.String:
		s, ok := src.(string)
		if !ok {
			return bad("string")
		}
		dst.SetString(s)
		return nil
	case reflect.Slice:
		if dst.Type().Elem().Kind() == reflect.Uint8 {
			b, ok := src.([]byte)
			if !ok {
				return bad("base64")
			}
			dst.SetBytes(b)
			return nil
		}
		a, ok := src.([]any)
		if !ok {
			return bad("array")
		}
		s := reflect.MakeSlice(dst.Type(), len(a), len(a))
		for i, e := range a {
			if err := assign(e, s.Index(i)); err != nil {
				return under(step{index: i}, err)
			}
		}
		dst.Set(s)
		return nil
	case reflect.Map:
		m, ok := src.(map[string]any)
		if !ok || dst.Type().Key().Kind() != reflect.String {
			return bad("struct")
		}
		out := reflect.MakeMapWithSize(dst.Type(), len(m))
		for k, e := range m {
			ev := reflect.New(dst.Type().Elem()).Elem()
			if err := assign(e, ev); err != nil {
				return under(step{member: k}, err)
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), ev)
		}
		dst.Set(out)
		return nil
	case reflect.Struct:
		if dst.Type() == timeType {
			t, ok := src.(time.Time)
			if !ok {
				return bad("dateTime.iso8601")
			}
			dst.Set(reflect.ValueOf(t))
			return nil
		}
		m, ok := src.(map[string]any)
		if !ok {
			return bad("struct")
		}
		for _, f := range fieldsOf(dst.Type()) {
			if e, ok := m[f.name]; ok {
				if err := assign(e, dst.Field(f.index)); err != nil {
					return under(step{member: f.name}, err)
				}
			}
		}
		return nil
	}
	return fmt.Errorf("xmlrpc: cannot decode into %s", dst.Type())
}

func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "int"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		return "double"
	case time.Time:
		return "dateTime.iso8601"
	case []byte:
		return "base64"
	case map[string]any:
		return "struct"
	case []any:
		return "array"
	case nil:
		return "nil"
	}
	return fmt.Sprintf("%T", v)
}
