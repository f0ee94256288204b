package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/agent/agi"
	"github.com/elastidial/elastidial/nodeapi"
)

// ivrOutcome is what one call's IVR produced.
type ivrOutcome struct {
	path      []string
	tags      map[string]string
	recording string
	machine   bool // detection said machine
	completed bool // the flow reached its end (or a transfer was answered)
	// failed is the IVR step that failed where the flow had no failed
	// branch: the call ends as ivr_failed, never as answered.
	failed *ivrFailure
}

// ivrFailure is an AGI command Asterisk could not carry out, with its
// reply as sent (e.g. STREAM FILE → "200 result=-1 endpos=0").
type ivrFailure struct {
	command, reply string
}

func (f ivrFailure) String() string { return f.command + " → " + f.reply }

// TagIVRError is the result tag naming the last AGI command that failed in
// a call, and Asterisk's reply to it; TagAMD is what answering-machine
// detection said (human, machine, notsure).
const (
	TagIVRError = "ivr_error"
	TagAMD      = "amd"
)

// RecordingsDir is the default recordings folder (Config.Recordings):
// RECORD FILE writes there, so the node image creates it writable by
// Asterisk's user.
const RecordingsDir = "/var/spool/asterisk/elastidial-recordings"

// maxSteps bounds a flow that loops forever (e.g. re-prompting a machine).
const maxSteps = 200

// errHungUp ends the IVR: the callee is gone.
var errHungUp = errors.New("callee hung up")

// handleAGI serves one FastAGI connection: the dialplan's
// AGI(agi://127.0.0.1:4573/ivr?call_id=...) for an answered call.
func (a *Agent) handleAGI(ctx context.Context, s *agi.Session) {
	script, q := s.Script()
	callID := q["call_id"]
	log := a.log.With("call", callID)
	a.mu.Lock()
	cs := a.calls[callID]
	if cs != nil && (cs.agiStarted || cs.finished) {
		cs = nil
	}
	if cs != nil {
		cs.agiStarted = true
		if cs.answeredAt.IsZero() {
			cs.answeredAt = a.clock.Now()
		}
	}
	a.mu.Unlock()
	if script != "ivr" || cs == nil {
		log.Warn("agi session for no call of ours", "script", s.Env["network_script"], "uniqueid", s.Env["uniqueid"])
		s.Run(ctx, "HANGUP")
		return
	}
	out := a.runIVR(ctx, s, cs)
	a.mu.Lock()
	cs.ivr = out
	cs.agiDone = true
	a.maybeFinishLocked(cs)
	a.mu.Unlock()
	// The Hangup event normally follows at once; do not wait forever for it.
	a.clock.AfterFunc(a.cfg.AnswerGrace, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.finishLocked(cs, "no Hangup event after AGI")
	})
}

// ivrCall is one call's IVR session: the AGI session and what it produced.
type ivrCall struct {
	a     *Agent
	s     *agi.Session
	log   *slog.Logger
	lease nodeapi.Call
	out   ivrOutcome
	fail  *ivrFailure // the command that failed in the current step, reported to the flow as InputFailed
	lang  string      // the channel language this session set, "" for Asterisk's own
}

func (a *Agent) runIVR(ctx context.Context, s *agi.Session, cs *callState) ivrOutcome {
	c := &ivrCall{a: a, s: s, lease: cs.lease, log: a.log.With("call", cs.lease.CallID),
		out: ivrOutcome{tags: map[string]string{}}}
	c.loop(ctx)
	return c.out
}

func (c *ivrCall) loop(ctx context.Context) {
	lease, s, log := c.lease, c.s, c.log
	req := nodeapi.StepRequest{CallID: lease.CallID, Token: lease.Token, CampaignID: lease.CampaignID,
		FlowVersion: lease.FlowVersion, Input: nodeapi.InputStart, Fields: lease.Fields}
	// {{phone}} in a flow is the number dialled, whatever the dial
	// list's phone column was called.
	req.Fields = maps.Clone(req.Fields)
	if req.Fields == nil {
		req.Fields = map[string]string{}
	}
	if _, ok := req.Fields["phone"]; !ok {
		req.Fields["phone"] = lease.Number
	}
	for range maxSteps {
		resp, err := c.a.step(ctx, req)
		if err != nil {
			log.Warn("call.step failed: ending the call", "state", req.State, "err", err)
			s.Run(ctx, "HANGUP")
			return
		}
		maps.Copy(c.out.tags, resp.Tags)
		if req.Input == nodeapi.InputFailed && resp.State == "" && resp.Action.Kind == nodeapi.ActionHangup && c.fail != nil {
			// The flow has no failed branch where the step failed: the
			// flow's engine ends the call with no state (a failed branch
			// always reaches a named state: set states need a next). The
			// IVR failed.
			c.out.failed = c.fail
			log.Error("ivr failed: the flow has no failed branch for it", "state", req.State,
				"command", c.fail.command, "reply", c.fail.reply)
			s.Run(ctx, "HANGUP")
			return
		}
		if resp.State != "" {
			c.out.path = append(c.out.path, resp.State)
		}
		if resp.Action.Kind == nodeapi.ActionHangup {
			s.Run(ctx, "HANGUP")
			c.out.completed = true
			return
		}
		c.fail = nil // a failure handled earlier is not this step's
		input, digits, err := c.action(ctx, resp.Action)
		if errors.Is(err, errHungUp) {
			return
		}
		if err != nil {
			log.Warn("agi failed: ending the call", "state", resp.State, "err", err)
			return
		}
		if c.out.completed { // answered transfer: the call is over
			return
		}
		req.State, req.Input, req.Digits, req.Vars = resp.State, input, digits, resp.Vars
	}
	log.Warn("flow exceeded the step limit: hanging up", "steps", maxSteps)
	s.Run(ctx, "HANGUP")
}

