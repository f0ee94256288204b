package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

// recSink keeps everything it is given and can be told to fail.
type recSink struct {
	contacts []Contact
	rejects  []Rejection
	excluded map[string]string // answered by Exclude
	asked    [][]string        // phones passed to Exclude, per batch
	batches  int

	failContactsAt int // fail the Nth Contacts call (1-based), 0 never
	failExclude    error
}

var _ Sink = (*recSink)(nil)

var errDisk = errors.New("disk full")

func (s *recSink) Exclude(_ context.Context, phones []string) (map[string]string, error) {
	if s.failExclude != nil {
		return nil, s.failExclude
	}
	s.asked = append(s.asked, slices.Clone(phones))
	out := map[string]string{}
	for _, p := range phones {
		if why, ok := s.excluded[p]; ok {
			out[p] = why
		}
	}
	return out, nil
}

func (s *recSink) Contacts(_ context.Context, batch []Contact) error {
	s.batches++
	if s.batches == s.failContactsAt {
		return errDisk
	}
	s.contacts = append(s.contacts, batch...) // copies: the slice is reused
	return nil
}

func (s *recSink) Reject(_ context.Context, r Rejection) error {
	s.rejects = append(s.rejects, r)
	return nil
}

func (s *recSink) reason(line int) string {
	for _, r := range s.rejects {
		if r.Line == line {
			return r.Reason
		}
	}
	return ""
}

// run imports src and checks the invariants every import must keep.
func run(t *testing.T, src string, opt Options) (Report, *recSink) {
	t.Helper()
	s := &recSink{}
	rep, err := Import(context.Background(), strings.NewReader(src), opt, s)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	checkInvariants(t, rep, s)
	return rep, s
}

func checkInvariants(t *testing.T, rep Report, s *recSink) {
	t.Helper()
	if rep.Rows != rep.Imported+rep.Rejected {
		t.Errorf("Rows %d != Imported %d + Rejected %d", rep.Rows, rep.Imported, rep.Rejected)
	}
	if len(s.contacts) != rep.Imported || len(s.rejects) != rep.Rejected {
		t.Errorf("sink got %d contacts %d rejects, report says %d/%d", len(s.contacts), len(s.rejects), rep.Imported, rep.Rejected)
	}
	n := 0
	for _, c := range rep.ByReason {
		n += c
	}
	if n != rep.Rejected {
		t.Errorf("ByReason sums to %d, Rejected %d", n, rep.Rejected)
	}
	lines := map[int]bool{}
	for _, c := range s.contacts {
		if lines[c.Line] {
			t.Errorf("line %d reported twice", c.Line)
		}
		lines[c.Line] = true
		if !strings.HasPrefix(c.Phone, "+") || len(c.Zones) == 0 || c.Fields == nil {
			t.Errorf("bad contact %+v", c)
		}
	}
	for _, r := range s.rejects {
		if lines[r.Line] {
			t.Errorf("line %d reported twice", r.Line)
		}
		lines[r.Line] = true
		if r.Line < 1 || r.Reason == "" {
			t.Errorf("bad rejection %+v", r)
		}
	}
}

