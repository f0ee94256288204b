package xmlrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kolo "github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
)

type fakeNodes struct{ beats []nodeapi.HeartbeatRequest }

func (f *fakeNodes) Register(_ context.Context, r nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error) {
	return nodeapi.RegisterResponse{NodeID: "n-" + r.InstanceID, HeartbeatSeconds: 5, AudioVersion: "v1"}, nil
}

func (f *fakeNodes) Heartbeat(_ context.Context, id string, r nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	f.beats = append(f.beats, r)
	return nodeapi.HeartbeatResponse{Drain: id == "n-i-drainme", AudioVersion: "v1"}, nil
}

// fakeDialer leases numbered calls and owns them per node.
type fakeDialer struct {
	mu    sync.Mutex
	owner map[string]string
}

func (d *fakeDialer) Lease(_ context.Context, node string, max int) ([]nodeapi.Call, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []nodeapi.Call
	for i := range min(max, 3) {
		id := fmt.Sprintf("k%d-%d", len(d.owner), i)
		d.owner[id] = node
		out = append(out, nodeapi.Call{CallID: id, Token: "t-" + id, CampaignID: "c1", FlowVersion: 1, Number: "+12125550100"})
	}
	return out, nil
}

func (d *fakeDialer) Record(_ context.Context, node string, r nodeapi.ResultRequest) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.owner[r.CallID] == "":
		return false, faultf(nodeapi.FaultNotFound, "no call %s", r.CallID)
	case d.owner[r.CallID] != node:
		return false, faultf(nodeapi.FaultForbidden, "call %s belongs to another node", r.CallID)
	case r.Token != "t-"+r.CallID:
		return false, faultf(nodeapi.FaultStaleLease, "stale lease")
	}
	return true, nil
}

// countingSource serves the reminder flow and counts reads.
type countingSource struct{ reads atomic.Int64 }

func (c *countingSource) FlowDocument(_ context.Context, campaign string, version int) ([]byte, error) {
	c.reads.Add(1)
	if campaign != "c1" || version != 1 {
		return nil, errors.New("no such flow")
	}
	return examples.Reminder, nil
}

// node is a test node speaking through kolo's codec, as the agent does.
type node struct {
	t     *testing.T
	url   string
	token string
}

