// Package cost prices the fleet: EC2's per-second billing, the ops report
// of what the nodes cost over a period (per hour, per campaign, per
// answered call) in JSON, CSV or a table, and the HTTP handler serving it.
// It reads nothing itself: the caller hands it the nodes that ran.
package cost

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// Pricing prices instance time, and the warm pool's stopped instances. It
// is the one price table of the controller: the budget cap, the planner's
// warm-pool sizing and the cost ledger all read it. EC2 bills Linux
// instances per second with a 60-second minimum, from running until
// stopped or terminated; a stopped instance bills only its volume (and an
// Elastic IP, when one stays attached).
type Pricing struct {
	Region      string                        // us-east-1
	DefaultType string                        // c6i.large; used for unknown types and the static reference
	OnDemand    map[string]map[string]float64 // region → instance type → $/h; DefaultOnDemand, entries overridden by the configuration
	Spot        map[string]map[string]float64 // region → type → $/h for spot instances (DescribeSpotPriceHistory, or configured); on-demand when absent

	EBSPerGBMonth float64 // $ per GB-month of the node's root volume; 0.08 (gp3, us-east-1)
	VolumeGB      float64 // root volume size; 8
	IPv4PerHour   float64 // $/h of one public IPv4 address; 0.005
	// PublicIPv4 says which public address a node holds: "" or "none"
	// (behind NAT), "auto" (auto-assigned: billed while running, released
	// on stop), "elastic" (billed running and stopped).
	PublicIPv4 string
}

// DefaultOnDemand holds Linux on-demand prices ($/hour) of common node types
// as AWS published them (2025/2026). Override them in the configuration when
// AWS changes its prices.
var DefaultOnDemand = map[string]map[string]float64{
	"us-east-1":    {"c6i.large": 0.085, "c6i.xlarge": 0.17, "c5.large": 0.085, "c7i.large": 0.08925, "c6g.large": 0.068, "c7g.large": 0.0725, "m6i.large": 0.096, "t3.medium": 0.0416},
	"us-east-2":    {"c6i.large": 0.085, "c6i.xlarge": 0.17, "c5.large": 0.085, "m6i.large": 0.096, "t3.medium": 0.0416},
	"us-west-2":    {"c6i.large": 0.085, "c6i.xlarge": 0.17, "c5.large": 0.085, "c7i.large": 0.08925, "m6i.large": 0.096, "t3.medium": 0.0416},
	"eu-west-1":    {"c6i.large": 0.0912, "c6i.xlarge": 0.1824, "c5.large": 0.096, "m6i.large": 0.107, "t3.medium": 0.0456},
	"eu-central-1": {"c6i.large": 0.097, "c6i.xlarge": 0.194, "c5.large": 0.097, "m6i.large": 0.115, "t3.medium": 0.048},
}

// WithDefaults fills the zero fields. Configured on-demand prices override
// the defaults entry by entry: a table naming one type keeps the others.
func (p Pricing) WithDefaults() Pricing {
	p.Region = cmp.Or(p.Region, "us-east-1")
	p.DefaultType = cmp.Or(p.DefaultType, "c6i.large")
	p.OnDemand = Merge(DefaultOnDemand, p.OnDemand)
	p.EBSPerGBMonth = cmp.Or(p.EBSPerGBMonth, 0.08)
	p.VolumeGB = cmp.Or(p.VolumeGB, 8)
	p.IPv4PerHour = cmp.Or(p.IPv4PerHour, 0.005)
	return p
}

// Merge returns base with every entry of over laid on it; neither is
// changed.
func Merge(base, over map[string]map[string]float64) map[string]map[string]float64 {
	out := make(map[string]map[string]float64, len(base)+len(over))
	for _, m := range []map[string]map[string]float64{base, over} {
		for region, types := range m {
			if out[region] == nil {
				out[region] = map[string]float64{}
			}
			for t, v := range types {
				out[region][t] = v
			}
		}
	}
	return out
}

// WithSpot returns p with the spot prices of its region replaced by
// prices (instance type → $/h), as DescribeSpotPriceHistory reported
// them. p's maps are not changed.
func (p Pricing) WithSpot(prices map[string]float64) Pricing {
	p.Spot = Merge(p.Spot, map[string]map[string]float64{cmp.Or(p.Region, "us-east-1"): prices})
	return p
}

