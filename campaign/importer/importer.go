// Package importer turns an uploaded dial list (CSV) into contacts a campaign
// can call: it streams the file in batches, finds the phone column, keeps the
// other columns as per-contact fields for the IVR, normalises numbers to E.164,
// works out each contact's time zones and accounts for every row — imported,
// or rejected with its line number and a reason a person can act on.
//
// The package does no I/O of its own beyond the io.Reader it is given; storage
// (dedupe against the campaign, do-not-call scrub, writing contacts) happens
// behind the Sink the caller supplies, so a failed import can be rolled back
// by the caller as one transaction.
//
// Memory: rows are read, normalised and handed to the Sink BatchSize at a
// time, so a file of any length is never held whole. The one structure that
// grows with the file is the in-list dedupe index, 8+4 bytes of payload per
// accepted number (a 1,000,000-row list costs roughly 20 MB of map).
package importer

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
)

// Options tune one import. The zero value works for a US list with a header
// row naming its phone column.
type Options struct {
	// DefaultRegion is the ISO 3166 region used for numbers written without a
	// country code ("(212) 555-0100"). Default "US".
	DefaultRegion string
	// PhoneColumn names the header of the phone column explicitly. Default:
	// the first header matching a common name (phone, phone_number, number,
	// mobile, msisdn, tel, ...), compared case- and punctuation-insensitively.
	PhoneColumn string `json:"phone_column"`
	// TimezoneColumn names a column holding IANA zone names. Default: a column
	// called timezone, time_zone or tz if there is one; else zones are derived
	// from each number. A blank cell falls back to the number.
	TimezoneColumn string
	// CallerIDColumn names a column holding the caller ID each contact is
	// shown. Default: a column called caller_id, callerid, cli or
	// caller_number if there is one. A blank cell means the campaign's.
	CallerIDColumn string
	// BatchSize is the number of rows handed to the Sink at once. Default 1000.
	BatchSize int
	// Workers normalise numbers in parallel within a batch. Default
	// runtime.GOMAXPROCS(0). Output order does not depend on it.
	Workers int
}

// Limits on hostile input. A row beyond them is rejected; the file goes on.
const (
	// MaxRowBytes bounds one row (all its fields, quotes included).
	MaxRowBytes = 64 << 10
	// MaxColumns bounds the number of columns of the header and of a row.
	MaxColumns = 512
	// maxPhoneBytes: no real phone number, however formatted, is longer.
	maxPhoneBytes = 64
	// maxSamples is how many rejections Report.Samples keeps.
	maxSamples = 100
)

// Contact is one accepted row.
type Contact struct {
	// Line is the 1-based physical line of the file where the row starts
	// (the header is line 1 in a file without leading blank lines).
	Line int
	// Phone is the number in E.164 ("+12125550100").
	Phone string
	// Zones are IANA names, all of them valid for time.LoadLocation. A number
	// whose prefix spans several zones keeps all of them: the calling window
	// must hold in every one. The slice is shared between contacts: do not
	// modify it (appending is safe, its capacity is clipped).
	Zones []string
	// Fields are the other columns, keyed by normalised header names
	// ("First Name" → "first_name"). Never nil. Owned by the Sink.
	Fields map[string]string
	// CallerID is the contact's own caller ID in E.164, "" for the
	// campaign's.
	CallerID string
}

// Rejection is one row that was not imported.
type Rejection struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Sink receives the outcome of an import. Its methods are called from one
// goroutine, in file order batch by batch. Any error stops the import and is
// returned by Import. For "a failed import leaves nothing half-written", run
// the Sink's writes in one transaction and roll it back when Import returns
// an error (a *FileError comes before any Sink call).
type Sink interface {
	// Exclude is called once per batch, before Contacts, with the batch's
	// E.164 numbers. It answers phone → reason for the numbers that must not
	// be imported (already in the campaign, on a do-not-call list); those
	// rows become rejections with that reason (also the ByReason key, so
	// keep reasons few and fixed). phones is reused after the call.
	Exclude(ctx context.Context, phones []string) (map[string]string, error)
	// Contacts stores one batch of accepted contacts. The slice is reused
	// after the call returns; the Fields maps are not.
	Contacts(ctx context.Context, batch []Contact) error
	// Reject records one rejected row.
	Reject(ctx context.Context, r Rejection) error
}