func TestPhoneNormalisation(t *testing.T) {
	tests := []struct {
		raw, region string
		want        string // E.164, or "!" + part of the reason
	}{
		{"(212) 555-0100", "US", "+12125550100"},
		{"212.555.0100", "US", "+12125550100"},
		{"1-212-555-0100", "US", "+12125550100"},
		{"+1 212 555 0100", "DE", "+12125550100"},
		{"'+12125550100", "US", "+12125550100"},
		{"020 7946 0958", "GB", "+442079460958"},
		{"+44 20 7946 0958", "US", "+442079460958"},
		{"030 123456", "DE", "+4930123456"},
		{"", "US", "!the phone cell is empty"},
		{"n/a", "US", "!no digits"},
		{"12", "US", "!too short"},
		{"555-0100", "US", "!without its area code"},
		{"212555010012345", "US", "!too long"},
		{"(999) 555-0100", "US", "!not a valid US number"},
		{"+999 1234 5678", "US", "!country code"},
		{"2125550100 ext. 12", "US", "!extension"},
		{"1.21255501E+10", "US", "!scientific notation"},
		{"1,21255501e+10", "US", "!scientific notation"},
		{"+1.212.555.0100 ext 12", "US", "!extension"},
		{strings.Repeat("1", 200), "US", "!200 characters long"},
	}
	n := newNormaliser("")
	for _, tt := range tests {
		n.region = tt.region
		got, cat, why := n.phone(tt.raw)
		if cat != "" {
			got = "!" + why
		}
		if strings.HasPrefix(tt.want, "!") {
			if !strings.HasPrefix(got, "!") || !strings.Contains(got, tt.want[1:]) {
				t.Errorf("phone(%q, %s) = %q, want reason with %q", tt.raw, tt.region, got, tt.want[1:])
			}
			continue
		}
		if got != tt.want {
			t.Errorf("phone(%q, %s) = %q, want %q", tt.raw, tt.region, got, tt.want)
		}
	}
}

func TestFieldKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Phone Number", "phone_number"},
		{"  First-Name ", "first_name"},
		{"E-Mail", "e_mail"},
		{"Prénom", "pr_nom"},
		{"__x__y__", "x_y"},
		{"***", ""},
		{"MSISDN", "msisdn"},
	}
	for _, tt := range tests {
		if got := fieldKey(tt.in); got != tt.want {
			t.Errorf("fieldKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPhoneColumnDetection(t *testing.T) {
	tests := []struct {
		header, explicit string
		want             string // phone column key, or "!" + part of the FileError
	}{
		{"name,phone", "", "phone"},
		{"Name,Phone Number", "", "phone_number"},
		{"id,MSISDN,notes", "", "msisdn"},
		{"id, Mobile ,notes", "", "mobile"},
		{"id,Tel", "", "tel"},
		{"id,PhoneNumber", "", "phonenumber"},
		{"Phone 1,Phone 2", "", "phone_1"},
		{"name,Mobile No.", "", "mobile_no"},
		{"number,phone", "", "phone"}, // phone is preferred over number
		{"home,work", "work", "work"},
		{"home,Work Phone", "work phone", "work_phone"},
		{"home,work", "", `!no phone column: the header has 2 columns: "home", "work"`},
		{"home,work", "cell", `!no column "cell"`},
		{"phone", "", "phone"},
	}
	for _, tt := range tests {
		src := tt.header + "\n"
		var rep Report
		rep, err := Import(context.Background(), strings.NewReader(src), Options{PhoneColumn: tt.explicit}, &recSink{})
		got := rep.PhoneColumn
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("%q: error %v is not a FileError", tt.header, err)
			}
			got = "!" + err.Error()
		}
		if strings.HasPrefix(tt.want, "!") {
			if !strings.Contains(got, tt.want[1:]) {
				t.Errorf("header %q: got %q, want error with %q", tt.header, got, tt.want[1:])
			}
		} else if got != tt.want {
			t.Errorf("header %q: phone column %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestFieldsKeptWithSafeKeys(t *testing.T) {
	rep, s := run(t, "First Name,Phone,first name,,2nd,Balance Due,first_name_2,FIRST NAME\nAnn,2125550100,x,y,z,\"1,234.00\",p,q\n", Options{})
	want := []string{"first_name", "phone", "first_name_2", "column_4", "column_2nd", "balance_due", "first_name_2_2", "first_name_3"}
	if !slices.Equal(rep.Columns, want) {
		t.Errorf("Columns = %q, want %q", rep.Columns, want)
	}
	got := s.contacts[0].Fields
	wantF := map[string]string{"first_name": "Ann", "first_name_2": "x", "column_4": "y", "column_2nd": "z", "balance_due": "1,234.00", "first_name_2_2": "p", "first_name_3": "q"}
	if fmt.Sprint(got) != fmt.Sprint(wantF) {
		t.Errorf("Fields = %v, want %v", got, wantF)
	}
}

func TestDedupeWithinList(t *testing.T) {
	src := "phone\n2125550100\n+1 212 555 0101\n(212) 555-0100\n12125550101\n2125550102\n"
	rep, s := run(t, src, Options{BatchSize: 2}) // duplicates across batches too
	if rep.Imported != 3 || rep.ByReason["duplicate"] != 2 {
		t.Fatalf("report %+v", rep)
	}
	if got := s.reason(4); got != "duplicate of line 2 (+12125550100)" {
		t.Errorf("line 4: %q", got)
	}
	if got := s.reason(5); got != "duplicate of line 3 (+12125550101)" {
		t.Errorf("line 5: %q", got)
	}
}

func TestExclude(t *testing.T) {
	s := &recSink{excluded: map[string]string{
		"+12125550101": "on do-not-call list",
		"+12125550102": "already in campaign",
	}}
	rep, err := Import(context.Background(), strings.NewReader("phone\n2125550100\n2125550101\n2125550102\n2125550100\nbad\n"), Options{}, s)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep, s)
	if len(s.asked) != 1 || !slices.Equal(s.asked[0], []string{"+12125550100", "+12125550101", "+12125550102"}) {
		t.Errorf("Exclude asked %q; want each valid unique number once", s.asked)
	}
	if rep.Imported != 1 || rep.ByReason["on do-not-call list"] != 1 || rep.ByReason["already in campaign"] != 1 {
		t.Errorf("report %+v", rep)
	}
	if got := s.reason(3); got != "on do-not-call list (+12125550101)" {
		t.Errorf("line 3: %q", got)
	}
}

func TestTimeZones(t *testing.T) {
	src := "phone,timezone\n" +
		"2125550100,\n" + // 2: from number
		"2085550100,\n" + // 3: Idaho spans two zones
		"2125550101,Europe/Paris\n" + // 4: a declaration never widens
		"2125550102,Mars/Olympus\n" + // 5: unknown zone
		"2085550103,America/Boise|America/Chicago\n" + // 6: narrows to the zones the number may be in
		"+800 1234 5678,\n" + // 7: valid number, no zone known
		"+800 1234 5679,Europe/Zurich\n" + // 8: column rescues it
		"2125550104,Local\n" // 9: not an IANA zone
	rep, s := run(t, src, Options{})
	if rep.TimezoneColumn != "timezone" {
		t.Errorf("TimezoneColumn %q", rep.TimezoneColumn)
	}
	zones := map[int]string{}
	for _, c := range s.contacts {
		zones[c.Line] = strings.Join(c.Zones, "|")
		if _, ok := c.Fields["timezone"]; ok {
			t.Errorf("line %d: zone column kept as a field", c.Line)
		}
	}
	want := map[int]string{
		2: "America/New_York",
		3: "America/Boise|America/Los_Angeles",
		4: "America/New_York",
		6: "America/Boise",
		8: "Europe/Zurich",
	}
	if fmt.Sprint(zones) != fmt.Sprint(want) {
		t.Errorf("zones %v\nwant %v", zones, want)
	}
	for line, part := range map[int]string{5: `unknown time zone "Mars/Olympus"`, 7: "no time zone is known for +80012345678", 9: `unknown time zone "Local"`} {
		if got := s.reason(line); !strings.Contains(got, part) {
			t.Errorf("line %d: reason %q, want %q", line, got, part)
		}
	}
	// Zones are shared between contacts; appending must not clobber another's.
	for _, c := range s.contacts {
		if cap(c.Zones) != len(c.Zones) {
			t.Errorf("line %d: Zones capacity not clipped", c.Line)
		}
	}
}

func TestExplicitTimezoneColumn(t *testing.T) {
	_, s := run(t, "phone,where\n2085550100,America/Los_Angeles\n", Options{TimezoneColumn: "Where"})
	if got := s.contacts[0].Zones; !slices.Equal(got, []string{"America/Los_Angeles"}) {
		t.Errorf("zones %q", got)
	}
	_, err := Import(context.Background(), strings.NewReader("phone,where\n"), Options{TimezoneColumn: "zone"}, &recSink{})
	if err == nil || !strings.Contains(err.Error(), `no time zone column "zone"`) {
		t.Errorf("err = %v", err)
	}
}

func TestDefaultRegion(t *testing.T) {
	_, s := run(t, "phone\n020 7946 0958\n", Options{DefaultRegion: "gb"})
	if s.contacts[0].Phone != "+442079460958" || s.contacts[0].Zones[0] != "Europe/London" {
		t.Errorf("contact %+v", s.contacts[0])
	}
}

// TestLineNumbers: lines are physical lines of the file, whatever the line
// endings and however many lines a quoted value spans.
func TestLineNumbers(t *testing.T) {
	for name, nl := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR": "\r"} {
		t.Run(name, func(t *testing.T) {
			src := strings.Join([]string{
				"phone,note",                      // 1
				"",                                // 2 blank
				`2125550100,"two` + nl + `lines"`, // 3-4
				"bad,x",                           // 5
				`2125550101,"three` + nl + nl + `lines, ""quoted"""`, // 6-8
				"bad2,y", // 9
				"",       // 10
			}, nl)
			rep, s := run(t, src, Options{})
			if rep.Blank != 1 || rep.Rows != 4 {
				t.Errorf("report %+v", rep)
			}
			var got []int
			for _, c := range s.contacts {
				got = append(got, c.Line)
			}
			if !slices.Equal(got, []int{3, 6}) {
				t.Errorf("contact lines %v, want [3 6]", got)
			}
			if s.reason(5) == "" || s.reason(9) == "" {
				t.Errorf("rejections %+v, want lines 5 and 9", s.rejects)
			}
			if n := s.contacts[1].Fields["note"]; n != "three\n\nlines, \"quoted\"" {
				t.Errorf("note %q", n)
			}
		})
	}
}

func TestOddFiles(t *testing.T) {
	latin1, _ := charmap.Windows1252.NewEncoder().String("name;phone\nJosé Müller;2125550100\nFrançois;2125550101\n")
	tests := []struct {
		name     string
		src      string
		imported int
		rejected int
		encoding string
		delim    string
		check    func(t *testing.T, rep Report, s *recSink)
	}{
		{name: "BOM", src: "\xEF\xBB\xBFphone,name\r\n2125550100,Ann\r\n", imported: 1, encoding: "UTF-8 with BOM", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if rep.PhoneColumn != "phone" || s.contacts[0].Fields["name"] != "Ann" {
					t.Errorf("BOM or CR leaked: %+v %+v", rep, s.contacts)
				}
			}},
		{name: "Latin-1", src: latin1, imported: 2, encoding: "windows-1252", delim: ";",
			check: func(t *testing.T, rep Report, s *recSink) {
				if s.contacts[0].Fields["name"] != "José Müller" || s.contacts[1].Fields["name"] != "François" {
					t.Errorf("decoded %q %q", s.contacts[0].Fields["name"], s.contacts[1].Fields["name"])
				}
			}},
		{name: "mostly UTF-8 with a Latin-1 row", src: "name,phone\nZoë,2125550100\n" + strings.Repeat("x,bad\n", 20000) + "Zo\xEB,2125550101\n",
			imported: 2, rejected: 20000, encoding: "UTF-8 (1 values decoded as windows-1252)", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.contacts[1].Fields["name"]; got != "Zoë" {
					t.Errorf("name %q", got)
				}
			}},
		{name: "quoted commas and quotes", src: "phone,company\n\"212-555-0100\",\"Acme, Inc. \"\"the best\"\"\"\n", imported: 1, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.contacts[0].Fields["company"]; got != `Acme, Inc. "the best"` {
					t.Errorf("company %q", got)
				}
			}},
		{name: "tab delimited", src: "phone\tcity\n2125550100\tNew York, NY\n", imported: 1, encoding: "UTF-8", delim: "\t",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.contacts[0].Fields["city"]; got != "New York, NY" {
					t.Errorf("city %q", got)
				}
			}},
		{name: "semicolon with commas in values", src: "Telefon;Name;phone\n1;Doe, John;2125550100\n", imported: 1, encoding: "UTF-8", delim: ";"},
		{name: "empty lines and spreadsheet blank rows", src: "\n\nphone,a,b\n\n2125550100,1,2\n,,\n  , ,\n\n", imported: 1, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if rep.Blank != 6 || s.contacts[0].Line != 5 {
					t.Errorf("blank %d, line %d", rep.Blank, s.contacts[0].Line)
				}
			}},
		{name: "too few and too many columns", src: "phone,a,b\n2125550100,1\n2125550101,1,2,3\n2125550102,1,2\n", imported: 1, rejected: 2, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.reason(2); got != "row has 2 columns but the header has 3; quote values that contain commas" {
					t.Errorf("line 2: %q", got)
				}
				if got := s.reason(3); !strings.HasPrefix(got, "row has 4 columns") {
					t.Errorf("line 3: %q", got)
				}
			}},
		{name: "header only", src: "phone,name\r\n", encoding: "UTF-8", delim: ","},
		{name: "no trailing newline", src: "phone\n2125550100", imported: 1, encoding: "UTF-8", delim: ","},
		{name: "enormous field", src: "phone,note\n2125550100,\"" + strings.Repeat("x", 3*MaxRowBytes) + "\"\n2125550101,ok\n", imported: 1, rejected: 1, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.reason(2); !strings.Contains(got, "row is longer than 65536 bytes") {
					t.Errorf("line 2: %q", got)
				}
				if s.contacts[0].Line != 3 {
					t.Errorf("next row at line %d", s.contacts[0].Line)
				}
			}},
		{name: "enormous line of columns", src: "phone,note\n" + strings.Repeat("1,", 1000) + "\n2125550101,ok\n", imported: 1, rejected: 1, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.reason(2); !strings.Contains(got, "row has 512 or more columns") {
					t.Errorf("line 2: %q", got)
				}
			}},
		{name: "unterminated quote", src: "phone,note\n2125550100,\"oops\n2125550101,x\n2125550102,y\n", rejected: 1, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if got := s.reason(2); !strings.Contains(got, "opened on line 2 is never closed") || !strings.Contains(got, "to line 5") {
					t.Errorf("line 2: %q", got)
				}
			}},
		{name: "lenient stray quotes", src: "phone,note\n2125550100,5\" screen\n2125550101,\"a\"b\n", imported: 2, encoding: "UTF-8", delim: ",",
			check: func(t *testing.T, rep Report, s *recSink) {
				if s.contacts[0].Fields["note"] != `5" screen` || s.contacts[1].Fields["note"] != "ab" {
					t.Errorf("notes %q %q", s.contacts[0].Fields["note"], s.contacts[1].Fields["note"])
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, s := run(t, tt.src, Options{})
			if rep.Imported != tt.imported || rep.Rejected != tt.rejected {
				t.Errorf("imported %d rejected %d, want %d %d; rejects %.3v", rep.Imported, rep.Rejected, tt.imported, tt.rejected, s.rejects)
			}
			if rep.Encoding != tt.encoding || rep.Delimiter != tt.delim {
				t.Errorf("encoding %q delimiter %q, want %q %q", rep.Encoding, rep.Delimiter, tt.encoding, tt.delim)
			}
			if tt.check != nil {
				tt.check(t, rep, s)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "the file is empty"},
		{"only blank lines", "\n\r\n  \n", "no header row"},
		{"binary NUL", "phone\n\x00\x01\x02\x03", "not a CSV text file: it contains a NUL byte at offset 6"},
		{"binary controls", strings.Repeat("\x01\x02\x03abc", 100), "not a CSV text file: 300 of its first 600 bytes are control characters"},
		{"xlsx", "PK\x03\x04\x14\x00\x06\x00", "not a CSV text file: it is a ZIP archive (an Excel .xlsx workbook?)"},
		{"gzip", "\x1F\x8B\x08\x00", "not a CSV text file: it is gzip-compressed"},
		{"UTF-16", "\xFF\xFEp\x00h\x00", "UTF-16"},
		{"UTF-16 without BOM", "p\x00h\x00o\x00n\x00e\x00\n\x00", "not a CSV text file: it looks like UTF-16 text"},
		{"missing phone column", "name;email\nAnn;a@b\n", `line 1: no phone column: the header has 2 columns: "name", "email"`},
		{"header with open quote", "phone,\"note\n", "line 1: the header row has a quote that is never closed"},
		{"header too long", "phone," + strings.Repeat("x", MaxRowBytes) + "\n", "header row is longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &recSink{}
			_, err := Import(context.Background(), strings.NewReader(tt.src), Options{}, s)
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want FileError with %q", err, tt.want)
			}
			if len(s.contacts)+len(s.rejects)+len(s.asked) > 0 {
				t.Errorf("sink was called before a file error")
			}
		})
	}
}

