package asterisksim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastidial/elastidial/agent/agi"
	"github.com/elastidial/elastidial/agent/ami"
)

// call is one simulated channel.
type call struct {
	sim      *Sim
	uniqueid string
	channel  string
	number   string
	trunk    string
	callerID string
	vars     map[string]string
	callee   Callee
	started  time.Time

	mu       sync.Mutex
	up       bool
	inAGI    bool
	hungUp   bool          // the callee (or the script) hung up
	hangupCh chan struct{} // closed on hang-up
	gathers  int
}

func (c *call) state() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		return 6, "Up"
	}
	return 5, "Ringing"
}

func (c *call) app() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inAGI {
		return "AGI"
	}
	return "AppDial2"
}

func (c *call) duration() string {
	d := int(time.Since(c.started).Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", d/3600, d/60%60, d%60)
}

// hangup marks the channel hung up once.
func (c *call) hangup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hungUp {
		c.hungUp = true
		close(c.hangupCh)
	}
}

func (c *call) dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hungUp
}

func (s *Sim) originate(a *amiSession, id string, m ami.Message) {
	tech, rest, _ := strings.Cut(m.Get("Channel"), "/")
	number, trunk, _ := strings.Cut(rest, "@")
	if tech == "" || number == "" {
		a.write(reply(id, "Response", "Error", "Message", "Channel not specified"))
		return
	}
	if !strings.EqualFold(tech, "PJSIP") {
		a.write(reply(id, "Response", "Error", "Message", "Originate failed"))
		return
	}
	if m.Get("Exten") == "" && m.Get("Application") == "" {
		a.write(reply(id, "Response", "Error", "Message", "Exten not specified"))
		return
	}
	timeout := 30 * time.Second
	if t := m.Get("Timeout"); t != "" {
		ms, err := strconv.Atoi(t)
		if err != nil || ms < 0 {
			a.write(reply(id, "Response", "Error", "Message", "Invalid timeout"))
			return
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	uid := m.Get("ChannelId")
	if len(uid) > 149 {
		a.write(reply(id, "Response", "Error", "Message", "Uniqueid length exceeds maximum of 149"))
		return
	}
	if uid == "" {
		uid = fmt.Sprintf("1700000000.%d", s.seq.Add(1))
	}
	vars := map[string]string{}
	for _, v := range m.All("Variable") {
		for _, kv := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(kv, "=")
			vars[k] = val
		}
	}
	s.mu.Lock()
	if _, dup := s.calls[uid]; dup {
		s.mu.Unlock()
		a.write(reply(id, "Response", "Error", "Message", "Originate failed"))
		return
	}
	s.attempts[number]++
	callee := s.Model.Draw(number, s.attempts[number])
	c := &call{sim: s, uniqueid: uid, number: number, trunk: trunk, callerID: m.Get("CallerID"),
		vars: vars, callee: callee, started: time.Now(), hangupCh: make(chan struct{}),
		channel: fmt.Sprintf("PJSIP/%s-%08x", trunk, s.seq.Add(1))}
	s.calls[uid] = c
	ctx := s.ctx
	s.mu.Unlock()
	s.originates.Add(1)

	async := strings.EqualFold(m.Get("Async"), "true") || m.Get("Async") == "1" || strings.EqualFold(m.Get("Async"), "yes")
	lost := s.loseReply.CompareAndSwap(true, false)
	if lost {
		a.conn.Close()
	}
	if async && !lost {
		a.write(reply(id, "Response", "Success", "Message", "Originate successfully queued"))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ok := c.run(ctx, id, timeout)
		if !async && !lost {
			if ok {
				a.write(reply(id, "Response", "Success", "Message", "Originate successfully queued"))
			} else {
				a.write(reply(id, "Response", "Error", "Message", "Originate failed"))
			}
		}
	}()
}

// run plays the call out: ring, outcome, the AGI session, hang-up.
func (c *call) run(ctx context.Context, actionID string, timeout time.Duration) bool {
	s := c.sim
	defer func() {
		s.mu.Lock()
		delete(s.calls, c.uniqueid)
		s.mu.Unlock()
	}()
	s.broadcast("call", ami.M("Event", "Newchannel", "Channel", c.channel, "ChannelState", "0", "ChannelStateDesc", "Down", "CallerIDNum", c.number, "CallerIDName", "<unknown>", "Exten", "s", "Context", "elastidial-outbound", "Priority", "1", "Uniqueid", c.uniqueid, "Linkedid", c.uniqueid))
	outcome := c.callee.Outcome
	wait := c.callee.Ring
	if outcome.rings() {
		wait = timeout
	} else if wait > timeout {
		outcome, wait = NoAnswer, timeout
	}
	select {
	case <-ctx.Done():
		outcome = Failed
	case <-time.After(wait):
	}
	cidNum, cidName := c.callerID, ""
	if i := strings.Index(c.callerID, "<"); i >= 0 {
		cidName = strings.Trim(strings.TrimSpace(c.callerID[:i]), `"`)
		cidNum = strings.Trim(c.callerID[i:], "<>")
	}
	resp := func(o Outcome) {
		r := "Success"
		if o != Answer {
			r = "Failure"
		}
		s.broadcast("call", ami.M("Event", "OriginateResponse", "ActionID", actionID, "Response", r, "Channel", "PJSIP/"+c.number+"@"+c.trunk, "Context", "elastidial-outbound", "Exten", "s", "Application", "", "Data", "", "Reason", strconv.Itoa(o.reason()), "Uniqueid", c.uniqueid, "CallerIDNum", cidNum, "CallerIDName", cidName))
	}
	hangupEvent := func(o Outcome) {
		cause, txt := o.cause()
		s.broadcast("call", ami.M("Event", "Hangup", "Channel", c.channel, "Uniqueid", c.uniqueid, "Linkedid", c.uniqueid, "CallerIDNum", c.number, "Cause", strconv.Itoa(cause), "Cause-txt", txt))
	}
	if outcome != Answer {
		// chan_pjsip queues the hang-up with the SIP response's cause
		// (HangupRequest); the originate thread then hangs the channel up
		// and reports Reason 0 (3 after a ring timeout). The Hangup and
		// the OriginateResponse reach AMI by different paths: either may
		// come first.
		tearDown := func() {
			if !outcome.rings() {
				cause, _ := outcome.cause()
				s.broadcast("call", ami.M("Event", "HangupRequest", "Channel", c.channel, "Uniqueid", c.uniqueid, "Linkedid", c.uniqueid, "Cause", strconv.Itoa(cause)))
			}
			hangupEvent(outcome)
		}
		if c.callee.Order == ResponseFirst {
			resp(outcome)
			tearDown()
		} else {
			tearDown()
			resp(outcome)
		}
		return false
	}
	c.mu.Lock()
	c.up = true
	c.mu.Unlock()
	s.broadcast("call", ami.M("Event", "Newstate", "Channel", c.channel, "ChannelState", "6", "ChannelStateDesc", "Up", "Uniqueid", c.uniqueid))
	if c.callee.HangupAfter > 0 {
		t := time.AfterFunc(c.callee.HangupAfter, c.hangup)
		defer t.Stop()
	}
	// The dialplan runs AGI() as the originate thread reports success: the
	// agent may see either first.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); resp(Answer) }()
	c.agi(ctx)
	wg.Wait()
	c.hangup()
	hangupEvent(Answer)
	return true
}

// agi runs the dialplan's AGI() step: connect, send the environment, answer
// commands until the script closes the socket.
func (c *call) agi(ctx context.Context) {
	s := c.sim
	target := strings.ReplaceAll(s.AGI, "${ELASTIDIAL_CALL_ID}", c.vars["ELASTIDIAL_CALL_ID"])
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "agi" {
		s.Log.Error("sim agi target", "target", target, "err", err)
		return
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "4573")
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		// Asterisk logs the failure and the dialplan carries on to Hangup().
		s.Log.Warn("sim agi connect", "err", err)
		return
	}
	defer conn.Close()
	c.mu.Lock()
	c.inAGI = true
	c.mu.Unlock()
	script := strings.TrimPrefix(u.Path, "/")
	if u.RawQuery != "" {
		script += "?" + u.RawQuery
	}
	var wmu sync.Mutex
	send := func(line string) {
		wmu.Lock()
		defer wmu.Unlock()
		conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		conn.Write([]byte(line + "\n"))
	}
	env := []string{
		"agi_network: yes", "agi_network_script: " + script, "agi_request: " + target,
		"agi_channel: " + c.channel, "agi_language: en", "agi_type: PJSIP", "agi_uniqueid: " + c.uniqueid,
		"agi_version: 22.0.0", "agi_callerid: " + c.number, "agi_calleridname: unknown",
		"agi_callingpres: 0", "agi_callingani2: 0", "agi_callington: 0", "agi_callingtns: 0",
		"agi_dnid: " + c.number, "agi_rdnis: unknown", "agi_context: elastidial-outbound",
		"agi_extension: s", "agi_priority: 2", "agi_enhanced: 0.0", "agi_accountcode: ",
		"agi_threadid: 140000000000000",
	}
	wmu.Lock()
	conn.Write([]byte(strings.Join(env, "\n") + "\n\n"))
	wmu.Unlock()

	// Out-of-band HANGUP when the callee hangs up, as res_agi does: between
	// commands at once, during a command right after its reply.
	var st struct {
		sync.Mutex
		busy, sent bool
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-c.hangupCh:
			st.Lock()
			if !st.busy && !st.sent {
				st.sent = true
				send("HANGUP")
			}
			st.Unlock()
		case <-done:
		case <-ctx.Done():
			conn.Close()
		}
	}()
	r := bufio.NewReaderSize(conn, 8192)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// res_agi writes HANGUP once more as the script ends.
			send("HANGUP")
			return
		}
		line = strings.TrimRight(line, "\r\n")
		st.Lock()
		st.busy = true
		st.Unlock()
		rep := usageNone
		if len(line) <= 8192 {
			rep = c.exec(ctx, line)
		}
		st.Lock()
		send(rep)
		st.busy = false
		if c.dead() && !st.sent {
			st.sent = true
			send("HANGUP")
		}
		st.Unlock()
	}
}