// Report accounts for every row: Rows == Imported + Rejected.
type Report struct {
	// Rows counts data rows: every record after the header that is not blank.
	// Blank lines (and rows whose cells are all empty, as spreadsheets export
	// them) are skipped and counted in Blank instead, not as rejections.
	Rows     int `json:"rows"`
	Imported int `json:"imported"`
	Rejected int `json:"rejected"`
	Blank    int `json:"blank"`
	// ByReason counts rejections by kind: "invalid number", "missing
	// number", "duplicate", "wrong column count", "row too long",
	// "unterminated quote", "unknown time zone", "no time zone", or the
	// Sink's exclusion reason. Each Rejection.Reason has the specifics.
	ByReason map[string]int `json:"by_reason"`
	// Columns are the header's field keys in file order (phone included).
	Columns []string `json:"columns"`
	// PhoneColumn is the key of the column numbers were read from ("" for a
	// bare one-number-per-line DNC file).
	PhoneColumn string `json:"phone_column"`
	// TimezoneColumn is the key of the zone column, "" when zones come from
	// the numbers.
	TimezoneColumn string `json:"timezone_column,omitempty"`
	// CallerIDColumn is the key of the caller ID column, "" if none.
	CallerIDColumn string `json:"caller_id_column,omitempty"`
	// Delimiter is the detected field separator: ",", ";" or "\t".
	Delimiter string `json:"delimiter"`
	// Encoding names how the bytes were read: "UTF-8", "UTF-8 with BOM",
	// "windows-1252", or "UTF-8 (N rows decoded as windows-1252)".
	Encoding string `json:"encoding"`
	// Samples are the first rejections in file order of their batches, for a
	// report page; the Sink receives all of them.
	Samples []Rejection `json:"-"` // the store returns its own list of rejections
}

// FileError is a problem with the file as a whole: nothing was imported.
type FileError struct {
	// Line is where the problem was found, 0 when it concerns the whole file.
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Import streams a dial list from r into s. Problems with the whole file
// (binary, empty, no phone column, ...) return a *FileError before anything
// reaches the Sink, except a NUL byte past the sniffed start, found only
// when read: the caller discards what the Sink got (the store imports in
// one transaction). Row problems become rejections. On a Sink or context error
// the import stops and the error is returned with the report so far.
func Import(ctx context.Context, r io.Reader, opt Options, s Sink) (Report, error) {
	opt = opt.withDefaults()
	rep := Report{ByReason: map[string]int{}}
	cr, err := openCSV(r, &rep)
	if err != nil {
		return rep, err
	}
	hdr, err := readHeader(cr, &rep, opt, false)
	if err != nil {
		return rep, err
	}
	norm := newNormaliser(opt.DefaultRegion)
	norm.cidName = hdr.cidName
	im := &importer{
		opt:  opt,
		norm: norm,
		seen: make(map[uint64]uint32),
		sink: s,
		rep:  &rep,
		hdr:  hdr,
	}
	err = im.run(ctx, cr)
	cr.finish(&rep)
	return rep, err
}

// ReadDNC reads a do-not-call list: a CSV with a phone column, or a bare file
// of one number per line (no header). Numbers are normalised to E.164 and
// handed to emit in batches; rows that are not numbers are counted as
// rejections in the report (Samples shows the first). Duplicates are not
// removed: storing a DNC entry twice must be harmless.
func ReadDNC(ctx context.Context, r io.Reader, opt Options, emit func(phones []string) error) (Report, error) {
	opt = opt.withDefaults()
	rep := Report{ByReason: map[string]int{}}
	cr, err := openCSV(r, &rep)
	if err != nil {
		return rep, err
	}
	hdr, err := readHeader(cr, &rep, opt, true)
	if err != nil {
		return rep, err
	}
	d := &dncReader{opt: opt, norm: newNormaliser(opt.DefaultRegion), rep: &rep, hdr: hdr, emit: emit}
	err = d.run(ctx, cr)
	cr.finish(&rep)
	return rep, err
}

func (o Options) withDefaults() Options {
	if o.DefaultRegion == "" {
		o.DefaultRegion = "US"
	}
	o.DefaultRegion = strings.ToUpper(strings.TrimSpace(o.DefaultRegion))
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// header is the mapping from record positions to meaning.
type header struct {
	keys     []string // field key per column
	phone    int      // column index of the phone
	tz       int      // column index of zones, -1 if none
	cid      int      // column index of caller IDs, -1 if none
	cidName  string   // its header as written
	bare     bool     // a headerless do-not-call file (no phone column)
	firstRow *record  // a headerless DNC list's first record, to process as data
}

// row is one data record on its way through a batch.
type row struct {
	line   int
	phone  string
	tz     string
	cid    string
	fields map[string]string

	// Outcome: rejected when cat != "".
	cat, reason string
	e164        string
	callerID    string
	key         uint64
	zones       []string
}

func (r *row) reject(cat, reason string) {
	r.cat, r.reason = cat, reason
}

type importer struct {
	opt  Options
	norm *normaliser
	seen map[uint64]uint32 // E.164 as integer → line of first occurrence
	sink Sink
	rep  *Report
	hdr  *header

	rows     []row
	contacts []Contact
	phones   []string
}

func (im *importer) run(ctx context.Context, cr *csvReader) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		im.rows = im.rows[:0]
		eof := false
		for len(im.rows) < im.opt.BatchSize {
			rec, err := cr.next()
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return fmt.Errorf("import: read: %w", err)
			}
			if rec.blank {
				im.rep.Blank++
				continue
			}
			im.rows = append(im.rows, makeRow(rec, im.hdr, cr))
		}
		if err := im.flush(ctx); err != nil {
			return err
		}
		if eof {
			return nil
		}
	}
}

