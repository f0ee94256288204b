package agent

import (
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/nodeapi"
)

func TestCallsPlacedIVRAndDispositions(t *testing.T) {
	callees := map[string]asterisksim.Callee{
		"+1000": {Outcome: asterisksim.Answer, Digits: []string{"1"}},
		"+1001": {Outcome: asterisksim.Busy},
		"+1002": {Outcome: asterisksim.NoAnswer},
		"+1003": {Outcome: asterisksim.Congestion},
		"+1004": {Outcome: asterisksim.Failed},
		"+1005": {Outcome: asterisksim.Answer, Machine: true},
		"+1006": {Outcome: asterisksim.Answer, Digits: []string{"1"}, HangupAfter: 40 * time.Millisecond}, // mid-welcome (20–60 ms)
		"+1007": {Outcome: asterisksim.Answer},
		"+1008": {Outcome: asterisksim.Answer, Digits: []string{"2"}},
	}
	r := newRig(t, callees, 40*time.Millisecond)
	for i, n := range []string{"+1000", "+1001", "+1002", "+1003", "+1004", "+1005", "+1006", "+1007", "+1008"} {
		r.ctl.add(lease(string(rune('a'+i)), n))
	}
	eventually(t, 15*time.Second, "9 results", func() bool {
		r.ctl.mu.Lock()
		defer r.ctl.mu.Unlock()
		return len(r.ctl.results) == 9
	})
	tests := []struct {
		id, disp, path string
		cause          int
		answered       bool
		tag            string
	}{
		{"a", nodeapi.DispAnswered, "[detect welcome q1 yes bye]", 16, true, "yes"},
		{"b", nodeapi.DispBusy, "[]", 17, false, ""},
		{"c", nodeapi.DispNoAnswer, "[]", 19, false, ""},
		{"d", nodeapi.DispCongestion, "[]", 34, false, ""},
		{"e", nodeapi.DispFailed, "[]", 127, false, ""},
		{"f", nodeapi.DispMachine, "[detect vm bye]", 16, true, ""},
		{"g", nodeapi.DispCutOff, "[detect welcome]", 16, true, ""},
		{"h", nodeapi.DispAnswered, "[detect welcome q1 bye]", 16, true, ""},
		{"i", nodeapi.DispAnswered, "[detect welcome q1 no bye]", 16, true, "no"},
	}
	for _, tt := range tests {
		got, _ := r.ctl.result(tt.id)
		if got.Disposition != tt.disp || fmtPath(got.Path) != tt.path || got.Cause != tt.cause {
			t.Errorf("call %s: got %s %v cause %d, want %s %s cause %d", tt.id, got.Disposition, got.Path, got.Cause, tt.disp, tt.path, tt.cause)
		}
		if got.Token != "t-"+tt.id {
			t.Errorf("call %s: token %q", tt.id, got.Token)
		}
		if (got.AnsweredAt != 0) != tt.answered || got.StartedAt == 0 || got.EndedAt < got.StartedAt {
			t.Errorf("call %s: times started %d answered %d ended %d", tt.id, got.StartedAt, got.AnsweredAt, got.EndedAt)
		}
		if got.Tags["answer"] != tt.tag {
			t.Errorf("call %s: tag answer=%q, want %q", tt.id, got.Tags["answer"], tt.tag)
		}
	}
	eventually(t, 5*time.Second, "queue empty", func() bool { return r.agent.Status().Pending == 0 })
	st := r.agent.Status()
	if st.ActiveCalls != 0 || st.Pending != 0 || !st.TimingOK || st.AudioVersion != "v1" {
		t.Errorf("status after calls: %+v", st)
	}
	r.ctl.mu.Lock()
	defer r.ctl.mu.Unlock()
	for _, n := range r.ctl.nexts {
		if n.Free < 1 || n.Free > 10 {
			t.Errorf("dialer.next asked for %d slots", n.Free)
		}
	}
}

