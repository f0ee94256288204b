package ami

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadMessages(t *testing.T) {
	in := "\r\nResponse: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n" +
		"Event: OriginateResponse\nVariable: A=1\nVariable: B=2\nCallerIDName: \n\n"
	r := bufio.NewReader(strings.NewReader(in))
	m, err := Read(r)
	if err != nil || m.Get("response") != "Success" || m.Get("ActionID") != "1" {
		t.Fatalf("first: %v %v", m, err)
	}
	m, err = Read(r)
	if err != nil || strings.Join(m.All("Variable"), ",") != "A=1,B=2" || !m.Has("CallerIDName") || m.Get("CallerIDName") != "" {
		t.Fatalf("second: %v %v", m, err)
	}
	if _, err := Read(r); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestReadHostile(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"no colon", "Response Success\r\n\r\n", ErrBadMessage},
		{"truncated", "Response: Success\r\n", io.ErrUnexpectedEOF},
		{"huge", "Key: " + strings.Repeat("x", maxMessageBytes+10) + "\r\n\r\n", ErrBadMessage},
	}
	for _, tt := range tests {
		_, err := Read(bufio.NewReader(strings.NewReader(tt.in)))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestEncodeRefusesInjection(t *testing.T) {
	if _, err := Encode(M("Action", "Originate", "CallerID", "x\r\nAction: Logoff")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("CRLF in value: %v", err)
	}
	if _, err := Encode(M("Bad: key", "v")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("colon in key: %v", err)
	}
	b, err := Encode(M("Action", "Ping", "ActionID", "7"))
	if err != nil || string(b) != "Action: Ping\r\nActionID: 7\r\n\r\n" {
		t.Errorf("encode: %q %v", b, err)
	}
}
