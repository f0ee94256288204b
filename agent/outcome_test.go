package agent

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/elastidial/elastidial/agent/ami"
	"github.com/elastidial/elastidial/nodeapi"
)

func TestCauseDisposition(t *testing.T) {
	for _, tt := range []struct {
		cause int
		want  string
	}{
		{17, nodeapi.DispBusy},
		{18, nodeapi.DispNoAnswer}, {19, nodeapi.DispNoAnswer},
		{34, nodeapi.DispCongestion}, {38, nodeapi.DispCongestion}, {41, nodeapi.DispCongestion}, {42, nodeapi.DispCongestion},
		{1, nodeapi.DispInvalidNumber}, {3, nodeapi.DispInvalidNumber}, {28, nodeapi.DispInvalidNumber},
		{21, nodeapi.DispRejected},
		{16, nodeapi.DispFailed}, {0, nodeapi.DispFailed}, {127, nodeapi.DispFailed}, {31, nodeapi.DispFailed},
	} {
		if got := causeDisposition(tt.cause); got != tt.want {
			t.Errorf("cause %d: got %s, want %s", tt.cause, got, tt.want)
		}
	}
}

// outcomeAgent is an agent that is fed AMI events by hand: no sockets, so
// it runs inside a synctest bubble with fake time.
func outcomeAgent(t *testing.T, ln net.Listener) *Agent {
	t.Helper()
	a, err := New(Config{Controller: newFake(), AMIAddr: "127.0.0.1:1", AGIListener: ln,
		Queue: &Queue{Dir: filepath.Join(t.TempDir(), "q")}, Identity: Identity{InstanceID: "i-1"},
		CauseWait: 3 * time.Second, AnswerGrace: 5 * time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cfg.Queue.Open(); err != nil {
		t.Fatal(err)
	}
	return a
}

// track registers a call as originated, as originate does.
func (a *Agent) track(id string) {
	cs := &callState{lease: nodeapi.Call{CallID: id, Token: "t-" + id}, actionID: "act-" + id, started: time.Now()}
	a.mu.Lock()
	a.calls[id], a.byAction[cs.actionID] = cs, cs
	a.mu.Unlock()
}

func queued(t *testing.T, a *Agent) []nodeapi.ResultRequest {
	t.Helper()
	a.recordResults() // the agent is not Run: write what its recorder would
	names, err := a.cfg.Queue.list()
	if err != nil {
		t.Fatal(err)
	}
	var out []nodeapi.ResultRequest
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(a.cfg.Queue.Dir, n))
		if err != nil {
			t.Fatal(err)
		}
		var r nodeapi.ResultRequest
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestUnansweredOutcomeFromHangupCause feeds the events a real Asterisk 22
// with chan_pjsip sends for a rejected call (OriginateResponse Reason 0,
// the cause only in Hangup/HangupRequest, in either order) and checks the
// disposition, the cause and when the call is settled.
func TestUnansweredOutcomeFromHangupCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resp := func(id, reason string) ami.Message {
		return ami.M("Event", "OriginateResponse", "ActionID", "act-"+id, "Response", "Failure", "Reason", reason, "Uniqueid", id)
	}
	hangup := func(id, cause string) ami.Message {
		return ami.M("Event", "Hangup", "Channel", "PJSIP/carrier-00000001", "Uniqueid", id, "Cause", cause)
	}
	type step struct {
		after time.Duration // fake time before this event
		ev    func(id string) ami.Message
	}
	tests := []struct {
		name   string
		events []step
		disp   string
		cause  int
		within time.Duration // settled this long after the first event
	}{
		{"busy, hangup first", []step{{0, func(id string) ami.Message { return hangup(id, "17") }}, {10 * time.Millisecond, func(id string) ami.Message { return resp(id, "0") }}},
			nodeapi.DispBusy, 17, 10 * time.Millisecond},
		{"busy, response first", []step{{0, func(id string) ami.Message { return resp(id, "0") }}, {200 * time.Millisecond, func(id string) ami.Message { return hangup(id, "17") }}},
			nodeapi.DispBusy, 17, 200 * time.Millisecond},
		{"congestion, response first", []step{{0, func(id string) ami.Message { return resp(id, "0") }}, {time.Second, func(id string) ami.Message { return hangup(id, "34") }}},
			nodeapi.DispCongestion, 34, time.Second},
		{"unallocated", []step{{0, func(id string) ami.Message { return hangup(id, "1") }}, {0, func(id string) ami.Message { return resp(id, "0") }}},
			nodeapi.DispInvalidNumber, 1, 0},
		{"rejected", []step{{0, func(id string) ami.Message { return resp(id, "0") }}, {0, func(id string) ami.Message { return hangup(id, "21") }}},
			nodeapi.DispRejected, 21, 0},
		{"no answer 480, reason 1", []step{{0, func(id string) ami.Message { return resp(id, "1") }}, {0, func(id string) ami.Message { return hangup(id, "18") }}},
			nodeapi.DispNoAnswer, 18, 0},
		{"ring timeout, response first, cause kept", []step{{0, func(id string) ami.Message { return resp(id, "3") }}, {20 * time.Millisecond, func(id string) ami.Message { return hangup(id, "19") }}},
			nodeapi.DispNoAnswer, 19, 20 * time.Millisecond},
		{"ring timeout after early media: reason 3 whatever the cause", []step{{0, func(id string) ami.Message { return hangup(id, "0") }}, {0, func(id string) ami.Message { return resp(id, "3") }}},
			nodeapi.DispNoAnswer, 0, 0},
		{"ring timeout, hangup lost: reason decides after CauseWait", []step{{0, func(id string) ami.Message { return resp(id, "3") }}},
			nodeapi.DispNoAnswer, 0, 3 * time.Second},
		{"cause from HangupRequest, then response", []step{
			{0, func(id string) ami.Message {
				return ami.M("Event", "HangupRequest", "Channel", "PJSIP/carrier-00000001", "Uniqueid", id, "Cause", "17")
			}},
			{0, func(id string) ami.Message { return resp(id, "0") }}},
			nodeapi.DispBusy, 17, 0},
		{"hangup matched by channel name learned from Newchannel", []step{
			{0, func(id string) ami.Message {
				return ami.M("Event", "Newchannel", "Channel", "PJSIP/carrier-0000002a", "Uniqueid", id)
			}},
			{0, func(id string) ami.Message { return resp(id, "0") }},
			{50 * time.Millisecond, func(id string) ami.Message {
				return ami.M("Event", "Hangup", "Channel", "PJSIP/carrier-0000002a", "Uniqueid", "1700000000.42", "Cause", "34")
			}}},
			nodeapi.DispCongestion, 34, 50 * time.Millisecond},
		{"SoftHangupRequest's cause is a flag, not Q.850", []step{
			{0, func(id string) ami.Message {
				return ami.M("Event", "SoftHangupRequest", "Channel", "PJSIP/carrier-00000001", "Uniqueid", id, "Cause", "32")
			}},
			{0, func(id string) ami.Message { return resp(id, "0") }},
			{0, func(id string) ami.Message { return hangup(id, "17") }}},
			nodeapi.DispBusy, 17, 0},
		{"no hangup event: failed after CauseWait", []step{{0, func(id string) ami.Message { return resp(id, "0") }}},
			nodeapi.DispFailed, 0, 3 * time.Second},
		{"hangup too late: failed at CauseWait, late cause ignored", []step{{0, func(id string) ami.Message { return resp(id, "0") }}, {4 * time.Second, func(id string) ami.Message { return hangup(id, "17") }}},
			nodeapi.DispFailed, 0, 3 * time.Second},
		{"hangup with no response: settled by cause after AnswerGrace", []step{{0, func(id string) ami.Message { return hangup(id, "17") }}},
			nodeapi.DispBusy, 17, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := outcomeAgent(t, ln)
				a.track("c1")
				start := time.Now()
				settled := time.Duration(-1)
				poll := func() {
					synctest.Wait()
					if settled < 0 && len(queued(t, a)) > 0 {
						settled = time.Since(start)
					}
				}
				advance := func(d time.Duration) {
					for end := time.Now().Add(d); time.Now().Before(end); {
						time.Sleep(min(10*time.Millisecond, time.Until(end)))
						poll()
					}
				}
				for _, st := range tt.events {
					advance(st.after)
					a.onEvent(st.ev("c1"))
					poll()
				}
				advance(time.Minute)
				got := queued(t, a)
				if len(got) != 1 {
					t.Fatalf("%d results, want 1: %+v", len(got), got)
				}
				if got[0].Disposition != tt.disp || got[0].Cause != tt.cause || got[0].AnsweredAt != 0 {
					t.Errorf("got %s cause %d answered %d, want %s cause %d", got[0].Disposition, got[0].Cause, got[0].AnsweredAt, tt.disp, tt.cause)
				}
				if settled > tt.within+10*time.Millisecond || settled < tt.within-10*time.Millisecond {
					t.Errorf("settled after %v, want %v", settled, tt.within)
				}
				if st := a.Status(); st.ActiveCalls != 0 {
					t.Errorf("%d calls still tracked", st.ActiveCalls)
				}
			})
		})
	}
}