// Commands res_agi runs on a dead channel, and the others we know.
var (
	deadSafe = map[string]bool{"EXEC": true, "SET VARIABLE": true, "GET VARIABLE": true, "VERBOSE": true, "NOOP": true, "HANGUP": true}
	known    = map[string]bool{"STREAM FILE": true, "GET DATA": true, "SAY DIGITS": true, "SAY NUMBER": true, "SAY ALPHA": true, "SAY DATETIME": true,
		"RECORD FILE": true, "CHANNEL STATUS": true, "ANSWER": true}
)

const dead511 = "511 Command Not Permitted on a dead channel or intercept routine"

// exec runs one AGI command and returns the reply line.
func (c *call) exec(ctx context.Context, line string) string {
	args, err := agi.ParseArgs(line)
	if err != nil || len(args) == 0 {
		return usageNone
	}
	verb := strings.ToUpper(args[0])
	if len(args) > 1 {
		two := verb + " " + strings.ToUpper(args[1])
		switch two {
		case "STREAM FILE", "GET DATA", "SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "SAY DATETIME", "RECORD FILE", "SET VARIABLE", "GET VARIABLE", "CHANNEL STATUS":
			verb, args = two, args[2:]
		default:
			args = args[1:]
		}
	} else {
		args = nil
	}
	if !deadSafe[verb] && !known[verb] {
		return "510 Invalid or unknown command"
	}
	if c.dead() && !deadSafe[verb] {
		return dead511
	}
	usage := usageBlock(verb)
	prompt := c.sim.Model.PromptTime
	switch verb {
	case "NOOP":
		return "200 result=0"
	case "VERBOSE":
		return "200 result=1"
	case "ANSWER":
		return "200 result=0"
	case "CHANNEL STATUS":
		return "200 result=6"
	case "SET VARIABLE":
		if len(args) != 2 {
			return usage
		}
		c.mu.Lock()
		c.vars[args[0]] = args[1]
		c.mu.Unlock()
		return "200 result=1"
	case "GET VARIABLE":
		if len(args) != 1 {
			return usage
		}
		c.mu.Lock()
		v, ok := c.vars[args[0]]
		c.mu.Unlock()
		if !ok {
			return "200 result=0"
		}
		return "200 result=1 (" + v + ")"
	case "HANGUP":
		// ast_softhangup(AST_SOFTHANGUP_EXPLICIT) publishes
		// SoftHangupRequest whose Cause is that flag, 32, not Q.850.
		if !c.dead() {
			c.sim.broadcast("call", ami.M("Event", "SoftHangupRequest", "Channel", c.channel, "Uniqueid", c.uniqueid, "Linkedid", c.uniqueid, "Cause", "32"))
		}
		c.hangup()
		return "200 result=1"
	case "STREAM FILE":
		if len(args) < 2 || len(args) > 3 {
			return usage
		}
		if !c.sim.soundExists(args[0]) {
			return "200 result=-1 endpos=0"
		}
		if !c.play(ctx, prompt) {
			return fmt.Sprintf("200 result=-1 endpos=%d", samples(prompt/2))
		}
		return fmt.Sprintf("200 result=0 endpos=%d", samples(prompt))
	case "SAY DIGITS", "SAY NUMBER":
		// handle_saydigits: argc must be 4 and sscanf(argv[2], "%30d")
		// must read a number, so SAY DIGITS "" gets the usage block.
		if len(args) < 2 || verb == "SAY DIGITS" && len(args) != 2 || len(args) > 3 || !leadingInt(args[0]) {
			return usage
		}
		if !c.play(ctx, prompt) {
			return "200 result=-1"
		}
		return "200 result=0"
	case "SAY ALPHA", "SAY DATETIME":
		// handle_sayalpha: argc must be 4; handle_saydatetime: 4 to 6,
		// and sscanf(argv[2], "%ld") must read the time.
		if verb == "SAY ALPHA" && len(args) != 2 || verb == "SAY DATETIME" && (len(args) < 2 || len(args) > 4 || !leadingInt(args[0])) {
			return usage
		}
		if !c.play(ctx, prompt) {
			return "200 result=-1"
		}
		return "200 result=0"
	case "GET DATA":
		if len(args) < 1 || len(args) > 3 {
			return usage
		}
		// A missing prompt is skipped; the wait for digits still happens.
		if c.sim.soundExists(args[0]) && !c.play(ctx, prompt) {
			return "200 result=-1"
		}
		max := 1024
		if len(args) == 3 {
			if n, err := strconv.Atoi(args[2]); err == nil && n > 0 {
				max = n
			}
		}
		c.mu.Lock()
		var digits string
		if c.gathers < len(c.callee.Digits) {
			digits = c.callee.Digits[c.gathers]
		}
		c.gathers++
		c.mu.Unlock()
		if c.callee.Machine {
			digits = ""
		}
		if len(digits) > max {
			digits = digits[:max]
		}
		if !c.play(ctx, prompt/4) {
			return "200 result=-1"
		}
		if digits == "" {
			return "200 result= (timeout)"
		}
		return "200 result=" + digits
	case "RECORD FILE":
		if len(args) < 4 {
			return usage
		}
		path, ok := c.sim.recordPath(args[0], args[1])
		if !ok {
			// ast_writefile cannot create the file: no folder, or not
			// writable by Asterisk's user.
			return "200 result=-1 (writefile)"
		}
		if !c.play(ctx, prompt) {
			return fmt.Sprintf("200 result=-1 (hangup) endpos=%d", samples(prompt/2))
		}
		if path != "" {
			if err := os.WriteFile(path, []byte("RIFF"), 0o644); err != nil {
				return "200 result=-1 (writefile)"
			}
		}
		return fmt.Sprintf("200 result=0 (timeout) endpos=%d", samples(prompt))
	case "EXEC":
		if len(args) < 1 {
			return usage
		}
		app := strings.ToLower(args[0])
		if !c.sim.loaded(app) {
			// pbx_findapp fails: res_agi answers -2.
			return "200 result=-2"
		}
		switch app {
		case "dial":
			if c.dead() {
				return "200 result=-1"
			}
			status := "NOANSWER"
			if c.callee.TransferAnswered {
				status = "ANSWER"
			}
			c.mu.Lock()
			c.vars["DIALSTATUS"] = status
			c.mu.Unlock()
			if !c.play(ctx, prompt) {
				return "200 result=-1"
			}
			if status == "ANSWER" {
				// The bridged call ended with the caller leaving.
				c.hangup()
				return "200 result=-1"
			}
			return "200 result=0"
		case "amd":
			status := c.callee.AMDStatus
			switch {
			case status != "":
			case c.callee.Machine:
				status = "MACHINE"
			default:
				status = "HUMAN"
			}
			if status == "HANGUP" {
				c.hangup() // the callee leaves while AMD listens
			}
			// amd_exec always returns 0: a hang-up during detection shows
			// only as AMDSTATUS=HANGUP (and the HANGUP line).
			if !c.play(ctx, prompt/2) {
				status = "HANGUP"
			}
			c.mu.Lock()
			c.vars["AMDSTATUS"] = status
			c.vars["AMDCAUSE"] = "INITIALSILENCE-2500-2500"
			c.mu.Unlock()
			return "200 result=0"
		}
		return "200 result=0"
	}
	return "510 Invalid or unknown command"
}

