package asterisksim_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/agi"
	"github.com/elastidial/elastidial/agent/ami"
	"github.com/elastidial/elastidial/agent/asterisksim"
)

type env struct {
	sim    *asterisksim.Sim
	client *ami.Client
	amiAdr string

	mu     sync.Mutex
	events []ami.Message
}

// start runs a simulator, an AMI client logged in with events, and a
// FastAGI server running handler.
func start(t *testing.T, callees map[string]asterisksim.Callee, handler agi.Handler) *env {
	t.Helper()
	sounds := t.TempDir()
	os.MkdirAll(filepath.Join(sounds, "elastidial"), 0o755)
	os.WriteFile(filepath.Join(sounds, "elastidial", "hello.wav"), []byte("RIFF"), 0o644)
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &env{sim: &asterisksim.Sim{Username: "u", Secret: "p", Sounds: sounds, Log: log,
		AGI:   "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}",
		Model: asterisksim.Model{Seed: 7, PromptTime: 30 * time.Millisecond, Callees: callees}}}
	e.amiAdr, err = e.sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); e.sim.Run(ctx) }()
	go func() { defer wg.Done(); (&agi.Server{Handler: handler, Log: log}).Serve(ctx, agiLn) }()
	e.client = &ami.Client{Addr: e.amiAdr, Username: "u", Secret: "p", Log: log, OnEvent: func(m ami.Message) {
		e.mu.Lock()
		e.events = append(e.events, m)
		e.mu.Unlock()
	}}
	go func() { defer wg.Done(); e.client.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, "ami login", e.client.Connected)
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *env) originate(t *testing.T, id, number string) {
	t.Helper()
	r, err := e.client.Action(context.Background(), ami.M("Action", "Originate", "Channel", "PJSIP/"+number+"@trunk",
		"Context", "elastidial-outbound", "Exten", "s", "Priority", "1", "Async", "true", "ChannelId", id,
		"Timeout", "500", "Variable", "ELASTIDIAL_CALL_ID="+id))
	if err != nil || r.Get("Response") != "Success" || r.Get("Message") != "Originate successfully queued" {
		t.Fatalf("originate: %v %v", r, err)
	}
}

func (e *env) eventNames(uniqueid string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, m := range e.events {
		if m.Get("Uniqueid") == uniqueid {
			out = append(out, m.Get("Event")+":"+m.Get("Reason")+m.Get("Cause"))
		}
	}
	return out
}