// Validate names the first field or entry that makes no sense.
func (p Pricing) Validate() error {
	for name, m := range map[string]map[string]map[string]float64{"prices": p.OnDemand, "spot-prices": p.Spot} {
		for region, types := range m {
			for t, v := range types {
				if !(v > 0) || math.IsInf(v, 0) {
					return fmt.Errorf("pricing: %s %s/%s = %g: want a positive $/hour", name, region, t, v)
				}
			}
		}
	}
	switch {
	case p.EBSPerGBMonth < 0 || math.IsNaN(p.EBSPerGBMonth):
		return fmt.Errorf("pricing: ebs-gb-month %g is negative", p.EBSPerGBMonth)
	case p.VolumeGB < 0 || math.IsNaN(p.VolumeGB):
		return fmt.Errorf("pricing: node-volume-gb %g is negative", p.VolumeGB)
	case p.IPv4PerHour < 0 || math.IsNaN(p.IPv4PerHour):
		return fmt.Errorf("pricing: ipv4-hour %g is negative", p.IPv4PerHour)
	}
	switch p.PublicIPv4 {
	case "", "none", "auto", "elastic":
	default:
		return fmt.Errorf("pricing: node-public-ipv4 %q: want none, auto or elastic", p.PublicIPv4)
	}
	return nil
}

// ParseTable reads price overrides written as comma-separated
// [region/]type=$/h entries, e.g. "c6i.large=0.09,eu-west-1/c5.large=0.1";
// an entry without a region is in region. Errors name the entry.
func ParseTable(spec, region string) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for i, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("price entry %d %q: want [region/]type=dollars-per-hour", i+1, e)
		}
		r, t := region, k
		if a, b, ok := strings.Cut(k, "/"); ok {
			r, t = a, b
		}
		r, t = strings.TrimSpace(r), strings.TrimSpace(t)
		if r == "" || !strings.Contains(t, ".") {
			return nil, fmt.Errorf("price entry %d %q: %q is not an instance type such as c6i.large", i+1, e, t)
		}
		price, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(price > 0) || math.IsInf(price, 0) {
			return nil, fmt.Errorf("price entry %d %q: %q is not a positive $/hour", i+1, e, v)
		}
		if out[r] == nil {
			out[r] = map[string]float64{}
		}
		out[r][t] = price
	}
	return out, nil
}

// Hourly is the $/h of one instance of type typ, the instance alone.
func (p Pricing) Hourly(typ string, spot bool) float64 {
	p = p.WithDefaults()
	if typ == "" {
		typ = p.DefaultType
	}
	if spot {
		if v, ok := p.Spot[p.Region][typ]; ok {
			return v
		}
	}
	if v, ok := p.OnDemand[p.Region][typ]; ok {
		return v
	}
	return p.OnDemand[p.Region][p.DefaultType]
}

// RunningHourly is the $/h of one running node: the instance and, when it
// holds one, its public IPv4 address.
func (p Pricing) RunningHourly(typ string, spot bool) float64 {
	p = p.WithDefaults()
	v := p.Hourly(typ, spot)
	if p.PublicIPv4 == "auto" || p.PublicIPv4 == "elastic" {
		v += p.IPv4PerHour
	}
	return v
}

// StoppedHourly is the $/h of one node parked stopped in the warm pool:
// its root volume, and an Elastic IP when one stays attached.
func (p Pricing) StoppedHourly() float64 {
	p = p.WithDefaults()
	v := p.VolumeGB * p.EBSPerGBMonth / HoursPerMonth
	if p.PublicIPv4 == "elastic" {
		v += p.IPv4PerHour
	}
	return v
}

// HoursPerMonth is how AWS turns a monthly EBS price into an hourly one.
const HoursPerMonth = 730

// BilledSeconds is what EC2 bills for an instance running from start to end:
// per second, at least 60.
func BilledSeconds(start, end time.Time) float64 {
	if start.IsZero() {
		return 0
	}
	return math.Max(60, math.Ceil(end.Sub(start).Seconds()))
}

// CallStats is what the cost report needs from the campaign tier.
type CallStats interface {
	// CallSeconds is the connected call time per campaign id in [from, to).
	CallSeconds(ctx context.Context, from, to time.Time) (map[string]float64, error)
	// Answered is the number of answered calls and their connected seconds
	// in [from, to).
	Answered(ctx context.Context, from, to time.Time) (calls int, connectedSeconds float64, err error)
}

