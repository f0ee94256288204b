package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
)

// memSink records everything, and can refuse phones or fail.
type memSink struct {
	contacts []Contact
	rejected []Rejection
	exclude  map[string]string
	failAt   int // fail Contacts on this call (1-based); 0 never
	calls    int
}

func (s *memSink) Exclude(_ context.Context, phones []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range phones {
		if why, ok := s.exclude[p]; ok {
			out[p] = why
		}
	}
	return out, nil
}

func (s *memSink) Contacts(_ context.Context, b []Contact) error {
	s.calls++
	if s.calls == s.failAt {
		return errors.New("disk full")
	}
	s.contacts = append(s.contacts, b...)
	return nil
}

func (s *memSink) Reject(_ context.Context, r Rejection) error {
	s.rejected = append(s.rejected, r)
	return nil
}

func run(t *testing.T, in string, opt Options) (*memSink, Report, error) {
	t.Helper()
	s := &memSink{}
	rep, err := Import(context.Background(), strings.NewReader(in), opt, s)
	if err == nil {
		if rep.Rows != rep.Imported+rep.Rejected || rep.Imported != len(s.contacts) || rep.Rejected != len(s.rejected) {
			t.Fatalf("rows not accounted for: %+v, %d contacts, %d rejections", rep, len(s.contacts), len(s.rejected))
		}
	}
	return s, rep, err
}

