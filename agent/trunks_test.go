package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/nodeapi"
)

func TestRenderTrunks(t *testing.T) {
	conf, err := renderTrunks("v1", []nodeapi.TrunkConfig{
		{Name: "b", Host: "sip.example.net:5080", Username: "acct", Password: "pw!", Register: true},
		{Name: "ip-only", Host: "[2001:db8::1]:5060"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"[b](trunk-endpoint)\naors = b\nfrom_user = acct\noutbound_auth = b-auth\n",
		"[b-auth]\ntype = auth\nauth_type = userpass\nusername = acct\npassword = pw!\n",
		"[b]\ntype = aor\ncontact = sip:sip.example.net:5080\nqualify_frequency = 30\n",
		"[b-identify]\ntype = identify\nendpoint = b\nmatch = sip.example.net\n",
		"[b-registration]\ntype = registration\noutbound_auth = b-auth\nserver_uri = sip:sip.example.net:5080\nclient_uri = sip:acct@sip.example.net:5080\n",
		"[ip-only](trunk-endpoint)\naors = ip-only\n\n[ip-only]\ntype = aor\ncontact = sip:[2001:db8::1]:5060\n",
		"match = 2001:db8::1\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "ip-only-auth") || strings.Contains(conf, "ip-only-registration") {
		t.Errorf("credentials for an IP trunk:\n%s", conf)
	}
	// Whatever the controller sends, no value starts a line, a section or
	// a comment.
	for _, bad := range []nodeapi.TrunkConfig{
		{Name: "x\n[evil]", Host: "h"},
		{Name: "x", Host: "h\ntype = endpoint"},
		{Name: "x", Host: "h", Username: "u", Password: "p;comment"},
		{Name: "x", Host: "h", Username: "u\n", Password: "p"},
		{Name: "x", Host: "h", Register: true},
		{Name: "", Host: "h"},
	} {
		if _, err := renderTrunks("v", []nodeapi.TrunkConfig{bad}); err == nil {
			t.Errorf("rendered %+v", bad)
		}
	}
	if _, err := renderTrunks("v", []nodeapi.TrunkConfig{{Name: "a", Host: "h"}, {Name: "a", Host: "h2"}}); err == nil {
		t.Errorf("rendered one trunk twice")
	}
}

// Lines as Asterisk 22 prints them.
func TestTrunkHealth(t *testing.T) {
	regs := []string{
		"",
		" <Registration/ServerURI..............................>  <Auth....................>  <Status.......>",
		"==========================================================================================",
		"",
		" carrier-registration/sip:127.0.0.1:5070                carrier-auth                Registered        (exp. 3577s)",
		" other-registration/sip:127.0.0.1:5090                  other-auth                  Rejected",
		"",
		"Objects found: 2",
	}
	contacts := []string{
		"  Contact:  <Aor/ContactUri..............................> <Hash....> <Status> <RTT(ms)..>",
		"==========================================================================================",
		"",
		"  Contact:  carrier/sip:127.0.0.1:5070                     b1a8dd8f5c Avail         1.234",
		"  Contact:  second/sip:127.0.0.1:5070                      c2a8dd8f5c Avail         0.982",
		"  Contact:  dead/sip:127.0.0.9:5070                        d3a8dd8f5c Unavail       nan",
		"  Contact:  other/sip:127.0.0.1:5090                       e4a8dd8f5c Avail         1.000",
		"  Contact:  fresh/sip:127.0.0.1:5099                       f5a8dd8f5c Unknown       nan",
		"",
		"Objects found: 5",
	}
	up, down := trunkHealth(regs, contacts)
	if strings.Join(up, ",") != "carrier,second" || strings.Join(down, ",") != "dead,other" {
		t.Fatalf("up %v, down %v", up, down)
	}
}

// TestFailoverOnCongestion: a call refused as congested goes again at
// once on the trunk the controller names, with a channel id of its own,
// as the same call; when the controller has no trunk left the result is
// reported as usual. Busy and answered calls are never failed over.
func TestFailoverOnCongestion(t *testing.T) {
	r := newRig(t, map[string]asterisksim.Callee{
		"+5000": {Outcome: asterisksim.Congestion},
		"+5001": {Outcome: asterisksim.Busy},
		"+5002": {Outcome: asterisksim.Answer, Digits: []string{"1"}},
	}, 20*time.Millisecond)
	r.ctl.set(func(f *fakeController) { f.failoverTo = []string{"backup"} })
	r.ctl.add(lease("f1", "+5000"), lease("f2", "+5001"), lease("f3", "+5002"))
	eventually(t, 10*time.Second, "three results", func() bool {
		_, a := r.ctl.result("f1")
		_, b := r.ctl.result("f2")
		_, c := r.ctl.result("f3")
		return a && b && c
	})
	r.ctl.mu.Lock()
	fos := slices.Clone(r.ctl.failovers)
	r.ctl.mu.Unlock()
	if len(fos) != 2 || fos[0].CallID != "f1" || fos[0].Cause != 34 || fos[0].Token != "t-f1" || fos[1].CallID != "f1" {
		t.Fatalf("failovers asked: %+v", fos)
	}
	if got, _ := r.ctl.result("f1"); got.Disposition != nodeapi.DispCongestion || got.Cause != 34 {
		t.Errorf("f1 after its trunks ran out: %+v", got)
	}
	if got, _ := r.ctl.result("f2"); got.Disposition != nodeapi.DispBusy {
		t.Errorf("f2: %+v", got)
	}
	if got, _ := r.ctl.result("f3"); got.Disposition != nodeapi.DispAnswered {
		t.Errorf("f3: %+v", got)
	}
	if n := r.sim.Stats().Originates; n != 4 {
		t.Errorf("%d originates, want 4 (f1 twice)", n)
	}
	if st := r.agent.Status(); st.ActiveCalls != 0 {
		t.Errorf("%d calls still tracked", st.ActiveCalls)
	}
}
