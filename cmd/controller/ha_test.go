package main

import (
	"encoding/json"
	"fmt"
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
	c := newCluster(t, testenv.PostgresDSN(t))
	a, b := c.serve(t, "a"), c.serve(t, "b")
	if code, body := a.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":1000,"max_cps":50}`); code != 200 {
		t.Fatalf("trunk: %d %s", code, body)
	}
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	code, body := b.call("POST", "/api/v1/campaigns", `{"name":"HA","trunk":"carrier","caller_id":"`+where.callerID+`","target":250,"max_cps":50}`)
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
	if code, body := a.call("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", csv.String()); code != 200 {
		t.Fatalf("contacts: %d %s", code, body)
	}
	if code, body := a.call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", `{"start":"done","states":{"done":{"set":{"result":"reached"},"next":"bye"},"bye":{"hangup":true}}}`); code != 200 {
		t.Fatalf("flow: %d %s", code, body)
	}
	if code, body := b.call("POST", "/api/v1/campaigns/"+camp.ID+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	// 250 calls need 3 nodes of 100. Give both scalers many ticks.
	deadline := time.Now().Add(15 * time.Second)
	for a.metric("elastidial_launches_total")+b.metric("elastidial_launches_total") < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // ten more ticks each
	la, lb := a.metric("elastidial_launches_total"), b.metric("elastidial_launches_total")
	if la+lb != 3 {
		t.Fatalf("two controllers launched %v + %v nodes for 250 calls; one launches 3", la, lb)
	}
	leaders := a.metric("elastidial_scaler_leader") + b.metric("elastidial_scaler_leader")
	if leaders != 1 {
		t.Fatalf("%v leaders", leaders)
	}
	// Both show the same fleet, from the database.
	for _, s := range []*served{a, b} {
		_, body := s.call("GET", "/api/v1/fleet", "")
		var fleet struct{ Nodes []struct{ ID string } }
		json.Unmarshal([]byte(body), &fleet)
		if len(fleet.Nodes) != 3 {
			t.Errorf("%s shows %d nodes, want 3: %s", s.base, len(fleet.Nodes), body)
		}
	}

	// Both chart the same past: the leader's samples, from the database
	// (a follower has no plan of its own to sample, so its demand would
	// read 0).
	mostDemand := func(s *served) float64 {
		_, body := s.call("GET", "/api/v1/history?last=10m&points=2000", "")
		var h struct{ Values map[string][]*float64 }
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("history from %s: %v: %s", s.base, err, body)
		}
		most := 0.0
		for _, v := range h.Values["demand_calls"] {
			if v != nil {
				most = max(most, *v)
			}
		}
		return most
	}
	deadline = time.Now().Add(15 * time.Second) // samples are 5 s apart
	for mostDemand(a) < 250 || mostDemand(b) < 250 {
		if time.Now().After(deadline) {
			t.Fatalf("history shows a demand of at most %v and %v calls, want 250 on both", mostDemand(a), mostDemand(b))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The leader stops (and resigns); the other takes over.
	leader, follower := a, b
	if b.metric("elastidial_scaler_leader") == 1 {
		leader, follower = b, a
	}
	leader.stop()
	deadline = time.Now().Add(10 * time.Second)
	for follower.metric("elastidial_scaler_leader") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the follower never took over")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A controller started now shows the past from before it started.
	late := c.serve(t, "c")
	for deadline := time.Now().Add(5 * time.Second); mostDemand(late) < 250; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a new controller's history shows a demand of at most %v calls, want the 250 from before it started", mostDemand(late))
		}
	}
}