func TestImportNormalisesAndKeepsFields(t *testing.T) {
	in := "Name,Phone Number,Account #\nAda,(415) 555-2671,A1\nBob,+44 20 7946 0958,B2\n"
	s, rep, err := run(t, in, Options{DefaultRegion: "US"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PhoneColumn != "Phone Number" || rep.Imported != 2 {
		t.Fatalf("report = %+v", rep)
	}
	c := s.contacts[0]
	if c.Phone != "+14155552671" || c.Line != 2 || !slices.Equal(c.Zones, []string{"America/Los_Angeles"}) {
		t.Errorf("contact 0 = %+v", c)
	}
	if want := map[string]string{"name": "Ada", "account": "A1"}; !maps.Equal(c.Fields, want) {
		t.Errorf("fields = %v, want %v", c.Fields, want)
	}
	if s.contacts[1].Phone != "+442079460958" || !slices.Equal(s.contacts[1].Zones, []string{"Europe/London"}) {
		t.Errorf("contact 1 = %+v", s.contacts[1])
	}
}

func TestImportRowRules(t *testing.T) {
	in := strings.Join([]string{
		"phone,tz,name",
		"4155552671,,a",                // 2 ok
		"415-555-2671,,dup",            // 3 duplicate of line 2
		"12,,short",                    // 4 invalid
		",,empty",                      // 5 empty phone
		"4155552672,Mars/Base,z",       // 6 unknown zone
		"4155552673,Europe/Paris,x",    // 7 ok with explicit zone
		"4155552674,,a,extra",          // 8 too many columns
		"",                             // blank line: not a row
		"\"4155552675\",,\"Smith, J\"", // 10 quoted comma
		"4155552676,,\"bad\"quote\"",   // 11 malformed
		"6045550100,,on dnc",           // 12 excluded by the sink
	}, "\n") + "\n"
	s := &memSink{exclude: map[string]string{"+16045550100": "on a do-not-call list"}}
	rep, err := Import(context.Background(), strings.NewReader(in), Options{DefaultRegion: "US"}, s)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, r := range s.rejected {
		got[r.Line] = r.Reason
	}
	want := map[int]string{3: "duplicate of an earlier row (line 2)", 4: ReasonInvalidPhone, 5: ReasonEmptyPhone, 6: ReasonUnknownZone, 8: ReasonColumns, 11: ReasonMalformedRow, 12: "on a do-not-call list"}
	for line, prefix := range want {
		if !strings.HasPrefix(got[line], prefix) {
			t.Errorf("line %d: reason %q, want prefix %q", line, got[line], prefix)
		}
	}
	if len(s.rejected) != len(want) {
		t.Errorf("rejections = %v", s.rejected)
	}
	if rep.Rows != 10 || rep.Imported != 3 || rep.Rows != rep.Imported+rep.Rejected {
		t.Errorf("report = %+v", rep)
	}
	for _, c := range s.contacts {
		if c.Line == 7 && !slices.Equal(c.Zones, []string{"Europe/Paris"}) {
			t.Errorf("explicit zone ignored: %+v", c)
		}
		if c.Line == 10 && c.Fields["name"] != "Smith, J" {
			t.Errorf("quoted comma: %+v", c)
		}
	}
}

func TestImportOddFiles(t *testing.T) {
	latin1 := []byte("phone;name\n4155552671;Jos\xe9\n")
	for _, tc := range []struct {
		name     string
		in       string
		imported int
		encoding string
		fileErr  string
	}{
		{"bom and crlf", "\xEF\xBB\xBFphone,name\r\n4155552671,a\r\n\r\n4155552672,b\r\n", 2, "utf-8", ""},
		{"latin-1 with semicolons", string(latin1), 1, "windows-1252", ""},
		{"tabs", "name\tmobile\nx\t4155552671\n", 1, "utf-8", ""},
		{"multi-line quoted field", "phone,note\n4155552671,\"two\nlines\"\n4155552672,b\n", 2, "utf-8", ""},
		{"header only", "phone,name\n", 0, "utf-8", ""},
		{"empty", "", 0, "", "the file is empty"},
		{"blank", "\n\n  \n", 0, "", "the file is empty"},
		{"no phone column", "name,email\na,b\n", 0, "", `no phone column found in the header (looked for phone,`},
		{"binary", "PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", 0, "", "not a CSV text file"},
		{"endless line", "phone\n" + strings.Repeat("9", MaxLineBytes+10), 0, "", "line 2: line is longer than"},
		{"duplicate header", "phone,Phone\n1,2\n", 0, "", `column "Phone" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rep, err := run(t, tc.in, Options{DefaultRegion: "US"})
			if tc.fileErr != "" {
				var fe *FileError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.fileErr) {
					t.Fatalf("err = %v, want FileError containing %q", err, tc.fileErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.contacts) != tc.imported || rep.Encoding != tc.encoding {
				t.Errorf("imported %d (want %d), encoding %q (want %q); rejections %v", len(s.contacts), tc.imported, rep.Encoding, tc.encoding, s.rejected)
			}
		})
	}
	s, _, _ := run(t, string(latin1), Options{})
	if s.contacts[0].Fields["name"] != "José" {
		t.Errorf("latin-1 decoded as %q", s.contacts[0].Fields["name"])
	}
}

func TestImportExplicitColumnsAndLineNumbers(t *testing.T) {
	in := "id,cell,zone\n1,\"4155552671\",America/New_York\n2,\"4155552672\nx\",\n3,4155552673,\n"
	s, _, err := run(t, in, Options{PhoneColumn: "Cell", TimezoneColumn: "zone"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.rejected) != 1 || s.rejected[0].Line != 3 {
		t.Fatalf("rejections = %+v", s.rejected)
	}
	if len(s.contacts) != 2 || s.contacts[1].Line != 5 || s.contacts[0].Zones[0] != "America/New_York" {
		t.Fatalf("contacts = %+v", s.contacts)
	}
	_, _, err = run(t, in, Options{PhoneColumn: "msisdn"})
	if err == nil || !strings.Contains(err.Error(), `no column "msisdn"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestImportStopsOnSinkError(t *testing.T) {
	var b strings.Builder
	b.WriteString("phone\n")
	for i := range 50 {
		fmt.Fprintf(&b, "41555%05d\n", 52000+i)
	}
	s := &memSink{failAt: 2}
	_, err := Import(context.Background(), strings.NewReader(b.String()), Options{BatchSize: 10}, s)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if len(s.contacts) != 10 {
		t.Fatalf("sink saw %d contacts after failing", len(s.contacts))
	}
}

func TestReadDNC(t *testing.T) {
	for _, in := range []string{"4155552671\n+44 20 7946 0958\nnonsense\n", "Phone,why\n4155552671,asked\n+442079460958,x\nnonsense,y\n"} {
		var got []string
		rep, err := ReadDNC(context.Background(), strings.NewReader(in), Options{DefaultRegion: "US"}, func(p []string) error {
			got = append(got, p...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"+14155552671", "+442079460958"}) || rep.Rejected != 1 {
			t.Errorf("%q: got %v, report %+v", in, got, rep)
		}
	}
}

func FuzzImport(f *testing.F) {
	f.Add([]byte("phone,name\n4155552671,a\n"))
	f.Add([]byte("\xEF\xBB\xBFphone;x\r\n\"41555\n52671\";\"a\"\"b\"\r\n"))
	f.Add([]byte("tel\n+442079460958\n\n,,\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &memSink{}
		rep, err := Import(context.Background(), bytes.NewReader(in), Options{}, s)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("non-file error %v", err)
			}
			return
		}
		if rep.Rows != rep.Imported+rep.Rejected || rep.Imported != len(s.contacts) {
			t.Fatalf("unaccounted rows: %+v", rep)
		}
	})
}

// genCSV streams n generated rows without holding them in memory.
type genCSV struct {
	n, i int
	buf  []byte
}

func (g *genCSV) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i <= g.n {
		if g.i == 0 {
			g.buf = append(g.buf, "phone,first_name,account\n"...)
		} else {
			// Distinct valid US numbers across several area codes.
			area := []string{"415", "212", "312", "713", "206"}[g.i%5]
			g.buf = fmt.Appendf(g.buf, "(%s) %03d-%04d,Name%d,ACC%07d\n", area, 200+g.i/10000%800, g.i%10000, g.i, g.i)
		}
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

type discard struct{ n int }

func (d *discard) Exclude(context.Context, []string) (map[string]string, error) { return nil, nil }
func (d *discard) Contacts(_ context.Context, b []Contact) error                { d.n += len(b); return nil }
func (d *discard) Reject(context.Context, Rejection) error                      { return nil }

func BenchmarkImport(b *testing.B) {
	const rows = 1_000_000
	for b.Loop() {
		d := &discard{}
		rep, err := Import(context.Background(), &genCSV{n: rows}, Options{DefaultRegion: "US"}, d)
		if err != nil || rep.Imported != rows {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
