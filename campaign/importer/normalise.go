package importer

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones resolve on a bare host without /usr/share/zoneinfo

	"github.com/nyaruka/phonenumbers"

	"github.com/elastidial/elastidial/campaign"
)

// phoneNames are header keys taken as the phone column, best first.
// Compared without underscores, so "Phone Number", "phone_number" and
// "PhoneNumber" are one name.
var phoneNames = []string{
	"phone", "phone_number", "phone_no", "number", "mobile", "mobile_number",
	"mobile_no", "mobile_phone", "cell", "cell_phone", "cell_no", "msisdn", "tel",
	"tel_no", "telephone", "telephone_number", "e164", "contact_number", "phone_1",
}

// tzNames are header keys taken as the zone column when none is named.
var tzNames = []string{"timezone", "time_zone", "tz", "iana_timezone"}

// callerIDNames are header keys taken as the caller ID column when none
// is named.
var callerIDNames = []string{"caller_id", "callerid", "caller_id_number", "caller_number", "cli"}

// fieldKey normalises a header to a safe field key: lower-case ASCII letters,
// digits and single underscores ("First Name " → "first_name"). Other
// characters become underscores. It may return "".
func fieldKey(h string) string {
	var b strings.Builder
	pending := false
	for _, r := range strings.ToLower(h) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if pending && b.Len() > 0 {
				b.WriteByte('_')
			}
			pending = false
			b.WriteRune(r)
		} else {
			pending = true
		}
	}
	return b.String()
}

// readHeader reads the first non-blank record and maps it. For a DNC list a
// header that names no phone column but is itself a phone number means a bare
// one-number-per-line file.
func readHeader(cr *csvReader, rep *Report, opt Options, dnc bool) (*header, error) {
	var rec *record
	for {
		var err error
		rec, err = cr.next()
		if err != nil {
			if err == io.EOF {
				return nil, &FileError{Msg: "the file has no header row and no data (only blank lines)"}
			}
			return nil, fmt.Errorf("read header: %w", err)
		}
		if !rec.blank {
			break
		}
		rep.Blank++
	}
	switch {
	case rec.unterminated:
		return nil, &FileError{Line: rec.line, Msg: "the header row has a quote that is never closed"}
	case rec.tooLong:
		return nil, &FileError{Line: rec.line, Msg: fmt.Sprintf("the header row is longer than %d bytes; is this a dial list?", MaxRowBytes)}
	case rec.tooMany:
		return nil, &FileError{Line: rec.line, Msg: fmt.Sprintf("the header row has more than %d columns", MaxColumns)}
	}
	h := &header{phone: -1, tz: -1, cid: -1}
	names := make([]string, len(rec.fields))
	used := map[string]bool{}
	for i, f := range rec.fields {
		names[i] = cr.text(f)
		k := fieldKey(names[i])
		if k == "" {
			k = fmt.Sprintf("column_%d", i+1)
		} else if k[0] >= '0' && k[0] <= '9' {
			k = "column_" + k
		}
		base := k
		for i := 2; used[k]; i++ {
			k = fmt.Sprintf("%s_%d", base, i)
		}
		used[k] = true
		h.keys = append(h.keys, k)
	}
	rep.Columns = h.keys

	compact := func(s string) string { return strings.ReplaceAll(fieldKey(s), "_", "") }
	find := func(want string) int {
		w := compact(want)
		for i, n := range names {
			if compact(n) == w {
				return i
			}
		}
		return -1
	}
	// column is the column asked for by name (an error if absent), else the
	// first of the usual names present, else -1.
	column := func(asked string, usual []string, what string) (int, error) {
		if asked != "" {
			if i := find(asked); i >= 0 {
				return i, nil
			}
			return -1, &FileError{Line: rec.line, Msg: fmt.Sprintf("no %scolumn %q; the header has %s", what, asked, quoteList(names))}
		}
		for _, n := range usual {
			if i := find(n); i >= 0 {
				return i, nil
			}
		}
		return -1, nil
	}
	var err error
	if h.phone, err = column(opt.PhoneColumn, phoneNames, ""); err != nil {
		return nil, err
	}
	if h.phone < 0 {
		if dnc && len(rec.fields) == 1 && looksLikeNumber(names[0]) {
			// Headerless list: the first line is the first number.
			rep.Columns = nil
			h.keys = []string{""}
			h.phone, h.bare = 0, true
			first := *rec
			first.fields = [][]byte{slices.Clone(rec.fields[0])}
			h.firstRow = &first
			return h, nil
		}
		if dnc && len(rec.fields) == 2 && ftcPair(names[0], names[1]) {
			// The FTC registry's flat download: area code, number.
			rep.Columns = nil
			h.keys = []string{"", ""}
			h.phone, h.bare = 0, true
			first := *rec
			first.fields = [][]byte{slices.Clone(rec.fields[0]), slices.Clone(rec.fields[1])}
			h.firstRow = &first
			return h, nil
		}
		return nil, &FileError{Line: rec.line, Msg: fmt.Sprintf(
			"no phone column: the header has %s; name the phone column one of phone, phone_number, number, mobile, msisdn, tel (or choose it explicitly)",
			quoteList(names))}
	}
	rep.PhoneColumn = h.keys[h.phone]
	if dnc {
		return h, nil
	}
	if h.tz, err = column(opt.TimezoneColumn, tzNames, "time zone "); err != nil {
		return nil, err
	}
	if h.tz == h.phone {
		h.tz = -1
	}
	if h.tz >= 0 {
		rep.TimezoneColumn = h.keys[h.tz]
	}
	if h.cid, err = column(opt.CallerIDColumn, callerIDNames, "caller ID "); err != nil {
		return nil, err
	}
	if h.cid == h.phone || h.cid == h.tz {
		h.cid = -1
	}
	if h.cid >= 0 {
		rep.CallerIDColumn, h.cidName = h.keys[h.cid], names[h.cid]
	}
	return h, nil
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "no columns"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return "one column, " + q[0]
	}
	return fmt.Sprintf("%d columns: %s", len(q), strings.Join(q, ", "))
}

