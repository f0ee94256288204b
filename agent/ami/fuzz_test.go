package ami

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

// FuzzRead: whatever Asterisk (or anything at its address) sends, Read
// never panics and never returns a message over maxMessageBytes; a
// message it reads and Encode accepts reads back the same.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"Response: Success\r\nActionID: ed-1\r\nMessage: Authentication accepted\r\n\r\n",
		"Event: OriginateResponse\r\nResponse: Failure\r\nReason: 5\r\nActionID: ed-2\r\n\r\n",
		"\r\n\r\nEvent: Hangup\nCause: 16\n\n",
		"no colon here\r\n\r\n",
		"Key:\r\n\r\n",
		"Event: X\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Read(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		size := 0
		for _, fl := range m {
			size += len(fl.Key) + len(fl.Value)
		}
		if size > maxMessageBytes {
			t.Fatalf("message of %d bytes", size)
		}
		b, err := Encode(m)
		if err != nil {
			return
		}
		m2, err := Read(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %q: %v\n%q\n%q", in, err, m, m2)
		}
	})
}