func TestAGIRepliesLikeAsterisk(t *testing.T) {
	type step struct{ line, want string }
	var mu sync.Mutex
	var got []string
	var envSeen map[string]string
	var hungBefore511 bool
	script := []string{
		`STREAM FILE "elastidial/hello" ""`,
		`STREAM FILE "elastidial/missing" ""`,
		`GET DATA "elastidial/hello" "100" "1"`,
		`GET DATA "elastidial/hello" "100" "4"`,
		`SAY DIGITS "123" ""`,
		`SET VARIABLE "FOO" "a \"b\""`,
		`GET VARIABLE "FOO"`,
		`GET VARIABLE "NOPE"`,
		`EXEC "NoSuchApp" ""`,
		`FROB`,
		`STREAM FILE`,
		`SAY DIGITS "" ""`,
		`EXEC "AMD" ""`,
		`RECORD FILE "nofolder/msg" "wav" "#" "1000"`,
		`RECORD FILE "elastidial/msg" "wav" "#" "1000"`,
		`HANGUP`,
		`STREAM FILE "elastidial/hello" ""`,
		`GET VARIABLE "FOO"`,
	}
	done := make(chan struct{})
	e := start(t, map[string]asterisksim.Callee{"+100": {Outcome: asterisksim.Answer, Digits: []string{"7", ""}}},
		func(ctx context.Context, s *agi.Session) {
			defer close(done)
			mu.Lock()
			envSeen = s.Env
			mu.Unlock()
			for _, l := range script {
				r, err := s.Do(ctx, l)
				if errors.Is(err, agi.ErrDeadChan) {
					hungBefore511 = s.HungUp()
				}
				mu.Lock()
				got = append(got, r.Raw)
				mu.Unlock()
			}
		})
	e.originate(t, "call-1", "+100")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no AGI session")
	}
	want := []string{
		"200 result=0 endpos=240",
		"200 result=-1 endpos=0",
		"200 result=7",
		"200 result= (timeout)",
		"200 result=0",
		"200 result=1",
		`200 result=1 (a "b")`,
		"200 result=0",
		"200 result=-2",
		"510 Invalid or unknown command",
		"520-Invalid command syntax.  Proper usage follows:\n Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n Send the given file, allowing playback to be interrupted by the given digits, if any.\n520 End of proper usage.",
		"520-Invalid command syntax.  Proper usage follows:\n Usage: SAY DIGITS <number> <escape_digits>\n Say a given digit string, returning early if any of the given DTMF digits\n are received on the channel. Returns 0 if playback completes\n without a digit being pressed, or the ASCII numerical value of the digit if one\n was pressed or -1 on error/hangup.\n520 End of proper usage.",
		"200 result=-2", // app_amd not loaded: no amd.conf
		"200 result=-1 (writefile)",
		"200 result=0 (timeout) endpos=240",
		"200 result=1",
		"511 Command Not Permitted on a dead channel or intercept routine",
		`200 result=1 (a "b")`,
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("reply %d to %s: got %q, want %q", i, script[i], at(got, i), want[i])
		}
	}
	if !hungBefore511 {
		t.Error("no HANGUP line before the 511")
	}
	for _, k := range []string{"network", "network_script", "request", "channel", "language", "type", "uniqueid",
		"version", "callerid", "calleridname", "callingpres", "callingani2", "callington", "callingtns", "dnid",
		"rdnis", "context", "extension", "priority", "enhanced", "accountcode", "threadid"} {
		if _, ok := envSeen[k]; !ok {
			t.Errorf("environment lacks agi_%s", k)
		}
	}
	if envSeen["network_script"] != "ivr?call_id=call-1" || envSeen["uniqueid"] != "call-1" {
		t.Errorf("environment: %v", envSeen)
	}
	waitFor(t, "hangup event", func() bool { return len(e.eventNames("call-1")) >= 5 })
	if got := strings.Join(e.eventNames("call-1"), " "); got != "Newchannel: Newstate: OriginateResponse:4 SoftHangupRequest:32 Hangup:16" {
		t.Errorf("events: %s", got)
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}

func TestCalleeHangsUpDuringPrompt(t *testing.T) {
	var raw []string
	var hung bool
	done := make(chan struct{})
	start(t, map[string]asterisksim.Callee{"+200": {Outcome: asterisksim.Answer, HangupAfter: 10 * time.Millisecond}},
		func(ctx context.Context, s *agi.Session) {
			defer close(done)
			r, _ := s.Do(ctx, `STREAM FILE "elastidial/hello" ""`)
			raw = append(raw, r.Raw)
			r, _ = s.Do(ctx, `CHANNEL STATUS`)
			raw = append(raw, r.Raw)
			hung = s.HungUp()
		}).originate(t, "c2", "+200")
	<-done
	if len(raw) != 2 || raw[0] != "200 result=-1 endpos=120" || !strings.HasPrefix(raw[1], "511 ") || !hung {
		t.Errorf("hang-up mid prompt: %q hung=%v", raw, hung)
	}
}

