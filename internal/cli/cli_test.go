package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		format   string
		verbose  bool
		pos      []string
		wantFail string
	}{
		{[]string{"-format", "csv", "cost"}, "csv", false, []string{"cost"}, ""},
		{[]string{"cost", "-format", "csv"}, "csv", false, []string{"cost"}, ""},
		{[]string{"revoke", "-v", "t_1", "-format=json"}, "json", true, []string{"revoke", "t_1"}, ""},
		{[]string{"a", "--", "-format", "b"}, "table", false, []string{"a", "-format", "b"}, ""},
		{[]string{"--", "-v"}, "table", false, []string{"-v"}, ""},
		{nil, "table", false, nil, ""},
		{[]string{"cost", "-colour", "red"}, "", false, nil, "flag provided but not defined: -colour"},
		{[]string{"cost", "-format"}, "", false, nil, "flag needs an argument: -format"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		format := fs.String("format", "table", "`FORMAT`: table, csv or json")
		verbose := fs.Bool("v", false, "say more")
		err := Parse(fs, tc.args)
		if tc.wantFail != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantFail) {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.wantFail)
			}
			continue
		}
		if err != nil || *format != tc.format || *verbose != tc.verbose || !slices.Equal(fs.Args(), tc.pos) && len(fs.Args())+len(tc.pos) > 0 {
			t.Errorf("%q: format %q verbose %v args %q err %v; want %q %v %q", tc.args, *format, *verbose, fs.Args(), err, tc.format, tc.verbose, tc.pos)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Parse(fs, []string{"x", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h after an argument: %v", err)
	}
}

func TestPrintFlagsPlaceholders(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("listen", ":8080", "`ADDR` to serve HTTP on")
	fs.Duration("timeout", 10*time.Minute, "give up after this long")
	fs.Int("contacts", 0, "contacts in the list")
	fs.Bool("v", false, "debug logging")
	fs.String("name", "", "a name")
	var b bytes.Buffer
	PrintFlags(&b, fs)
	want := `  -contacts N
      contacts in the list
  -listen ADDR
      ADDR to serve HTTP on (default :8080)
  -name TEXT
      a name
  -timeout DURATION
      give up after this long (default 10m0s)
  -v
      debug logging
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