// Report is the ops report on what the fleet cost over [From, To).
type Report struct {
	From               time.Time  `json:"from"`
	To                 time.Time  `json:"to"`
	Region             string     `json:"region"`
	Total              float64    `json:"total"`             // $ billed in the period, the warm pool included
	NodeHours          float64    `json:"node_hours"`        // running instance-hours
	PoolCost           float64    `json:"pool_cost"`         // $ of the warm pool: nodes parked stopped (volumes, Elastic IPs)
	ParkedHours        float64    `json:"parked_hours"`      // instance-hours parked stopped
	Instances          int        `json:"instances"`         // instances that ran in the period
	CostPerHourNow     float64    `json:"cost_per_hour_now"` // $/h of the fleet running at To
	PeakNodes          int        `json:"peak_nodes"`        // most instances running at once
	StaticPeakCost     float64    `json:"static_peak_cost"`  // PeakNodes held for the whole period
	AnsweredCalls      int        `json:"answered_calls"`
	ConnectedMinutes   float64    `json:"connected_minutes"`
	PerAnsweredCall    float64    `json:"per_answered_call"` // $; 0 when no call was answered
	PerConnectedMinute float64    `json:"per_connected_minute"`
	Hours              []Hour     `json:"hours"`
	Campaigns          []Campaign `json:"campaigns"` // attributed by call-seconds
}

// Hour is one hour of the period.
type Hour struct {
	Start time.Time `json:"start"`
	Cost  float64   `json:"cost"`
	Nodes float64   `json:"nodes"` // mean instances running
}

// Campaign is one campaign's share.
type Campaign struct {
	CampaignID  string  `json:"campaign_id"`
	CallSeconds float64 `json:"call_seconds"`
	Cost        float64 `json:"cost"`
}

// Node is one instance as billing sees it: its type, whether spot, and
// when it ran (RunningAt zero: never ran, free; GoneAt zero: still runs).
type Node struct {
	Type      string
	Spot      bool
	RunningAt time.Time
	GoneAt    time.Time
	// Stops are the periods the instance was parked stopped in the warm
	// pool; StoppedSince is the start of the stop under way (zero: none).
	Stops        []Interval
	StoppedSince time.Time
}

// Interval is a period [From, To).
type Interval struct{ From, To time.Time }

// stopsWithin is n's stops clipped to [from, to), the one under way
// included.
func (n Node) stopsWithin(from, to time.Time) []Interval {
	all := n.Stops
	if !n.StoppedSince.IsZero() {
		all = append(all[:len(all):len(all)], Interval{n.StoppedSince, to})
	}
	var out []Interval
	for _, st := range all {
		a, b := maxTime(st.From, from), minTime(st.To, to)
		if b.After(a) {
			out = append(out, Interval{a, b})
		}
	}
	return out
}

// cut removes st from the intervals ivs.
func cut(ivs []Interval, st Interval) []Interval {
	var out []Interval
	for _, iv := range ivs {
		if !st.From.Before(iv.To) || !st.To.After(iv.From) {
			out = append(out, iv)
			continue
		}
		if st.From.After(iv.From) {
			out = append(out, Interval{iv.From, st.From})
		}
		if st.To.Before(iv.To) {
			out = append(out, Interval{st.To, iv.To})
		}
	}
	return out
}

// allocate spreads [from, to) at price over the hours it overlaps;
// running time also counts as mean nodes.
func allocate(hours []Hour, from, to time.Time, price float64, running bool) {
	for i := range hours {
		hs, he := hours[i].Start, hours[i].Start.Add(time.Hour)
		ov := minTime(to, he).Sub(maxTime(from, hs)).Seconds()
		if ov > 0 {
			hours[i].Cost += ov / 3600 * price
			if running {
				hours[i].Nodes += ov / 3600
			}
		}
	}
}