// makeRow checks a record's shape and maps its cells.
func makeRow(rec *record, h *header, cr *csvReader) row {
	r := row{line: rec.line}
	if h.bare && !rec.unterminated && !rec.tooLong && !rec.tooMany {
		// A headerless do-not-call file, one number a line or the FTC's
		// area code and number: both, even mixed (files put together).
		switch f := rec.fields; {
		case len(f) == 1:
			r.phone = cr.text(f[0])
		case len(f) == 2 && ftcPair(cr.text(f[0]), cr.text(f[1])):
			r.phone = strings.TrimSpace(cr.text(f[0])) + strings.TrimSpace(cr.text(f[1]))
		default:
			r.reject("wrong column count", fmt.Sprintf("row has %d columns; want one number, or an area code and a number, a line", len(f)))
		}
		return r
	}
	switch {
	case rec.unterminated:
		r.reject("unterminated quote", fmt.Sprintf("a quoted value opened on line %d is never closed; the rest of the file (to line %d) was read as this one row", rec.line, rec.endLine))
		return r
	case rec.tooLong:
		r.reject("row too long", fmt.Sprintf("row is longer than %d bytes; check for a stray quote or a value that is not a contact field", MaxRowBytes))
		return r
	case rec.tooMany || len(rec.fields) != len(h.keys):
		n := len(rec.fields)
		more := ""
		if rec.tooMany {
			n = MaxColumns
			more = " or more"
		}
		r.reject("wrong column count", fmt.Sprintf("row has %d%s columns but the header has %d; quote values that contain %s", n, more, len(h.keys), delimName(cr.delim)))
		return r
	}
	r.fields = make(map[string]string, len(h.keys))
	for i, k := range h.keys {
		v := cr.text(rec.fields[i])
		switch i {
		case h.phone:
			r.phone = v
		case h.tz:
			r.tz = v
		case h.cid:
			r.cid = v
		default:
			r.fields[k] = v
		}
	}
	return r
}

func delimName(d byte) string {
	switch d {
	case ';':
		return "semicolons"
	case '\t':
		return "tabs"
	}
	return "commas"
}