// ftcPair reports an FTC flat-file record: a three-digit area code and a
// seven-digit number.
func ftcPair(area, number string) bool {
	digits := func(s string, n int) bool {
		s = strings.TrimSpace(s)
		return len(s) == n && strings.Trim(s, "0123456789") == ""
	}
	return digits(area, 3) && digits(number, 7)
}

// looksLikeNumber: mostly digits and phone punctuation, at least 5 digits.
func looksLikeNumber(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune("+-(). /", r):
		default:
			return false
		}
	}
	return digits >= 5
}

// normaliser turns raw cells into E.164 numbers and zones. Safe for
// concurrent use: the zone cache is shared by the workers of a batch.
type normaliser struct {
	region    string
	cidName   string // the caller ID column's header, for rejections
	nanp      *nanpInfo
	nanpCache sync.Map // uint64 depth<<40|NSN prefix → bool valid, see fastpath.go
}

func newNormaliser(region string) *normaliser {
	return &normaliser{region: region, nanp: nanp()}
}

// zoneErr checks a zone name (cached process-wide by Location).
func (n *normaliser) zoneErr(name string) error {
	_, err := Location(name)
	return err
}

// normalise fills r's outcome unless it is already rejected.
func (n *normaliser) normalise(r *row, zones bool) {
	if r.cat != "" {
		return
	}
	e164, cat, why := n.phone(r.phone)
	if cat != "" {
		r.reject(cat, why)
		return
	}
	r.e164 = e164
	r.key, _ = strconv.ParseUint(e164[1:], 10, 64) // E.164 has ≤ 15 digits
	if r.cid != "" {
		r.callerID = campaign.NormaliseCallerIDIn(strings.TrimPrefix(r.cid, "'"), n.region)
		if r.callerID == "" || len(r.cid) > maxPhoneBytes {
			r.reject("invalid caller id", fmt.Sprintf("column %q: %q is not a valid caller ID; want a phone number such as +14155550100", n.cidName, r.cid))
			return
		}
	}
	if !zones {
		return
	}
	var declared []string
	if r.tz != "" {
		for _, z := range strings.FieldsFunc(r.tz, func(c rune) bool { return c == '|' || c == ' ' || c == ',' || c == ';' }) {
			if n.zoneErr(z) != nil {
				r.reject("unknown time zone", fmt.Sprintf("unknown time zone %q; use an IANA name such as America/New_York, or leave the cell empty to derive it from the number", z))
				return
			}
			if !slices.Contains(declared, z) {
				declared = append(declared, z)
			}
		}
	}
	zs, err := phonenumbers.GetTimezonesForPrefix(e164)
	if err != nil || len(zs) == 0 || (len(zs) == 1 && zs[0] == phonenumbers.UNKNOWN_TIMEZONE) {
		if len(declared) > 0 {
			// Nothing known from the number: the declaration is all there is.
			r.zones = slices.Clip(declared)
			return
		}
		r.reject("no time zone", fmt.Sprintf("no time zone is known for %s; add a timezone column with its IANA zone", e164))
		return
	}
	for _, z := range zs {
		if n.zoneErr(z) != nil {
			r.reject("no time zone", fmt.Sprintf("time zone %q of %s is not in the zone database; add a timezone column", z, e164))
			return
		}
	}
	// A declared zone narrows the number's possible zones, never widens them.
	zs = campaign.NarrowZones(zs, declared)
	r.zones = slices.Clip(zs)
}