func TestOutcomesAndEventsOff(t *testing.T) {
	// As a real Asterisk 22 with chan_pjsip: Reason 0 for every rejected
	// call, the outcome in the HangupRequest/Hangup cause, in either order
	// with the OriginateResponse; Reason 3 for a ring timeout.
	hf, rf := asterisksim.HangupFirst, asterisksim.ResponseFirst
	e := start(t, map[string]asterisksim.Callee{
		"+301": {Outcome: asterisksim.Busy, Order: hf},
		"+302": {Outcome: asterisksim.NoAnswer, Order: hf},
		"+303": {Outcome: asterisksim.Congestion, Order: rf},
		"+304": {Outcome: asterisksim.Failed, Order: hf},
		"+305": {Outcome: asterisksim.Unallocated, Order: rf},
		"+306": {Outcome: asterisksim.Rejected, Order: hf},
		"+307": {Outcome: asterisksim.EarlyMedia, Order: hf},
		"+308": {Outcome: asterisksim.Busy, Order: rf},
		"+309": {Outcome: asterisksim.Unavailable, Order: rf},
	}, func(ctx context.Context, s *agi.Session) {})
	want := map[string]string{
		"u+301": "Newchannel: HangupRequest:17 Hangup:17 OriginateResponse:0",
		"u+302": "Newchannel: Hangup:19 OriginateResponse:3",
		"u+303": "Newchannel: OriginateResponse:0 HangupRequest:34 Hangup:34",
		"u+304": "Newchannel: HangupRequest:127 Hangup:127 OriginateResponse:0",
		"u+305": "Newchannel: OriginateResponse:0 HangupRequest:1 Hangup:1",
		"u+306": "Newchannel: HangupRequest:21 Hangup:21 OriginateResponse:0",
		"u+307": "Newchannel: Hangup:0 OriginateResponse:3",
		"u+308": "Newchannel: OriginateResponse:0 HangupRequest:17 Hangup:17",
		"u+309": "Newchannel: OriginateResponse:0 HangupRequest:19 Hangup:19",
	}
	for id := range want {
		e.originate(t, id, id[1:])
	}
	for id, w := range want {
		n := len(strings.Fields(w))
		waitFor(t, id, func() bool { return len(e.eventNames(id)) == n })
		if got := strings.Join(e.eventNames(id), " "); got != w {
			t.Errorf("%s: %s, want %s", id, got, w)
		}
	}
	// A raw session with Events: off sees no OriginateResponse.
	conn, err := net.Dial("tcp", e.amiAdr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	banner, _ := r.ReadString('\n')
	if banner != "Asterisk Call Manager/11.0.0\r\n" {
		t.Errorf("banner %q", banner)
	}
	conn.Write([]byte("Action: Login\r\nUsername: u\r\nSecret: p\r\nEvents: off\r\nActionID: 1\r\n\r\nAction: Originate\r\nChannel: PJSIP/+301@t\r\nExten: s\r\nContext: c\r\nAsync: true\r\nActionID: 2\r\n\r\nAction: Ping\r\nActionID: 3\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(time.Second))
	var seen []string
	for {
		m, err := ami.Read(r)
		if err != nil {
			break
		}
		seen = append(seen, m.Get("Response")+m.Get("Event"))
	}
	if strings.Join(seen, ",") != "Success,Success,Success" {
		t.Errorf("events off session saw %v", seen)
	}
}

func TestSlowReaderLosesSession(t *testing.T) {
	// Asterisk drops a session that does not read (100 ms write timeout);
	// the simulator must too, or it would hide a blocking reader.
	e := start(t, map[string]asterisksim.Callee{}, func(ctx context.Context, s *agi.Session) {})
	conn, err := net.Dial("tcp", e.amiAdr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	conn.Write([]byte("Action: Login\r\nUsername: u\r\nSecret: p\r\n\r\n"))
	big := strings.Repeat("Action: Command\r\nCommand: module show like timing\r\n\r\n", 40000)
	go conn.Write([]byte(big))
	time.Sleep(500 * time.Millisecond)
	buf := make([]byte, 1<<20)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("session still open after the client stalled")
			}
			return
		}
	}
}

func TestEventOrderDrawnFromSeed(t *testing.T) {
	seen := map[asterisksim.Order]int{}
	for seed := range uint64(40) {
		m := asterisksim.Model{Seed: seed, Callees: map[string]asterisksim.Callee{"+1": {Outcome: asterisksim.Busy}}}
		a, b := m.Draw("+1", 1), m.Draw("+1", 1)
		if a.Order != b.Order {
			t.Fatalf("seed %d: order not reproducible", seed)
		}
		seen[a.Order]++
		seen[m.Draw("+2", 1).Order]++
	}
	if seen[asterisksim.HangupFirst] < 10 || seen[asterisksim.ResponseFirst] < 10 || seen[asterisksim.OrderRandom] != 0 {
		t.Errorf("orders drawn: %v", seen)
	}
}