func TestAMIReconnect(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+2000": {Outcome: asterisksim.Answer, Digits: []string{"1"}},
		"+2001": {Outcome: asterisksim.Answer, Digits: []string{"2"}},
	}, 150*time.Millisecond)
	eventually(t, 5*time.Second, "ami up", func() bool { return r.agent.Status().AMIConnected })
	r.ctl.add(lease("x1", "+2000"))
	eventually(t, 5*time.Second, "call in progress", func() bool { return r.sim.Stats().Active == 1 })
	// Lose the AMI session while the call is in its IVR: its Hangup event
	// is lost, the IVR still ends it.
	r.sim.DropAMI()
	eventually(t, 5*time.Second, "ami reconnected", func() bool { return r.agent.Status().AMIConnected })
	eventually(t, 10*time.Second, "first result", func() bool { _, ok := r.ctl.result("x1"); return ok })
	if got, _ := r.ctl.result("x1"); got.Disposition != nodeapi.DispAnswered {
		t.Errorf("x1 after reconnect: %+v", got)
	}
	r.ctl.add(lease("x2", "+2001"))
	eventually(t, 10*time.Second, "call after reconnect", func() bool { _, ok := r.ctl.result("x2"); return ok })
	if got, _ := r.ctl.result("x2"); got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[detect welcome q1 no bye]" {
		t.Errorf("x2: %+v", got)
	}
	// While AMI is down the node reports not ready and pulls nothing.
	r.ctl.mu.Lock()
	hb := r.ctl.heartbeats
	r.ctl.mu.Unlock()
	if len(hb) == 0 || !hb[len(hb)-1].Ready() {
		t.Errorf("last heartbeat not ready: %+v", hb)
	}
}

// An Originate whose reply is lost with the AMI session may have placed
// the call: the agent keeps it and takes its outcome from the channel and
// the IVR, rather than recording a failure while the callee's phone rings.
func TestOriginateReplyLost(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+2100": {Outcome: asterisksim.Answer, Digits: []string{"1"}},
	}, 50*time.Millisecond)
	eventually(t, 5*time.Second, "ami up", func() bool { return r.agent.Status().AMIConnected })
	r.sim.LoseNextOriginateReply()
	r.ctl.add(lease("y1", "+2100"))
	eventually(t, 10*time.Second, "result", func() bool { _, ok := r.ctl.result("y1"); return ok })
	if got, _ := r.ctl.result("y1"); got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[detect welcome q1 yes bye]" {
		t.Errorf("y1 after a lost originate reply: %+v", got)
	}
	if n := r.sim.Stats().Originates; n != 1 {
		t.Errorf("%d originates, want 1", n)
	}
}

func TestControllerOutageResultsSurviveRestart(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+3000": {Outcome: asterisksim.Answer, Digits: []string{"1"}},
		"+3001": {Outcome: asterisksim.Busy},
	}, 20*time.Millisecond)
	r.ctl.set(func(f *fakeController) { f.resultDown = true })
	r.ctl.add(lease("o1", "+3000"), lease("o2", "+3001"))
	// Both calls ended and both results pending. Pending alone is not
	// enough: while a result is being written it counts both as queued
	// and as not yet queued (it errs high, never low, so that a draining
	// node never reports itself empty too soon).
	eventually(t, 10*time.Second, "two results queued", func() bool {
		st := r.agent.Status()
		return st.ActiveCalls == 0 && st.Pending == 2
	})
	// The agent restarts while the controller is still unreachable.
	r.stopAgent()
	r.ctl.set(func(f *fakeController) { f.resultDown = false })
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.start(agiLn, amiAddrOf(r))
	eventually(t, 10*time.Second, "results delivered after restart", func() bool {
		_, ok1 := r.ctl.result("o1")
		_, ok2 := r.ctl.result("o2")
		return ok1 && ok2
	})
	if got, _ := r.ctl.result("o1"); got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[detect welcome q1 yes bye]" {
		t.Errorf("o1: %+v", got)
	}
	if got, _ := r.ctl.result("o2"); got.Disposition != nodeapi.DispBusy {
		t.Errorf("o2: %+v", got)
	}
	eventually(t, 5*time.Second, "queue empty", func() bool { return r.agent.Status().Pending == 0 })
}

func amiAddrOf(r *rig) string { return r.agent.cfg.AMIAddr }

