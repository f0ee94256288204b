package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// End to end, as a campaign manager and a node see it: a campaign with a
// local-presence pool and a dial list giving one contact its own caller
// ID; the calls a node is handed over XML-RPC show the contact's own, the
// pool number of their area code (once: its daily cap), and the
// campaign's; the compliance export says which and why.
func TestCallerIDReachesTheNode(t *testing.T) {
	srv := startServe(t)
	srv.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":10,"max_cps":5}`)
	where := daytime(time.Now())
	cid := where.callerID
	pool := cid[:len(cid)-1] + "1"
	own := cid[:len(cid)-2] + "77"
	code, body := srv.call("POST", "/api/v1/campaigns", `{"name":"Local","trunk":"carrier","caller_id":"`+cid+`","target":3,"caller_id_pool":["`+pool+`"],"caller_id_daily_cap":1}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var camp struct{ ID string }
	json.Unmarshal([]byte(body), &camp)
	srv.call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", `{"start":"bye","states":{"bye":{"hangup":true}}}`)
	if code, body := srv.call("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "phone,caller_id\n"+where.number(101)+","+own+"\n"+where.number(102)+",\n"+where.number(103)+",\n"); code != 200 || !strings.Contains(body, `"imported": 3`) {
		t.Fatalf("import: %d %s", code, body)
	}
	if code, body := srv.call("POST", "/api/v1/campaigns/"+camp.ID+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	nodes := srv.waitNodes(t, 1, 10*time.Second)
	reg := srv.register(t, nodes[0], 10)
	rpc := func(cred, method string, arg, reply any) error { return srv.rpc(t, cred, method, arg, reply) }
	var manifest nodeapi.ManifestResponse
	rpc(reg.Token, nodeapi.MethodManifest, nodeapi.ManifestRequest{}, &manifest)
	got := map[string]string{}
	for deadline := time.Now().Add(10 * time.Second); len(got) < 3; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("calls handed out: %v", got)
		}
		var next nodeapi.NextResponse
		if err := rpc(reg.Token, nodeapi.MethodNext, nodeapi.NextRequest{Free: 3, AudioVersion: manifest.Version}, &next); err != nil {
			t.Fatalf("dialer.next: %v", err)
		}
		for _, c := range next.Calls {
			got[c.Number] = c.CallerID
		}
	}
	shown := map[string]int{}
	for _, v := range got {
		shown[v]++
	}
	if got[where.number(101)] != own || shown[pool] != 1 || shown[cid] != 1 {
		t.Fatalf("caller IDs handed to the node %v; want the contact's own %s, the pool's %s once, the campaign's %s", got, own, pool, cid)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"compliance", "export", "-db", srv.db, "-campaign", camp.ID}, &out, io.Discard, bareEnv(t)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"caller_id_source":"contact"`, `"caller_id_source":"pool"`, `"caller_id_source":"campaign"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compliance export lacks %s", want)
		}
	}
}
