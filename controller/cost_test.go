package controller

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/cost"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

type fakeStats struct{}

func (fakeStats) CallSeconds(ctx context.Context, from, to time.Time) (map[string]float64, error) {
	return map[string]float64{"c1": 300, "c2": 100}, nil
}

func (fakeStats) Answered(ctx context.Context, from, to time.Time) (int, float64, error) {
	return 10, 600, nil
}

func costRecords() []NodeRecord {
	return []NodeRecord{
		{ID: "a", Type: "c6i.large", RunningAt: t0, GoneAt: t0.Add(2 * time.Hour), State: planner.StateGone},
		{ID: "b", Type: "c6i.large", RunningAt: t0.Add(30 * time.Minute), GoneAt: t0.Add(30*time.Minute + 20*time.Second), State: planner.StateGone},
		{ID: "c", Type: "c6i.large", RunningAt: t0.Add(time.Hour), State: planner.StateReady},
		{ID: "d", Type: "c6i.large", State: planner.StatePending}, // never ran: free
		{ID: "e", Type: "c6i.large", RunningAt: t0.Add(-3 * time.Hour), GoneAt: t0.Add(-2 * time.Hour), State: planner.StateGone},
	}
}

func TestCostHandler(t *testing.T) {
	clock := testclock.New(t0.Add(3 * time.Hour))
	c := newTestController(t, newFakeCloud(clock), &fakeDemand{}, nil, clock)
	for _, r := range costRecords() {
		c.nodes[r.ID] = &node{rec: r}
	}
	h := c.CostHandler(fakeStats{})
	for _, tc := range []struct {
		query, want string
		code        int
	}{
		{"?format=csv&from=2026-11-22T09:00:00Z&to=2026-11-22T12:00:00Z", "total_usd,0.3414", 200},
		{"?format=table", "per connected minute", 200},
		{"", `"peak_nodes": 2`, 200},
		{"?format=xml", `format \"xml\"`, 400}, // JSON errors: the quotes escaped
		{"?from=yesterday", `from=\"yesterday\"`, 400},
		{"?from=2026-11-22T12:00:00Z&to=2026-11-22T09:00:00Z", "not after", 400},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+tc.query, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.query, rec.Code, rec.Body.String(), tc.code, tc.want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// TestOnePriceTable: the configured table and the spot prices the cloud
// reports reach the budget cap, CostPerHour and the cost report alike.
func TestOnePriceTable(t *testing.T) {
	clock := testclock.New(t0.Add(3 * time.Hour))
	c := newTestController(t, newFakeCloud(clock), &fakeDemand{}, nil, clock, func(o *Options) {
		o.Pricing = cost.Pricing{OnDemand: map[string]map[string]float64{"us-east-1": {"c6i.large": 0.1}}}
		o.Plan.Spot, o.Plan.BudgetPerHour = true, 1
	})
	c.nodes["od"] = &node{rec: NodeRecord{ID: "od", Type: "c6i.large", RunningAt: t0, State: planner.StateReady}}
	c.nodes["sp"] = &node{rec: NodeRecord{ID: "sp", Type: "c6i.large", Spot: true, RunningAt: t0, State: planner.StateReady}}
	if got := c.CostPerHour(); !near(got, 0.2) {
		t.Errorf("before spot prices: %g $/h, want 0.2 (spot priced as the configured on-demand)", got)
	}
	c.SetSpotPrices(map[string]float64{"c6i.large": 0.04})
	if got := c.CostPerHour(); !near(got, 0.14) {
		t.Errorf("after spot prices: %g $/h, want 0.14", got)
	}
	r, err := c.CostReport(context.Background(), nil, t0, t0.Add(time.Hour))
	if err != nil || !near(r.Total, 0.14) {
		t.Errorf("report total %g (%v), want 0.14", r.Total, err)
	}
	pc := c.cfg.Plan
	pc.Pricing = c.Pricing()
	if got := pc.NodePrice(); !near(got, 0.04) {
		t.Errorf("the budget cap prices a spot launch at %g, want 0.04", got)
	}
}