// Build prices recs over [from, to). stats may be nil (no
// per-campaign or per-call figures). Instances still running are billed up
// to min(to, now).
func Build(ctx context.Context, recs []Node, stats CallStats, pricing Pricing, from, to, now time.Time) (Report, error) {
	if !to.After(from) {
		return Report{}, fmt.Errorf("cost report: period end %s not after start %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	pricing = pricing.WithDefaults()
	r := Report{From: from, To: to, Region: pricing.Region}
	end := to
	if now.Before(end) {
		end = now
	}
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		r.Hours = append(r.Hours, Hour{Start: h})
	}
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	for _, n := range recs {
		if n.RunningAt.IsZero() {
			continue
		}
		stop := n.GoneAt
		if stop.IsZero() || stop.After(end) {
			stop = end
		}
		if !n.GoneAt.IsZero() && !n.GoneAt.After(from) || !n.RunningAt.Before(end) {
			continue
		}
		price := pricing.RunningHourly(n.Type, n.Spot)
		if !n.RunningAt.After(end) && (n.GoneAt.IsZero() || n.GoneAt.After(end)) {
			r.CostPerHourNow += price
		}
		start := maxTime(n.RunningAt, from)
		secs := math.Max(0, stop.Sub(start).Seconds())
		// The 60 s minimum belongs to the period the instance started in.
		if !n.RunningAt.Before(from) && !n.GoneAt.IsZero() {
			secs = math.Max(secs, BilledSeconds(n.RunningAt, n.GoneAt))
		}
		r.Instances++
		// Time parked in the warm pool bills the stopped price (volume,
		// Elastic IP) instead of the instance's.
		stopped := n.stopsWithin(start, stop)
		if len(stopped) > 0 && !n.StoppedSince.IsZero() && !n.StoppedSince.After(end) && (n.GoneAt.IsZero() || n.GoneAt.After(end)) {
			r.CostPerHourNow += pricing.StoppedHourly() - price
		}
		parkedSecs := 0.0
		for _, st := range stopped {
			d := st.To.Sub(st.From).Seconds()
			parkedSecs += d
			r.PoolCost += d / 3600 * pricing.StoppedHourly()
			r.ParkedHours += d / 3600
			allocate(r.Hours, st.From, st.To, pricing.StoppedHourly(), false)
		}
		secs -= parkedSecs
		r.NodeHours += secs / 3600
		r.Total += secs / 3600 * price
		running := []Interval{{From: start, To: stop}}
		for _, st := range stopped {
			running = cut(running, st)
		}
		for _, iv := range running {
			evs = append(evs, ev{iv.From, 1}, ev{iv.To, -1})
			allocate(r.Hours, iv.From, iv.To, price, true)
		}
		if extra := secs - stop.Sub(start).Seconds(); extra > 0 {
			if i := int(start.Sub(from.Truncate(time.Hour)) / time.Hour); i >= 0 && i < len(r.Hours) {
				r.Hours[i].Cost += extra / 3600 * price
			}
		}
	}
	r.Total += r.PoolCost
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].at.Equal(evs[j].at) {
			return evs[i].at.Before(evs[j].at)
		}
		return evs[i].d < evs[j].d
	})
	cur := 0
	for _, e := range evs {
		cur += e.d
		r.PeakNodes = max(r.PeakNodes, cur)
	}
	r.StaticPeakCost = float64(r.PeakNodes) * to.Sub(from).Hours() * pricing.Hourly(pricing.DefaultType, false)
	if stats != nil {
		cs, err := stats.CallSeconds(ctx, from, to)
		if err != nil {
			return Report{}, fmt.Errorf("cost report: call seconds: %w", err)
		}
		total := 0.0
		for _, s := range cs {
			total += s
		}
		for id, s := range cs {
			cc := Campaign{CampaignID: id, CallSeconds: s}
			if total > 0 {
				cc.Cost = r.Total * s / total
			}
			r.Campaigns = append(r.Campaigns, cc)
		}
		sort.Slice(r.Campaigns, func(i, j int) bool { return r.Campaigns[i].CampaignID < r.Campaigns[j].CampaignID })
		calls, secs, err := stats.Answered(ctx, from, to)
		if err != nil {
			return Report{}, fmt.Errorf("cost report: answered calls: %w", err)
		}
		r.AnsweredCalls, r.ConnectedMinutes = calls, secs/60
		if calls > 0 {
			r.PerAnsweredCall = r.Total / float64(calls)
		}
		if secs > 0 {
			r.PerConnectedMinute = r.Total / (secs / 60)
		}
	}
	return r, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// httpError answers in the REST API's error form.
func httpError(w http.ResponseWriter, status int, msg string) {
	jsonhttp.Write(w, status, map[string]string{"error": msg})
}

// WriteJSON renders r as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

