// Package importer reads dial lists: streaming CSV parsing, phone-number
// normalisation to E.164, time zones, and an account of every row. It does
// no I/O of its own beyond the reader it is given; the store decides what to
// do with each batch through a Sink.
package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // a bare host has no zone database
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/encoding/charmap"
)

// Options controls one import.
type Options struct {
	DefaultRegion  string // ISO 3166 region for numbers without a country code, e.g. "US"
	PhoneColumn    string // header of the phone column; found by name when empty
	TimezoneColumn string // header of an IANA time zone column; derived from the number when empty
	BatchSize      int    // contacts per Sink call; default 1000
}

// Contact is one accepted row.
type Contact struct {
	Line   int               // 1-based line of the file where the row starts
	Phone  string            // E.164
	Zones  []string          // IANA zones; the calling window must hold in all
	Fields map[string]string // the other columns, by normalised header
}

// Rejection is one refused row.
type Rejection struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Sink receives the outcome of an import, batch by batch.
type Sink interface {
	// Exclude returns, for the phones it refuses, the reason (already in
	// the campaign, on a do-not-call list). It is called before Contacts for
	// the same batch.
	Exclude(ctx context.Context, phones []string) (map[string]string, error)
	Contacts(ctx context.Context, batch []Contact) error
	Reject(ctx context.Context, r Rejection) error
}

// Report accounts for every row: Rows == Imported + Rejected.
type Report struct {
	Rows        int            `json:"rows"`
	Imported    int            `json:"imported"`
	Rejected    int            `json:"rejected"`
	ByReason    map[string]int `json:"by_reason,omitempty"`
	Columns     []string       `json:"columns"`
	PhoneColumn string         `json:"phone_column"`
	Encoding    string         `json:"encoding"`
	Delimiter   string         `json:"delimiter"`
}

// FileError is a problem with the whole file, not one row.
type FileError struct {
	Line   int // 0 when it concerns no line
	Reason string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return e.Reason
}

// Limits that keep memory bounded whatever the file.
const (
	MaxLineBytes = 64 << 10 // one physical line
	MaxColumns   = 200
	sniffBytes   = 8 << 10
)

// Reasons, stable so that reports can be grouped by them.
const (
	ReasonEmptyPhone    = "phone number is empty"
	ReasonInvalidPhone  = "not a valid phone number"
	ReasonDuplicate     = "duplicate of an earlier row"
	ReasonColumns       = "wrong number of columns"
	ReasonUnknownZone   = "unknown time zone"
	ReasonMalformedRow  = "malformed CSV row"
	ReasonNoZoneForCall = "no time zone known for this number"
)

var phoneHeaders = []string{"phone", "phone_number", "phonenumber", "number", "mobile", "mobile_number", "cell", "msisdn", "tel", "telephone", "e164", "contact_number"}

