package xmlrpc

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/elastidial/elastidial/nodeapi"
)

// scanner splits a whole XML document into the tokens XML-RPC needs:
// element starts and ends, and character data with its references
// resolved. It is written for XML-RPC's small grammar and is several times
// faster than encoding/xml, but it checks everything that matters for
// well-formedness: UTF-8 and the XML character ranges, name syntax,
// matching end tags, a single root, the five predefined entities and
// character references, comments, CDATA sections, and processing
// instructions. Document type declarations are refused outright, so no
// entity can expand and nothing external is ever read.
//
// Every error panics with a *Fault, which DecodeCall recovers.
type scanner struct {
	src  []byte
	pos  int
	open [][]byte // qualified names of the open elements
	root bool     // the root element has been opened
	shut bool     // the last start tag was self-closing: its end comes next

	// Text being assembled: one slice of src when the text is plain,
	// else a copy in buf.
	one    []byte
	buf    []byte
	pieces int
}

type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokStart
	tokEnd
	tokText
)

// token is valid until the next call of next: its slices may point into
// the scanner's buffers.
type token struct {
	kind tokenKind
	name []byte // tokStart, tokEnd: the local name (without any prefix)
	text []byte // tokText
}

func newScanner(src []byte) *scanner {
	s := &scanner{src: src}
	s.prolog()
	return s
}

func (s *scanner) fail(code int, format string, a ...any) {
	panic(faultf(code, format, a...))
}

func (s *scanner) malformed(format string, a ...any) {
	line := 1 + bytes.Count(s.src[:min(s.pos, len(s.src))], []byte{'\n'})
	s.fail(nodeapi.FaultParse, "not well-formed XML (line %d): %s", line, fmt.Sprintf(format, a...))
}

// next returns the next token. Text outside the root element, comments and
// processing instructions are consumed here; tokEOF comes only after the
// root element has closed.
func (s *scanner) next() token {
	if s.shut {
		s.shut = false
		name := s.open[len(s.open)-1]
		s.open = s.open[:len(s.open)-1]
		return token{kind: tokEnd, name: local(name)}
	}
	for {
		if s.pos >= len(s.src) {
			if len(s.open) > 0 || !s.root {
				s.fail(nodeapi.FaultParse, "unexpected end of request")
			}
			return token{kind: tokEOF}
		}
		if s.src[s.pos] != '<' || s.at("<![CDATA[") {
			text := s.chardata()
			if len(s.open) > 0 {
				return token{kind: tokText, text: text}
			}
			if !isSpace(text) {
				if s.root {
					s.fail(nodeapi.FaultInvalidRequest, "text after the root element")
				}
				s.fail(nodeapi.FaultParse, "not an XML document")
			}
			continue
		}
		switch {
		case s.at("</"):
			return s.endTag()
		case s.at("<!--"):
			s.comment()
		case s.at("<?"):
			s.procInst()
		case s.at("<!"):
			s.fail(nodeapi.FaultParse, "DOCTYPE and entity declarations are not accepted")
		default:
			if s.root && len(s.open) == 0 {
				s.fail(nodeapi.FaultInvalidRequest, "content after the root element")
			}
			return s.startTag()
		}
	}
}

func (s *scanner) at(prefix string) bool {
	return len(s.src)-s.pos >= len(prefix) && string(s.src[s.pos:s.pos+len(prefix)]) == prefix
}

// prolog skips a byte order mark and reads the XML declaration, refusing
// any encoding but UTF-8 (of which ASCII is a subset).
func (s *scanner) prolog() {
	if bytes.HasPrefix(s.src, []byte("\xef\xbb\xbf")) {
		s.pos = 3
	}
	if !s.at("<?xml") || s.pos+5 < len(s.src) && isNameByte(s.src[s.pos+5]) {
		return
	}
	s.pos += 5
	for {
		s.space()
		if s.at("?>") {
			s.pos += 2
			return
		}
		name, value := s.attribute()
		switch string(name) {
		case "version":
			if string(value) != "1.0" {
				s.malformed("XML version %q; want 1.0", clip(string(value)))
			}
		case "encoding":
			switch strings.ToLower(string(value)) {
			case "utf-8", "us-ascii", "ascii":
			default:
				s.fail(nodeapi.FaultEncoding, "unsupported encoding %q; send UTF-8", clip(string(value)))
			}
		}
	}
}

