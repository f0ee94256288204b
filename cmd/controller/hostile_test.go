package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// The hostile-input suite: what an unauthenticated or broken client can
// send to a running controller, and what it must not achieve.

// rpcRaw posts body to /RPC2 with no credential and returns the answer.
func rpcRaw(t *testing.T, base, body string) string {
	t.Helper()
	resp, err := http.Post(base+"/RPC2", "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHostileMetricsLabelsBounded: method names a client makes up are
// counted under one label, so /metrics cannot be grown without bound.
func TestHostileMetricsLabelsBounded(t *testing.T) {
	srv := startServe(t)
	for i := range 50 {
		name := fmt.Sprintf("made.up.%d.%s", i, strings.Repeat("x", 200))
		rpcRaw(t, srv.base, "<?xml version=\"1.0\"?><methodCall><methodName>"+name+"</methodName><params/></methodCall>")
	}
	rpcRaw(t, srv.base, `<?xml version="1.0"?><methodCall><methodName>system.listMethods</methodName><params/></methodCall>`)
	_, body := srv.call("GET", "/metrics", "")
	if strings.Contains(body, "made.up") {
		t.Fatalf("a client-chosen method name became a label")
	}
	if !strings.Contains(body, `elastidial_xmlrpc_call_seconds_count{fault="-32601",method="unknown"} 50`) {
		t.Fatalf("unknown methods not counted under one label:\n%s", grepLines(body, "xmlrpc_call_seconds_count"))
	}
	if !strings.Contains(body, `elastidial_xmlrpc_call_seconds_count{fault="0",method="system.listMethods"} 1`) {
		t.Fatalf("registered method not counted by name:\n%s", grepLines(body, "xmlrpc_call_seconds_count"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHostileRPCBodyHeld: an unauthenticated client that holds the last
// byte of its XML-RPC body is cut off at -rpc-body-timeout, not after the
// server's two-minute read timeout.
func TestHostileRPCBodyHeld(t *testing.T) {
	srv := startServe(t, "-rpc-body-timeout", "300ms")
	var held []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n<?xml version=\"1.0\"?><methodCall><methodName>x</methodName><params><param><value><string>%s", 1<<20, strings.Repeat("a", 64<<10))
		held = append(held, c)
	}
	start := time.Now()
	for _, c := range held {
		c.SetReadDeadline(start.Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil { // the server answers or closes: EOF
			t.Fatalf("connection still held after %s: %v", time.Since(start), err)
		}
	}
}

// TestTokenCommand: ops make, list and revoke tokens from the command
// line; a revoked token is refused by the running controller at once.
func TestTokenCommand(t *testing.T) {
	srv := startServe(t)
	env := bareEnv(t)
	tok := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"token", "-db", srv.db}, args...), &out, io.Discard, env)
		return strings.TrimSpace(out.String()), err
	}
	viewer, err := tok("-role", "viewer", "-expires", "24h", "wallboard")
	if err != nil || !strings.HasPrefix(viewer, "edt_") {
		t.Fatalf("create: %q %v", viewer, err)
	}
	as := func(token, method, path, body string) int {
		req, _ := http.NewRequest(method, srv.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := as(viewer, "GET", "/api/v1/campaigns", ""); got != 200 {
		t.Fatalf("viewer reads campaigns: %d", got)
	}
	for _, path := range []string{"/api/v1/fleet", "/api/v1/cost"} {
		if got := as(viewer, "GET", path, ""); got != 403 {
			t.Errorf("viewer GET %s: %d, want 403", path, got)
		}
	}
	if got := as(viewer, "DELETE", "/api/v1/audio/x/y.wav", ""); got != 403 {
		t.Errorf("viewer deletes audio: %d, want 403", got)
	}
	if got := as(viewer, "GET", "/api/v1/audio", ""); got != 200 {
		t.Errorf("viewer lists audio: %d", got)
	}
	list, err := tok("list")
	if err != nil || !strings.Contains(list, "wallboard") || !strings.Contains(list, "viewer") || !strings.Contains(list, "ops") {
		t.Fatalf("list: %v\n%s", err, list)
	}
	var id string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "wallboard") {
			id = strings.Fields(line)[0]
		}
	}
	if out, err := tok("revoke", id); err != nil || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("revoke: %q %v", out, err)
	}
	if got := as(viewer, "GET", "/api/v1/campaigns", ""); got != 401 {
		t.Fatalf("revoked token: %d, want 401", got)
	}
	if _, err := tok("-role", "root", "x"); err == nil || !strings.Contains(err.Error(), "role") {
		t.Fatalf("unknown role: %v", err)
	}
	if _, err := tok("revoke"); err == nil {
		t.Fatal("revoke without an id")
	}
}

