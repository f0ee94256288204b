package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// sniffBytes is how much of the file's start decides encoding, delimiter and
// whether it is text at all.
const sniffBytes = 64 << 10

// record is one CSV record as bytes, valid until the next call to next.
type record struct {
	line, endLine int
	fields        [][]byte
	blank         bool // no cell has anything but spaces
	tooLong       bool // content beyond MaxRowBytes was dropped
	tooMany       bool // columns beyond MaxColumns were dropped
	unterminated  bool // EOF inside a quoted field
}

// csvReader is a small RFC 4180 reader. encoding/csv is not used because it
// buffers a record without bound and reports line numbers only on errors; this
// one drops bytes beyond MaxRowBytes (rejecting the row) and knows the
// physical line each record starts on, counting CRLF, LF and bare CR.
// It is lenient the way spreadsheets are: a quote inside an unquoted value
// and text after a closing quote are kept literally.
type csvReader struct {
	br    *bufio.Reader
	delim byte
	line  int // physical line of the next byte
	enc   encoding
	mixed int // rows of a UTF-8 file decoded as windows-1252

	rec    record
	buf    []byte
	bounds []int
}

type encoding int

const (
	encUTF8 encoding = iota
	encWindows1252
)

// openCSV sniffs the start of the file and answers a reader positioned after
// any BOM, or a *FileError for a file that is not CSV text.
func openCSV(r io.Reader, rep *Report) (*csvReader, error) {
	br := bufio.NewReaderSize(r, sniffBytes)
	head, err := br.Peek(sniffBytes)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("read file: %w", err)
	}
	if len(head) == 0 {
		return nil, &FileError{Msg: "the file is empty"}
	}
	cr := &csvReader{br: br, line: 1}
	rep.Encoding = "UTF-8"
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		br.Discard(3)
		head = head[3:]
		rep.Encoding = "UTF-8 with BOM"
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return nil, &FileError{Msg: "the file is UTF-16 text; save it as CSV UTF-8 (or Windows/Latin-1) and upload again"}
	}
	if why := binaryReason(head); why != "" {
		return nil, &FileError{Msg: "not a CSV text file: " + why}
	}
	if !validUTF8Prefix(head) {
		cr.enc = encWindows1252
		rep.Encoding = "windows-1252"
	}
	cr.delim = sniffDelimiter(head)
	rep.Delimiter = string(cr.delim)
	return cr, nil
}

// finish records encoding facts learnt while reading.
func (c *csvReader) finish(rep *Report) {
	if c.mixed > 0 {
		rep.Encoding = fmt.Sprintf("%s (%d values decoded as windows-1252)", rep.Encoding, c.mixed)
	}
}

// binaryReason says why head is not text, or "" if it may be.
func binaryReason(head []byte) string {
	magic := []struct {
		prefix, what string
	}{
		{"PK\x03\x04", "it is a ZIP archive (an Excel .xlsx workbook?); export the sheet as CSV"},
		{"\xD0\xCF\x11\xE0", "it is an old Office document (.xls?); export the sheet as CSV"},
		{"\x1F\x8B", "it is gzip-compressed; upload the uncompressed CSV"},
		{"%PDF", "it is a PDF document"},
	}
	for _, m := range magic {
		if bytes.HasPrefix(head, []byte(m.prefix)) {
			return m.what
		}
	}
	if utf16Like(head) {
		return "it looks like UTF-16 text (every other byte is zero); save it as CSV UTF-8 and upload again"
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return fmt.Sprintf("it contains a NUL byte at offset %d, so it is binary data", i)
	}
	ctl := 0
	for _, b := range head {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f' {
			ctl++
		}
	}
	if ctl > 0 && ctl*100 > len(head) {
		return fmt.Sprintf("%d of its first %d bytes are control characters, so it is binary data", ctl, len(head))
	}
	return ""
}

// validUTF8Prefix is utf8.Valid, forgiving a rune cut at the end of the sniff.
func validUTF8Prefix(b []byte) bool {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return true
		}
		r, _ := utf8.DecodeLastRune(b)
		if r != utf8.RuneError {
			return false
		}
		b = b[:len(b)-1]
	}
	return utf8.Valid(b)
}

