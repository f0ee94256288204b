package importer

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzImport: whatever the bytes, Import does not panic, answers either a
// *FileError before touching the Sink or a report in which every row is
// accounted for exactly once with a line inside the file. The seed corpus is
// in testdata/fuzz/FuzzImport; run the fuzzer with
//
//	go test -run '^$' -fuzz FuzzImport -fuzztime 1m ./campaign/importer/
func FuzzImport(f *testing.F) {
	for _, seed := range []string{
		"phone,name\n2125550100,Ann\n",
		"\xEF\xBB\xBFphone;note\r\n\"212\"\"555\";\"a\r\nb\"\r\n",
		"name,phone\nJos\xE9,+44 20 7946 0958\n",
		"phone\ttz\n2125550100\tEurope/Paris\n2125550100\tMars\n",
		"phone,a\n\"unterminated,1\n2,3\n",
		"\n\n,,\nphone\n\r\r2085550100\r",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &recSink{}
		rep, err := Import(context.Background(), bytes.NewReader(data), Options{BatchSize: 3}, s)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FileError", err)
			}
			if len(s.contacts)+len(s.rejects) > 0 {
				t.Fatalf("file error %v after rows reached the sink", err)
			}
			return
		}
		checkInvariants(t, rep, s)
		keys := map[string]bool{}
		for _, k := range rep.Columns {
			if keys[k] {
				t.Fatalf("field key %q twice in %q", k, rep.Columns)
			}
			keys[k] = true
		}
		lines := 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r"))
		for _, c := range s.contacts {
			if c.Line > lines {
				t.Fatalf("contact line %d beyond the file's %d lines", c.Line, lines)
			}
		}
		for _, r := range s.rejects {
			if r.Line > lines {
				t.Fatalf("rejection line %d beyond the file's %d lines", r.Line, lines)
			}
		}
		// ReadDNC on the same bytes keeps its invariant too.
		drep, err := ReadDNC(context.Background(), bytes.NewReader(data), Options{BatchSize: 3}, func([]string) error { return nil })
		if err == nil && drep.Rows != drep.Imported+drep.Rejected {
			t.Fatalf("DNC report %+v", drep)
		}
	})
}