func (n *node) call(method string, arg, reply any) error {
	n.t.Helper()
	body, err := kolo.EncodeMethodCall(method, arg)
	if err != nil {
		n.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", n.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	if n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := kolo.Response(b)
	if err := r.Err(); err != nil {
		return err
	}
	return r.Unmarshal(reply)
}

func faultOf(err error) int {
	var fe kolo.FaultError
	if errorsAs(err, &fe) {
		return fe.Code
	}
	return 0
}

func newService(t *testing.T, flows *Flows) (*httptest.Server, *fakeNodes) {
	nodes := &fakeNodes{}
	svc := &Service{Secret: []byte("s3cret"), Nodes: nodes, Dialer: &fakeDialer{owner: map[string]string{}}, Flows: flows}
	srv := httptest.NewServer(svc.Server())
	t.Cleanup(srv.Close)
	return srv, nodes
}

func TestNodeSessionOverXMLRPC(t *testing.T) {
	srv, nodes := newService(t, &Flows{Source: &countingSource{}, Local: true})
	n := &node{t: t, url: srv.URL}

	var reg nodeapi.RegisterResponse
	if err := n.call(nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: "i-1", Capacity: 100}, &reg); faultOf(err) != nodeapi.FaultUnauthorized {
		t.Fatalf("register without secret: %v", err)
	}
	n.token = "wrong"
	if err := n.call(nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: "i-1"}, &reg); faultOf(err) != nodeapi.FaultUnauthorized {
		t.Fatalf("wrong secret: %v", err)
	}
	n.token = "s3cret"
	if err := n.call(nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: "i-1", Capacity: 100}, &reg); err != nil || reg.NodeID != "n-i-1" || reg.Token == "" {
		t.Fatalf("register: %+v %v", reg, err)
	}
	// The secret is not a node token.
	var hb nodeapi.HeartbeatResponse
	if err := n.call(nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{}, &hb); faultOf(err) != nodeapi.FaultUnauthorized {
		t.Fatalf("heartbeat with the secret: %v", err)
	}
	n.token = reg.Token
	if err := n.call(nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{ActiveCalls: 3, AMIConnected: true, TimingOK: true, ChannelOK: true, TrunkOK: true}, &hb); err != nil || hb.AudioVersion != "v1" || nodes.beats[0].ActiveCalls != 3 {
		t.Fatalf("heartbeat: %+v %v", hb, err)
	}
	// The calls the node holds, as the agent's client sends them; an
	// agent that lists none (above) is told apart from an empty list.
	if err := n.call(nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{Calls: "k1-1,k2-3", CallsListed: true}, &hb); err != nil {
		t.Fatalf("heartbeat with calls: %v", err)
	}
	if got := nodes.beats[1].Held(); !slices.Equal(got, []string{"k1-1", "k2-3"}) || nodes.beats[0].Held() != nil {
		t.Fatalf("held calls %q, then %q: want k1-1,k2-3 and none listed", got, nodes.beats[0].Held())
	}
	// A forged token for another node id fails.
	forged := &node{t: t, url: srv.URL, token: "n-i-2." + reg.Token[len("n-i-1."):]}
	if err := forged.call(nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{}, &hb); faultOf(err) != nodeapi.FaultUnauthorized {
		t.Fatalf("forged token: %v", err)
	}

	var next nodeapi.NextResponse
	if err := n.call(nodeapi.MethodNext, nodeapi.NextRequest{Free: 2}, &next); err != nil || len(next.Calls) != 2 {
		t.Fatalf("next: %+v %v", next, err)
	}
	if err := n.call(nodeapi.MethodNext, nodeapi.NextRequest{Free: -1}, &next); faultOf(err) != nodeapi.FaultInvalidParams {
		t.Fatalf("negative free: %v", err)
	}
	c := next.Calls[0]

	// Walk the reminder flow: start, hello played, date said, press 9.
	step := func(state, input, digits string) nodeapi.StepResponse {
		var r nodeapi.StepResponse
		if err := n.call(nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: "c1", FlowVersion: 1, State: state, Input: input, Digits: digits, Fields: map[string]string{"first_name": "Ann", "appointment_date": "2026-03-14"}}, &r); err != nil {
			t.Fatalf("step %s/%s: %v", state, input, err)
		}
		return r
	}
	r := step("", nodeapi.InputStart, "")
	r = step(r.State, nodeapi.InputDone, "")
	// No speech engine: the text goes out with no audio, which the node
	// fails (the reminder goes on to the date).
	if r.State != "greet" || r.Action.Kind != nodeapi.ActionSpeak || len(r.Action.Files) != 0 {
		t.Fatalf("greet: %+v", r)
	}
	r = step(r.State, nodeapi.InputFailed, "")
	if r.Action.Kind != nodeapi.ActionSayDateTime || r.Action.Text != "1773446400" || r.Action.Format != "ABdY" {
		t.Fatalf("say the date: %+v", r)
	}
	r = step(step(r.State, nodeapi.InputDone, "").State, nodeapi.InputDigits, "9")
	if r.State != "opt_out_msg" || r.Tags["dnc"] != "true" {
		t.Fatalf("opt out: %+v", r)
	}
	var sr nodeapi.StepResponse
	if err := n.call(nodeapi.MethodStep, nodeapi.StepRequest{CampaignID: "c9", FlowVersion: 1, Input: nodeapi.InputStart}, &sr); faultOf(err) != nodeapi.FaultForbidden {
		t.Fatalf("a call never leased: %v", err)
	}
	lost := nodeapi.Call{CallID: "k9-1", Token: "t", CampaignID: "c9", FlowVersion: 1}
	lost.Token = (&Service{Secret: []byte("s3cret")}).LeaseToken(reg.NodeID, lost)
	if err := n.call(nodeapi.MethodStep, nodeapi.StepRequest{CallID: lost.CallID, Token: lost.Token, CampaignID: "c9", FlowVersion: 1, Input: nodeapi.InputStart}, &sr); faultOf(err) != nodeapi.FaultNotFound {
		t.Fatalf("unknown flow: %v", err)
	}

	var res nodeapi.ResultResponse
	if err := n.call(nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: "answered"}, &res); err != nil || !res.Recorded {
		t.Fatalf("result: %+v %v", res, err)
	}
	if err := n.call(nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: "old", Disposition: "answered"}, &res); faultOf(err) != nodeapi.FaultStaleLease {
		t.Fatalf("stale: %v", err)
	}
	// Another node cannot report this node's lease.
	other := &node{t: t, url: srv.URL, token: "s3cret"}
	var reg2 nodeapi.RegisterResponse
	other.call(nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: "i-2"}, &reg2)
	other.token = reg2.Token
	if err := other.call(nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: "answered"}, &res); faultOf(err) != nodeapi.FaultForbidden {
		t.Fatalf("other node's lease: %v", err)
	}
}

