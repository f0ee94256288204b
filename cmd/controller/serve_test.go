package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testenv"
)

// TestServeEndToEnd runs the binary's own entry point the way ops would:
// make a token, serve, and drive the REST API over real HTTP.
func TestServeEndToEnd(t *testing.T) {
	db := filepath.Join(t.TempDir(), "e2e.db")
	env := func(string) string { return "" }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-db", db, "ops"}, &out, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())

	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-db", db, "-listen", addr}, io.Discard, io.Discard, env)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
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
	if code, body := call("PUT", "/api/v1/trunks/carrier", `{"max_channels":120,"max_cps":20}`); code != 200 {
		t.Fatalf("trunk: %d %s", code, body)
	}
	if code, body := call("POST", "/api/v1/campaigns", `{"name":"E2E","trunk":"carrier","caller_id":"+14155550100","target":10}`); code != 201 || !strings.Contains(body, `"status": "draft"`) {
		t.Fatalf("campaign: %d %s", code, body)
	}
	if code, body := call("GET", "/api/v1/campaigns", ""); code != 200 || !strings.Contains(body, "E2E") {
		t.Fatalf("list: %d %s", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestUnknownCommandAndUsage(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"launch-rockets"}, io.Discard, &errOut, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), `unknown command "launch-rockets"`) || !strings.Contains(errOut.String(), "serve") {
		t.Fatalf("err = %v, usage = %s", err, errOut.String())
	}
	if err := run(context.Background(), []string{"token", "-db", filepath.Join(t.TempDir(), "x.db")}, io.Discard, io.Discard, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "NAME") {
		t.Fatalf("token without name: %v", err)
	}
}
