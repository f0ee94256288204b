package controller

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/elastidial/elastidial/controller/metrics"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/nodeapi"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Error("second registration on one registry accepted")
	}
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	c, err := New(context.Background(), cloud, &fakeDemand{target: 150}, nil, Options{Clock: clock, Logger: quiet, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	mustTick(t, c)
	cloud.boot()
	clock.Add(10 * time.Second)
	mustTick(t, c)
	got := gather(t, reg)
	for k, v := range map[string]float64{
		`elastidial_nodes{state="booting"}`: 2, `elastidial_nodes{state="ready"}`: 0, `elastidial_nodes{state="pending"}`: 0,
		"elastidial_launches_total": 2, "elastidial_demand_calls": 150, "elastidial_cost_per_hour_dollars": 0.17,
		"elastidial_wanted_slots": 158, "elastidial_capacity_coming_slots": 200, "elastidial_terminations_total": 0,
	} {
		if g, ok := got[k]; !ok || !near(g, v) {
			t.Errorf("%s = %g (present %v), want %g", k, g, ok, v)
		}
	}
}

// TestHostileNodeInput: bad register and heartbeat params get clear errors
// and change nothing.
func TestHostileNodeInput(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(t0)
	cloud := newFakeCloud(clock)
	c := newTestController(t, cloud, &fakeDemand{target: 50}, nil, clock)
	mustTick(t, c)
	for _, tc := range []struct {
		req  nodeapi.RegisterRequest
		want string
	}{
		{nodeapi.RegisterRequest{}, "empty instance id"},
		{nodeapi.RegisterRequest{InstanceID: "i-0001", Capacity: -1}, "capacity -1"},
		{nodeapi.RegisterRequest{InstanceID: "i-0001", Capacity: 1 << 30}, "capacity"},
		{nodeapi.RegisterRequest{InstanceID: "i-0001'; DROP TABLE x"}, "not launched by this cluster"},
		{nodeapi.RegisterRequest{InstanceID: "i-0001", Zone: strings.Repeat("z", 300)}, "zone is 300 bytes"},
	} {
		if _, err := c.Register(ctx, tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("register %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	for _, hb := range []nodeapi.HeartbeatRequest{{ActiveCalls: -1}, {PendingResults: -5}, {Capacity: -2}} {
		if _, err := c.Heartbeat(ctx, "i-0001", hb); err == nil {
			t.Errorf("heartbeat %+v accepted", hb)
		}
	}
	if s := states(c)["i-0001"]; s != planner.StatePending {
		t.Errorf("state changed to %s by bad input", s)
	}
	if _, err := New(ctx, cloud, &fakeDemand{}, nil, Options{Plan: planner.Config{MinNodes: 3, MaxNodes: 1}}); err == nil || !strings.Contains(err.Error(), "MinNodes") {
		t.Errorf("bad config: %v", err)
	}
}

// gather flattens reg's samples to "name{label="value"}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestMetricsEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := metrics.New(reg)
	clock := testclock.New(t0)
	c, _ := New(context.Background(), newFakeCloud(clock), &fakeDemand{target: 50}, nil, Options{Clock: clock, Logger: quiet, Metrics: m})
	mustTick(t, c)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`elastidial_nodes{state="pending"} 1`, "elastidial_launches_total 1", "elastidial_demand_calls 50"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
