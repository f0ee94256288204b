// Package agi is a FastAGI server: Asterisk connects for each call that
// reaches AGI(agi://...) in the dialplan, sends the channel's environment,
// then obeys one command line at a time.
//
// Hang-up signalling (res/res_agi.c): when the channel hangs up Asterisk
// writes a bare "HANGUP" line out of band — after the reply of a command in
// flight — and from then on answers commands that need a live channel with
// 511. A Session tracks both so callers can tell a hang-up from a failure.
package agi

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors.
var (
	ErrHungUp    = errors.New("agi: channel hung up")
	ErrBadReply  = errors.New("agi: malformed reply")
	ErrBadEnv    = errors.New("agi: malformed environment")
	ErrBadArg    = errors.New("agi: argument contains a line break")
	ErrInvalid   = errors.New("agi: invalid or unknown command (510)")
	ErrUsage     = errors.New("agi: invalid command syntax (520)")
	ErrDeadChan  = errors.New("agi: command not permitted on a dead channel (511)")
	errEnvTooBig = errors.New("agi: environment over 128 lines")
)

// Reply is a parsed "200 result=N [(data)] [endpos=N]" line.
type Reply struct {
	Code   int
	Result string // the value after result=, e.g. "0", "-1", "1234"
	Data   string // text inside the parentheses, e.g. "timeout" or a variable value
	EndPos int64
	Raw    string
}

// Int returns Result as an integer (0 when not numeric).
func (r Reply) Int() int {
	n, _ := strconv.Atoi(r.Result)
	return n
}

// Quote renders an AGI argument: double-quoted, with \ and " escaped, as
// res_agi's parse_args expects. Line breaks cannot be carried and are refused.
func Quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", ErrBadArg
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String(), nil
}

// Command builds a command line from a verb (unquoted words such as
// "STREAM FILE") and its arguments, each quoted.
func Command(verb string, args ...string) (string, error) {
	var b strings.Builder
	b.WriteString(verb)
	for _, a := range args {
		q, err := Quote(a)
		if err != nil {
			return "", fmt.Errorf("%s: %w", verb, err)
		}
		b.WriteByte(' ')
		b.WriteString(q)
	}
	return b.String(), nil
}

// ParseArgs splits a command line the way res_agi's parse_args does: words
// separated by spaces or tabs, double quotes group, backslash escapes the
// next character.
func ParseArgs(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord, quoted, escaped := false, false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case escaped:
			cur.WriteByte(ch)
			escaped = false
			inWord = true
		case ch == '\\':
			escaped = true
			inWord = true
		case ch == '"':
			quoted = !quoted
			inWord = true
		case (ch == ' ' || ch == '\t') && !quoted:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
		if len(args) > 128 {
			return nil, fmt.Errorf("%w: over 128 arguments", ErrUsage)
		}
	}
	if quoted {
		return nil, fmt.Errorf("%w: unterminated quote", ErrUsage)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// ParseReply parses one reply line.
func ParseReply(line string) (Reply, error) {
	r := Reply{Raw: line}
	code, rest, _ := strings.Cut(line, " ")
	n, err := strconv.Atoi(strings.TrimSuffix(code, "-"))
	if err != nil || len(code) != 3 {
		return r, fmt.Errorf("%w: %q", ErrBadReply, truncate(line))
	}
	r.Code = n
	if n != 200 {
		return r, nil
	}
	if !strings.HasPrefix(rest, "result=") {
		return r, fmt.Errorf("%w: no result in %q", ErrBadReply, truncate(line))
	}
	rest = rest[len("result="):]
	r.Result, rest, _ = strings.Cut(rest, " ")
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		switch {
		case strings.HasPrefix(rest, "("):
			end := strings.LastIndex(rest, ")")
			if end < 0 {
				return r, fmt.Errorf("%w: unclosed data in %q", ErrBadReply, truncate(line))
			}
			r.Data = rest[1:end]
			rest = rest[end+1:]
		case strings.HasPrefix(rest, "endpos="):
			v, after, _ := strings.Cut(rest[len("endpos="):], " ")
			r.EndPos, _ = strconv.ParseInt(v, 10, 64)
			rest = after
		default:
			_, rest, _ = strings.Cut(rest, " ")
		}
	}
	return r, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Reply deadlines: a peer that takes a command and never answers must not
// hold its session (and a call slot) forever. Commands that return at once
// get DefaultReplyTimeout; those that play, record, wait for digits or run
// an application (longVerbs) get DefaultLongReplyTimeout, the longest one
// prompt, recording or transfer may take. A ctx deadline may cut either
// shorter.
const (
	DefaultReplyTimeout     = 10 * time.Second
	DefaultLongReplyTimeout = time.Hour
)

// longVerbs start commands whose reply comes only when they finish.
var longVerbs = []string{"STREAM FILE", "CONTROL STREAM FILE", "GET DATA", "GET OPTION",
	"RECORD FILE", "SAY ", "WAIT FOR DIGIT", "EXEC", "SPEECH RECOGNIZE", "RECEIVE"}

// Session is one FastAGI connection.
type Session struct {
	Env map[string]string // agi_* keys without the prefix: "network_script", "channel", ...
	// ReplyTimeout and LongReplyTimeout bound the wait for a reply (see
	// DefaultReplyTimeout); 0 takes the default.
	ReplyTimeout, LongReplyTimeout time.Duration

	conn net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	hung atomic.Bool
}

// HungUp reports whether Asterisk has signalled a hang-up.
func (s *Session) HungUp() bool { return s.hung.Load() }

// Script returns the script path and query of agi_network_script, e.g.
// "ivr" and call_id=... from "ivr?call_id=...".
func (s *Session) Script() (string, map[string]string) {
	path, query, _ := strings.Cut(s.Env["network_script"], "?")
	q := map[string]string{}
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		q[k] = v
	}
	return path, q
}