// TestHostileDeletePromptInUse: the audio API refuses to delete a prompt
// the current flow of a campaign plays.
func TestHostileDeletePromptInUse(t *testing.T) {
	srv := startServe(t)
	srv.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":10,"max_cps":5}`)
	_, body := srv.call("POST", "/api/v1/campaigns", `{"name":"P","trunk":"carrier","caller_id":"+14155550100","target":5}`)
	id := body[strings.Index(body, `"c_`)+1:]
	id = id[:strings.Index(id, `"`)]
	if code, body := srv.upload("p", "hello.wav", silence(8000, 0.2)); code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, body := srv.call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"a","states":{"a":{"play":["p/hello"],"next":"bye"},"bye":{"hangup":true}}}`); code != 200 {
		t.Fatalf("flow: %d %s", code, body)
	}
	if code, body := srv.call("DELETE", "/api/v1/audio/p/hello.wav", ""); code != 409 || !strings.Contains(body, id) {
		t.Fatalf("delete a prompt in use: %d %s", code, body)
	}
	srv.call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"bye","states":{"bye":{"hangup":true}}}`)
	if code, body := srv.call("DELETE", "/api/v1/audio/p/hello.wav", ""); code != 204 {
		t.Fatalf("delete once no flow plays it: %d %s", code, body)
	}
}

// TestHostileNodeStepsAnotherNodesCall: through the running controller, a
// node cannot run (and so read) the flow of a call another node leased,
// nor report its result.
func TestHostileNodeStepsAnotherNodesCall(t *testing.T) {
	srv := startServe(t, "-node-slots", "1") // two contacts want two nodes
	srv.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":10,"max_cps":5}`)
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	_, body := srv.call("POST", "/api/v1/campaigns", `{"name":"N","trunk":"carrier","caller_id":"`+where.callerID+`","target":2}`)
	id := body[strings.Index(body, `"c_`)+1:]
	id = id[:strings.Index(id, `"`)]
	srv.call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"bye","states":{"bye":{"hangup":true}}}`)
	srv.call("POST", "/api/v1/campaigns/"+id+"/contacts", "phone\n"+where.number(101)+"\n"+where.number(102)+"\n")
	if code, body := srv.call("POST", "/api/v1/campaigns/"+id+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	nodes := srv.waitNodes(t, 2, 10*time.Second)
	rpc := func(cred, method string, arg, reply any) error { return srv.rpc(t, cred, method, arg, reply) }
	tokens := []string{srv.register(t, nodes[0], 1).Token, srv.register(t, nodes[1], 1).Token}
	var manifest nodeapi.ManifestResponse
	rpc(tokens[0], nodeapi.MethodManifest, nodeapi.ManifestRequest{}, &manifest)
	var next nodeapi.NextResponse
	if err := rpc(tokens[0], nodeapi.MethodNext, nodeapi.NextRequest{Free: 1, AudioVersion: manifest.Version}, &next); err != nil || len(next.Calls) != 1 {
		t.Fatalf("dialer.next: %+v %v", next, err)
	}
	c := next.Calls[0]
	var step nodeapi.StepResponse
	err := rpc(tokens[1], nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: c.CampaignID, FlowVersion: c.FlowVersion, Input: nodeapi.InputStart}, &step)
	if err == nil || !strings.Contains(err.Error(), "Fault(5)") {
		t.Fatalf("another node's step: %v", err)
	}
	var res nodeapi.ResultResponse
	err = rpc(tokens[1], nodeapi.MethodResult, nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: nodeapi.DispBusy}, &res)
	if err == nil || !strings.Contains(err.Error(), "Fault(5)") {
		t.Fatalf("another node's result: %v", err)
	}
	// Nor move it to another trunk; and its own node only for a
	// congestion cause.
	var fo nodeapi.FailoverResponse
	err = rpc(tokens[1], nodeapi.MethodFailover, nodeapi.FailoverRequest{CallID: c.CallID, Token: c.Token, Cause: 34}, &fo)
	if err == nil || !strings.Contains(err.Error(), "Fault(5)") {
		t.Fatalf("another node's failover: %v", err)
	}
	err = rpc(tokens[0], nodeapi.MethodFailover, nodeapi.FailoverRequest{CallID: c.CallID, Token: c.Token, Cause: 17}, &fo)
	if err == nil || !strings.Contains(err.Error(), "not a congestion cause") {
		t.Fatalf("failover of a busy call: %v", err)
	}
	if err := rpc(tokens[0], nodeapi.MethodFailover, nodeapi.FailoverRequest{CallID: c.CallID, Token: c.Token, Cause: 34}, &fo); err != nil || fo.Trunk != "" {
		t.Fatalf("failover in a group of one: %+v %v", fo, err)
	}
	// Trunk credentials go to registered nodes only.
	var tr nodeapi.TrunksResponse
	if err := rpc("forged", nodeapi.MethodTrunks, nodeapi.TrunksRequest{}, &tr); err == nil || !strings.Contains(err.Error(), "Fault(1)") {
		t.Fatalf("node.trunks with a forged token: %v", err)
	}
	if err := rpc(tokens[0], nodeapi.MethodTrunks, nodeapi.TrunksRequest{}, &tr); err != nil || tr.Version != "" || len(tr.Trunks) != 0 {
		t.Fatalf("node.trunks: %+v %v", tr, err)
	}
	if err := rpc(tokens[0], nodeapi.MethodStep, nodeapi.StepRequest{CallID: c.CallID, Token: c.Token, CampaignID: c.CampaignID, FlowVersion: c.FlowVersion, Input: nodeapi.InputStart}, &step); err != nil {
		t.Fatalf("the leasing node's step: %v", err)
	}
}