func (im *importer) flush(ctx context.Context) error {
	if len(im.rows) == 0 {
		return nil
	}
	im.norm.normaliseAll(im.rows, im.opt.Workers, true)

	// In-list dedupe, in file order.
	im.phones = im.phones[:0]
	for i := range im.rows {
		r := &im.rows[i]
		if r.cat != "" {
			continue
		}
		if first, dup := im.seen[r.key]; dup {
			r.reject("duplicate", fmt.Sprintf("duplicate of line %d (%s)", first, r.e164))
			continue
		}
		im.seen[r.key] = uint32(r.line)
		im.phones = append(im.phones, r.e164)
	}

	var excluded map[string]string
	if len(im.phones) > 0 {
		var err error
		excluded, err = im.sink.Exclude(ctx, im.phones)
		if err != nil {
			return fmt.Errorf("import: exclude: %w", err)
		}
	}

	im.contacts = im.contacts[:0]
	for i := range im.rows {
		r := &im.rows[i]
		if r.cat == "" {
			if why, ok := excluded[r.e164]; ok {
				if why == "" {
					why = "excluded"
				}
				r.reject(why, fmt.Sprintf("%s (%s)", why, r.e164))
			}
		}
		im.rep.Rows++
		if r.cat != "" {
			im.rep.Rejected++
			im.rep.ByReason[r.cat]++
			rj := Rejection{Line: r.line, Reason: r.reason}
			if len(im.rep.Samples) < maxSamples {
				im.rep.Samples = append(im.rep.Samples, rj)
			}
			if err := im.sink.Reject(ctx, rj); err != nil {
				return fmt.Errorf("import: reject line %d: %w", r.line, err)
			}
			continue
		}
		im.contacts = append(im.contacts, Contact{Line: r.line, Phone: r.e164, Zones: r.zones, Fields: r.fields, CallerID: r.callerID})
	}
	if len(im.contacts) > 0 {
		if err := im.sink.Contacts(ctx, im.contacts); err != nil {
			return fmt.Errorf("import: store contacts: %w", err)
		}
		im.rep.Imported += len(im.contacts)
	}
	clear(im.contacts) // drop references to Fields maps the Sink now owns
	return nil
}

type dncReader struct {
	opt    Options
	norm   *normaliser
	rep    *Report
	hdr    *header
	emit   func([]string) error
	rows   []row
	phones []string
}

func (d *dncReader) run(ctx context.Context, cr *csvReader) error {
	pending := d.hdr.firstRow
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read dnc: %w", err)
		}
		d.rows = d.rows[:0]
		eof := false
		for len(d.rows) < d.opt.BatchSize {
			var rec *record
			if pending != nil {
				rec, pending = pending, nil
			} else {
				var err error
				rec, err = cr.next()
				if err == io.EOF {
					eof = true
					break
				}
				if err != nil {
					return fmt.Errorf("read dnc: read: %w", err)
				}
			}
			if rec.blank {
				d.rep.Blank++
				continue
			}
			d.rows = append(d.rows, makeRow(rec, d.hdr, cr))
		}
		if len(d.rows) > 0 {
			d.norm.normaliseAll(d.rows, d.opt.Workers, false)
			d.phones = d.phones[:0]
			for i := range d.rows {
				r := &d.rows[i]
				d.rep.Rows++
				if r.cat != "" {
					d.rep.Rejected++
					d.rep.ByReason[r.cat]++
					if len(d.rep.Samples) < maxSamples {
						d.rep.Samples = append(d.rep.Samples, Rejection{Line: r.line, Reason: r.reason})
					}
					continue
				}
				d.phones = append(d.phones, r.e164)
			}
			if len(d.phones) > 0 {
				if err := d.emit(d.phones); err != nil {
					return fmt.Errorf("read dnc: store: %w", err)
				}
				d.rep.Imported += len(d.phones)
			}
		}
		if eof {
			return nil
		}
	}
}

// normaliseAll fills the outcome of every not-yet-rejected row, spreading the
// work (phonenumbers.Parse and validation cost ~20µs a number) over workers.
func (n *normaliser) normaliseAll(rows []row, workers int, zones bool) {
	if workers > len(rows)/64 {
		workers = max(1, len(rows)/64)
	}
	if workers <= 1 {
		for i := range rows {
			n.normalise(&rows[i], zones)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (len(rows) + workers - 1) / workers
	for lo := 0; lo < len(rows); lo += chunk {
		part := rows[lo:min(lo+chunk, len(rows))]
		wg.Go(func() {
			for i := range part {
				n.normalise(&part[i], zones)
			}
		})
	}
	wg.Wait()
}