// step calls call.step, retrying transient failures briefly; a caller is
// waiting on the line.
func (a *Agent) step(ctx context.Context, req nodeapi.StepRequest) (nodeapi.StepResponse, error) {
	var err error
	wait := 200 * time.Millisecond
	for try := 0; try < 4; try++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var resp nodeapi.StepResponse
		resp, err = a.cfg.Controller.Step(cctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		var f *Fault
		if errors.As(err, &f) || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, ctx.Err()
		case <-a.clock.After(wait):
		}
		wait *= 2
	}
	return nodeapi.StepResponse{}, err
}

// hungUp tells a hang-up from a failed command after a -1: the HANGUP line,
// or a probe that needs a live channel (511 once it is dead).
func (a *Agent) hungUp(ctx context.Context, s *agi.Session) bool {
	if s.HungUp() {
		return true
	}
	r, err := s.Run(ctx, "CHANNEL STATUS")
	if err != nil {
		return errors.Is(err, agi.ErrDeadChan) || !errors.Is(err, agi.ErrInvalid) && !errors.Is(err, agi.ErrUsage)
	}
	return r.Result == "-1" || s.HungUp()
}

// run sends one command and classifies its outcome: failed when Asterisk
// could not carry it out (logged with its reply and remembered for the
// result), errHungUp when the callee is gone, another error when the
// session is broken.
func (c *ivrCall) run(ctx context.Context, verb string, args ...string) (r agi.Reply, failed bool, _ error) {
	r, err := c.s.Run(ctx, verb, args...)
	switch {
	case errors.Is(err, agi.ErrDeadChan):
		return r, false, errHungUp
	case errors.Is(err, agi.ErrInvalid), errors.Is(err, agi.ErrUsage), errors.Is(err, agi.ErrBadArg):
		// 510, 520 (its usage block in r.Raw), or an argument AGI cannot carry.
	case err != nil:
		// The socket is gone: Asterisk ended the call.
		return r, false, fmt.Errorf("%w: %w", errHungUp, err)
	case r.Result == "-2":
		// EXEC of an application that is not loaded (e.g. app_amd
		// without amd.conf).
	case r.Result == "-1":
		if c.a.hungUp(ctx, c.s) {
			return r, false, errHungUp
		}
		// A file Asterisk cannot read or write: "200 result=-1 endpos=0",
		// "200 result=-1 (writefile)".
	default:
		return r, false, nil
	}
	line, lerr := agi.Command(verb, args...)
	if lerr != nil {
		line = verb
	}
	raw := r.Raw
	if raw == "" && err != nil {
		raw = err.Error()
	}
	c.failed(line, raw)
	return r, true, nil
}

// failed records a step Asterisk could not carry out.
func (c *ivrCall) failed(command, reply string) {
	c.fail = &ivrFailure{command: command, reply: reply}
	c.out.tags[TagIVRError] = c.fail.String()
	c.log.Warn("agi command failed", "command", command, "reply", reply)
}

// sound names a flow prompt for Asterisk: under the elastidial folder.
func sound(p string) string { return "elastidial/" + strings.TrimPrefix(p, "/") }

// SpeechFetch brings synthesised speech onto the node (storage.Syncer's
// Fetch): a file it already holds is not fetched again.
type SpeechFetch interface {
	Fetch(ctx context.Context, f nodeapi.AudioFile) error
}

// speech fetches an action's synthesised speech; false when it could not
// (the step fails, and the flow's failed branch runs).
func (c *ivrCall) speech(ctx context.Context, act nodeapi.Action) bool {
	if len(act.Files) == 0 || len(act.Prompts) == 0 {
		c.failed("speak "+strconv.Quote(act.Text), "not sent: the controller rendered no speech for it")
		return false
	}
	if c.a.cfg.Speech == nil {
		c.failed("speak "+strconv.Quote(act.Text), "not sent: this node has no speech folder")
		return false
	}
	for _, f := range act.Files {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.a.cfg.Speech.Fetch(fctx, f)
		cancel()
		if err != nil {
			c.failed("fetch speech", err.Error())
			return false
		}
	}
	return true
}

