package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// Recorded answers in the shape the controller's XML-RPC tier sends.
const (
	registerAnswer = `<?xml version="1.0"?><methodResponse><params><param><value><struct>
<member><name>node_id</name><value><string>n-7</string></value></member>
<member><name>token</name><value><string>n-7.c2lnbmVk</string></value></member>
<member><name>heartbeat_seconds</name><value><int>10</int></value></member>
<member><name>audio_version</name><value><string>a1</string></value></member>
</struct></value></param></params></methodResponse>`
	nextAnswer = `<?xml version="1.0"?><methodResponse><params><param><value><struct>
<member><name>calls</name><value><array><data><value><struct>
<member><name>call_id</name><value><string>c-1</string></value></member>
<member><name>token</name><value><string>L1</string></value></member>
<member><name>number</name><value><string>+15551234567</string></value></member>
<member><name>timeout_seconds</name><value><i4>30</i4></value></member>
<member><name>lease_expires</name><value><int>1795000000</int></value></member>
<member><name>fields</name><value><struct><member><name>name</name><value><string>Ann &amp; Bob</string></value></member></struct></value></member>
</struct></value></data></array></value></member>
</struct></value></param></params></methodResponse>`
	staleFault = `<?xml version="1.0"?><methodResponse><fault><value><struct>
<member><name>faultCode</name><value><int>3</int></value></member>
<member><name>faultString</name><value><string>stale lease</string></value></member>
</struct></value></fault></methodResponse>`
)

func TestRPCClientWire(t *testing.T) {
	var mu sync.Mutex
	var auths, bodies []string
	inflight, peak := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		bodies = append(bodies, string(body))
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		defer func() { mu.Lock(); inflight--; mu.Unlock() }()
		if r.Method != http.MethodPost || r.URL.Path != "/RPC2" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
			http.Error(w, "bad request line", 400)
			return
		}
		s := string(body)
		switch {
		case strings.Contains(s, "<methodName>node.register</methodName>"):
			io.WriteString(w, registerAnswer)
		case strings.Contains(s, "<methodName>dialer.next</methodName>"):
			time.Sleep(50 * time.Millisecond)
			io.WriteString(w, nextAnswer)
		case strings.Contains(s, "<methodName>call.result</methodName>"):
			io.WriteString(w, staleFault)
		default:
			http.Error(w, "boom", 500)
		}
	}))
	defer srv.Close()
	c := NewRPC(srv.URL+"/RPC2", "cluster-secret")
	ctx := context.Background()
	reg, err := c.Register(ctx, nodeapi.RegisterRequest{InstanceID: "i-1", Capacity: 100})
	if err != nil || reg.NodeID != "n-7" || reg.HeartbeatSeconds != 10 || reg.AudioVersion != "a1" {
		t.Fatalf("register: %+v %v", reg, err)
	}
	// Concurrent calls really run concurrently.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, err := c.Next(ctx, nodeapi.NextRequest{Free: 3})
			if err != nil || len(next.Calls) != 1 || next.Calls[0].Fields["name"] != "Ann & Bob" || next.Calls[0].TimeoutSeconds != 30 {
				t.Errorf("next: %+v %v", next, err)
			}
		}()
	}
	wg.Wait()
	_, err = c.Result(ctx, nodeapi.ResultRequest{CallID: "c-1", Token: "L1", Disposition: nodeapi.DispBusy, Path: []string{}})
	if !IsFault(err, nodeapi.FaultStaleLease) || !permanent(err) {
		t.Errorf("result fault: %v", err)
	}
	_, err = c.Heartbeat(ctx, nodeapi.HeartbeatRequest{})
	if err == nil || !strings.Contains(err.Error(), "500") || permanent(err) {
		t.Errorf("http 500: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if auths[0] != "Bearer cluster-secret" || auths[1] != "Bearer n-7.c2lnbmVk" {
		t.Errorf("authorization headers: %q", auths)
	}
	if !strings.Contains(bodies[0], "<name>instance_id</name><value><string>i-1</string></value>") ||
		!strings.Contains(bodies[1], "<name>free</name><value><int>3</int></value>") {
		t.Errorf("request bodies: %s / %s", bodies[0], bodies[1])
	}
	if peak < 2 {
		t.Errorf("calls were serialised (peak %d in flight)", peak)
	}
}

func TestRPCTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer srv.Close()
	c := NewRPC(srv.URL, "s")
	c.HTTP.Timeout = 100 * time.Millisecond
	start := time.Now()
	if _, err := c.Heartbeat(context.Background(), nodeapi.HeartbeatRequest{}); err == nil || time.Since(start) > time.Second {
		t.Errorf("no timeout: %v after %v", err, time.Since(start))
	}
}