func TestSinkErrorStopsImport(t *testing.T) {
	var b strings.Builder
	b.WriteString("phone\n")
	for i := range 50 {
		fmt.Fprintf(&b, "212555%04d\n", i)
	}
	s := &recSink{failContactsAt: 2}
	rep, err := Import(context.Background(), strings.NewReader(b.String()), Options{BatchSize: 10}, s)
	if !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want the sink's error", err)
	}
	if s.batches != 2 || len(s.contacts) != 10 || rep.Imported != 10 {
		t.Errorf("import went on after the error: %d batches, %d contacts, report %+v", s.batches, len(s.contacts), rep)
	}

	s = &recSink{failExclude: errDisk}
	if _, err := Import(context.Background(), strings.NewReader(b.String()), Options{BatchSize: 10}, s); !errors.Is(err, errDisk) || s.batches != 0 {
		t.Errorf("Exclude error: err %v, %d Contacts calls", err, s.batches)
	}
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Import(ctx, strings.NewReader("phone\n2125550100\n"), Options{}, &recSink{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// TestBatches: the Sink sees batches of at most BatchSize, in file order.
func TestBatches(t *testing.T) {
	var b strings.Builder
	b.WriteString("phone,i\n")
	for i := range 250 {
		fmt.Fprintf(&b, "212555%04d,%d\n", i, i)
	}
	rep, s := run(t, b.String(), Options{BatchSize: 100, Workers: 3})
	if rep.Imported != 250 || s.batches != 3 {
		t.Fatalf("imported %d in %d batches", rep.Imported, s.batches)
	}
	for i, c := range s.contacts {
		if c.Line != i+2 || c.Fields["i"] != fmt.Sprint(i) || c.Phone != fmt.Sprintf("+1212555%04d", i) {
			t.Fatalf("contact %d = %+v", i, c)
		}
	}
}

func TestReadDNC(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
		rejected  int
		column    string
	}{
		{"csv", "Name,Phone\nAnn,2125550100\nBob,nope\n", []string{"+12125550100"}, 1, "phone"},
		{"bare list", "212-555-0100\r\n+44 20 7946 0958\r\n\r\ngarbage\r\n", []string{"+12125550100", "+442079460958"}, 1, ""},
		{"bare list with BOM", "\xEF\xBB\xBF(212) 555-0100\n", []string{"+12125550100"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			rep, err := ReadDNC(context.Background(), strings.NewReader(tt.src), Options{}, func(p []string) error {
				got = append(got, p...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || rep.Rejected != tt.rejected || rep.PhoneColumn != tt.column || rep.Rows != rep.Imported+rep.Rejected {
				t.Errorf("got %q, report %+v", got, rep)
			}
			if rep.Rejected > 0 && (len(rep.Samples) != rep.Rejected || rep.Samples[0].Line == 0) {
				t.Errorf("samples %+v", rep.Samples)
			}
		})
	}
	_, err := ReadDNC(context.Background(), strings.NewReader("name,email\nx,y\n"), Options{}, func([]string) error { return nil })
	if !strings.Contains(fmt.Sprint(err), "no phone column") {
		t.Errorf("err = %v", err)
	}
	_, err = ReadDNC(context.Background(), strings.NewReader("2125550100\n"), Options{}, func([]string) error { return errDisk })
	if !errors.Is(err, errDisk) {
		t.Errorf("emit error: %v", err)
	}
}

// slowReader hands out one byte at a time: the reader must not depend on
// Read filling its buffer (multipart bodies and network streams do not).
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return s.r.Read(p)
}

func TestShortReads(t *testing.T) {
	src := "\xEF\xBB\xBFphone;note\r\n2125550100;\"a\r\nb\"\r\n2125550101;c\r\n"
	s := &recSink{}
	rep, err := Import(context.Background(), slowReader{bytes.NewReader([]byte(src))}, Options{}, s)
	if err != nil || rep.Imported != 2 || rep.Delimiter != ";" || s.contacts[1].Line != 4 || s.contacts[0].Fields["note"] != "a\nb" {
		t.Errorf("err %v report %+v contacts %+v", err, rep, s.contacts)
	}
}

func TestLocation(t *testing.T) {
	for name, ok := range map[string]bool{"America/New_York": true, "UTC": true, "Europe/Paris": true, "Local": false, "": false, "Etc/Unknown": false, "Mars/Olympus": false, "../etc/passwd": false} {
		loc, err := Location(name)
		if (err == nil) != ok || (ok && loc.String() != name) {
			t.Errorf("Location(%q) = %v, %v", name, loc, err)
		}
		if again, err2 := Location(name); again != loc || (err2 == nil) != (err == nil) {
			t.Errorf("Location(%q) not cached", name)
		}
	}
}

// streamSink records how far the generator had got when the first batch
// arrived.
type streamSink struct {
	discardSink
	gen   *genCSV
	first int
}

func (s *streamSink) Contacts(_ context.Context, b []Contact) error {
	if s.first == 0 {
		s.first = s.gen.i
	}
	return nil
}

// TestStreams: the first batch reaches the Sink after the sniff buffer and
// one batch have been read, not after the whole file.
func TestStreams(t *testing.T) {
	gen := &genCSV{n: 20000}
	s := &streamSink{gen: gen}
	rep, err := Import(context.Background(), gen, Options{BatchSize: 100}, s)
	if err != nil || rep.Rows != 20000 {
		t.Fatalf("err %v report %+v", err, rep)
	}
	if s.first == 0 || s.first > 3000 {
		t.Errorf("first batch arrived after %d of 20000 rows were generated", s.first)
	}
}

type failRejectSink struct{ recSink }

func (s *failRejectSink) Reject(context.Context, Rejection) error { return errDisk }

func TestRejectErrorStopsImport(t *testing.T) {
	s := &failRejectSink{}
	rep, err := Import(context.Background(), strings.NewReader("phone\n2125550100\nbad\n2125550101\n"), Options{}, s)
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "reject line 3") {
		t.Fatalf("err = %v", err)
	}
	if s.batches != 0 || rep.Imported != 0 {
		t.Errorf("contacts stored after a failed Reject: %d batches, report %+v", s.batches, rep)
	}
}

// TestNULAnywhereRefusesTheFile: a NUL byte makes a file binary wherever it
// is, not only within the first 64 KiB that are sniffed.
func TestNULAnywhereRefusesTheFile(t *testing.T) {
	var b strings.Builder
	b.WriteString("phone,note\n")
	line := 1
	for b.Len() < 2*sniffBytes {
		line++
		fmt.Fprintf(&b, "21255%05d,ok\n", line)
	}
	b.WriteString("2125559999,bad\x00value\n2125559998,after\n")
	_, err := Import(context.Background(), strings.NewReader(b.String()), Options{}, &recSink{})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != line+1 || !strings.Contains(err.Error(), "NUL byte") {
		t.Fatalf("err = %v, want a FileError for the NUL on line %d", err, line+1)
	}
	_, err = ReadDNC(context.Background(), strings.NewReader(b.String()), Options{}, func([]string) error { return nil })
	if !errors.As(err, &fe) || fe.Line != line+1 {
		t.Fatalf("dnc: err = %v, want a FileError for the NUL on line %d", err, line+1)
	}
}