func TestDrainWithCallsInProgress(t *testing.T) {
	callees := map[string]asterisksim.Callee{}
	for _, n := range []string{"+4000", "+4001", "+4002"} {
		callees[n] = asterisksim.Callee{Outcome: asterisksim.Answer, Digits: []string{"1"}}
	}
	r := newRig(t, callees, 150*time.Millisecond)
	r.ctl.add(lease("d1", "+4000"), lease("d2", "+4001"), lease("d3", "+4002"))
	eventually(t, 5*time.Second, "3 calls in progress", func() bool { return r.agent.Status().ActiveCalls == 3 })
	r.ctl.set(func(f *fakeController) { f.drain = true })
	eventually(t, 5*time.Second, "draining", func() bool { return r.agent.Status().Draining })
	r.ctl.add(lease("late", "+4000"))
	eventually(t, 10*time.Second, "drained heartbeat", func() bool {
		r.ctl.mu.Lock()
		defer r.ctl.mu.Unlock()
		for _, h := range r.ctl.heartbeats {
			if h.Draining && h.ActiveCalls == 0 {
				return true
			}
		}
		return false
	})
	for _, id := range []string{"d1", "d2", "d3"} {
		if got, ok := r.ctl.result(id); !ok || got.Disposition != nodeapi.DispAnswered {
			t.Errorf("%s: %+v (drain must let calls finish)", id, got)
		}
	}
	if _, ok := r.ctl.result("late"); ok {
		t.Error("a call was pulled while draining")
	}
	// Undrain: the waiting call goes out.
	r.ctl.set(func(f *fakeController) { f.drain = false })
	eventually(t, 10*time.Second, "call after undrain", func() bool { _, ok := r.ctl.result("late"); return ok })
}

func TestSpotNoticeDrains(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+5000": {Outcome: asterisksim.Answer}}, 20*time.Millisecond)
	eventually(t, 5*time.Second, "ready", func() bool { st := r.agent.Status(); return st.Registered && st.TimingOK })
	r.spot.mu.Lock()
	r.spot.notice = true
	r.spot.mu.Unlock()
	eventually(t, 10*time.Second, "spot heartbeat", func() bool {
		r.ctl.mu.Lock()
		defer r.ctl.mu.Unlock()
		n := len(r.ctl.heartbeats)
		return n > 0 && r.ctl.heartbeats[n-1].SpotNotice && r.ctl.heartbeats[n-1].Draining
	})
	r.ctl.add(lease("s1", "+5000"))
	time.Sleep(200 * time.Millisecond)
	if _, ok := r.ctl.result("s1"); ok || r.sim.Stats().Originates != 0 {
		t.Error("a call was placed after the spot notice")
	}
	// The controller cannot cancel a spot drain.
	r.agent.Drain(false)
	time.Sleep(100 * time.Millisecond)
	if !r.agent.Status().Draining {
		t.Error("spot drain was cancelled")
	}
}

func TestOverXMLRPC(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+6000": {Outcome: asterisksim.Answer, Digits: []string{"2"}}}, 20*time.Millisecond)
	r.stopAgent()
	srv := httptest.NewServer(xmlrpcFake(r.ctl))
	defer srv.Close()
	r.rpcURL = srv.URL + "/RPC2"
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.sim.AGI = "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}"
	r.start(agiLn, amiAddrOf(r))
	r.ctl.add(lease("r1", "+6000"))
	eventually(t, 10*time.Second, "result over XML-RPC", func() bool { _, ok := r.ctl.result("r1"); return ok })
	got, _ := r.ctl.result("r1")
	if got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[detect welcome q1 no bye]" || got.Tags["answer"] != "no" {
		t.Errorf("r1 over XML-RPC: %+v", got)
	}
}