// Import reads a dial list from r and reports every row to s. A whole-file
// problem (binary data, no phone column, an over-long line) returns a
// *FileError; the Sink may have seen earlier batches, so the store must run
// the import in one transaction.
func Import(ctx context.Context, r io.Reader, opt Options, s Sink) (Report, error) {
	p, err := newParser(r, opt)
	if err != nil {
		return Report{}, err
	}
	phoneCol := -1
	if opt.PhoneColumn != "" {
		phoneCol = slices.Index(p.keys, fieldKey(opt.PhoneColumn))
		if phoneCol < 0 {
			return p.report, &FileError{Line: 1, Reason: fmt.Sprintf("no column %q in the header; columns are %s", opt.PhoneColumn, quoteList(p.report.Columns))}
		}
	} else {
		for _, h := range phoneHeaders {
			if i := slices.Index(p.keys, h); i >= 0 {
				phoneCol = i
				break
			}
		}
		if phoneCol < 0 {
			return p.report, &FileError{Line: 1, Reason: fmt.Sprintf("no phone column found in the header (looked for %s); columns are %s", strings.Join(phoneHeaders, ", "), quoteList(p.report.Columns))}
		}
	}
	p.report.PhoneColumn = p.report.Columns[phoneCol]
	tzCol := -1
	if opt.TimezoneColumn != "" {
		tzCol = slices.Index(p.keys, fieldKey(opt.TimezoneColumn))
		if tzCol < 0 {
			return p.report, &FileError{Line: 1, Reason: fmt.Sprintf("no time zone column %q in the header; columns are %s", opt.TimezoneColumn, quoteList(p.report.Columns))}
		}
	} else {
		for _, h := range []string{"timezone", "time_zone", "tz"} {
			if i := slices.Index(p.keys, h); i >= 0 {
				tzCol = i
				break
			}
		}
	}

	batchSize := opt.BatchSize
	if batchSize <= 0 {
		batchSize = 1000
	}
	cl := &classifier{n: newNormalizer(opt.DefaultRegion), keys: p.keys, phoneCol: phoneCol, tzCol: tzCol}
	batch := make([]Contact, 0, batchSize)
	inBatch := make(map[string]int, batchSize)
	reject := func(line int, reason string) error {
		p.report.Rejected++
		p.report.ByReason[reason]++
		return s.Reject(ctx, Rejection{Line: line, Reason: reason})
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		phones := make([]string, len(batch))
		for i, c := range batch {
			phones[i] = c.Phone
		}
		excluded, err := s.Exclude(ctx, phones)
		if err != nil {
			return err
		}
		kept := batch[:0]
		for _, c := range batch {
			if why, ok := excluded[c.Phone]; ok {
				if err := reject(c.Line, why); err != nil {
					return err
				}
				continue
			}
			kept = append(kept, c)
		}
		if len(kept) > 0 {
			if err := s.Contacts(ctx, kept); err != nil {
				return err
			}
			p.report.Imported += len(kept)
		}
		batch = make([]Contact, 0, batchSize) // the sink may keep the old slice
		clear(inBatch)
		return ctx.Err()
	}

	// Parsing phone numbers is most of the work: chunks of rows are
	// classified on every core while this goroutine keeps the file's order
	// for dedupe, rejections and the sink.
	chunks, fileErr, stop := p.classifyAll(ctx, cl)
	defer stop()
	for ch := range chunks {
		<-ch.done
		for _, r := range ch.rows {
			p.report.Rows++
			if r.reason != "" {
				if err := reject(r.line, r.reason); err != nil {
					return p.report, err
				}
				continue
			}
			if first, dup := inBatch[r.contact.Phone]; dup {
				if err := reject(r.line, fmt.Sprintf("%s (line %d)", ReasonDuplicate, first)); err != nil {
					return p.report, err
				}
				continue
			}
			inBatch[r.contact.Phone] = r.line
			batch = append(batch, r.contact)
			if len(batch) == batchSize {
				if err := flush(); err != nil {
					return p.report, err
				}
			}
		}
	}
	if err := fileErr(); err != nil {
		return p.report, err
	}
	if err := flush(); err != nil {
		return p.report, err
	}
	return p.report, nil
}

// row is one data row after classification: a contact, or a reason.
type row struct {
	line    int
	rec     []string
	contact Contact
	reason  string
}

type chunk struct {
	rows []row
	done chan struct{}
}

const chunkRows = 512

// classifyAll reads the file in chunks and classifies them on all cores.
// Chunks arrive in file order; each is ready when its done is closed. The
// returned func reports a whole-file error once chunks is drained; stop
// ends the workers early.
func (p *parser) classifyAll(ctx context.Context, cl *classifier) (<-chan *chunk, func() error, func()) {
	ctx, cancel := context.WithCancel(ctx)
	workers := max(1, runtime.GOMAXPROCS(0))
	ordered := make(chan *chunk, 2*workers)
	work := make(chan *chunk, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range work {
				for i := range ch.rows {
					cl.classify(&ch.rows[i])
				}
				close(ch.done)
			}
		}()
	}
	var ferr error
	go func() {
		defer close(ordered)
		defer close(work)
		ch := &chunk{done: make(chan struct{})}
		send := func() bool {
			select {
			case ordered <- ch:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- ch:
			case <-ctx.Done():
				close(ch.done)
				return false
			}
			ch = &chunk{done: make(chan struct{}), rows: make([]row, 0, chunkRows)}
			return true
		}
		for {
			rec, line, err := p.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var fe *FileError
				if errors.As(err, &fe) {
					ferr = err
					break
				}
				ch.rows = append(ch.rows, row{line: line, reason: ReasonMalformedRow + ": " + err.Error()})
			} else {
				ch.rows = append(ch.rows, row{line: line, rec: slices.Clone(rec)})
			}
			if len(ch.rows) == chunkRows && !send() {
				return
			}
		}
		send()
	}()
	stop := func() {
		cancel()
		for ch := range ordered { // let the reader finish
			_ = ch
		}
		wg.Wait()
	}
	return ordered, func() error { return ferr }, stop
}