func TestFlowsSurviveMemcachedDeath(t *testing.T) {
	mc := testenv.StartMemcached(t)
	src := &countingSource{}
	flows := &Flows{Source: src, Memcache: NewMemcache([]string{mc.Addr}, 64, 100_000_000)}
	ctx := context.Background()
	for range 5 {
		if _, err := flows.Get(ctx, "c1", 1); err != nil {
			t.Fatal(err)
		}
	}
	if src.reads.Load() != 1 || flows.MemcacheHits.Load() != 4 {
		t.Fatalf("store reads %d, memcached hits %d; want 1 and 4", src.reads.Load(), flows.MemcacheHits.Load())
	}
	mc.Kill()
	for range 3 {
		if _, err := flows.Get(ctx, "c1", 1); err != nil {
			t.Fatalf("with memcached down: %v", err)
		}
	}
	if src.reads.Load() != 4 || flows.MemcacheErrors.Load() == 0 {
		t.Fatalf("down: store reads %d, errors %d", src.reads.Load(), flows.MemcacheErrors.Load())
	}
	mc.Start() // back, and empty: a flushed cache
	for range 3 {
		if _, err := flows.Get(ctx, "c1", 1); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	}
	if src.reads.Load() != 5 {
		t.Fatalf("after restart: store reads %d, want one refill", src.reads.Load())
	}
	// Versioned keys: a new version is never served from an old entry.
	if _, err := flows.Get(ctx, "c1", 2); err == nil {
		t.Fatal("version 2 does not exist, yet it was served")
	}
}

// stepLoad runs call.step from 8 keep-alive clients until stop is closed
// and returns how many steps succeeded and the first failure.
func stepLoad(url string, svc *Service, stop <-chan struct{}) (ok int64, slowest time.Duration, failure error) {
	token := svc.Token("n1")
	lease := svc.LeaseToken("n1", nodeapi.Call{CallID: "k1", Token: "t", CampaignID: "c1", FlowVersion: 1})
	body, _ := kolo.EncodeMethodCall(nodeapi.MethodStep, nodeapi.StepRequest{CallID: "k1", Token: lease, CampaignID: "c1", FlowVersion: 1, State: "menu", Input: nodeapi.InputDigits, Digits: "1"})
	var n atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					err = kolo.Response(b).Err()
				}
				mu.Lock()
				if err != nil && failure == nil {
					failure = err
				}
				slowest = max(slowest, time.Since(start))
				mu.Unlock()
				if err != nil {
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load(), slowest, failure
}

// Nodes never see memcached trouble: with memcached killed mid-run, then
// back empty, and with a memcached that accepts connections but never
// answers, every step succeeds from the store, and the trouble shows only
// in the counters.
func TestStepsUnderLoadSurviveMemcachedTrouble(t *testing.T) {
	mc := testenv.StartMemcached(t)
	src := &countingSource{}
	flows := &Flows{Source: src, Memcache: NewMemcache([]string{mc.Addr}, 64, 100*time.Millisecond)}
	svc := &Service{Secret: []byte("s"), Flows: flows}
	srv := httptest.NewServer(svc.Server())
	t.Cleanup(srv.Close)

	stop := make(chan struct{})
	done := make(chan error, 1)
	var steps int64
	go func() {
		var err error
		steps, _, err = stepLoad(srv.URL, svc, stop)
		done <- err
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("memcached hits", func() bool { return flows.MemcacheHits.Load() > 200 })
	mc.Kill()
	errs := flows.MemcacheErrors.Load()
	waitFor("reads with memcached down", func() bool { return flows.MemcacheErrors.Load() > errs+200 })
	mc.Start()
	hits := flows.MemcacheHits.Load()
	waitFor("memcached hits after the restart", func() bool { return flows.MemcacheHits.Load() > hits+200 })
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("a node saw memcached trouble: %v", err)
	}
	t.Logf("%d steps; memcached hits %d, errors %d; store reads %d", steps, flows.MemcacheHits.Load(), flows.MemcacheErrors.Load(), src.reads.Load())

	// A memcached that hangs: each read waits out the client's timeout,
	// then the store answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn // never answered; closed at the end
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
	flows.Memcache = NewMemcache([]string{hang.Addr().String()}, 64, 50*time.Millisecond)
	stop = make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	n, slowest, err := stepLoad(srv.URL, svc, stop)
	if err != nil || n == 0 {
		t.Fatalf("with memcached hanging: %d steps, %v", n, err)
	}
	if slowest > 2*time.Second {
		t.Fatalf("with memcached hanging a step took %v; the client timeout is 50ms", slowest)
	}
}

