package cost

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
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

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func costNodes() []Node {
	return []Node{
		{Type: "c6i.large", RunningAt: t0, GoneAt: t0.Add(2 * time.Hour)},
		{Type: "c6i.large", RunningAt: t0.Add(30 * time.Minute), GoneAt: t0.Add(30*time.Minute + 20*time.Second)},
		{Type: "c6i.large", RunningAt: t0.Add(time.Hour)},
		{Type: "c6i.large"}, // never ran: free
		{Type: "c6i.large", RunningAt: t0.Add(-3 * time.Hour), GoneAt: t0.Add(-2 * time.Hour)},
	}
}

func TestCostReport(t *testing.T) {
	r, err := Build(context.Background(), costNodes(), fakeStats{}, Pricing{}, t0, t0.Add(3*time.Hour), t0.Add(3*time.Hour))
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
	if _, err := Build(context.Background(), nil, nil, Pricing{}, t0, t0, t0); err == nil {
		t.Error("empty period accepted")
	}

	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || !near(back.Total, r.Total) {
		t.Errorf("json round trip: %v %g", err, back.Total)
	}
	b.Reset()
	r.WriteCSV(&b)
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != 16+3+2 {
		t.Errorf("csv: %d rows, %v", len(rows), err)
	}
	b.Reset()
	r.WriteTable(&b)
	if !strings.Contains(b.String(), "static peak (2 nodes)") || !strings.Contains(b.String(), "c1") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestHandlerFleetError: a fleet that cannot be listed is a server error
// naming the cause, not an empty report.
func TestHandlerFleetError(t *testing.T) {
	fleet := func(context.Context) ([]Node, error) { return nil, errors.New("database down") }
	h := Handler(fleet, nil, func() Pricing { return Pricing{} }, func() time.Time { return t0 }, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "database down") {
		t.Errorf("%d %q", rec.Code, rec.Body.String())
	}
}

func TestPricingOverridesAndParse(t *testing.T) {
	over, err := ParseTable("c6i.large=0.1, eu-west-1/c5.large=0.2", "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	p := Pricing{OnDemand: over}
	if got := p.Hourly("c6i.large", false); got != 0.1 {
		t.Errorf("overridden c6i.large %g", got)
	}
	if got := p.Hourly("m6i.large", false); got != 0.096 {
		t.Errorf("an override of one type lost the others: m6i.large %g", got)
	}
	if got := (Pricing{Region: "eu-west-1", OnDemand: over}).Hourly("c5.large", false); got != 0.2 {
		t.Errorf("eu-west-1 c5.large %g", got)
	}
	if DefaultOnDemand["us-east-1"]["c6i.large"] != 0.085 {
		t.Error("an override changed the defaults")
	}
	for _, bad := range []string{"c6i.large", "c6i.large=abc", "c6i.large=0", "large=0.1", "/c6i.large=0.1"} {
		if _, err := ParseTable(bad, "us-east-1"); err == nil || !strings.Contains(err.Error(), "price entry 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// A parked node bills its 8 GB gp3 volume: 8 × 0.08 / 730.
	if got := (Pricing{}).StoppedHourly(); !near(got, 8*0.08/730) {
		t.Errorf("stopped %g", got)
	}
	if got := (Pricing{PublicIPv4: "elastic"}).StoppedHourly(); !near(got, 8*0.08/730+0.005) {
		t.Errorf("stopped with an Elastic IP %g", got)
	}
	if got := (Pricing{PublicIPv4: "auto"}).RunningHourly("c6i.large", false); !near(got, 0.09) {
		t.Errorf("running with a public IPv4 %g", got)
	}
	if err := (Pricing{PublicIPv4: "static"}).Validate(); err == nil {
		t.Error("unknown public IPv4 kind accepted")
	}
}

// TestWarmPoolBilledApart: time parked in the warm pool bills the stopped
// price, shown apart, and not as running node-hours or peak nodes.
func TestWarmPoolBilledApart(t *testing.T) {
	h := time.Hour
	nodes := []Node{
		{Type: "c6i.large", RunningAt: t0, GoneAt: t0.Add(4 * h), Stops: []Interval{{t0.Add(h), t0.Add(3 * h)}}},
		{Type: "c6i.large", RunningAt: t0.Add(2 * h), StoppedSince: t0.Add(150 * time.Minute)}, // parked now
	}
	r, err := Build(context.Background(), nodes, nil, Pricing{}, t0, t0.Add(4*h), t0.Add(4*h))
	if err != nil {
		t.Fatal(err)
	}
	stopped := (Pricing{}).StoppedHourly()
	parked := 2 + 1.5
	if !near(r.ParkedHours, parked) || !near(r.PoolCost, parked*stopped) {
		t.Errorf("pool %g h $%g, want %g h $%g", r.ParkedHours, r.PoolCost, parked, parked*stopped)
	}
	if !near(r.NodeHours, 2.5) || !near(r.Total, 2.5*0.085+parked*stopped) {
		t.Errorf("running %g h, total $%g", r.NodeHours, r.Total)
	}
	if r.PeakNodes != 1 {
		t.Errorf("peak %d: parked time counted as running", r.PeakNodes)
	}
	if !near(r.CostPerHourNow, stopped) {
		t.Errorf("now %g $/h, want the parked node's %g", r.CostPerHourNow, stopped)
	}
	if !near(r.Hours[1].Cost, stopped) || !near(r.Hours[1].Nodes, 0) {
		t.Errorf("hour 1 (parked): $%g, %g nodes", r.Hours[1].Cost, r.Hours[1].Nodes)
	}
}