func TestNotReadyWhileAsteriskDown(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+7000": {Outcome: asterisksim.Answer}}, 20*time.Millisecond)
	eventually(t, 5*time.Second, "ready", func() bool { st := r.agent.Status(); return st.TimingOK && st.AMIConnected })
	r.sim.StopAMI()
	eventually(t, 5*time.Second, "not-ready heartbeat", func() bool {
		r.ctl.mu.Lock()
		defer r.ctl.mu.Unlock()
		n := len(r.ctl.heartbeats)
		return n > 0 && !r.ctl.heartbeats[n-1].AMIConnected && !r.ctl.heartbeats[n-1].Ready()
	})
	r.ctl.mu.Lock()
	pulls := len(r.ctl.nexts)
	r.ctl.mu.Unlock()
	r.ctl.add(lease("n1", "+7000"))
	time.Sleep(300 * time.Millisecond)
	r.ctl.mu.Lock()
	defer r.ctl.mu.Unlock()
	if len(r.ctl.nexts) != pulls || len(r.ctl.queue) != 1 {
		t.Errorf("work pulled while Asterisk was down: %d pulls before, %d after", pulls, len(r.ctl.nexts))
	}
}

func TestMissingPromptIsFailedInputNotHangup(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+8000": {Outcome: asterisksim.Answer, Digits: []string{"1"}}}, 20*time.Millisecond)
	if err := os.Remove(filepath.Join(r.sim.Sounds, "elastidial", "survey", "welcome.wav")); err != nil {
		t.Fatal(err)
	}
	r.ctl.add(lease("m1", "+8000"))
	eventually(t, 10*time.Second, "result", func() bool { _, ok := r.ctl.result("m1"); return ok })
	got, _ := r.ctl.result("m1")
	if got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[detect welcome q1 yes bye]" {
		t.Errorf("m1: %+v", got)
	}
	// The flow handled the failure; the result still names it.
	if got.Tags[TagIVRError] != `STREAM FILE "elastidial/survey/welcome" "" → 200 result=-1 endpos=0` {
		t.Errorf("m1 tags: %v", got.Tags)
	}
	r.ctl.mu.Lock()
	defer r.ctl.mu.Unlock()
	var inputs []string
	for _, s := range r.ctl.steps {
		inputs = append(inputs, s.State+":"+s.Input)
	}
	if fmtPath(inputs) != "[:start detect:human welcome:failed q1:digits yes:done]" {
		t.Errorf("inputs: %v", inputs)
	}
}

func TestRecordAndTransfer(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+9000": {Outcome: asterisksim.Answer, TransferAnswered: true},
		"+9001": {Outcome: asterisksim.Answer},
	}, 20*time.Millisecond)
	a, b := lease("t1", "+9000"), lease("t2", "+9001")
	a.CampaignID, b.CampaignID = "xfer", "xfer"
	r.ctl.add(a, b)
	eventually(t, 10*time.Second, "results", func() bool {
		_, ok1 := r.ctl.result("t1")
		_, ok2 := r.ctl.result("t2")
		return ok1 && ok2
	})
	if got, _ := r.ctl.result("t1"); got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[rec xfer]" || got.Recording != nodeapi.RecordingKey("t1", "t-t1") || r.ctl.recordingOf(got.Recording) == nil {
		t.Errorf("answered transfer: %+v", got)
	}
	if got, _ := r.ctl.result("t2"); got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[rec xfer bye]" || got.Tags["xfer"] != nodeapi.InputFailed {
		t.Errorf("unanswered transfer: %+v", got)
	}
}

// AMD's four answers: NOTSURE takes the human branch, tagged; HANGUP is a
// callee gone (cut off), never a human.
func TestAMDStatuses(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+9100": {Outcome: asterisksim.Answer, AMDStatus: "NOTSURE", Digits: []string{"1"}},
		"+9101": {Outcome: asterisksim.Answer, AMDStatus: "HANGUP"},
		"+9102": {Outcome: asterisksim.Answer, AMDStatus: "HUMAN", Digits: []string{"2"}},
		"+9103": {Outcome: asterisksim.Answer, AMDStatus: "MACHINE"},
	}, 20*time.Millisecond)
	r.ctl.add(lease("n1", "+9100"), lease("n2", "+9101"), lease("n3", "+9102"), lease("n4", "+9103"))
	eventually(t, 10*time.Second, "results", func() bool {
		r.ctl.mu.Lock()
		defer r.ctl.mu.Unlock()
		return len(r.ctl.results) == 4
	})
	for _, tt := range []struct{ id, disp, path, amd string }{
		{"n1", nodeapi.DispAnswered, "[detect welcome q1 yes bye]", "notsure"},
		{"n2", nodeapi.DispCutOff, "[detect]", ""},
		{"n3", nodeapi.DispAnswered, "[detect welcome q1 no bye]", "human"},
		{"n4", nodeapi.DispMachine, "[detect vm bye]", "machine"},
	} {
		got, _ := r.ctl.result(tt.id)
		if got.Disposition != tt.disp || fmtPath(got.Path) != tt.path || got.Tags[TagAMD] != tt.amd {
			t.Errorf("%s: %s %v amd=%q, want %s %s amd=%q", tt.id, got.Disposition, got.Path, got.Tags[TagAMD], tt.disp, tt.path, tt.amd)
		}
	}
}