// TestStepOnlyForLeasedCalls: a node steps only the calls leased to it, in
// the campaign and flow version they were leased with.
func TestStepOnlyForLeasedCalls(t *testing.T) {
	srv, _ := newService(t, &Flows{Source: &countingSource{}, Local: true})
	reg := func(instance string) *node {
		n := &node{t: t, url: srv.URL, token: "s3cret"}
		var r nodeapi.RegisterResponse
		if err := n.call(nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: instance}, &r); err != nil {
			t.Fatal(err)
		}
		n.token = r.Token
		return n
	}
	a, b := reg("i-a"), reg("i-b")
	var next nodeapi.NextResponse
	if err := a.call(nodeapi.MethodNext, nodeapi.NextRequest{Free: 1}, &next); err != nil || len(next.Calls) != 1 {
		t.Fatalf("next: %+v %v", next, err)
	}
	c := next.Calls[0]
	step := func(n *node, callID, token, campaignID string, version int) error {
		var r nodeapi.StepResponse
		return n.call(nodeapi.MethodStep, nodeapi.StepRequest{CallID: callID, Token: token, CampaignID: campaignID, FlowVersion: version, Input: nodeapi.InputStart}, &r)
	}
	if err := step(a, c.CallID, c.Token, c.CampaignID, c.FlowVersion); err != nil {
		t.Fatalf("the leasing node's step: %v", err)
	}
	inner, _, _ := strings.Cut(c.Token, ".")
	for _, tc := range []struct {
		name                  string
		n                     *node
		callID, token, campID string
		version               int
	}{
		{"another node with the lease token", b, c.CallID, c.Token, c.CampaignID, c.FlowVersion},
		{"no token", a, c.CallID, "", c.CampaignID, c.FlowVersion},
		{"the store's token alone", a, c.CallID, inner, c.CampaignID, c.FlowVersion},
		{"a forged token", a, c.CallID, inner + ".AAAAAAAAAAAAAAAAAAAAAA", c.CampaignID, c.FlowVersion},
		{"another call id", a, "k999-1", c.Token, c.CampaignID, c.FlowVersion},
		{"another campaign", a, c.CallID, c.Token, "c2", c.FlowVersion},
		{"another flow version", a, c.CallID, c.Token, c.CampaignID, c.FlowVersion + 1},
	} {
		if err := step(tc.n, tc.callID, tc.token, tc.campID, tc.version); faultOf(err) != nodeapi.FaultForbidden {
			t.Errorf("%s: err = %v, want fault %d", tc.name, err, nodeapi.FaultForbidden)
		}
	}
	// The result carries the same token; the store checks it against the lease.
	var res nodeapi.ResultResponse
	if err := a.call(nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: "answered"}, &res); err != nil || !res.Recorded {
		t.Fatalf("result: %+v %v", res, err)
	}
}

// fixedAudio is an audio library at one version.
type fixedAudio struct{ version string }

func (a *fixedAudio) Version(context.Context) (string, error) { return a.version, nil }
func (a *fixedAudio) Manifest(_ context.Context, have string) (nodeapi.ManifestResponse, error) {
	return nodeapi.ManifestResponse{Version: a.version, Unchanged: have == a.version}, nil
}

// A node that does not hold the current audio gets no calls, only the
// version to sync: a call could otherwise reach a prompt it lacks.
func TestNextOnlyForNodesWithTheCurrentAudio(t *testing.T) {
	audio := &fixedAudio{version: "v2"}
	svc := &Service{Secret: []byte("s3cret"), Nodes: &fakeNodes{}, Dialer: &fakeDialer{owner: map[string]string{}}, Audio: audio}
	srv := httptest.NewServer(svc.Server())
	t.Cleanup(srv.Close)
	n := &node{t: t, url: srv.URL, token: svc.Token("n-i-1")}
	for _, tc := range []struct {
		have  string
		calls int
	}{{"", 0}, {"v1", 0}, {"v2", 2}} {
		var next nodeapi.NextResponse
		if err := n.call(nodeapi.MethodNext, nodeapi.NextRequest{Free: 2, AudioVersion: tc.have}, &next); err != nil {
			t.Fatal(err)
		}
		if len(next.Calls) != tc.calls || next.AudioVersion != "v2" {
			t.Errorf("node holding %q: %d calls, audio %q; want %d calls, audio v2", tc.have, len(next.Calls), next.AudioVersion, tc.calls)
		}
	}
}
