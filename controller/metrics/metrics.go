// Package metrics holds the scaler's Prometheus series. A nil *Scaler
// records nothing, so the scaler runs without metrics (tests, simulator).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Scaler is the scaler's Prometheus series. Create it with New on the
// registry the /metrics handler serves.
type Scaler struct {
	nodes        *prometheus.GaugeVec
	demand       prometheus.Gauge
	wanted       prometheus.Gauge
	readySlots   prometheus.Gauge
	comingSlots  prometheus.Gauge
	desired      prometheus.Gauge
	launches     prometheus.Counter
	terminations prometheus.Counter
	costPerHour  prometheus.Gauge
	budgetLimit  prometheus.Gauge
	leader       prometheus.Gauge
	leaderToken  prometheus.Gauge
	leaderChange *prometheus.CounterVec
}

// New registers the scaler's series on reg.
func New(reg prometheus.Registerer) (*Scaler, error) {
	m := &Scaler{
		nodes:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "elastidial_nodes", Help: "Nodes by lifecycle state."}, []string{"state"}),
		demand:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_demand_calls", Help: "Concurrent calls wanted by campaigns, after rate and trunk caps."}),
		wanted:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_wanted_slots", Help: "Call slots wanted (demand plus headroom)."}),
		readySlots:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_capacity_ready_slots", Help: "Usable call slots of ready nodes."}),
		comingSlots:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_capacity_coming_slots", Help: "Call slots of nodes on their way to ready."}),
		desired:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_desired_nodes", Help: "Serving nodes the last plan aims at."}),
		launches:     prometheus.NewCounter(prometheus.CounterOpts{Name: "elastidial_launches_total", Help: "Instances launched."}),
		terminations: prometheus.NewCounter(prometheus.CounterOpts{Name: "elastidial_terminations_total", Help: "Instances seen terminated."}),
		costPerHour:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_cost_per_hour_dollars", Help: "What the running fleet costs per hour now."}),
		budgetLimit:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_budget_limited", Help: "1 when the budget cap holds capacity below the wish."}),
		leader:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_scaler_leader", Help: "1 while this controller is the scaler leader."}),
		leaderToken:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastidial_scaler_fencing_token", Help: "Fencing token of this controller's leadership (0 when following)."}),
		leaderChange: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "elastidial_scaler_leadership_changes_total", Help: "Leaderships this controller took (event=acquired) and lost (event=lost)."}, []string{"event"}),
	}
	for _, c := range []prometheus.Collector{m.nodes, m.demand, m.wanted, m.readySlots, m.comingSlots, m.desired, m.launches, m.terminations, m.costPerHour, m.budgetLimit, m.leader, m.leaderToken, m.leaderChange} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Launched counts n instances launched.
func (m *Scaler) Launched(n int) {
	if m != nil {
		m.launches.Add(float64(n))
	}
}

// Terminated counts one instance seen terminated.
func (m *Scaler) Terminated() {
	if m != nil {
		m.terminations.Inc()
	}
}

// Leader records a leadership taken (with its fencing token) or lost.
func (m *Scaler) Leader(leading bool, token int64) {
	if m == nil {
		return
	}
	m.leaderToken.Set(float64(token))
	if leading {
		m.leader.Set(1)
		m.leaderChange.WithLabelValues("acquired").Inc()
	} else {
		m.leader.Set(0)
		m.leaderChange.WithLabelValues("lost").Inc()
	}
}

// Fleet is what one tick of the scaler saw and decided.
type Fleet struct {
	DemandCalls, WantedSlots, ReadySlots, ComingSlots, DesiredNodes int
	BudgetHeld                                                      bool           // the budget cap held capacity below the wish
	Nodes                                                           map[string]int // nodes by lifecycle state, every state present
	CostPerHour                                                     float64
}

// Observe publishes one tick's figures.
func (m *Scaler) Observe(f Fleet) {
	if m == nil {
		return
	}
	m.demand.Set(float64(f.DemandCalls))
	m.wanted.Set(float64(f.WantedSlots))
	m.readySlots.Set(float64(f.ReadySlots))
	m.comingSlots.Set(float64(f.ComingSlots))
	m.desired.Set(float64(f.DesiredNodes))
	if f.BudgetHeld {
		m.budgetLimit.Set(1)
	} else {
		m.budgetLimit.Set(0)
	}
	for s, n := range f.Nodes {
		m.nodes.WithLabelValues(s).Set(float64(n))
	}
	m.costPerHour.Set(f.CostPerHour)
}