// phone answers the E.164 form of raw, or a rejection category and reason.
func (n *normaliser) phone(raw string) (e164, cat, why string) {
	const invalid = "invalid number"
	if raw == "" {
		return "", "missing number", "the phone cell is empty"
	}
	if len(raw) > maxPhoneBytes {
		return "", invalid, fmt.Sprintf("phone cell is %d characters long; no phone number is", len(raw))
	}
	raw = strings.TrimPrefix(raw, "'") // spreadsheets' "text" marker
	digits := 0
	for i := 0; i < len(raw); i++ {
		if raw[i] >= '0' && raw[i] <= '9' {
			digits++
		}
	}
	if digits == 0 {
		return "", invalid, fmt.Sprintf("%q is not a phone number (no digits)", raw)
	}
	if campaign.Emergency(raw) {
		return "", "emergency number", fmt.Sprintf("%q is an emergency or N11 service number; it is never dialled", raw)
	}
	if nsn, ok := fastNSN(raw, n.region, n.nanp); ok && n.nanpValid(nsn, n.nanp) {
		return "+1" + nsn, "", ""
	}
	if scientific(raw) {
		return "", invalid, fmt.Sprintf("%q is in scientific notation (a spreadsheet formatted the column as numbers); format the phone column as text and export again", raw)
	}
	num, err := phonenumbers.Parse(raw, n.region)
	if err != nil {
		return "", invalid, fmt.Sprintf("%q is not a phone number: %s", raw, err)
	}
	if num.GetExtension() != "" {
		return "", invalid, fmt.Sprintf("%q has an extension; the dialer cannot dial extensions", raw)
	}
	if !phonenumbers.IsValidNumber(num) {
		region := phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode()))
		switch phonenumbers.IsPossibleNumberWithReason(num) {
		case phonenumbers.TOO_SHORT:
			return "", invalid, fmt.Sprintf("%q is too short for a %s number", raw, region)
		case phonenumbers.TOO_LONG:
			return "", invalid, fmt.Sprintf("%q is too long for a %s number", raw, region)
		case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
			return "", invalid, fmt.Sprintf("%q is a local number written without its area code", raw)
		case phonenumbers.INVALID_COUNTRY_CODE:
			return "", invalid, fmt.Sprintf("%q has an unknown country code", raw)
		}
		return "", invalid, fmt.Sprintf("%q is not a valid %s number (default region %s; write other countries' numbers with +country code)", raw, region, n.region)
	}
	return phonenumbers.Format(num, phonenumbers.E164), "", ""
}

// locations caches zones for Location: a process loads each zone once.
var locations sync.Map // name → *time.Location or error

// Location resolves an IANA zone name as the importer validated it, from the
// embedded zone database when the host has none, loading each name once per
// process. The store can use it to check a contact's calling window in each
// of its Zones without re-parsing zone files per contact.
func Location(name string) (*time.Location, error) {
	if v, ok := locations.Load(name); ok {
		if l, ok := v.(*time.Location); ok {
			return l, nil
		}
		return nil, v.(error)
	}
	var (
		v   any
		loc *time.Location
		err error
	)
	switch name {
	case "", "Local", phonenumbers.UNKNOWN_TIMEZONE:
		err = fmt.Errorf("load zone %q: not an IANA time zone", name)
		v = err
	default:
		loc, err = time.LoadLocation(name)
		if err != nil {
			err = fmt.Errorf("load zone %q: %w", name, err)
			v = err
		} else {
			v = loc
		}
	}
	locations.Store(name, v)
	return loc, err
}

// scientific reports a number a spreadsheet turned into "1.21255501E+10".
func scientific(s string) bool {
	mant, exp, ok := strings.Cut(strings.ToUpper(s), "E+")
	if !ok || mant == "" || exp == "" {
		return false
	}
	for _, c := range mant + exp {
		if (c < '0' || c > '9') && c != '.' && c != ',' {
			return false
		}
	}
	return true
}
