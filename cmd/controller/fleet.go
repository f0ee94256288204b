package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/elastidial/elastidial/controller"
)

// fleetNode is one node in the ops view.
type fleetNode struct {
	ID          string    `json:"id"`
	State       string    `json:"state"`
	ActiveCalls int       `json:"active_calls"`
	Capacity    int       `json:"capacity"`
	CPU         float64   `json:"cpu"`
	Load1       float64   `json:"load1"`
	LaunchedAt  time.Time `json:"launched_at"`
	AgeSeconds  float64   `json:"age_seconds"`
	// What a node says of itself, so the page can tell a silent node and
	// a busy one apart.
	PendingResults   int      `json:"pending_results"`   // results queued on the node, not yet delivered
	HeardSecondsAgo  *float64 `json:"heard_seconds_ago"` // since the last heartbeat; null before the first
	ReadySecondsAgo  *float64 `json:"ready_seconds_ago"` // since it became ready; null while not ready
	Spot             bool     `json:"spot"`
	SpotNotice       bool     `json:"spot_notice"`
	DrainSecondsLeft *float64 `json:"drain_seconds_left"` // until a draining node is terminated anyway
}

// fleet is the ops view of the scaler: nodes, demand against capacity,
// cost now and the budget, and why capacity is where it is.
type fleet struct {
	Nodes         []fleetNode `json:"nodes"`
	DemandCalls   int         `json:"demand_calls"`
	WantedSlots   int         `json:"wanted_slots"`
	ReadySlots    int         `json:"ready_slots"`
	ComingSlots   int         `json:"coming_slots"`
	DesiredNodes  int         `json:"desired_nodes"`
	CostPerHour   float64     `json:"cost_per_hour"`
	BudgetPerHour float64     `json:"budget_per_hour"`
	BudgetLimited bool        `json:"budget_limited"`
	Reasons       []string    `json:"reasons"`
	// Shares is the slots each campaign gets once the plan is carried
	// out: higher priority first.
	Shares map[string]int `json:"shares"`
	// CPUScope says what a node's cpu measures: "node" for its own
	// machine (ec2), "host" when every node runs on this one machine
	// (local), so all show the same number.
	CPUScope string `json:"cpu_scope"`
}

// fleetHandler serves GET /api/v1/fleet.
func fleetHandler(scaler *controller.Controller, cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		p := scaler.LastPlan()
		f := fleet{DemandCalls: p.DemandCalls, WantedSlots: p.WantedSlots, ReadySlots: p.ReadySlots, ComingSlots: p.ComingSlots,
			DesiredNodes: p.DesiredNodes, CostPerHour: scaler.CostPerHour(), BudgetPerHour: cfg.BudgetPerH, BudgetLimited: p.BudgetLimited,
			Reasons: p.Reasons, Nodes: []fleetNode{}, Shares: p.Shares, CPUScope: "node"}
		if f.Shares == nil {
			f.Shares = map[string]int{}
		}
		if cfg.Cloud == "local" {
			f.CPUScope = "host"
		}
		since := func(t time.Time) *float64 {
			if t.IsZero() {
				return nil
			}
			v := now.Sub(t).Seconds()
			return &v
		}
		if f.Reasons == nil {
			f.Reasons = []string{}
		}
		for _, n := range scaler.Observe().Nodes {
			capacity := n.Capacity
			if capacity == 0 {
				capacity = cfg.NodeSlots
			}
			f.Nodes = append(f.Nodes, fleetNode{ID: n.ID, State: string(n.State), ActiveCalls: n.ActiveCalls, Capacity: capacity,
				CPU: n.CPU, Load1: n.Load1, LaunchedAt: n.LaunchedAt, AgeSeconds: now.Sub(n.LaunchedAt).Seconds(),
				PendingResults: n.Pending, HeardSecondsAgo: since(n.LastHeartbeat), ReadySecondsAgo: since(n.ReadyAt), Spot: n.Spot, SpotNotice: n.SpotNotice})
			if !n.DrainDeadline.IsZero() {
				left := n.DrainDeadline.Sub(now).Seconds()
				f.Nodes[len(f.Nodes)-1].DrainSecondsLeft = &left
			}
		}
		sort.Slice(f.Nodes, func(i, j int) bool { return f.Nodes[i].ID < f.Nodes[j].ID })
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f)
	})
}