// play waits d of simulated media; false when the callee hung up meanwhile.
func (c *call) play(ctx context.Context, d time.Duration) bool {
	select {
	case <-c.hangupCh:
		return false
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// samples at 8 kHz, as endpos counts them.
func samples(d time.Duration) int64 { return int64(d.Seconds() * 8000) }

// usageNone is res_agi's reply to a command with no usage text.
const usageNone = "520 Invalid command syntax.  Proper usage not available."

// usages are the usage texts res_agi sends (from its XML documentation)
// when a command's arguments are wrong.
var usages = map[string]string{
	"STREAM FILE":    " Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n Send the given file, allowing playback to be interrupted by the given digits, if any.",
	"GET DATA":       " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n Stream the given file, and receive DTMF data.",
	"SAY DIGITS":     " Usage: SAY DIGITS <number> <escape_digits>\n Say a given digit string, returning early if any of the given DTMF digits\n are received on the channel. Returns 0 if playback completes\n without a digit being pressed, or the ASCII numerical value of the digit if one\n was pressed or -1 on error/hangup.",
	"SAY NUMBER":     " Usage: SAY NUMBER <number> <escape_digits> [gender]\n Say a given number, returning early if any of the given DTMF digits are received on the channel.",
	"RECORD FILE":    " Usage: RECORD FILE <filename> <format> <escape_digits> <timeout> [offset samples] [BEEP] [s=silence]\n Record to a file until a given dtmf digit in the sequence is received.",
	"SET VARIABLE":   " Usage: SET VARIABLE <variablename> <value>\n Sets a variable to the current channel.",
	"GET VARIABLE":   " Usage: GET VARIABLE <variablename>\n Returns 0 if variablename is not set.",
	"EXEC":           " Usage: EXEC <application> <options>\n Executes application with given options.",
	"CHANNEL STATUS": " Usage: CHANNEL STATUS [channelname]\n Returns the status of the specified channel.",
}

// usageBlock is the multi-line 520 reply for verb's bad arguments.
func usageBlock(verb string) string {
	u, ok := usages[verb]
	if !ok {
		return usageNone
	}
	return "520-Invalid command syntax.  Proper usage follows:\n" + u + "\n520 End of proper usage."
}

// leadingInt reports whether sscanf("%d") would read a number from s.
func leadingInt(s string) bool {
	s = strings.TrimLeft(s, " \t")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	return s != "" && s[0] >= '0' && s[0] <= '9'
}