// Without app_amd (no amd.conf) EXEC AMD answers -2: the agent must not
// take every callee for a human. The fake flow has a failed branch on
// detect (to welcome), so the call goes on, tagged with the failure.
func TestAMDNotLoadedIsAFailureNotAHuman(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+9200": {Outcome: asterisksim.Answer, Machine: true}}, 20*time.Millisecond,
		func(s *asterisksim.Sim) { s.Apps = asterisksim.DefaultApps })
	r.ctl.add(lease("a1", "+9200"))
	eventually(t, 10*time.Second, "result", func() bool { _, ok := r.ctl.result("a1"); return ok })
	got, _ := r.ctl.result("a1")
	if got.Disposition != nodeapi.DispAnswered || got.Tags[TagIVRError] != `EXEC "AMD" "" → 200 result=-2` || got.Tags[TagAMD] != "" {
		t.Errorf("a1: %+v", got)
	}
	r.ctl.mu.Lock()
	defer r.ctl.mu.Unlock()
	if len(r.ctl.steps) < 2 || r.ctl.steps[1].Input != nodeapi.InputFailed {
		t.Errorf("detect reported %+v, want failed", r.ctl.steps)
	}
}

// A failure the flow handled earlier does not make a later failed input
// (a transfer not answered, no failed branch) an IVR failure.
func TestHandledFailureDoesNotLeakIntoLaterSteps(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+9300": {Outcome: asterisksim.Answer}}, 20*time.Millisecond)
	if err := os.Remove(filepath.Join(r.sim.Sounds, "recordings")); err != nil {
		t.Fatal(err)
	}
	c := lease("h1", "+9300")
	c.CampaignID = "xfer-implicit"
	r.ctl.add(c)
	eventually(t, 10*time.Second, "result", func() bool { _, ok := r.ctl.result("h1"); return ok })
	got, _ := r.ctl.result("h1")
	if got.Disposition != nodeapi.DispAnswered || fmtPath(got.Path) != "[rec xfer]" || got.Recording != "" ||
		!strings.Contains(got.Tags[TagIVRError], "(writefile)") {
		t.Errorf("h1: %+v", got)
	}
}

// An AMI that answers is not a node that can call: without the PJSIP
// channel driver (chan_pjsip declines to load when a module it requires is
// missing) or with the trunk unregistered, the node is not ready and pulls
// no work.
func TestNotReadyWithoutChannelDriverOrTrunk(t *testing.T) {
	for name, configure := range map[string]func(*asterisksim.Sim){
		"no chan_pjsip": func(s *asterisksim.Sim) { s.NoPJSIP = true },
		"trunk down":    func(s *asterisksim.Sim) { s.TrunkDown = true },
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, map[string]asterisksim.Callee{"+7000": {Outcome: asterisksim.Answer}}, 20*time.Millisecond, configure)
			r.ctl.add(lease("n1", "+7000"))
			eventually(t, 5*time.Second, "heartbeats with AMI up", func() bool {
				r.ctl.mu.Lock()
				defer r.ctl.mu.Unlock()
				n := len(r.ctl.heartbeats)
				return n >= 2 && r.ctl.heartbeats[n-1].AMIConnected && r.ctl.heartbeats[n-1].TimingOK
			})
			r.ctl.mu.Lock()
			defer r.ctl.mu.Unlock()
			hb := r.ctl.heartbeats[len(r.ctl.heartbeats)-1]
			if hb.Ready() || len(r.ctl.nexts) != 0 || len(r.ctl.queue) != 1 {
				t.Errorf("ready=%v channel=%v trunk=%v, %d pulls: want not ready and no work pulled", hb.Ready(), hb.ChannelOK, hb.TrunkOK, len(r.ctl.nexts))
			}
		})
	}
}