// Do sends one command line and returns its reply. HANGUP lines are
// recorded and skipped. A 511 reply returns ErrDeadChan and marks the
// session hung up; 510 and 520 return ErrInvalid / ErrUsage.
func (s *Session) Do(ctx context.Context, line string) (Reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.ContainsAny(line, "\r\n") {
		return Reply{}, ErrBadArg
	}
	s.conn.SetDeadline(time.Now().Add(s.deadline(line)))
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := s.conn.Write([]byte(line + "\n")); err != nil {
		return Reply{}, fmt.Errorf("agi write: %w", err)
	}
	for {
		l, err := readLine(s.r)
		if err != nil {
			if ctx.Err() != nil {
				return Reply{}, ctx.Err()
			}
			return Reply{}, fmt.Errorf("agi read: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "HANGUP" {
			s.hung.Store(true)
			continue
		}
		if strings.HasPrefix(l, "520-") { // multi-line usage block; Raw keeps it whole
			block := []string{l}
			for {
				l, err = s.r.ReadString('\n')
				if err != nil {
					return Reply{}, fmt.Errorf("agi read: %w", err)
				}
				l = strings.TrimRight(l, "\r\n")
				if len(block) < 64 {
					block = append(block, l)
				}
				if strings.HasPrefix(l, "520 ") {
					break
				}
			}
			return Reply{Code: 520, Raw: strings.Join(block, "\n")}, ErrUsage
		}
		rep, err := ParseReply(l)
		if err != nil {
			return rep, err
		}
		switch rep.Code {
		case 200:
			return rep, nil
		case 510:
			return rep, ErrInvalid
		case 511:
			s.hung.Store(true)
			return rep, ErrDeadChan
		case 520:
			return rep, ErrUsage
		default:
			return rep, fmt.Errorf("%w: code %d", ErrBadReply, rep.Code)
		}
	}
}

// deadline is how long the reply to line may take.
func (s *Session) deadline(line string) time.Duration {
	up := strings.ToUpper(line)
	for _, v := range longVerbs {
		if strings.HasPrefix(up, v) {
			return cmp.Or(s.LongReplyTimeout, DefaultLongReplyTimeout)
		}
	}
	return cmp.Or(s.ReplyTimeout, DefaultReplyTimeout)
}

// Run sends a command built from verb and quoted args.
func (s *Session) Run(ctx context.Context, verb string, args ...string) (Reply, error) {
	line, err := Command(verb, args...)
	if err != nil {
		return Reply{}, err
	}
	return s.Do(ctx, line)
}

func readEnv(r *bufio.Reader) (map[string]string, error) {
	env := map[string]string{}
	for i := 0; ; i++ {
		if i > 128 {
			return nil, errEnvTooBig
		}
		line, err := readLine(r)
		if err != nil {
			return nil, fmt.Errorf("read environment: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(env) == 0 {
				return nil, fmt.Errorf("%w: empty", ErrBadEnv)
			}
			return env, nil
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(k, "agi_") {
			return nil, fmt.Errorf("%w: line %q", ErrBadEnv, truncate(line))
		}
		env[strings.TrimPrefix(k, "agi_")] = v
	}
}

// Handler runs one AGI session. The connection closes when it returns.
type Handler func(ctx context.Context, s *Session)

// Server accepts FastAGI connections.
type Server struct {
	Handler Handler
	Log     *slog.Logger
	// ReplyTimeout and LongReplyTimeout are every session's (see Session).
	ReplyTimeout, LongReplyTimeout time.Duration
}

// Serve accepts on l until ctx ends, running Handler per connection, and
// waits for the handlers to return.
func (srv *Server) Serve(ctx context.Context, l net.Listener) error {
	log := srv.Log
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("agi accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			r := bufio.NewReaderSize(conn, 8192)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			env, err := readEnv(r)
			if err != nil {
				log.Warn("agi session refused", "remote", conn.RemoteAddr(), "err", err)
				return
			}
			conn.SetReadDeadline(time.Time{})
			srv.Handler(ctx, &Session{Env: env, ReplyTimeout: srv.ReplyTimeout, LongReplyTimeout: srv.LongReplyTimeout, conn: conn, r: r})
		}()
	}
}

// maxLine bounds one line from Asterisk (its own limit for commands is 8 KiB).
const maxLine = 64 << 10

// readLine reads one '\n'-ended line of at most maxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return "", fmt.Errorf("%w: line over %d bytes", ErrBadReply, maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return string(buf), err
	}
}