func (s *scanner) startTag() token {
	s.pos++ // <
	name := s.name()
	for {
		sp := s.space()
		if s.pos >= len(s.src) {
			s.malformed("unterminated tag <%s>", name)
		}
		switch s.src[s.pos] {
		case '>':
			s.pos++
			s.push(name)
			return token{kind: tokStart, name: local(name)}
		case '/':
			if !s.at("/>") {
				s.malformed("bad tag <%s>", name)
			}
			s.pos += 2
			s.push(name)
			s.shut = true
			return token{kind: tokStart, name: local(name)}
		}
		if !sp {
			s.malformed("bad tag <%s>", name)
		}
		s.attribute()
	}
}

func (s *scanner) push(name []byte) {
	if len(s.open) >= maxOpen {
		s.fail(nodeapi.FaultTooLarge, "elements nested deeper than %d", maxOpen)
	}
	s.open = append(s.open, name)
	s.root = true
}

// maxOpen bounds element nesting whatever the value limits say: a value
// nests three elements per level at most.
const maxOpen = 512

// attribute reads and checks one attribute and returns its raw value;
// XML-RPC gives attributes no meaning.
func (s *scanner) attribute() (name, value []byte) {
	name = s.name()
	s.space()
	if s.pos >= len(s.src) || s.src[s.pos] != '=' {
		s.malformed("attribute without a value")
	}
	s.pos++
	s.space()
	if s.pos >= len(s.src) || (s.src[s.pos] != '"' && s.src[s.pos] != '\'') {
		s.malformed("attribute value without quotes")
	}
	q := s.src[s.pos]
	s.pos++
	end := bytes.IndexByte(s.src[s.pos:], q)
	if end < 0 {
		s.malformed("unterminated attribute value")
	}
	v := s.src[s.pos : s.pos+end]
	if bytes.IndexByte(v, '<') >= 0 {
		s.malformed("'<' in an attribute value")
	}
	s.checkChars(v)
	for i := 0; i < len(v); i++ {
		if v[i] == '&' {
			n := bytes.IndexByte(v[i:], ';')
			if n < 0 {
				s.malformed("unterminated reference in an attribute value")
			}
			s.reference(v[i+1 : i+n])
			i += n
		}
	}
	s.pos += end + 1
	return name, v
}

func (s *scanner) endTag() token {
	s.pos += 2 // </
	name := s.name()
	s.space()
	if s.pos >= len(s.src) || s.src[s.pos] != '>' {
		s.malformed("bad closing tag </%s>", name)
	}
	s.pos++
	if len(s.open) == 0 {
		s.malformed("closing tag </%s> with nothing open", name)
	}
	top := s.open[len(s.open)-1]
	if !bytes.Equal(top, name) {
		s.malformed("element <%s> closed by </%s>", top, name)
	}
	s.open = s.open[:len(s.open)-1]
	return token{kind: tokEnd, name: local(name)}
}

// name reads an XML name.
func (s *scanner) name() []byte {
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == ':':
		case '0' <= c && c <= '9', c == '-', c == '.':
			if s.pos == start {
				s.malformed("a name cannot start with %q", c)
			}
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(s.src[s.pos:])
			if r == utf8.RuneError || !isChar(r) {
				s.malformed("invalid UTF-8 in a name")
			}
			s.pos += n - 1
		default:
			if s.pos == start {
				s.malformed("expected a name")
			}
			return s.src[start:s.pos]
		}
		s.pos++
	}
	s.malformed("unexpected end in a name")
	return nil
}

