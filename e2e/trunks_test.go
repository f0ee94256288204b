package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/realasterisk"
)

// trunk is a trunk as GET /trunks shows it.
type trunk struct {
	Name   string
	Host   string
	Health struct {
		Up          bool
		Reason      string
		Reachable   int `json:"nodes_reachable"`
		Unreachable int `json:"nodes_unreachable"`
	}
}

func (s *system) trunk(name string) (trunk, bool) {
	var ts []trunk
	s.api("GET", "/trunks", "", nil, &ts)
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return trunk{}, false
}

// Trunks at runtime on the real thing: trunks added through the API reach
// the running node (written into its PJSIP configuration, res_pjsip
// reloaded, no re-launch); a call goes out through the new trunk; a call
// the first trunk of a group refuses with SIP 503 goes again at once on
// the next one and is answered there; a trunk whose carrier does not
// answer OPTIONS is out of rotation, visibly, and back once it answers.
func TestTrunksAtRuntimeOnRealAsterisk(t *testing.T) {
	s := start(t)
	region, prefix := numbering(time.Now())
	s.upload("e2e", map[string][]byte{"hello": prompt(1)})
	s.json("PUT", "/trunks/carrier", map[string]any{"max_channels": 40, "max_cps": 20}, nil)
	const flow = `{"name":"trunks","start":"hello","states":{"hello":{"play":["e2e/hello"],"next":"bye"},"bye":{"hangup":true}}}`
	campaign := func(name string, trunks []string, digits string, ring int) string {
		var cp struct{ ID string }
		s.json("POST", "/campaigns", map[string]any{"name": name, "trunks": trunks, "caller_id": "+14155550100",
			"target": 5, "max_cps": 5, "ring_seconds": ring, "max_attempts": 1}, &cp)
		s.api("PUT", "/campaigns/"+cp.ID+"/flow", "application/json", strings.NewReader(flow), nil)
		var rep struct{ Imported int }
		s.api("POST", "/campaigns/"+cp.ID+"/contacts?region="+region, "text/csv", strings.NewReader("phone\n"+prefix+digits+"\n"), &rep)
		if rep.Imported != 1 {
			t.Fatalf("import: %+v", rep)
		}
		s.api("POST", "/campaigns/"+cp.ID+"/start", "", nil, nil)
		return cp.ID
	}
	// A first call on the first-boot trunk brings the node up and holds
	// it (06 rings, unanswered, for 240 s) while trunks are added.
	first := campaign("first-boot trunk", []string{"carrier"}, "06", 240)
	waitFor(t, s, 2*time.Minute, "the node ringing on its first-boot trunk", func() bool {
		var st struct {
			InProgress int `json:"in_progress"`
		}
		s.api("GET", "/campaigns/"+first+"/stats", "", nil, &st)
		return st.InProgress == 1 && len(s.carrier.LiveCalls(t)) == 1
	})

	// Two trunks on the running node: the carrier's second account, and
	// its jammed one, which refuses every call with 503.
	c := s.carrier
	s.json("PUT", "/trunks/second", map[string]any{"max_channels": 10, "max_cps": 5, "host": c.Host, "username": c.SecondUser, "password": c.Password}, nil)
	s.json("PUT", "/trunks/jammed", map[string]any{"max_channels": 10, "max_cps": 5, "host": c.Host, "username": c.JammedUser, "password": c.Password}, nil)
	// 10: a person says hello and listens.
	direct := campaign("through the new trunk", []string{"second"}, "10", 10)
	failover := campaign("failing over", []string{"jammed", "second"}, "10", 10)
	waitFor(t, s, 90*time.Second, "the node to qualify the new trunks", func() bool {
		a, _ := s.trunk("second")
		b, _ := s.trunk("jammed")
		f, _ := s.trunk("carrier")
		return a.Health.Reachable == 1 && b.Health.Reachable == 1 && f.Health.Reachable == 1
	})
	conf, err := os.ReadFile(s.node.TrunksConf)
	if err != nil || !strings.Contains(string(conf), "[second](trunk-endpoint)") || !strings.Contains(string(conf), "from_user = "+c.JammedUser) {
		t.Fatalf("node's trunk configuration: %v\n%s", err, conf)
	}
	if out := s.node.CLI(t, "pjsip show endpoints"); !strings.Contains(out, "second") || !strings.Contains(out, "jammed") {
		t.Fatalf("Asterisk has not loaded the new trunks:\n%s", out)
	}
	type stats struct {
		Failovers map[string]int
	}
	for _, id := range []string{direct, failover} {
		waitFor(t, s, 2*time.Minute, "the call of campaign "+id, func() bool { return len(s.results(id)) >= 1 })
	}
	for _, id := range []string{direct, failover} {
		rs := s.results(id)
		if len(rs) != 1 || rs[0].Disposition != "answered" || rs[0].Attempt != 1 || fmt.Sprint(rs[0].Path) != "[hello bye]" {
			t.Errorf("campaign %s: %+v", id, rs)
		}
	}
	var st stats
	s.api("GET", "/campaigns/"+failover+"/stats", "", nil, &st)
	if st.Failovers["jammed"] != 1 {
		t.Errorf("failovers %v, want one from jammed", st.Failovers)
	}
	var st2 stats // a fresh one: decoding into st would merge its map
	s.api("GET", "/campaigns/"+direct+"/stats", "", nil, &st2)
	if len(st2.Failovers) != 0 {
		t.Errorf("failovers on the direct campaign: %v", st2.Failovers)
	}
	// A trunk whose carrier does not answer OPTIONS: out of rotation,
	// and the API says why; pointed at a carrier that answers, it is
	// back (the node rewrites and reloads its configuration again).
	dead := "127.0.0.1:" + fmt.Sprint(realasterisk.FreePort(t))
	s.json("PUT", "/trunks/spare", map[string]any{"max_channels": 10, "max_cps": 5, "host": dead}, nil)
	waitFor(t, s, 90*time.Second, "the spare trunk out of rotation", func() bool {
		x, _ := s.trunk("spare")
		return !x.Health.Up && x.Health.Unreachable == 1
	})
	if x, _ := s.trunk("spare"); !strings.Contains(x.Health.Reason, "unreachable") {
		t.Errorf("spare trunk's health: %+v", x.Health)
	}
	s.json("PUT", "/trunks/spare", map[string]any{"max_channels": 10, "max_cps": 5, "host": c.Host, "username": c.SecondUser, "password": c.Password}, nil)
	waitFor(t, s, 90*time.Second, "the spare trunk back in rotation", func() bool {
		x, _ := s.trunk("spare")
		return x.Health.Up && x.Health.Reachable == 1
	})
	if !strings.Contains(s.logs(), `"to":"second"`) && !strings.Contains(s.logs(), "to=second") {
		t.Errorf("agent log does not show the failover to second")
	}
}
