package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	kolo "github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/storage"
	"github.com/elastidial/elastidial/xmlrpc"
)

// served is a running `controller serve` for a test.
type served struct {
	base, token, db string
	call            func(method, path, body string) (int, string)

	t       *testing.T
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// upload sends an audio file to the library through the REST API.
func (s *served) upload(set, name string, data []byte) (int, string) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", s.base+"/api/v1/audio/"+set, &body)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rpc calls an XML-RPC method at /RPC2 as a node would: cred is the
// cluster secret (to register) or the node's token. A fault is the error;
// a failed request ends the test.
func (s *served) rpc(t testing.TB, cred, method string, arg, reply any) error {
	t.Helper()
	body, _ := kolo.EncodeMethodCall(method, arg)
	req, _ := http.NewRequest("POST", s.base+"/RPC2", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := kolo.Response(b).Err(); err != nil {
		return err
	}
	return kolo.Response(b).Unmarshal(reply)
}

// waitNodes waits until the fleet shows n launched nodes and returns their
// instance IDs. A launch the cloud has not answered yet shows as a node
// "requested" under its launch token, an ID no agent will ever register
// with: those are not counted.
func (s *served) waitNodes(t testing.TB, n int, within time.Duration) []string {
	t.Helper()
	var ids []string
	for deadline := time.Now().Add(within); len(ids) < n; time.Sleep(100 * time.Millisecond) {
		_, body := s.call("GET", "/api/v1/fleet", "")
		ids = launched(body)
		if len(ids) < n && time.Now().After(deadline) {
			t.Fatalf("fleet shows %d launched nodes after %s, want %d: %s", len(ids), within, n, body)
		}
	}
	return ids
}

// launched returns the instance IDs of the nodes a GET /api/v1/fleet
// body shows, leaving out the launches the cloud has not answered yet.
func launched(fleetBody string) []string {
	var fleet struct{ Nodes []struct{ ID, State string } }
	json.Unmarshal([]byte(fleetBody), &fleet)
	var ids []string
	for _, node := range fleet.Nodes {
		if node.State != "requested" {
			ids = append(ids, node.ID)
		}
	}
	return ids
}

// register registers the node of a launched instance; the agent retries
// while register refuses it (an instance the cloud does not list yet), as
// this does.
func (s *served) register(t testing.TB, instance string, capacity int) nodeapi.RegisterResponse {
	t.Helper()
	var reg nodeapi.RegisterResponse
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := s.rpc(t, "test-secret", nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: instance, Capacity: capacity}, &reg)
		if err == nil {
			return reg
		}
		if time.Now().After(deadline) {
			t.Fatalf("register %s: %v", instance, err)
		}
	}
}

// silence is a WAV of PCM 16-bit mono silence.
func silence(rate int, seconds float64) []byte {
	return storage.EncodeWAV(rate, make([]int16, int(float64(rate)*seconds)))
}

// startServe makes a token and serves on a free port until the test ends.
// The local cloud's nodes are stand-ins that never register: tests play
// the node themselves over XML-RPC.
func startServe(t *testing.T, extra ...string) *served {
	t.Helper()
	return newCluster(t, filepath.Join(t.TempDir(), "e2e.db")).serve(t, "nodes", extra...)
}

// cluster is what the serves of one test share: a store with an ops
// token, and a data folder with the stand-in agent the local cloud runs
// (a process that idles).
type cluster struct{ db, tok, dir, agent string }

func newCluster(t *testing.T, db string) *cluster {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-db", db, "ops"}, &out, io.Discard, bareEnv(t)); err != nil {
		t.Fatal(err)
	}
	c := &cluster{db: db, tok: strings.TrimSpace(out.String()), dir: t.TempDir()}
	c.agent = filepath.Join(c.dir, "idle-agent")
	if err := os.WriteFile(c.agent, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// serve runs `controller serve` on a free port until the test ends (or
// stop); its local nodes live in the folder name.
func (c *cluster) serve(t *testing.T, name string, extra ...string) *served {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{base: "http://" + addr, token: c.tok, db: c.db, t: t, cancel: cancel, done: make(chan error, 1)}
	serveEnv := func(k string) string { // secrets come from the environment, never flags
		if k == "ELASTIDIAL_CLUSTER_SECRET" {
			return "test-secret"
		}
		return ""
	}
	// serve's log is shown when the test fails: what it warned of (a
	// rendering that failed, a node refused) is most of a flake's story.
	var log syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve %s's log:\n%s", name, log.String())
		}
	})
	go func() {
		s.done <- run(ctx, append([]string{"serve", "-data", c.dir, "-db", c.db, "-listen", addr,
			"-agent-path", c.agent, "-local-dir", filepath.Join(c.dir, name), "-audio", filepath.Join(c.dir, "audio"), "-tick", "200ms"}, extra...), io.Discard, &log, serveEnv)
	}()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		select {
		case err := <-s.done:
			s.stopped = true
			t.Fatalf("serve %s ended: %v", name, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve %s did not come up: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.call = func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.token)
		if strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	return s
}

