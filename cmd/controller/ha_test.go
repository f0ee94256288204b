package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testenv"
)

// TestTwoServesOnOnePostgres is issue 15's first finding, as an operator
// meets it: two `serve` processes on one PostgreSQL, one campaign. Only
// one of them runs the scaler: the fleet is what one controller launches,
// both answer the REST API from the same database, and when the leader
// stops the other takes over.
func TestTwoServesOnOnePostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	env := bareEnv(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-db", dsn, "ops"}, &out, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	dir := t.TempDir()
	agent := filepath.Join(dir, "idle-agent")
	os.WriteFile(agent, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755)

	type server struct {
		base    string
		cancel  context.CancelFunc
		done    chan error
		stopped bool
	}
	start := func(name string) *server {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		ctx, cancel := context.WithCancel(context.Background())
		s := &server{base: "http://" + addr, cancel: cancel, done: make(chan error, 1)}
		go func() {
			s.done <- run(ctx, []string{"serve", "-data", dir, "-db", dsn, "-listen", addr,
				"-agent-path", agent, "-local-dir", filepath.Join(dir, name), "-audio", filepath.Join(dir, "audio"), "-tick", "200ms"}, io.Discard, io.Discard,
				func(k string) string { // secrets come from the environment, never flags
					if k == "ELASTIDIAL_CLUSTER_SECRET" {
						return "test-secret"
					}
					return ""
				})
		}()
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, err := http.Get(s.base + "/healthz")
			if err == nil && resp.StatusCode == 200 {
				resp.Body.Close()
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not come up: %v", name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stop := func(s *server) {
		if s.stopped {
			return
		}
		s.stopped = true
		s.cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	}
	call := func(s *server, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	metric := func(s *server, name string) float64 {
		_, body := call(s, "GET", "/metrics", "")
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}

	a, b := start("a"), start("b")
	defer stop(a)
	defer stop(b)
	if code, body := call(a, "PUT", "/api/v1/trunks/carrier", `{"max_channels":1000,"max_cps":50}`); code != 200 {
		t.Fatalf("trunk: %d %s", code, body)
	}
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	code, body := call(b, "POST", "/api/v1/campaigns", `{"name":"HA","trunk":"carrier","caller_id":"`+where.callerID+`","target":250,"max_cps":50}`)
	if code != 201 {
		t.Fatalf("campaign: %d %s", code, body)
	}
	var camp struct{ ID string }
	json.Unmarshal([]byte(body), &camp)
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range 500 {
		fmt.Fprintf(&csv, "%s\n", where.number(i))
	}
	if code, body := call(a, "POST", "/api/v1/campaigns/"+camp.ID+"/contacts", csv.String()); code != 200 {
		t.Fatalf("contacts: %d %s", code, body)
	}
	if code, body := call(a, "PUT", "/api/v1/campaigns/"+camp.ID+"/flow", `{"start":"done","states":{"done":{"set":{"result":"reached"},"next":"bye"},"bye":{"hangup":true}}}`); code != 200 {
		t.Fatalf("flow: %d %s", code, body)
	}
	if code, body := call(b, "POST", "/api/v1/campaigns/"+camp.ID+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	// 250 calls need 3 nodes of 100. Give both scalers many ticks.
	deadline := time.Now().Add(15 * time.Second)
	for metric(a, "elastidial_launches_total")+metric(b, "elastidial_launches_total") < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // ten more ticks each
	la, lb := metric(a, "elastidial_launches_total"), metric(b, "elastidial_launches_total")
	if la+lb != 3 {
		t.Fatalf("two controllers launched %v + %v nodes for 250 calls; one launches 3", la, lb)
	}
	leaders := metric(a, "elastidial_scaler_leader") + metric(b, "elastidial_scaler_leader")
	if leaders != 1 {
		t.Fatalf("%v leaders", leaders)
	}
	// Both show the same fleet, from the database.
	for _, s := range []*server{a, b} {
		_, body := call(s, "GET", "/api/v1/fleet", "")
		var fleet struct{ Nodes []struct{ ID string } }
		json.Unmarshal([]byte(body), &fleet)
		if len(fleet.Nodes) != 3 {
			t.Errorf("%s shows %d nodes, want 3: %s", s.base, len(fleet.Nodes), body)
		}
	}

	// The leader stops (and resigns); the other takes over.
	leader, follower := a, b
	if metric(b, "elastidial_scaler_leader") == 1 {
		leader, follower = b, a
	}
	stop(leader)
	deadline = time.Now().Add(10 * time.Second)
	for metric(follower, "elastidial_scaler_leader") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the follower never took over")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