func local(name []byte) []byte {
	if i := bytes.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// space skips white space and tells whether there was any.
func (s *scanner) space() bool {
	start := s.pos
	for s.pos < len(s.src) && isSpaceByte(s.src[s.pos]) {
		s.pos++
	}
	return s.pos > start
}

func (s *scanner) comment() {
	s.pos += 4 // <!--
	end := bytes.Index(s.src[s.pos:], []byte("--"))
	if end < 0 {
		s.malformed("unterminated comment")
	}
	if !bytes.HasPrefix(s.src[s.pos+end:], []byte("-->")) {
		s.malformed("'--' inside a comment")
	}
	s.checkChars(s.src[s.pos : s.pos+end])
	s.pos += end + 3
}

func (s *scanner) procInst() {
	s.pos += 2 // <?
	target := s.name()
	if string(target) == "xml" {
		s.malformed("XML declaration not at the start")
	}
	end := bytes.Index(s.src[s.pos:], []byte("?>"))
	if end < 0 {
		s.malformed("unterminated processing instruction")
	}
	s.checkChars(s.src[s.pos : s.pos+end])
	s.pos += end + 2
}

// chardata reads text up to the next tag, resolving references, CDATA
// sections and line ends, and skipping comments and processing
// instructions.
func (s *scanner) chardata() []byte {
	s.one, s.buf, s.pieces = nil, s.buf[:0], 0
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; c {
		case '<':
			switch {
			case s.at("<![CDATA["):
				s.pos += 9
				end := bytes.Index(s.src[s.pos:], []byte("]]>"))
				if end < 0 {
					s.malformed("unterminated CDATA section")
				}
				s.run(s.src[s.pos : s.pos+end])
				s.pos += end + 3
			case s.at("<!--"):
				s.comment()
			case s.at("<?"):
				s.procInst()
			default:
				return s.text()
			}
		case '&':
			end := bytes.IndexByte(s.src[s.pos:min(len(s.src), s.pos+16)], ';')
			if end < 0 {
				s.malformed("unterminated or unknown reference")
			}
			r := s.reference(s.src[s.pos+1 : s.pos+end])
			s.copying()
			s.buf = utf8.AppendRune(s.buf, r)
			s.pos += end + 1
		default:
			start := s.pos
			for s.pos < len(s.src) {
				c := s.src[s.pos]
				if c == '<' || c == '&' {
					break
				}
				s.pos++
			}
			if bytes.Contains(s.src[start:s.pos], []byte("]]>")) {
				s.malformed("']]>' in text")
			}
			s.run(s.src[start:s.pos])
		}
	}
	return s.text()
}

// run adds literal text: checked, with line ends normalised to LF.
func (s *scanner) run(b []byte) {
	s.checkChars(b)
	if bytes.IndexByte(b, '\r') < 0 {
		s.add(b)
		return
	}
	s.copying()
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] != '\r':
			s.buf = append(s.buf, b[i])
		case i+1 < len(b) && b[i+1] == '\n':
		default:
			s.buf = append(s.buf, '\n')
		}
	}
}

// add appends a piece of text. The first piece is kept as a slice; a
// second one starts a copy.
func (s *scanner) add(p []byte) {
	if s.pieces == 0 {
		s.one, s.pieces = p, 1
		return
	}
	s.copying()
	s.buf = append(s.buf, p...)
}

func (s *scanner) copying() {
	if s.pieces < 2 {
		s.buf = append(s.buf[:0], s.one...)
		s.pieces = 2
	}
}

func (s *scanner) text() []byte {
	if s.pieces < 2 {
		return s.one
	}
	return s.buf
}

// reference resolves the inside of &...; (the five predefined entities
// and character references).
func (s *scanner) reference(ref []byte) rune {
	switch string(ref) {
	case "lt":
		return '<'
	case "gt":
		return '>'
	case "amp":
		return '&'
	case "apos":
		return '\''
	case "quot":
		return '"'
	}
	if len(ref) > 1 && ref[0] == '#' {
		base, digits := 10, ref[1:]
		if digits[0] == 'x' {
			base, digits = 16, digits[1:]
		}
		n, err := strconv.ParseUint(string(digits), base, 32)
		if err == nil && isChar(rune(n)) {
			return rune(n)
		}
		s.malformed("bad character reference &%s;", clip(string(ref)))
	}
	s.malformed("undefined entity &%s;", clip(string(ref)))
	return 0
}

// checkChars refuses invalid UTF-8 and characters XML does not allow.
func (s *scanner) checkChars(b []byte) {
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c < utf8.RuneSelf || c == '\n' || c == '\t' || c == '\r' {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			s.malformed("control character %#02x", c)
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			s.malformed("invalid UTF-8")
		}
		if !isChar(r) {
			s.malformed("character %U is not allowed in XML", r)
		}
		i += n
	}
}

// isChar is XML 1.0's Char production.
func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ':' || c == '-' || c == '.' || c >= utf8.RuneSelf
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isSpace(b []byte) bool {
	for _, c := range b {
		if !isSpaceByte(c) {
			return false
		}
	}
	return true
}