// classifier turns a raw row into a contact or a rejection reason. It is
// safe for concurrent use.
type classifier struct {
	n        *normalizer
	keys     []string
	phoneCol int
	tzCol    int
}

func (cl *classifier) classify(r *row) {
	rec := r.rec
	r.rec = nil
	if r.reason != "" {
		return
	}
	if len(rec) != len(cl.keys) {
		r.reason = fmt.Sprintf("%s: %d, the header has %d", ReasonColumns, len(rec), len(cl.keys))
		return
	}
	raw := strings.TrimSpace(rec[cl.phoneCol])
	if raw == "" {
		r.reason = ReasonEmptyPhone
		return
	}
	phone, num, ok := cl.n.normalize(raw)
	if !ok {
		r.reason = fmt.Sprintf("%s: %q", ReasonInvalidPhone, clip(raw))
		return
	}
	var zones []string
	if cl.tzCol >= 0 && strings.TrimSpace(rec[cl.tzCol]) != "" {
		z := strings.TrimSpace(rec[cl.tzCol])
		if !cl.n.knownZone(z) {
			r.reason = fmt.Sprintf("%s %q", ReasonUnknownZone, clip(z))
			return
		}
		zones = []string{z}
	} else if zones = cl.n.zones(num); zones == nil {
		r.reason = ReasonNoZoneForCall
		return
	}
	fields := make(map[string]string, len(rec)-1)
	for i, v := range rec {
		if i != cl.phoneCol {
			fields[cl.keys[i]] = v
		}
	}
	r.contact = Contact{Line: r.line, Phone: phone, Zones: zones, Fields: fields}
}

// ReadDNC reads a do-not-call list: a CSV with a phone column, or a bare
// list of one number per line. Invalid numbers are counted as rejected.
func ReadDNC(ctx context.Context, r io.Reader, opt Options, emit func(phones []string) error) (Report, error) {
	br := bufio.NewReaderSize(r, sniffBytes)
	head, _ := br.Peek(sniffBytes)
	first, _, _ := bytes.Cut(bytes.TrimPrefix(head, utf8BOM), []byte("\n"))
	n := newNormalizer(opt.DefaultRegion)
	if _, _, ok := n.normalize(strings.TrimSpace(string(first))); ok {
		// No header: treat the file as a one-column list named phone.
		br2 := io.MultiReader(strings.NewReader("phone\n"), br)
		opt.PhoneColumn = "phone"
		rep, err := readDNC(ctx, br2, opt, emit)
		return rep, err
	}
	return readDNC(ctx, br, opt, emit)
}

func readDNC(ctx context.Context, r io.Reader, opt Options, emit func([]string) error) (Report, error) {
	s := &dncSink{emit: emit}
	rep, err := Import(ctx, r, opt, s)
	return rep, err
}

type dncSink struct{ emit func([]string) error }

func (s *dncSink) Exclude(context.Context, []string) (map[string]string, error) { return nil, nil }
func (s *dncSink) Reject(context.Context, Rejection) error                      { return nil }
func (s *dncSink) Contacts(_ context.Context, b []Contact) error {
	phones := make([]string, len(b))
	for i, c := range b {
		phones[i] = c.Phone
	}
	return s.emit(phones)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parser walks CSV records with their line numbers, decoding Latin-1 rows.
type parser struct {
	cr     *csv.Reader
	lr     *lineLimiter
	keys   []string
	report Report
	latin1 bool
}

func newParser(r io.Reader, opt Options) (*parser, error) {
	br := bufio.NewReaderSize(r, sniffBytes)
	head, err := br.Peek(sniffBytes)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("read dial list: %w", err)
	}
	if bytes.HasPrefix(head, utf8BOM) {
		br.Discard(len(utf8BOM))
		head = head[len(utf8BOM):]
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, &FileError{Reason: "the file is empty"}
	}
	if looksBinary(head) {
		return nil, &FileError{Reason: "not a CSV text file: it contains binary data (is it a spreadsheet? export it as CSV)"}
	}
	p := &parser{report: Report{ByReason: map[string]int{}, Encoding: "utf-8"}}
	firstLine, _, _ := bytes.Cut(head, []byte("\n"))
	delim := sniffDelimiter(firstLine)
	p.report.Delimiter = string(delim)
	p.lr = &lineLimiter{r: br, max: MaxLineBytes}
	cr := csv.NewReader(p.lr)
	cr.Comma = delim
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	p.cr = cr

	hdr, _, err := p.next()
	if err == io.EOF {
		return nil, &FileError{Reason: "the file is empty"}
	}
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, &FileError{Line: 1, Reason: "the header row is not valid CSV: " + err.Error()}
	}
	if len(hdr) > MaxColumns {
		return nil, &FileError{Line: 1, Reason: fmt.Sprintf("the header has %d columns; at most %d are allowed", len(hdr), MaxColumns)}
	}
	seen := map[string]bool{}
	for i, h := range hdr {
		h = strings.TrimSpace(h)
		k := fieldKey(h)
		if k == "" {
			k = fmt.Sprintf("column_%d", i+1)
		}
		if seen[k] {
			return nil, &FileError{Line: 1, Reason: fmt.Sprintf("column %q appears twice in the header", h)}
		}
		seen[k] = true
		p.report.Columns = append(p.report.Columns, h)
		p.keys = append(p.keys, k)
	}
	return p, nil
}