// WriteCSV renders r as CSV: a summary section, then hours, then campaigns,
// each row led by its section name so one file parses as one table.
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rows := [][]string{
		{"section", "key", "value", "extra"},
		{"summary", "from", r.From.UTC().Format(time.RFC3339), ""},
		{"summary", "to", r.To.UTC().Format(time.RFC3339), ""},
		{"summary", "region", r.Region, ""},
		{"summary", "total_usd", money(r.Total), ""},
		{"summary", "node_hours", money(r.NodeHours), ""},
		{"summary", "warm_pool_usd", money(r.PoolCost), ""},
		{"summary", "parked_hours", money(r.ParkedHours), ""},
		{"summary", "instances", strconv.Itoa(r.Instances), ""},
		{"summary", "cost_per_hour_now_usd", money(r.CostPerHourNow), ""},
		{"summary", "peak_nodes", strconv.Itoa(r.PeakNodes), ""},
		{"summary", "static_peak_cost_usd", money(r.StaticPeakCost), ""},
		{"summary", "answered_calls", strconv.Itoa(r.AnsweredCalls), ""},
		{"summary", "connected_minutes", money(r.ConnectedMinutes), ""},
		{"summary", "per_answered_call_usd", money(r.PerAnsweredCall), ""},
		{"summary", "per_connected_minute_usd", money(r.PerConnectedMinute), ""},
	}
	for _, h := range r.Hours {
		rows = append(rows, []string{"hour", h.Start.UTC().Format(time.RFC3339), money(h.Cost), money(h.Nodes)})
	}
	for _, c := range r.Campaigns {
		rows = append(rows, []string{"campaign", c.CampaignID, money(c.Cost), money(c.CallSeconds)})
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("write cost csv: %w", err)
	}
	return nil
}

// WriteTable renders r for a terminal.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "period\t%s – %s (%s)\n", r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339), r.Region)
	fmt.Fprintf(tw, "total\t$%.2f\t%.2f node-hours, %d instances\n", r.Total, r.NodeHours, r.Instances)
	fmt.Fprintf(tw, "warm pool (parked)\t$%.4f\t%.2f parked node-hours\n", r.PoolCost, r.ParkedHours)
	fmt.Fprintf(tw, "cost per hour now\t$%.4f\n", r.CostPerHourNow)
	fmt.Fprintf(tw, "static peak (%d nodes)\t$%.2f\n", r.PeakNodes, r.StaticPeakCost)
	fmt.Fprintf(tw, "per answered call\t$%.4f\t%d calls\n", r.PerAnsweredCall, r.AnsweredCalls)
	fmt.Fprintf(tw, "per connected minute\t$%.4f\t%.1f minutes\n", r.PerConnectedMinute, r.ConnectedMinutes)
	if len(r.Campaigns) > 0 {
		fmt.Fprintf(tw, "\ncampaign\tcall-seconds\tcost\n")
		for _, c := range r.Campaigns {
			fmt.Fprintf(tw, "%s\t%.0f\t$%.2f\n", c.CampaignID, c.CallSeconds, c.Cost)
		}
	}
	fmt.Fprintf(tw, "\nhour\tmean nodes\tcost\n")
	for _, h := range r.Hours {
		fmt.Fprintf(tw, "%s\t%.2f\t$%.4f\n", h.Start.UTC().Format("2006-01-02 15:04"), h.Nodes, h.Cost)
	}
	return tw.Flush()
}

// Handler serves the cost report over HTTP: GET with optional query from,
// to (RFC 3339; default the last 24 hours) and format (json, csv, table;
// default json). fleet lists the nodes to price; pricing gives the price
// table at the time of the request; now tells the time.
func Handler(fleet func(ctx context.Context) ([]Node, error), stats CallStats, pricing func() Pricing, now func() time.Time, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			httpError(w, http.StatusMethodNotAllowed, "cost report: GET only")
			return
		}
		q := req.URL.Query()
		to := now()
		from := to.Add(-24 * time.Hour)
		var err error
		if v := q.Get("to"); v != "" {
			if to, err = time.Parse(time.RFC3339, v); err != nil {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("cost report: query to=%q is not RFC 3339", v))
				return
			}
		}
		if v := q.Get("from"); v != "" {
			if from, err = time.Parse(time.RFC3339, v); err != nil {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("cost report: query from=%q is not RFC 3339", v))
				return
			}
		} else if q.Get("to") != "" {
			from = to.Add(-24 * time.Hour)
		}
		if to.Sub(from) > 366*24*time.Hour {
			httpError(w, http.StatusBadRequest, "cost report: period longer than a year")
			return
		}
		nodes, err := fleet(req.Context())
		if err != nil {
			httpError(w, http.StatusInternalServerError, "cost report: "+err.Error())
			return
		}
		r, err := Build(req.Context(), nodes, stats, pricing(), from, to, now())
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		switch q.Get("format") {
		case "", "json":
			w.Header().Set("Content-Type", "application/json")
			err = r.WriteJSON(w)
		case "csv":
			w.Header().Set("Content-Type", "text/csv")
			err = r.WriteCSV(w)
		case "table":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			err = r.WriteTable(w)
		default:
			httpError(w, http.StatusBadRequest, fmt.Sprintf("cost report: format %q is not json, csv or table", q.Get("format")))
			return
		}
		if err != nil {
			log.Warn("write cost report", "err", err)
		}
	})
}
