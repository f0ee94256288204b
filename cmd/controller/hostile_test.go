package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
