package agi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

func TestServerRefusesBadEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var called atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&Server{Handler: func(ctx context.Context, s *Session) { called.Add(1) }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).Serve(ctx, ln)
		close(done)
	}()
	for _, in := range []string{"GET / HTTP/1.0\r\n\r\n", "\n", strings.Repeat("agi_x: y\n", 200) + "\n", "agi_x: " + strings.Repeat("z", 100<<10)} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(in))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%.20q: server answered", in)
		}
		c.Close()
	}
	cancel()
	<-done
	if called.Load() != 0 {
		t.Errorf("handler ran %d times on bad environments", called.Load())
	}
}
