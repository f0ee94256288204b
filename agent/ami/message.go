// Package ami is a small Asterisk Manager Interface client: one TCP session
// that logs in, sends actions matched to their replies by ActionID, and hands
// every event to a consumer without ever blocking the socket reader.
//
// It is written here rather than taken from a library: the Go AMI clients on
// GitHub are either unmaintained for years or route events through bounded
// channels that drop or block when the consumer is slow — exactly the trap
// that makes Asterisk drop the session (100 ms write timeout). The protocol
// part we need is a few hundred lines and is tested against the simulator.
package ami

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Field is one "Key: Value" line.
type Field struct {
	Key   string
	Value string
}

// Message is one AMI message in wire order. Keys may repeat (Variable).
type Message []Field

// Get returns the first value of key (case-insensitive), "" when absent.
func (m Message) Get(key string) string {
	for _, f := range m {
		if strings.EqualFold(f.Key, key) {
			return f.Value
		}
	}
	return ""
}

// All returns every value of key in order.
func (m Message) All(key string) []string {
	var out []string
	for _, f := range m {
		if strings.EqualFold(f.Key, key) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Has reports whether key is present.
func (m Message) Has(key string) bool {
	for _, f := range m {
		if strings.EqualFold(f.Key, key) {
			return true
		}
	}
	return false
}

// Add appends a field and returns the message, for building actions.
func (m Message) Add(key, value string) Message { return append(m, Field{key, value}) }

// ErrBadMessage reports a malformed line on the wire.
var ErrBadMessage = errors.New("ami: malformed message")

// maxMessageBytes bounds one message so that a hostile peer cannot make us
// buffer without limit.
const maxMessageBytes = 1 << 20

// Encode renders m in wire form, each line CRLF-ended, then a blank line.
// Values containing CR or LF are refused: they would inject lines.
func Encode(m Message) ([]byte, error) {
	var b strings.Builder
	for _, f := range m {
		if strings.ContainsAny(f.Key, "\r\n:") || f.Key == "" {
			return nil, fmt.Errorf("%w: bad key %q", ErrBadMessage, f.Key)
		}
		if strings.ContainsAny(f.Value, "\r\n") {
			return nil, fmt.Errorf("%w: value of %s contains a line break", ErrBadMessage, f.Key)
		}
		b.WriteString(f.Key)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String()), nil
}

// Read reads one message: lines up to an empty line. Lines may end in LF or
// CRLF. Leading empty lines are skipped. A line without a colon is kept
// with an empty key only as part of "Response: Follows" command output, which
// Asterisk 22 no longer sends; otherwise it is an error.
func Read(r *bufio.Reader) (Message, error) {
	var m Message
	size := 0
	for {
		line, err := readLine(r, maxMessageBytes-size)
		size += len(line)
		if size > maxMessageBytes {
			return nil, fmt.Errorf("%w: message over %d bytes", ErrBadMessage, maxMessageBytes)
		}
		if err != nil {
			if err == io.EOF && (len(m) > 0 || line != "") {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(m) == 0 {
				continue
			}
			return m, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %q has no colon", ErrBadMessage, truncate(line))
		}
		m = append(m, Field{Key: strings.TrimSpace(k), Value: strings.TrimLeft(v, " ")})
	}
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// M builds a message from alternating keys and values.
func M(kv ...string) Message {
	m := make(Message, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m = append(m, Field{Key: kv[i], Value: kv[i+1]})
	}
	return m
}

// readLine reads up to and including '\n', refusing to buffer more than
// limit bytes: a peer that never sends a newline cannot exhaust memory.
func readLine(r *bufio.Reader, limit int) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > limit {
			return string(buf), nil // the caller's size check reports it
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return string(buf), err
	}
}