// An agent that restarts finds the calls its predecessor left in flight
// (killed before their results were queued), reports them, and only then
// takes new work: their contacts go back by the retry policy, never while
// an attempt may still be live.
func TestRestartSettlesCallsLeftInFlight(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{"+4000": {Outcome: asterisksim.Answer}}, 20*time.Millisecond)
	eventually(t, 5*time.Second, "ready", func() bool { st := r.agent.Status(); return st.Registered && st.TimingOK })
	r.stopAgent()
	// What a killed agent leaves: the record written before its Originate.
	j := inflight{dir: filepath.Join(r.state, "inflight")}
	if err := j.add(nodeapi.Call{CallID: "lost-1", Token: "t-lost-1", Number: "+4000", Trunk: "carrier"}, "", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.ctl.add(lease("new-1", "+4000"))
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.start(agiLn, amiAddrOf(r))
	eventually(t, 10*time.Second, "the orphan reported and the new call placed", func() bool {
		_, ok1 := r.ctl.result("lost-1")
		_, ok2 := r.ctl.result("new-1")
		return ok1 && ok2
	})
	r.ctl.mu.Lock()
	defer r.ctl.mu.Unlock()
	if got := r.ctl.results["lost-1"]; got.Disposition != nodeapi.DispNoAnswer || got.Token != "t-lost-1" {
		t.Errorf("orphan reported as %+v; want no_answer with its lease token", got)
	}
	if left, _ := j.list(); len(left) != 0 {
		t.Errorf("%d calls still recorded in flight", len(left))
	}
	if log := r.ctl.resultLog; len(log) < 2 || log[0].CallID != "lost-1" {
		t.Errorf("results in order %v: the orphan must be settled before new work", log)
	}
}

// TestHeartbeatListsHeldCalls: every heartbeat lists the calls the node
// holds, in progress or with their results queued and not delivered, so
// the controller keeps those leases and ends only the ones the node never
// got. The queued results stay listed across a restart of the agent.
func TestHeartbeatListsHeldCalls(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+6100": {Outcome: asterisksim.Answer, Digits: []string{"1"}},
		"+6101": {Outcome: asterisksim.Busy},
	}, 3*time.Second) // the answered call stays in its IVR a while
	r.ctl.set(func(f *fakeController) { f.resultDown = true })
	r.ctl.add(lease("h1", "+6100"), lease("h2", "+6101"))
	listed := func(calls string, active int) func() bool {
		return func() bool {
			r.ctl.mu.Lock()
			defer r.ctl.mu.Unlock()
			n := len(r.ctl.heartbeats)
			return n > 0 && r.ctl.heartbeats[n-1].CallsListed && r.ctl.heartbeats[n-1].Calls == calls && r.ctl.heartbeats[n-1].ActiveCalls == active
		}
	}
	eventually(t, 10*time.Second, "a heartbeat listing h1 in progress and h2 queued", listed("h1,h2", 1))
	if st := r.agent.Status(); st.Pending != 1 {
		t.Fatalf("pending %d, want h2's result queued", st.Pending)
	}
	// The agent restarts (cutting h1 off) while results cannot be
	// delivered: both are queued and still listed.
	r.stopAgent()
	r.ctl.set(func(f *fakeController) { f.heartbeats = nil })
	agiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.sim.AGI = "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}"
	r.start(agiLn, amiAddrOf(r))
	eventually(t, 10*time.Second, "a heartbeat listing both queued results after the restart", listed("h1,h2", 0))
	r.ctl.set(func(f *fakeController) { f.resultDown = false })
	eventually(t, 10*time.Second, "results delivered", func() bool {
		_, ok1 := r.ctl.result("h1")
		_, ok2 := r.ctl.result("h2")
		return ok1 && ok2
	})
	eventually(t, 10*time.Second, "a heartbeat listing no call", listed("", 0))
}
