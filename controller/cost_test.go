package controller

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakeStats struct{}

func (fakeStats) CallSeconds(ctx context.Context, from, to time.Time) (map[string]float64, error) {
	return map[string]float64{"c1": 300, "c2": 100}, nil
}

func (fakeStats) Answered(ctx context.Context, from, to time.Time) (int, float64, error) {
	return 10, 600, nil
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestBilledSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want float64
	}{{0, 60}, {20 * time.Second, 60}, {61 * time.Second, 61}, {61500 * time.Millisecond, 62}, {time.Hour, 3600}} {
		if got := BilledSeconds(t0, t0.Add(tc.d)); got != tc.want {
			t.Errorf("%s: got %g, want %g", tc.d, got, tc.want)
		}
	}
	if got := BilledSeconds(time.Time{}, t0); got != 0 {
		t.Errorf("never running billed %g", got)
	}
}

func TestPricing(t *testing.T) {
	p := Pricing{Spot: map[string]map[string]float64{"us-east-1": {"c6i.large": 0.03}}}
	for _, tc := range []struct {
		typ  string
		spot bool
		want float64
	}{{"c6i.large", false, 0.085}, {"c6i.large", true, 0.03}, {"c5.large", true, 0.085}, {"", false, 0.085}, {"weird.type", false, 0.085}} {
		if got := p.Hourly(tc.typ, tc.spot); got != tc.want {
			t.Errorf("%s spot=%v: got %g, want %g", tc.typ, tc.spot, got, tc.want)
		}
	}
	if got := (Pricing{Region: "eu-west-1"}).Hourly("c5.large", false); got != 0.096 {
		t.Errorf("eu-west-1 c5.large %g", got)
	}
}

func costRecords() []NodeRecord {
	return []NodeRecord{
		{ID: "a", Type: "c6i.large", RunningAt: t0, GoneAt: t0.Add(2 * time.Hour), State: StateGone},
		{ID: "b", Type: "c6i.large", RunningAt: t0.Add(30 * time.Minute), GoneAt: t0.Add(30*time.Minute + 20*time.Second), State: StateGone},
		{ID: "c", Type: "c6i.large", RunningAt: t0.Add(time.Hour), State: StateReady},
		{ID: "d", Type: "c6i.large", State: StatePending}, // never ran: free
		{ID: "e", Type: "c6i.large", RunningAt: t0.Add(-3 * time.Hour), GoneAt: t0.Add(-2 * time.Hour), State: StateGone},
	}
}

func TestCostReport(t *testing.T) {
	r, err := BuildCostReport(context.Background(), costRecords(), fakeStats{}, Pricing{}, t0, t0.Add(3*time.Hour), t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	total := 0.085*2 + 0.085/60 + 0.085*2
	if !near(r.Total, total) || r.Instances != 3 || r.PeakNodes != 2 || !near(r.StaticPeakCost, 2*3*0.085) || !near(r.CostPerHourNow, 0.085) {
		t.Errorf("report %+v; want total %g, 3 instances, peak 2", r, total)
	}
	if len(r.Hours) != 3 || !near(r.Hours[0].Cost, 0.085+0.085/60) || !near(r.Hours[2].Cost, 0.085) {
		t.Errorf("hours %+v", r.Hours)
	}
	if len(r.Campaigns) != 2 || !near(r.Campaigns[0].Cost, total*0.75) || r.Campaigns[1].CampaignID != "c2" {
		t.Errorf("campaigns %+v", r.Campaigns)
	}
	if !near(r.PerAnsweredCall, total/10) || !near(r.PerConnectedMinute, total/10) {
		t.Errorf("per call %g per minute %g", r.PerAnsweredCall, r.PerConnectedMinute)
	}
	if _, err := BuildCostReport(context.Background(), nil, nil, Pricing{}, t0, t0, t0); err == nil {
		t.Error("empty period accepted")
	}

	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back CostReport
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || !near(back.Total, r.Total) {
		t.Errorf("json round trip: %v %g", err, back.Total)
	}
	b.Reset()
	r.WriteCSV(&b)
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != 14+3+2 {
		t.Errorf("csv: %d rows, %v", len(rows), err)
	}
	b.Reset()
	r.WriteTable(&b)
	if !strings.Contains(b.String(), "static peak (2 nodes)") || !strings.Contains(b.String(), "c1") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestCostHandler(t *testing.T) {
	clock := &manualClock{now: t0.Add(3 * time.Hour)}
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
		{"", `"PeakNodes": 2`, 200},
		{"?format=xml", "format \"xml\"", 400},
		{"?from=yesterday", "from=\"yesterday\"", 400},
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