// stop ends serve as ops would (its context, as SIGTERM does) and waits
// for it to return, once.
func (s *served) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		s.t.Error("serve did not stop")
	}
}

// metric reads one unlabelled metric from /metrics; 0 when absent.
func (s *served) metric(name string) float64 {
	_, body := s.call("GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestServeEndToEnd runs the binary's own entry point the way ops would:
// make a token, serve, and drive the REST API over real HTTP.
func TestServeEndToEnd(t *testing.T) {
	srv := startServe(t)
	call := srv.call
	if code, body := call("PUT", "/api/v1/trunks/carrier", `{"max_channels":120,"max_cps":20}`); code != 200 {
		t.Fatalf("trunk: %d %s", code, body)
	}
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	code, body := call("POST", "/api/v1/campaigns", `{"name":"E2E","trunk":"carrier","caller_id":"`+where.callerID+`","target":10}`)
	if code != 201 || !strings.Contains(body, `"status": "draft"`) {
		t.Fatalf("campaign: %d %s", code, body)
	}
	var camp struct{ ID string }
	json.Unmarshal([]byte(body), &camp)
	hook := startHookReceiver(t) // every finished attempt is posted to it, signed
	useWebhook(t, call, camp.ID, hook.url)
	if code, body := call("GET", "/api/v1/campaigns", ""); code != 200 || !strings.Contains(body, "E2E") {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body := call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", `{"start":"a","states":{"a":{"play":["x/y"],"next":"nowhere"}}}`); code != 422 || !strings.Contains(body, `unknown state \"nowhere\"`) {
		t.Fatalf("invalid flow: %d %s", code, body)
	}
	// The reminder's prompts must be in the audio library before its flow
	// can be saved.
	if code, body := call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", string(examples.Reminder)); code != 422 || !strings.Contains(body, `prompt \"reminder/hello\" is not in the audio library`) {
		t.Fatalf("flow without audio: %d %s", code, body)
	}
	for _, p := range []string{"hello", "menu", "confirmed", "cancelled", "opted_out"} {
		if code, body := srv.upload("reminder", p+".wav", silence(8000, 0.5)); code != 201 {
			t.Fatalf("upload %s: %d %s", p, code, body)
		}
	}
	if code, body := call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", string(examples.Reminder)); code != 200 {
		t.Fatalf("flow: %d %s", code, body)
	}
	var manifest nodeapi.ManifestResponse
	if code, body := call("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "phone,first_name,appointment_date\n"+where.number(101)+",Ann,2026-03-14\n"); code != 200 || !strings.Contains(body, `"imported": 1`) {
		t.Fatalf("contacts: %d %s", code, body)
	}
	if code, body := call("POST", "/api/v1/campaigns/"+camp.ID+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}

	// The scaler saw the campaign's demand and launched a node for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := call("GET", "/metrics", "")
		if strings.Contains(body, "elastidial_launches_total 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no launch for the running campaign:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The node the scaler launched, speaking XML-RPC through the agent's
	// client library.
	nodes := srv.waitNodes(t, 1, 10*time.Second)
	if len(nodes) != 1 {
		t.Fatalf("fleet: %v, want the one node launched", nodes)
	}
	nodeID := nodes[0]
	rpcAs := func(cred, method string, arg, reply any) error { return srv.rpc(t, cred, method, arg, reply) }
	// Unknown nodes and tokens of an earlier registration get the fault
	// that makes an agent register again, not an internal error.
	var hb nodeapi.HeartbeatResponse
	if err := rpcAs((&xmlrpc.Service{Secret: []byte("test-secret")}).TokenFor("i-nobody", 1), nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{}, &hb); err == nil || !strings.Contains(err.Error(), "Fault(2)") {
		t.Fatalf("heartbeat of an unknown node: %v", err)
	}
	var reg nodeapi.RegisterResponse
	if err := rpcAs("test-secret", nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: "i-nobody"}, &reg); err == nil || !strings.Contains(err.Error(), "Fault(2)") {
		t.Fatalf("register of an instance never launched: %v", err)
	}
	if err := rpcAs("test-secret", nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: nodeID, Capacity: 100}, &reg); err != nil || reg.NodeID != nodeID {
		t.Fatalf("register: %+v %v", reg, err)
	}
	first := reg.Token
	if err := rpcAs("test-secret", nodeapi.MethodRegister, nodeapi.RegisterRequest{InstanceID: nodeID, Capacity: 100}, &reg); err != nil || reg.Token == first {
		t.Fatalf("register again: %+v %v", reg, err)
	}
	if err := rpcAs(first, nodeapi.MethodHeartbeat, nodeapi.HeartbeatRequest{}, &hb); err == nil || !strings.Contains(err.Error(), "Fault(2)") {
		t.Fatalf("heartbeat with the token of an earlier registration: %+v %v", hb, err)
	}
	node := func(method string, arg, reply any) error { return srv.rpc(t, reg.Token, method, arg, reply) }
	// A node without the campaign's audio gets no calls, only the version
	// to sync; holding it, it gets the call.
	var next nodeapi.NextResponse
	if err := node(nodeapi.MethodNext, nodeapi.NextRequest{Free: 5}, &next); err != nil || len(next.Calls) != 0 || next.AudioVersion == "" {
		t.Fatalf("dialer.next without audio: %+v %v", next, err)
	}
	var none nodeapi.NextResponse
	if err := rpcAs(first, nodeapi.MethodNext, nodeapi.NextRequest{Free: 5, AudioVersion: next.AudioVersion}, &none); err == nil || !strings.Contains(err.Error(), "Fault(2)") {
		t.Fatalf("dialer.next with the token of an earlier registration: %+v %v", none, err)
	}
	if err := node(nodeapi.MethodNext, nodeapi.NextRequest{Free: 5, AudioVersion: next.AudioVersion}, &next); err != nil || len(next.Calls) != 1 {
		t.Fatalf("dialer.next: %+v %v", next, err)
	}
	c := next.Calls[0]
	if c.Number != where.number(101) || c.Fields["appointment_date"] != "2026-03-14" || c.FlowVersion != 1 {
		t.Fatalf("call = %+v", c)
	}
	if err := node(nodeapi.MethodManifest, nodeapi.ManifestRequest{}, &manifest); err != nil || len(manifest.Files) != 5 {
		t.Fatalf("audio.manifest: %+v %v", manifest, err)
	}
	resp, err := http.Get(manifest.Files[0].URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed audio URL: %v %v", resp, err)
	}
	resp.Body.Close()
	var step nodeapi.StepResponse
	if err := node(nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: c.CampaignID, FlowVersion: c.FlowVersion, Input: nodeapi.InputStart, Fields: c.Fields}, &step); err != nil || step.Action.Kind != nodeapi.ActionPlay {
		t.Fatalf("call.step: %+v %v", step, err)
	}
	var res nodeapi.ResultResponse
	now := time.Now().Unix()
	if err := node(nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: nodeapi.DispAnswered, StartedAt: now - 40, AnsweredAt: now - 30, EndedAt: now, Path: []string{"hello", "date", "menu", "confirm"}, Tags: map[string]string{"result": "confirmed"}}, &res); err != nil || !res.Recorded {
		t.Fatalf("call.result: %+v %v", res, err)
	}
	if err := node(nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: "stale", Disposition: nodeapi.DispAnswered}, &res); err == nil || !strings.Contains(err.Error(), "Fault(3)") {
		t.Fatalf("stale result: %v", err)
	}
	if code, body := call("GET", "/api/v1/campaigns/"+camp.ID+"/stats", ""); code != 200 || !strings.Contains(body, `"done": 1`) || !strings.Contains(body, `"answered": 1`) {
		t.Fatalf("stats: %d %s", code, body)
	}
	if code, body := call("GET", "/api/v1/campaigns/"+camp.ID+"/results.csv", ""); code != 200 || !strings.Contains(body, "confirmed") {
		t.Fatalf("results: %d %s", code, body)
	}
	if ev := hook.await(t, c.CallID); ev.Disposition != nodeapi.DispAnswered || ev.Tags["result"] != "confirmed" || ev.Phone != where.number(101) {
		t.Fatalf("webhook event: %+v", ev)
	}
	checkResultsAsData(t, srv, camp.ID) // webhook_serve_test.go
	if code, body := call("GET", "/metrics", ""); code != 200 || !strings.Contains(body, `elastidial_xmlrpc_call_seconds_count{fault="3",method="call.result"} 1`) || !strings.Contains(body, `elastidial_flow_reads_total{layer="store"} 1`) || !strings.Contains(body, `elastidial_campaign_config_reads_total{layer="store"}`) {
		t.Fatalf("metrics: %d %s", code, body)
	}

	if code, body := call("GET", "/api/v1/cost?format=csv", ""); code != 200 || !strings.Contains(body, ",") {
		t.Fatalf("cost: %d %s", code, body)
	}

}

func TestUnknownCommandAndUsage(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"launch-rockets"}, io.Discard, &errOut, bareEnv(t))
	if err == nil || !strings.Contains(err.Error(), `unknown command "launch-rockets"`) || !strings.Contains(errOut.String(), "serve") {
		t.Fatalf("err = %v, usage = %s", err, errOut.String())
	}
	if err := run(context.Background(), []string{"token", "-db", filepath.Join(t.TempDir(), "x.db")}, io.Discard, io.Discard, bareEnv(t)); err == nil || !strings.Contains(err.Error(), "NAME") {
		t.Fatalf("token without name: %v", err)
	}
}
