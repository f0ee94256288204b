package agi

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzParseReply: no reply line makes the parser panic.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"200 result=1", "200 result=-1 (timeout) endpos=1234", "200 result=0 (some data (with parens))", "510 Invalid or unknown command", "520-Invalid command syntax.", "511 Command Not Permitted on a dead channel", "200", "200 result=", "200 result=1 (unclosed"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ParseReply(line)
	})
}

// FuzzReadEnv: no environment block makes the reader panic or keep more
// than 128 lines.
func FuzzReadEnv(f *testing.F) {
	for _, s := range []string{"agi_network: yes\nagi_network_script: ivr?call_id=k1-1\nagi_channel: PJSIP/x\n\n", "\n", "GET / HTTP/1.0\r\n\r\n", "agi_x: y\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := readEnv(bufio.NewReader(bytes.NewReader(in)))
		if err == nil && (len(env) == 0 || len(env) > 128) {
			t.Fatalf("%d keys", len(env))
		}
	})
}

// FuzzQuoteRoundTrip: any argument Quote accepts reads back as itself, so
// no value from a contact's fields can add an AGI argument or command.
func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", `a "quoted" word`, `back\slash`, `trailing\`, "tab\there", "ünï", "x\nHANGUP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line, err := Command("SET VARIABLE", "X", s)
		if err != nil {
			return
		}
		args, err := ParseArgs(line)
		if err != nil || len(args) != 4 || args[3] != s {
			t.Fatalf("%q → %s → %q %v", s, line, args, err)
		}
	})
}