// next returns the next non-empty record and the line it starts on.
func (p *parser) next() ([]string, int, error) {
	for {
		rec, err := p.cr.Read()
		line, _ := p.cr.FieldPos(0)
		if p.lr.err != nil {
			return nil, p.lr.line, p.lr.err
		}
		if err != nil {
			if err == io.EOF {
				return nil, 0, io.EOF
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, pe.StartLine, pe.Err
			}
			return nil, line, fmt.Errorf("read dial list: %w", err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // an empty line is not a row
		}
		for i, v := range rec {
			if !utf8.ValidString(v) {
				d, _ := charmap.Windows1252.NewDecoder().String(v)
				rec[i] = d
				if !p.latin1 {
					p.latin1 = true
					p.report.Encoding = "windows-1252"
				}
			}
		}
		return rec, line, nil
	}
}

// lineLimiter fails the read when one physical line exceeds max bytes, so a
// file with no newlines cannot make the CSV reader buffer without bound.
type lineLimiter struct {
	r    *bufio.Reader
	max  int
	run  int // bytes since the last newline
	line int // current physical line, 1-based
	err  error
}

func (l *lineLimiter) Read(b []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(b)
	for _, c := range b[:n] {
		if c == '\n' {
			l.run = 0
			l.line++
			continue
		}
		l.run++
		if l.run > l.max {
			l.err = &FileError{Line: l.line + 1, Reason: fmt.Sprintf("line is longer than %d bytes; is this a dial list?", l.max)}
			return 0, l.err
		}
	}
	return n, err
}

func looksBinary(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return true
	}
	ctl := 0
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			ctl++
		}
	}
	return ctl > len(b)/100+1
}

func sniffDelimiter(line []byte) rune {
	best, bestN := ',', bytes.Count(line, []byte{','})
	for _, d := range []rune{';', '\t', '|'} {
		if n := bytes.Count(line, []byte(string(d))); n > bestN {
			best, bestN = d, n
		}
	}
	return best
}

// fieldKey turns a header into a safe field name: lower case, letters,
// digits and underscores.
func fieldKey(h string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			under = false
		default:
			if !under && b.Len() > 0 {
				b.WriteByte('_')
				under = true
			}
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// normalizer turns raw numbers into E.164 and finds their zones, caching
// zone names, which repeat across rows.
type normalizer struct {
	region string
	known  sync.Map // zone name → bool
}

func newNormalizer(region string) *normalizer {
	if region == "" {
		region = "US"
	}
	return &normalizer{region: strings.ToUpper(region)}
}

func (n *normalizer) normalize(raw string) (string, *phonenumbers.PhoneNumber, bool) {
	if len(raw) > 40 {
		return "", nil, false
	}
	num, err := phonenumbers.Parse(raw, n.region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", nil, false
	}
	return phonenumbers.Format(num, phonenumbers.E164), num, true
}

func (n *normalizer) knownZone(z string) bool {
	if ok, seen := n.known.Load(z); seen {
		return ok.(bool)
	}
	_, err := time.LoadLocation(z)
	ok := err == nil && z != "" && z != "Local"
	n.known.Store(z, ok)
	return ok
}

// zones maps a number to its IANA zones, nil when none is known.
func (n *normalizer) zones(num *phonenumbers.PhoneNumber) []string {
	zs, err := phonenumbers.GetTimezonesForNumber(num)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range zs {
		if s != phonenumbers.UNKNOWN_TIMEZONE && n.knownZone(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
