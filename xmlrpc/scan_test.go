package xmlrpc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/elastidial/elastidial/nodeapi"
)

// wellFormed is encoding/xml's verdict on a document, the reference the
// scanner is held to, made strict where encoding/xml is lax (text outside
// the root element, characters outside text) and
// lenient where it lacks a rule (a byte order mark). DOCTYPE counts as refused, as the scanner refuses it.
func wellFormed(doc []byte) bool {
	doc = bytes.TrimPrefix(doc, []byte("\xef\xbb\xbf")) // encoding/xml does not know the byte order mark
	if !utf8.Valid(doc) || strings.ContainsFunc(string(doc), func(r rune) bool { return !isChar(r) }) {
		return false // encoding/xml checks characters in text only, XML everywhere
	}
	x := xml.NewDecoder(bytes.NewReader(doc))
	x.Strict = true
	x.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "us-ascii", "ascii":
			return in, nil
		}
		return nil, errors.New("charset")
	}
	roots := 0
	for depth := 0; ; {
		tok, err := x.Token()
		if err == io.EOF {
			return roots == 1 && depth == 0
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.Directive:
			return false
		case xml.CharData:
			if depth == 0 && !isSpace(t) {
				return false
			}
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// encodeCall writes a methodCall with the server's own value encoder.
func encodeCall(method string, params []any) []byte {
	e := new(encoder)
	e.b.WriteString("<methodCall><methodName>")
	xml.EscapeText(&e.b, []byte(method))
	e.b.WriteString("</methodName><params>")
	for _, p := range params {
		e.b.WriteString("<param><value>")
		if err := e.value(reflect.ValueOf(p), 0); err != nil {
			panic(err)
		}
		e.b.WriteString("</value></param>")
	}
	e.b.WriteString("</params></methodCall>")
	return e.b.Bytes()
}

// FuzzDecodeCall holds the hand-written scanner to encoding/xml: whatever
// it accepts is well-formed XML, a well-formed document is never refused
// as a parse error, and what it decodes survives a round trip.
func FuzzDecodeCall(f *testing.F) {
	for _, seed := range []string{
		call("m", "plain"),
		call("m", "<string>a &lt;&#233;&#x1F600;&gt; <![CDATA[<raw>]]> b</string>"),
		call("m", "<struct><member><name>a</name><value><array><data><value><i4>1</i4></value><value><nil/></value></data></array></value></member></struct>"),
		call("m", "<base64>aGk=</base64>") + "<!-- after -->\n",
		"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?>\r\n<!-- c --><?pi x?><methodCall><methodName>m</methodName></methodCall>",
		`<methodCall xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"><methodName>m</methodName><params><param><value><ex:nil/></value></param></params></methodCall>`,
		call("m", "<string>line\r\nend\rx</string>"),
		call("m", `<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>`),
		call("m", `<double>-1.5e3</double>`),
		call("m", "<string a='1' b=\"&amp;\">x</string>"),
		"<methodCall><methodName>m</methodName><params><param><value><int>1</value></param></params></methodCall>",
		"<a></a><b/>",
		"<!DOCTYPE x><methodCall/>",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		method, params, err := decodeCall(doc, Limits{})
		var fault *Fault
		if err != nil && !errors.As(err, &fault) {
			t.Fatalf("error is not a fault: %v", err)
		}
		ok := wellFormed(doc)
		if err == nil && !ok {
			t.Fatalf("accepted XML that encoding/xml refuses: %q", doc)
		}
		// encoding/xml hardly checks inside <?...?>, so it cannot judge a
		// refusal there.
		if fault != nil && fault.Code == nodeapi.FaultParse && ok && !bytes.Contains(doc, []byte("<?")) {
			t.Fatalf("refused well-formed XML as a parse error: %v: %q", fault, doc)
		}
		if err != nil {
			return
		}
		m2, p2, err := decodeCall(encodeCall(method, params), Limits{})
		if err != nil || m2 != method || !reflect.DeepEqual(p2, params) {
			t.Fatalf("round trip of %q: %v\n%#v\n%#v", doc, err, params, p2)
		}
	})
}

func TestScannerDetails(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<string>a\r\nb\rc</string>", "a\nb\nc"},
		{"<string><![CDATA[<&>]]></string>", "<&>"},
		{"<string>x<!-- c -->y<?pi z?>z</string>", "xyz"},
		{"<string>&#65;&#x42;&amp;&apos;&quot;</string>", `AB&'"`},
		{"<string>é</string>", "é"},
	} {
		_, params, err := decodeCall([]byte(call("m", tc.in)), Limits{})
		if err != nil || params[0] != tc.want {
			t.Errorf("%q: %v %q, want %q", tc.in, err, params, tc.want)
		}
	}
	for _, bad := range []string{
		call("m", "<string>&#0;</string>"),
		call("m", "<string>&#xD800;</string>"),
		call("m", "<string>\x01</string>"),
		call("m", "<string>\uFFFE</string>"),
		call("m", "<string></strin>"),
		call("m", "<string a=1>x</string>"),
		call("m", "<string>x<!-- a -- b --></string>"),
		call("m", "<1a/>"),
		"<methodCall><methodName>m</methodName></methodCall><?xml version='1.0'?>",
	} {
		_, _, err := decodeCall([]byte(bad), Limits{})
		var f *Fault
		if !errors.As(err, &f) || f.Code != nodeapi.FaultParse {
			t.Errorf("%q: %v, want a parse fault", bad, err)
		}
	}
}