// language sets the channel's language for SAY and stock sounds when the
// flow names one for the contact.
func (c *ivrCall) language(ctx context.Context, lang string) error {
	if lang == "" || lang == c.lang {
		return nil
	}
	_, err := c.s.Run(ctx, "SET VARIABLE", "CHANNEL(language)", lang)
	switch {
	case errors.Is(err, agi.ErrDeadChan):
		return errHungUp
	case err != nil && !errors.Is(err, agi.ErrInvalid) && !errors.Is(err, agi.ErrUsage) && !errors.Is(err, agi.ErrBadArg):
		return fmt.Errorf("%w: %w", errHungUp, err)
	case err != nil:
		c.log.Warn("setting the channel language failed", "language", lang, "err", err)
		return nil
	}
	c.lang = lang
	return nil
}

// say runs one SAY command; false when Asterisk could not.
func (c *ivrCall) say(ctx context.Context, verb string, args ...string) (bool, error) {
	_, failed, err := c.run(ctx, verb, args...)
	return !failed, err
}

// action runs one action and returns the input to feed back.
func (c *ivrCall) action(ctx context.Context, act nodeapi.Action) (string, string, error) {
	s, out := c.s, &c.out
	if err := c.language(ctx, act.Language); err != nil {
		return "", "", err
	}
	switch act.Kind {
	case nodeapi.ActionSpeak:
		if !c.speech(ctx, act) {
			return nodeapi.InputFailed, "", nil
		}
		for _, p := range act.Prompts {
			_, failed, err := c.run(ctx, "STREAM FILE", p, "")
			if err != nil {
				return "", "", err
			}
			if failed {
				return nodeapi.InputFailed, "", nil
			}
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionSayAlpha, nodeapi.ActionSayDateTime, nodeapi.ActionSayMoney:
		if act.Text == "" {
			c.failed(act.Kind+` ""`, "not sent: nothing to say (an empty contact field, or one that is not a "+strings.TrimPrefix(act.Kind, "say_")+")")
			return nodeapi.InputFailed, "", nil
		}
		var ok bool
		var err error
		switch act.Kind {
		case nodeapi.ActionSayAlpha:
			ok, err = c.say(ctx, "SAY ALPHA", act.Text, "")
		case nodeapi.ActionSayDateTime:
			ok, err = c.say(ctx, "SAY DATETIME", act.Text, "", act.Format, "UTC")
		default:
			units, cents, _ := strings.Cut(act.Text, ".")
			ok, err = c.say(ctx, "SAY NUMBER", units, "")
			if ok && err == nil {
				ok, err = c.say(ctx, "STREAM FILE", "digits/dollars", "")
			}
			if ok && err == nil && strings.Trim(cents, "0") != "" {
				ok, err = c.say(ctx, "SAY NUMBER", strings.TrimLeft(cents, "0"), "")
			}
		}
		if err != nil {
			return "", "", err
		}
		if !ok {
			return nodeapi.InputFailed, "", nil
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionPlay:
		for _, p := range act.Prompts {
			_, failed, err := c.run(ctx, "STREAM FILE", sound(p), "")
			if err != nil {
				return "", "", err
			}
			if failed {
				return nodeapi.InputFailed, "", nil
			}
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionSayDigits, nodeapi.ActionSayNumber:
		verb := "SAY DIGITS"
		if act.Kind == nodeapi.ActionSayNumber {
			verb = "SAY NUMBER"
		}
		if act.Text == "" {
			// An empty or missing contact field: Asterisk would answer
			// with its 520 usage block. Nothing to say is a failed step.
			c.failed(verb+` ""`, "not sent: nothing to say (empty or missing contact field)")
			return nodeapi.InputFailed, "", nil
		}
		_, failed, err := c.run(ctx, verb, act.Text, "")
		if err != nil {
			return "", "", err
		}
		if failed {
			return nodeapi.InputFailed, "", nil
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionGather:
		prompt := "silence/1"
		switch {
		case act.Text != "": // a spoken prompt
			if !c.speech(ctx, act) {
				return nodeapi.InputFailed, "", nil
			}
			prompt = act.Prompts[0]
		case len(act.Prompts) > 0:
			prompt = sound(act.Prompts[0])
		}
		timeout := act.TimeoutMS
		if timeout <= 0 {
			timeout = 5000
		}
		maxDigits := act.MaxDigits
		if maxDigits <= 0 {
			maxDigits = 1024
		}
		r, failed, err := c.run(ctx, "GET DATA", prompt, strconv.Itoa(timeout), strconv.Itoa(maxDigits))
		if err != nil {
			return "", "", err
		}
		if failed {
			return nodeapi.InputFailed, "", nil
		}
		if r.Result == "" {
			return nodeapi.InputTimeout, "", nil
		}
		return nodeapi.InputDigits, r.Result, nil

	case nodeapi.ActionRecord:
		secs := act.MaxSeconds
		if secs <= 0 {
			secs = 60
		}
		// An absolute path in the recordings folder (a relative name would
		// land under sounds/, in a folder nothing creates): Asterisk writes
		// it, the result queue uploads it and then removes it. The call's
		// id leads the name: every call of a campaign runs the same flow,
		// and two on one node must never write, upload or remove each
		// other's file.
		name := filepath.Join(c.a.cfg.Recordings, c.lease.CallID)
		if act.Target != "" {
			name += "-" + act.Target
		}
		out.recording = name + ".wav"
		_, failed, err := c.run(ctx, "RECORD FILE", name, "wav", "#", strconv.Itoa(secs*1000))
		if err != nil {
			return "", "", err
		}
		if failed {
			out.recording = ""
			return nodeapi.InputFailed, "", nil
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionTransfer:
		dest := "PJSIP/" + act.Target + "@" + c.lease.Trunk
		if strings.HasPrefix(act.Target, "sip:") {
			dest = "PJSIP/" + c.lease.Trunk + "/" + act.Target
		}
		arg := dest
		if act.MaxSeconds > 0 {
			arg += "," + strconv.Itoa(act.MaxSeconds)
		}
		// Dial answers -1 when the bridged call ends with the caller
		// leaving: DIALSTATUS, not the result, says whether it was answered.
		r, err := s.Run(ctx, "EXEC", "Dial", arg)
		switch {
		case errors.Is(err, agi.ErrDeadChan):
		case err != nil && !errors.Is(err, agi.ErrInvalid) && !errors.Is(err, agi.ErrUsage):
			return "", "", fmt.Errorf("%w: %w", errHungUp, err)
		case err != nil || r.Result == "-2":
			c.failed("EXEC Dial "+arg, cmp.Or(r.Raw, fmt.Sprint(err)))
			return nodeapi.InputFailed, "", nil
		}
		v, verr := s.Run(ctx, "GET VARIABLE", "DIALSTATUS")
		if verr == nil && v.Data == "ANSWER" {
			out.completed = true
			return nodeapi.InputDone, "", nil
		}
		if s.HungUp() || r.Result == "-1" && c.a.hungUp(ctx, s) {
			return "", "", errHungUp
		}
		return nodeapi.InputFailed, "", nil

	case nodeapi.ActionDetect:
		_, failed, err := c.run(ctx, "EXEC", "AMD", "")
		if err != nil {
			return "", "", err
		}
		if failed {
			// -2: app_amd is not loaded (no amd.conf). Never guess human.
			c.log.Error("answering-machine detection unavailable", "command", c.fail.command, "reply", c.fail.reply)
			return nodeapi.InputFailed, "", nil
		}
		v, err := s.Run(ctx, "GET VARIABLE", "AMDSTATUS")
		if errors.Is(err, agi.ErrDeadChan) {
			return "", "", errHungUp
		}
		switch v.Data {
		case "MACHINE":
			out.machine = true
			out.tags[TagAMD] = "machine"
			// AMD decides within the greeting; a message played now would
			// be spoken over it and lost. Wait for the greeting and its
			// beep to end: a second of silence, at most 20 s.
			r, err := s.Run(ctx, "EXEC", "WaitForSilence", "1000,1,20")
			switch {
			case errors.Is(err, agi.ErrDeadChan) || err == nil && r.Result == "-1" && s.HungUp():
				return "", "", errHungUp
			case err != nil || r.Result == "-2":
				c.log.Warn("waiting for the end of the greeting failed: the message may start over it", "reply", r.Raw, "err", err)
			}
			return nodeapi.InputMachine, "", nil
		case "HUMAN":
			out.tags[TagAMD] = "human"
			return nodeapi.InputHuman, "", nil
		case "NOTSURE":
			// Treated as a person (a message over a person is worse than
			// a survey to a machine), tagged so reports can tell.
			out.tags[TagAMD] = "notsure"
			return nodeapi.InputHuman, "", nil
		case "HANGUP":
			return "", "", errHungUp
		}
		c.failed(`GET VARIABLE "AMDSTATUS"`, cmp.Or(v.Raw, fmt.Sprint(err)))
		return nodeapi.InputFailed, "", nil
	}
	c.log.Warn("unknown action kind", "kind", act.Kind)
	c.failed("action "+act.Kind, "unknown action kind")
	return nodeapi.InputFailed, "", nil
}
