package agi

import (
	"errors"
	"testing"
)

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `a "quoted" word`, `back\slash`, `trailing\`, "tab\there", "ünï"} {
		line, err := Command("SET VARIABLE", "X", s)
		if err != nil {
			t.Fatal(err)
		}
		args, err := ParseArgs(line)
		if err != nil || len(args) != 4 || args[3] != s {
			t.Errorf("%q → %s → %q %v", s, line, args, err)
		}
	}
	if _, err := Quote("a\nHANGUP"); !errors.Is(err, ErrBadArg) {
		t.Errorf("newline accepted: %v", err)
	}
	if _, err := ParseArgs(`STREAM FILE "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		in           string
		code         int
		result, data string
		endpos       int64
		wantErr      bool
	}{
		{"200 result=0 endpos=8000", 200, "0", "", 8000, false},
		{"200 result=-1 endpos=0", 200, "-1", "", 0, false},
		{"200 result= (timeout)", 200, "", "timeout", 0, false},
		{"200 result=12 (timeout)", 200, "12", "timeout", 0, false},
		{"200 result=1 (some value)", 200, "1", "some value", 0, false},
		{"200 result=-1 (hangup) endpos=400", 200, "-1", "hangup", 400, false},
		{"511 Command Not Permitted on a dead channel or intercept routine", 511, "", "", 0, false},
		{"garbage", 0, "", "", 0, true},
		{"200 nothing", 200, "", "", 0, true},
		{"200 result=1 (unclosed", 200, "1", "", 0, true},
	}
	for _, tt := range tests {
		r, err := ParseReply(tt.in)
		if (err != nil) != tt.wantErr || r.Code != tt.code && !tt.wantErr || r.Result != tt.result || r.Data != tt.data || r.EndPos != tt.endpos {
			t.Errorf("%q: got %+v %v", tt.in, r, err)
		}
	}
}
