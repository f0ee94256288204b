package controller

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scaler's Prometheus series. Create them with NewMetrics on
// the registry the /metrics handler serves.
type Metrics struct {
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

// NewMetrics registers the scaler's series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
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

func (c *Controller) metricLaunched(n int) {
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.launches.Add(float64(n))
	}
}

func (c *Controller) metricLeader(leading bool, token int64) {
	m := c.cfg.Metrics
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

func (c *Controller) metricTerminated() {
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.terminations.Inc()
	}
}

// observeMetrics publishes the last plan and the registry's counts.
func (c *Controller) observeMetrics(p Plan) {
	m := c.cfg.Metrics
	if m == nil {
		return
	}
	m.demand.Set(float64(p.DemandCalls))
	m.wanted.Set(float64(p.WantedSlots))
	m.readySlots.Set(float64(p.ReadySlots))
	m.comingSlots.Set(float64(p.ComingSlots))
	m.desired.Set(float64(p.DesiredNodes))
	if budgetHeld(p) {
		m.budgetLimit.Set(1)
	} else {
		m.budgetLimit.Set(0)
	}
	counts := map[NodeState]int{}
	for _, s := range []NodeState{StateRequested, StatePending, StateBooting, StateRegistered, StateSyncing, StateReady, StateDraining, StateTerminating} {
		counts[s] = 0
	}
	for _, v := range c.Observe().Nodes {
		counts[v.State]++
	}
	for s, n := range counts {
		m.nodes.WithLabelValues(string(s)).Set(float64(n))
	}
	m.costPerHour.Set(c.CostPerHour())
}

// budgetHeld reports whether the budget cap held capacity down in p.
func budgetHeld(p Plan) bool {
	for _, r := range p.Reasons {
		if strings.HasPrefix(r, "budget cap") {
			return true
		}
	}
	return false
}
