package importer

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A caller_id column gives each contact the number it is shown: it is
// normalised like the phone, kept out of the IVR fields, and a bad one
// rejects its row naming the line and the column.
func TestCallerIDColumn(t *testing.T) {
	src := "phone,Caller ID,name\n" +
		"2125550101,(415) 555-0100,Ann\n" + // line 2
		"2125550102,,Bob\n" + // 3: none, the campaign's
		"2125550103,12345,Cid\n" + // 4: not a number
		"2125550104,911,Dan\n" + // 5: emergency
		"2125550105,+1 415 555 0100 ext. 2,Eve\n" // 6: extension
	rep, s := run(t, src, Options{})
	if rep.CallerIDColumn != "caller_id" {
		t.Errorf("caller ID column %q", rep.CallerIDColumn)
	}
	if len(s.contacts) != 2 || s.contacts[0].CallerID != "+14155550100" || s.contacts[1].CallerID != "" {
		t.Fatalf("contacts %+v", s.contacts)
	}
	if _, ok := s.contacts[0].Fields["caller_id"]; ok || s.contacts[0].Fields["name"] != "Ann" {
		t.Errorf("fields %v: the caller ID is not an IVR field", s.contacts[0].Fields)
	}
	for _, line := range []int{4, 5, 6} {
		if r := s.reason(line); !strings.Contains(r, `column "Caller ID"`) {
			t.Errorf("line %d: %q, want the column named", line, r)
		}
	}
	if rep.ByReason["invalid caller id"] != 3 {
		t.Errorf("by reason %v", rep.ByReason)
	}

	// Named explicitly, in another region.
	_, s = run(t, "msisdn,from\n+442079460123,020 7946 0001\n", Options{CallerIDColumn: "from", DefaultRegion: "GB"})
	if len(s.contacts) != 1 || s.contacts[0].CallerID != "+442079460001" {
		t.Fatalf("GB contacts %+v", s.contacts)
	}
	// A caller ID column asked for that is not there refuses the file.
	_, err := Import(context.Background(), strings.NewReader("phone\n2125550101\n"), Options{CallerIDColumn: "cli"}, &recSink{})
	var fe *FileError
	if !errors.As(err, &fe) || !strings.Contains(fe.Msg, `"cli"`) {
		t.Fatalf("missing column: %v", err)
	}
}

// The FTC's flat download has an area code and a number on each line.
func TestDNCFTCFlatFile(t *testing.T) {
	var got []string
	rep, err := ReadDNC(context.Background(), strings.NewReader("212,5550101\r\n212, 5550102\r\n212,555\r\n212,5550103,x\r\n"), Options{}, func(p []string) error {
		got = append(got, p...)
		return nil
	})
	if err != nil || strings.Join(got, " ") != "+12125550101 +12125550102" || rep.Rows != 4 || rep.Rejected != 2 {
		t.Fatalf("%v %v %+v", got, err, rep)
	}
	// Files of both kinds put together, either first.
	for _, src := range []string{"212,5550101\n3125550101\n", "3125550101\n212,5550101\n"} {
		got = nil
		rep, err := ReadDNC(context.Background(), strings.NewReader(src), Options{}, func(p []string) error {
			got = append(got, p...)
			return nil
		})
		if err != nil || len(got) != 2 || rep.Rejected != 0 {
			t.Errorf("%q: %v %v %+v", src, got, err, rep)
		}
	}
}
