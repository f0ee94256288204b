package agent

import (
	"context"
	"errors"
	"fmt"
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
}

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
			cs.answeredAt = time.Now()
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
	time.AfterFunc(a.cfg.AnswerGrace, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.finishLocked(cs, "no Hangup event after AGI")
	})
}

func (a *Agent) runIVR(ctx context.Context, s *agi.Session, cs *callState) ivrOutcome {
	lease := cs.lease
	log := a.log.With("call", lease.CallID)
	out := ivrOutcome{tags: map[string]string{}}
	req := nodeapi.StepRequest{CallID: lease.CallID, Token: lease.Token, CampaignID: lease.CampaignID,
		FlowVersion: lease.FlowVersion, Input: nodeapi.InputStart, Fields: lease.Fields}
	if req.Fields == nil {
		req.Fields = map[string]string{}
	}
	for range maxSteps {
		resp, err := a.step(ctx, req)
		if err != nil {
			log.Warn("call.step failed: ending the call", "state", req.State, "err", err)
			s.Run(ctx, "HANGUP")
			return out
		}
		out.path = append(out.path, resp.State)
		maps.Copy(out.tags, resp.Tags)
		if resp.Action.Kind == nodeapi.ActionHangup {
			s.Run(ctx, "HANGUP")
			out.completed = true
			return out
		}
		input, digits, err := a.runAction(ctx, s, lease, resp.Action, &out)
		if errors.Is(err, errHungUp) {
			return out
		}
		if err != nil {
			log.Warn("agi failed: ending the call", "state", resp.State, "err", err)
			return out
		}
		if out.completed { // answered transfer: the call is over
			return out
		}
		req.State, req.Input, req.Digits = resp.State, input, digits
	}
	log.Warn("flow exceeded the step limit: hanging up", "steps", maxSteps)
	s.Run(ctx, "HANGUP")
	return out
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
		case <-time.After(wait):
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

// check classifies a command's outcome: nil when it ran, errHungUp when
// the callee is gone, another error when the session is broken.
func (a *Agent) check(ctx context.Context, s *agi.Session, r agi.Reply, err error) (failed bool, _ error) {
	switch {
	case errors.Is(err, agi.ErrDeadChan):
		return false, errHungUp
	case errors.Is(err, agi.ErrInvalid), errors.Is(err, agi.ErrUsage), errors.Is(err, agi.ErrBadArg):
		a.log.Warn("agi command refused", "reply", r.Raw, "err", err)
		return true, nil
	case err != nil:
		// The socket is gone: Asterisk ended the call.
		return false, fmt.Errorf("%w: %v", errHungUp, err)
	case r.Result == "-1":
		if a.hungUp(ctx, s) {
			return false, errHungUp
		}
		return true, nil
	}
	return false, nil
}

// sound names a flow prompt for Asterisk: under the elastidial folder.
func sound(p string) string { return "elastidial/" + strings.TrimPrefix(p, "/") }

// runAction runs one action and returns the input to feed back.
func (a *Agent) runAction(ctx context.Context, s *agi.Session, lease nodeapi.Call, act nodeapi.Action, out *ivrOutcome) (string, string, error) {
	switch act.Kind {
	case nodeapi.ActionPlay:
		for _, p := range act.Prompts {
			r, err := s.Run(ctx, "STREAM FILE", sound(p), "")
			failed, err := a.check(ctx, s, r, err)
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
		r, err := s.Run(ctx, verb, act.Text, "")
		failed, err := a.check(ctx, s, r, err)
		if err != nil {
			return "", "", err
		}
		if failed {
			return nodeapi.InputFailed, "", nil
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionGather:
		prompt := "silence/1"
		if len(act.Prompts) > 0 {
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
		r, err := s.Run(ctx, "GET DATA", prompt, strconv.Itoa(timeout), strconv.Itoa(maxDigits))
		failed, err := a.check(ctx, s, r, err)
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
		// land under sounds/, in a folder that does not exist): Asterisk
		// writes it, the result queue uploads it and removes it.
		name := filepath.Join(a.cfg.Recordings, lease.CallID)
		out.recording = name + ".wav"
		r, err := s.Run(ctx, "RECORD FILE", name, "wav", "#", strconv.Itoa(secs*1000))
		failed, err := a.check(ctx, s, r, err)
		if err != nil {
			return "", "", err
		}
		if failed {
			out.recording = ""
			return nodeapi.InputFailed, "", nil
		}
		return nodeapi.InputDone, "", nil

	case nodeapi.ActionTransfer:
		dest := "PJSIP/" + act.Target + "@" + lease.Trunk
		if strings.HasPrefix(act.Target, "sip:") {
			dest = "PJSIP/" + lease.Trunk + "/" + act.Target
		}
		arg := dest
		if act.MaxSeconds > 0 {
			arg += "," + strconv.Itoa(act.MaxSeconds)
		}
		r, err := s.Run(ctx, "EXEC", "Dial", arg)
		if err != nil && !errors.Is(err, agi.ErrDeadChan) {
			if _, err := a.check(ctx, s, r, err); err != nil {
				return "", "", err
			}
		}
		v, verr := s.Run(ctx, "GET VARIABLE", "DIALSTATUS")
		if verr == nil && v.Data == "ANSWER" {
			out.completed = true
			return nodeapi.InputDone, "", nil
		}
		if s.HungUp() || r.Result == "-1" && a.hungUp(ctx, s) {
			return "", "", errHungUp
		}
		return nodeapi.InputFailed, "", nil

	case nodeapi.ActionDetect:
		r, err := s.Run(ctx, "EXEC", "AMD", "")
		if err == nil && r.Result == "-2" {
			a.log.Warn("app_amd not loaded: treating callee as human")
			return nodeapi.InputHuman, "", nil
		}
		if _, err := a.check(ctx, s, r, err); err != nil {
			return "", "", err
		}
		v, err := s.Run(ctx, "GET VARIABLE", "AMDSTATUS")
		if err == nil && v.Data == "MACHINE" {
			out.machine = true
			return nodeapi.InputMachine, "", nil
		}
		return nodeapi.InputHuman, "", nil
	}
	a.log.Warn("unknown action kind", "kind", act.Kind)
	return nodeapi.InputFailed, "", nil
}