// sniffDelimiter picks ',', ';' or '\t', whichever is most frequent outside
// quotes on the first non-blank line; commas win ties and one-column files.
func sniffDelimiter(head []byte) byte {
	counts := map[byte]int{}
	inQuote := false
	started := false
	for _, b := range head {
		if b == '"' {
			inQuote = !inQuote
		}
		if !inQuote && (b == '\n' || b == '\r') {
			if started {
				break
			}
			continue
		}
		started = true
		if !inQuote && (b == ',' || b == ';' || b == '\t') {
			counts[b]++
		}
	}
	best := byte(',')
	for _, d := range []byte{';', '\t'} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}

// text decodes a cell to a Go string: windows-1252 files always; UTF-8 files
// only for a value that is not valid UTF-8 (a file mostly UTF-8 with pasted
// Latin-1 rows), which is counted for the report.
func (c *csvReader) text(b []byte) string {
	if c.enc == encWindows1252 || !utf8.Valid(b) {
		ascii := true
		for _, x := range b {
			if x >= 0x80 {
				ascii = false
				break
			}
		}
		if !ascii {
			if c.enc == encUTF8 {
				c.mixed++
			}
			out, err := charmap.Windows1252.NewDecoder().Bytes(b)
			if err == nil {
				return strings.TrimSpace(string(out))
			}
			return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
		}
	}
	return strings.TrimSpace(string(b))
}

// next reads one record. It returns io.EOF at the end of input only when no
// bytes of a record were read.
func (c *csvReader) next() (*record, error) {
	c.buf = c.buf[:0]
	c.bounds = c.bounds[:0]
	rec := &c.rec
	*rec = record{line: c.line, fields: rec.fields[:0]}

	const (
		fieldStart = iota
		unquoted
		quoted
		afterQuote // a closing quote was read
	)
	state := fieldStart
	any := false
	endField := func() {
		if len(c.bounds) < MaxColumns {
			c.bounds = append(c.bounds, len(c.buf))
		} else {
			rec.tooMany = true
		}
	}
	add := func(b byte) {
		if len(c.buf) < MaxRowBytes {
			c.buf = append(c.buf, b)
		} else {
			rec.tooLong = true
		}
	}
	for {
		b, err := c.br.ReadByte()
		if err == io.EOF {
			if !any {
				return nil, io.EOF
			}
			if state == quoted {
				rec.unterminated = true
			}
			endField()
			break
		}
		if err != nil {
			return nil, err
		}
		if b == 0 {
			// Binary wherever it appears, as the sniff says of the first
			// 64 KiB: the whole file is refused, never stored in part.
			return nil, &FileError{Line: c.line, Msg: "a NUL byte: this is binary data, not a CSV text file; nothing was imported"}
		}
		any = true
		// Line ends. A bare CR (old Mac files) ends a line too; CRLF is one.
		if b == '\r' {
			if p, err := c.br.Peek(1); err == nil && p[0] == '\n' {
				c.br.Discard(1)
			}
			b = '\n'
		}
		if b == '\n' {
			c.line++
			if state == quoted {
				add('\n')
				continue
			}
			endField()
			break
		}
		switch state {
		case fieldStart:
			switch b {
			case '"':
				state = quoted
			case c.delim:
				endField()
			default:
				add(b)
				state = unquoted
			}
		case unquoted:
			if b == c.delim {
				endField()
				state = fieldStart
			} else {
				add(b)
			}
		case quoted:
			if b == '"' {
				state = afterQuote
			} else {
				add(b)
			}
		case afterQuote:
			switch b {
			case '"': // escaped quote
				add('"')
				state = quoted
			case c.delim:
				endField()
				state = fieldStart
			default:
				add(b)
				state = unquoted
			}
		}
	}
	rec.endLine = c.line
	start := 0
	rec.blank = true
	for _, end := range c.bounds {
		f := c.buf[start:end]
		rec.fields = append(rec.fields, f)
		if len(bytes.TrimSpace(f)) > 0 {
			rec.blank = false
		}
		start = end
	}
	if rec.tooLong || rec.unterminated {
		rec.blank = false
	}
	return rec, nil
}

// utf16Like: UTF-16 without a byte order mark, ASCII-heavy as CSV is, has a
// zero in (almost) every byte of one parity and none in the other.
func utf16Like(head []byte) bool {
	var zeros [2]int
	for i, b := range head {
		if b == 0 {
			zeros[i%2]++
		}
	}
	half := len(head) / 2
	return half >= 2 && ((zeros[0] == 0 && zeros[1]*10 >= half*9) || (zeros[1] == 0 && zeros[0]*10 >= half*9))
}
