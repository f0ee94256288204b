// Package planner holds the scaling decision: Config.Plan is a pure
// function of what the loop observed and the time (invariant 5). It does
// no I/O, reads no clock and keeps no state; what it must remember between
// ticks (recent demand, for the scale-in stabilisation window) it hands
// back in Plan.Memory and receives again in Observed.Memory. The live loop
// (package controller) and the trace simulator (package sim) call the very
// same function.
package planner

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/controller/cost"
)

// NodeState is where a node is in its lifecycle; the state machine is
// drawn in controller/registry.go and enforced by controller's transition.
type NodeState string

// Node states.
const (
	StateRequested   NodeState = "requested"   // launch intent persisted, cloud not yet answered
	StatePending     NodeState = "pending"     // instance exists, not running yet
	StateBooting     NodeState = "booting"     // instance running, agent not registered
	StateRegistered  NodeState = "registered"  // agent registered, no ready heartbeat yet
	StateSyncing     NodeState = "syncing"     // heartbeating but not ready (audio, AMI, timing)
	StateReady       NodeState = "ready"       // takes calls; the only state whose slots count
	StateDraining    NodeState = "draining"    // takes no new calls; finishing its calls
	StateParking     NodeState = "parking"     // drained for the warm pool; stop requested from the cloud
	StateParked      NodeState = "parked"      // stopped in the warm pool: bills its volume only
	StateResuming    NodeState = "resuming"    // started from the pool; its agent has not re-registered yet
	StateTerminating NodeState = "terminating" // terminate requested from the cloud
	StateGone        NodeState = "gone"        // the cloud no longer runs it
)

// Coming reports whether a node in state s will become ready without any
// further decision.
func (s NodeState) Coming() bool {
	switch s {
	case StateRequested, StatePending, StateBooting, StateRegistered, StateSyncing, StateResuming:
		return true
	}
	return false
}

// Alive reports whether an instance in state s is (or may be) billed.
func (s NodeState) Alive() bool { return s != StateGone }

// DrainReason says why a node drains. It is typed, not free text, because
// the loop branches on it: a spot notice drains within SpotDrainTimeout,
// any other reason within DrainTimeout. It is stored in the node's row.
type DrainReason string

// Why a node drains.
const (
	DrainSurplus   DrainReason = "surplus"                       // demand fell below the fleet (scale-in)
	DrainOverCap   DrainReason = "over the node cap"             // the fleet exceeds MaxNodes or the budget
	DrainSpot      DrainReason = "spot interruption notice"      // the cloud takes the spot instance back
	DrainPark      DrainReason = "park in the warm pool"         // surplus kept stopped for the next rise
	DrainRebalance DrainReason = "spot rebalance recommendation" // replaced before its interruption notice
)

// Upcoming is demand known to start soon (the campaign tier's type).
type Upcoming = campaign.Upcoming

// CampaignView is one running or scheduled campaign as the planner sees it
// (the campaign → controller seam of CONVENTIONS.md).
type CampaignView struct {
	ID                string
	Priority          int     // higher is served first (campaign.Campaign.Priority)
	Target            int     // concurrent calls wanted now; 0 when not running
	Callable          int     // contacts callable now, not leased
	Active            int     // leases outstanding
	MaxCPS            float64 // attempts per second; 0 = unlimited
	Trunk             string
	TrunkChannels     int     // 0 = unlimited
	TrunkCPS          float64 // 0 = unlimited
	AvgAttemptSeconds float64 // observed mean attempt duration; 0 = Config.DefaultAttemptSeconds
	Upcoming          []Upcoming
	// OnDemand: its calls may outlast a spot node's interruption notice,
	// so only on-demand nodes lease them; with spot launches the plan
	// keeps enough on-demand nodes for its demand.
	OnDemand bool
}

// NodeView is one node as the planner sees it.
type NodeView struct {
	ID          string // node id (the instance id once known; the launch token + index while requested)
	State       NodeState
	Spot        bool
	Capacity    int     // slots the node offers; 0 = Config.SlotsPerNode
	ActiveCalls int     // from the last heartbeat
	Pending     int     // results queued on the node, not yet delivered
	CPU         float64 // 0..1 from the last heartbeat
	Load1       float64
	NodeDrain   bool // the node reported it is draining (it got our command)
	SpotNotice  bool
	Rebalance   bool        // EC2 recommends rebalancing this spot node: replace it before the notice
	DrainReason DrainReason // set while draining
	Zone        string      // availability zone

	StoppedAt   time.Time // parking or parked: when the stop was asked
	ResumedAt   time.Time // last started from the warm pool; deadlines count from it
	StartFailed time.Time // the cloud last refused to start it

	LaunchedAt    time.Time // requested (or first seen, for an adopted instance)
	ReadyAt       time.Time // zero until ready
	LastHeartbeat time.Time // zero until registered
	DrainDeadline time.Time // set while draining
}

// DemandSample is one past tick's wish, kept for the scale-in window.
type DemandSample struct {
	At    time.Time
	Slots int // wanted slots, headroom included
	Calls int // demand planned for, scheduled starts within BootLead included
	// Surprise is the demand due at At above what the previous tick had
	// planned for: an unannounced rise. A scheduled start counted ahead
	// through BootLead is no surprise when it arrives.
	Surprise int
}

// Memory is what the planner carries from one tick to the next. The loop
// keeps it opaque: whatever Plan returned goes into the next Observed.
type Memory struct {
	Samples []DemandSample // oldest first, pruned to the stabilisation window
	// Spikes are the unannounced rises within SpikeMemory that size the
	// warm pool: a sliding-window maximum, so each is larger than every
	// later one (oldest first).
	Spikes []DemandSample
}

// Observed is everything the planner decides on.
type Observed struct {
	Campaigns []CampaignView
	Nodes     []NodeView
	Memory    Memory
	// DemandStale says Campaigns is the last known demand, not a fresh
	// observation (the campaign tier did not answer): the planner still
	// replaces failed nodes and scales out, but never scales in on it.
	DemandStale bool
	// Short is what the cloud's answers taught about its capacity.
	Short Shortage
}

// Shortage is what launches taught about the cloud's capacity: spot had
// none anywhere (launches go on-demand until SpotUntil, then spot is
// tried again), and zones that had none (launches avoid each until its
// time). The loop records it from the cloud's answers and keeps it in the
// store under the leader's fence, so that a new leader resumes it rather
// than retrying a short zone or spot at once.
type Shortage struct {
	SpotUntil time.Time
	Zones     map[string]time.Time // zone → short until
}

// SpotShort reports whether launches should be on-demand at now.
func (s Shortage) SpotShort(now time.Time) bool { return now.Before(s.SpotUntil) }

// ZoneShort reports whether launches should avoid zone z at now.
func (s Shortage) ZoneShort(z string, now time.Time) bool { return now.Before(s.Zones[z]) }

// Live returns s without the entries expired at now.
func (s Shortage) Live(now time.Time) Shortage {
	out := Shortage{}
	if s.SpotShort(now) {
		out.SpotUntil = s.SpotUntil
	}
	for z, t := range s.Zones {
		if now.Before(t) {
			if out.Zones == nil {
				out.Zones = map[string]time.Time{}
			}
			out.Zones[z] = t
		}
	}
	return out
}

// Equal reports whether two shortages hold the same facts.
func (s Shortage) Equal(o Shortage) bool {
	if !s.SpotUntil.Equal(o.SpotUntil) || len(s.Zones) != len(o.Zones) {
		return false
	}
	for z, t := range s.Zones {
		if u, ok := o.Zones[z]; !ok || !u.Equal(t) {
			return false
		}
	}
	return true
}

// Config are the scaling knobs. Zero fields take the default noted beside
// them (see WithDefaults).
type Config struct {
	SlotsPerNode          int           // call slots of one node; 100
	MinNodes              int           // nodes kept even with no demand; 0
	MaxNodes              int           // hard cap on live instances; 50
	Headroom              float64       // extra share of slots kept above demand that rose unannounced within ScaleInWindow; 0.05
	SpareNodes            int           // nodes kept above any demand, so a node that fails leaves no call unserved while it is replaced; 0
	DefaultAttemptSeconds float64       // attempt duration when a campaign has none observed; 30
	ScaleInWindow         time.Duration // surplus must last this long before a drain; 5m
	MinLifetime           time.Duration // a node younger than this is not drained: no launch-then-terminate churn; 10m
	BootLead              time.Duration // launch-to-ready estimate: Upcoming demand this close counts now; 3m
	RegisterDeadline      time.Duration // from launch to registration; 5m
	ReadyDeadline         time.Duration // from launch to ready; 10m
	HeartbeatDeadline     time.Duration // silence after which a node is unhealthy; 45s
	DrainTimeout          time.Duration // a draining node is terminated at this age of its drain; 15m
	SpotDrainTimeout      time.Duration // EC2 gives two minutes; 2m
	SpotRetry             time.Duration // after a launch found no spot capacity, launches are on-demand this long; 10m
	ZoneRetry             time.Duration // after a launch found no capacity in its zone, launches avoid it this long; 10m
	StruggleCPU           float64       // CPU share above which a node is struggling; 0.85
	StruggleLoad          float64       // load1 above which a node is struggling; 0 = ignore
	StruggleFactor        float64       // share of slots a struggling node keeps; 0.75
	// Pricing is the controller's one price table (on-demand per region
	// and type with the configured overrides, spot from the cloud's price
	// history): the budget cap prices nodes with it. Default cost.Pricing{}.
	Pricing        cost.Pricing
	InstanceType   string  // type the next launch is priced as; Pricing.DefaultType
	Spot           bool    // launches are spot (priced as spot)
	BudgetPerHour  float64 // cap on the fleet's $/h; 0 = none
	MaxLaunchBatch int     // nodes in one Launch call; 50

	// The warm pool: nodes that booted and synced once, parked stopped
	// (billing their volume only) and started on the next rise in a
	// fraction of a boot. Its size follows the spike risk: the largest
	// unannounced rise within SpikeMemory, in nodes, at least WarmPoolMin,
	// at most WarmPoolMax, and no more than WarmPoolBudget (or the budget
	// cap, which counts the pool) pays for at the stopped price.
	WarmPool       bool          // park instead of terminate; needs a cloud that stops and starts (the loop checks)
	WarmPoolMin    int           // parked nodes kept whatever the risk (ops' expected spike); 0
	WarmPoolMax    int           // parked nodes at most; 20
	WarmPoolBudget float64       // cap on the pool's own $/h; 0 = none beyond BudgetPerHour
	SpikeMemory    time.Duration // how long an unannounced rise keeps the pool sized for it; 24h
	Hibernate      bool          // park hibernated (RAM to the root volume) where the instance allows
	StartRetry     time.Duration // a parked node the cloud refused to start is passed over this long; 1m
	// StartHedge is the share of nodes a start from the pool asks for
	// beyond the shortfall, rounded up: warm starts have a long tail, so
	// the shortfall is met by the fastest and the slowest come back to
	// the pool as surplus. The pool holds that share more than the risk
	// (and WarmPoolMin) too. 0.2; negative: none.
	StartHedge float64

	// Zones are the availability zones launches spread across (the
	// loop fills them from a ZonedCloud): each launch goes to the zone
	// with the fewest serving nodes, each drain comes from the zone with
	// the most, so zones stay within one node of each other.
	Zones []string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.SlotsPerNode = cmp.Or(c.SlotsPerNode, 100)
	c.MaxNodes = cmp.Or(c.MaxNodes, 50)
	c.Headroom = cmp.Or(c.Headroom, 0.05)
	c.DefaultAttemptSeconds = cmp.Or(c.DefaultAttemptSeconds, 30)
	c.ScaleInWindow = cmp.Or(c.ScaleInWindow, 5*time.Minute)
	c.MinLifetime = cmp.Or(c.MinLifetime, 10*time.Minute)
	c.BootLead = cmp.Or(c.BootLead, 3*time.Minute)
	c.RegisterDeadline = cmp.Or(c.RegisterDeadline, 5*time.Minute)
	c.ReadyDeadline = cmp.Or(c.ReadyDeadline, 10*time.Minute)
	c.HeartbeatDeadline = cmp.Or(c.HeartbeatDeadline, 45*time.Second)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 15*time.Minute)
	c.SpotDrainTimeout = cmp.Or(c.SpotDrainTimeout, 2*time.Minute)
	c.SpotRetry = cmp.Or(c.SpotRetry, 10*time.Minute)
	c.ZoneRetry = cmp.Or(c.ZoneRetry, 10*time.Minute)
	c.StruggleCPU = cmp.Or(c.StruggleCPU, 0.85)
	c.StruggleFactor = cmp.Or(c.StruggleFactor, 0.75)
	c.Pricing = c.Pricing.WithDefaults()
	c.InstanceType = cmp.Or(c.InstanceType, c.Pricing.DefaultType)
	c.MaxLaunchBatch = cmp.Or(c.MaxLaunchBatch, 50)
	c.WarmPoolMax = cmp.Or(c.WarmPoolMax, 20)
	c.SpikeMemory = cmp.Or(c.SpikeMemory, 24*time.Hour)
	c.StartRetry = cmp.Or(c.StartRetry, time.Minute)
	c.StartHedge = cmp.Or(c.StartHedge, 0.2)
	return c
}

// Validate names the first field that makes no sense.
func (c Config) Validate() error {
	switch {
	case c.SlotsPerNode < 0:
		return fmt.Errorf("config: SlotsPerNode %d is negative", c.SlotsPerNode)
	case c.MinNodes < 0:
		return fmt.Errorf("config: MinNodes %d is negative", c.MinNodes)
	case c.MaxNodes < 0:
		return fmt.Errorf("config: MaxNodes %d is negative", c.MaxNodes)
	case c.MaxNodes > 0 && c.MinNodes > c.MaxNodes:
		return fmt.Errorf("config: MinNodes %d above MaxNodes %d", c.MinNodes, c.MaxNodes)
	case c.SpareNodes < 0:
		return fmt.Errorf("config: SpareNodes %d is negative", c.SpareNodes)
	case c.Headroom < 0 || c.Headroom > 10:
		return fmt.Errorf("config: Headroom %g outside 0..10", c.Headroom)
	case c.StruggleFactor < 0 || c.StruggleFactor > 1:
		return fmt.Errorf("config: StruggleFactor %g outside 0..1", c.StruggleFactor)
	case c.BudgetPerHour < 0:
		return fmt.Errorf("config: BudgetPerHour %g is negative", c.BudgetPerHour)
	case c.WarmPoolMin < 0 || c.WarmPoolMax < 0:
		return fmt.Errorf("config: WarmPoolMin %d and WarmPoolMax %d must not be negative", c.WarmPoolMin, c.WarmPoolMax)
	case c.WarmPoolMax > 0 && c.WarmPoolMin > c.WarmPoolMax:
		return fmt.Errorf("config: WarmPoolMin %d above WarmPoolMax %d", c.WarmPoolMin, c.WarmPoolMax)
	case c.WarmPoolBudget < 0:
		return fmt.Errorf("config: WarmPoolBudget %g is negative", c.WarmPoolBudget)
	case c.StartHedge > 1:
		return fmt.Errorf("config: StartHedge %g above 1", c.StartHedge)
	}
	if err := c.Pricing.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// NodePrice is the $/h of one running node as the budget cap counts it:
// the configured type, spot or on-demand, from the price table.
func (c Config) NodePrice() float64 {
	return c.Pricing.RunningHourly(c.InstanceType, c.Spot)
}

// ActionKind says what an Action does.
type ActionKind string

// Action kinds, in the order the loop carries them out.
const (
	ActTerminate   ActionKind = "terminate"    // NodeIDs: end these instances now
	ActCancelDrain ActionKind = "cancel-drain" // NodeIDs: take calls again
	ActLaunch      ActionKind = "launch"       // Count: start this many nodes in one batch
	ActDrain       ActionKind = "drain"        // NodeIDs: stop new calls, terminate when idle
	ActCapacity    ActionKind = "capacity"     // NodeIDs[0] offers Count slots from now on
	ActStart       ActionKind = "start"        // NodeIDs: start these parked nodes (before any launch)
	ActStop        ActionKind = "stop"         // NodeIDs: park these drained nodes stopped
)

// Action is one step the loop carries out.
type Action struct {
	Kind    ActionKind
	Count   int
	NodeIDs []string
	Reason  string      // for logs
	Drain   DrainReason // ActDrain: why, typed (the drain deadline depends on it)
	Zone    string      // ActLaunch: the zone to place the nodes in; "" any
	// OnDemand (ActLaunch, with spot launches): launch on-demand nodes,
	// for calls that may outlast a spot notice or while spot is short.
	OnDemand bool
}

// Plan is the planner's answer for one tick.
type Plan struct {
	Actions []Action
	// Figures behind the decision, for logs, metrics and the simulator.
	DemandCalls   int // concurrent calls wanted (now and within BootLead)
	WantedSlots   int // DemandCalls plus headroom
	ReadySlots    int // usable slots of ready nodes
	ComingSlots   int // slots of nodes on their way to ready
	DesiredNodes  int // nodes the plan aims at once carried out
	WarmTarget    int // parked nodes the pool aims at
	Parked        int // parked (or parking) nodes once the plan is carried out
	BudgetLimited bool
	OnDemandNodes int      // with spot launches: on-demand nodes kept for calls that may outlast a spot notice
	Reasons       []string // why capacity is held where it is (budget, max nodes, ...)
	// Shares is the fleet's slots, once the plan is carried out, as the
	// campaigns will get them: higher priority first (leasing serves
	// them in that order), each up to its demand.
	Shares map[string]int
	Memory Memory
}

// CampaignDemand is the concurrent calls campaign c can use now, before any
// shared-trunk cap: its target capped by what it can dial and sustain.
func CampaignDemand(c CampaignView, now time.Time, cfg Config) int {
	dur := c.AvgAttemptSeconds
	if dur <= 0 {
		dur = cfg.DefaultAttemptSeconds
	}
	rateCap := func(cps float64) int {
		if cps <= 0 {
			return math.MaxInt
		}
		return int(math.Ceil(cps * dur))
	}
	d := min(c.Target, c.Callable+c.Active)
	// Demand that starts within the boot lead counts now, so nodes are ready
	// when it starts. Its contacts are not callable yet, so only the target
	// and the rate caps apply.
	for _, u := range c.Upcoming {
		if !u.At.After(now.Add(cfg.BootLead)) && u.Target > d {
			d = u.Target
		}
	}
	d = min(d, rateCap(c.MaxCPS), rateCap(c.TrunkCPS))
	if c.TrunkChannels > 0 {
		d = min(d, c.TrunkChannels)
	}
	return max(d, 0)
}

// TotalDemand sums the campaigns' demand, capping campaigns that share a
// trunk at what the trunk can carry (channels, and CPS × attempt duration).
func TotalDemand(cs []CampaignView, now time.Time, cfg Config) int {
	type trunk struct{ sum, limit int }
	trunks := map[string]*trunk{}
	total := 0
	for _, c := range cs {
		d := CampaignDemand(c, now, cfg)
		if c.Trunk == "" {
			total += d
			continue
		}
		t := trunks[c.Trunk]
		if t == nil {
			t = &trunk{limit: math.MaxInt}
			trunks[c.Trunk] = t
		}
		t.sum += d
		dur := c.AvgAttemptSeconds
		if dur <= 0 {
			dur = cfg.DefaultAttemptSeconds
		}
		if c.TrunkChannels > 0 {
			t.limit = min(t.limit, c.TrunkChannels)
		}
		if c.TrunkCPS > 0 {
			t.limit = min(t.limit, int(math.Ceil(c.TrunkCPS*dur)))
		}
	}
	for _, t := range trunks {
		total += min(t.sum, t.limit)
	}
	return total
}

// Shares splits slots among campaigns by priority: every campaign of the
// highest priority takes its demand (CampaignDemand) first, then the next
// priority takes what is left, and so on; campaigns of one priority split
// what their level gets in proportion to their demand. This is what
// leasing does with the fleet's slots and trunks (campaign/sqlstore).
func Shares(cs []CampaignView, slots int, now time.Time, cfg Config) map[string]int {
	out := make(map[string]int, len(cs))
	byPrio := map[int][]CampaignView{}
	var prios []int
	for _, c := range cs {
		if _, ok := byPrio[c.Priority]; !ok {
			prios = append(prios, c.Priority)
		}
		byPrio[c.Priority] = append(byPrio[c.Priority], c)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(prios)))
	left := max(slots, 0)
	for _, p := range prios {
		level := byPrio[p]
		sort.Slice(level, func(i, j int) bool { return level[i].ID < level[j].ID })
		want := make([]int, len(level))
		total := 0
		for i, c := range level {
			want[i] = CampaignDemand(c, now, cfg)
			total += want[i]
		}
		if total <= left {
			for i, c := range level {
				out[c.ID] = want[i]
			}
			left -= total
			continue
		}
		got := 0
		for i, c := range level {
			n := want[i] * left / total
			out[c.ID] = n
			got += n
		}
		for i := 0; got < left && i < len(level); i++ { // the remainder, in id order
			if out[level[i].ID] < want[i] {
				out[level[i].ID]++
				got++
			}
		}
		left = 0
	}
	return out
}

// NodeSlots is the usable slots of node n: its capacity, reduced when its
// load says it is struggling.
func NodeSlots(n NodeView, cfg Config) int {
	s := n.Capacity
	if s <= 0 {
		s = cfg.SlotsPerNode
	}
	if Struggling(n, cfg) {
		s = int(float64(s) * cfg.StruggleFactor)
	}
	return s
}

// Struggling reports whether n's last heartbeat says it is overloaded.
func Struggling(n NodeView, cfg Config) bool {
	return n.CPU >= cfg.StruggleCPU || (cfg.StruggleLoad > 0 && n.Load1 >= cfg.StruggleLoad)
}

// Plan is the planner: what to do now, given obs. Zero fields of cfg take
// their defaults.
func (cfg Config) Plan(obs Observed, now time.Time) Plan {
	cfg = cfg.WithDefaults()
	var p Plan
	var terminate, stop []string
	terminated := map[string]bool{}
	kill := func(id, why string) {
		terminate = append(terminate, id)
		terminated[id] = true
		p.Reasons = append(p.Reasons, fmt.Sprintf("terminate %s: %s", id, why))
	}

	// 1. Lifecycle deadlines: these hold whatever the demand.
	var ready, coming, draining, atRisk []NodeView
	alive := 0
	var parked []NodeView
	parking := 0
	for _, n := range obs.Nodes {
		// A node started from the pool gets its deadlines from the start.
		age := now.Sub(n.LaunchedAt)
		if n.ResumedAt.After(n.LaunchedAt) {
			age = now.Sub(n.ResumedAt)
		}
		silent := !n.LastHeartbeat.IsZero() && now.Sub(n.LastHeartbeat) > cfg.HeartbeatDeadline
		switch {
		case n.State == StateGone:
			continue
		case n.State == StateTerminating:
			alive++
			continue
		case n.State == StateParked:
			parked = append(parked, n)
			continue
		case n.State == StateParking:
			if !n.StoppedAt.IsZero() && now.Sub(n.StoppedAt) > cfg.DrainTimeout {
				kill(n.ID, "stop for the warm pool did not finish")
				continue
			}
			parking++
			continue
		case n.State == StateResuming:
			if age > cfg.RegisterDeadline {
				kill(n.ID, "no registration after a start from the warm pool")
				continue
			}
		case n.State == StatePending || n.State == StateBooting:
			if age > cfg.RegisterDeadline {
				kill(n.ID, "no registration within deadline")
				continue
			}
		case n.State == StateRegistered || n.State == StateSyncing:
			if silent {
				kill(n.ID, "no heartbeat within deadline")
				continue
			}
			if age > cfg.ReadyDeadline {
				kill(n.ID, "not ready within deadline")
				continue
			}
		case n.State == StateReady:
			if silent {
				kill(n.ID, "no heartbeat within deadline")
				continue
			}
		case n.State == StateDraining:
			switch {
			case !n.DrainDeadline.IsZero() && !now.Before(n.DrainDeadline):
				kill(n.ID, "drain deadline passed")
				continue
			case n.NodeDrain && n.ActiveCalls == 0 && n.Pending == 0 && !silent && n.DrainReason == DrainPark && cfg.WarmPool:
				stop = append(stop, n.ID)
				parking++
				continue
			case n.NodeDrain && n.ActiveCalls == 0 && n.Pending == 0 && !silent:
				kill(n.ID, "drained")
				continue
			case silent:
				// A silent draining node may still be carrying calls we
				// cannot see; only the drain deadline ends it.
			}
		}
		alive++
		switch {
		case n.State == StateReady && n.SpotNotice:
			// Handled below as a drain; it no longer counts as capacity.
			draining = append(draining, n)
		case n.State == StateReady && n.Rebalance:
			// At elevated risk of interruption: it serves on, but counts
			// as no capacity, so a replacement is launched now; it drains
			// once the replacements are ready.
			atRisk = append(atRisk, n)
		case n.State == StateReady:
			ready = append(ready, n)
		case n.State == StateDraining:
			draining = append(draining, n)
		case n.State.Coming():
			coming = append(coming, n)
		}
	}
	if len(terminate) > 0 {
		p.Actions = append(p.Actions, Action{Kind: ActTerminate, NodeIDs: terminate, Reason: "lifecycle deadline"})
	}
	if len(stop) > 0 {
		p.Actions = append(p.Actions, Action{Kind: ActStop, NodeIDs: stop, Reason: "drained into the warm pool"})
	}
	var spotDrain []string
	for _, n := range draining {
		if n.State == StateReady && n.SpotNotice {
			spotDrain = append(spotDrain, n.ID)
		}
	}

	// 2. Demand and capacity in slots.
	p.DemandCalls = TotalDemand(obs.Campaigns, now, cfg)
	due := cfg
	due.BootLead = 0
	dueNow := TotalDemand(obs.Campaigns, now, due)
	for _, n := range ready {
		s := NodeSlots(n, cfg)
		p.ReadySlots += s
		if Struggling(n, cfg) {
			p.Actions = append(p.Actions, Action{Kind: ActCapacity, Count: s, NodeIDs: []string{n.ID}, Reason: "struggling"})
		}
	}
	for _, n := range coming {
		p.ComingSlots += NodeSlots(NodeView{Capacity: n.Capacity}, cfg)
	}

	// Remember this tick's wish and prune the window. The newest sample
	// older than the window is kept too: it proves the window is covered
	// whatever the tick interval. A tick whose demand is stale (the
	// campaign tier did not answer) adds no sample and never scales in.
	var older, last *DemandSample
	peak, surprise := 0, 0
	for i, s := range obs.Memory.Samples {
		switch {
		case !s.At.Before(now):
			// A sample from the future (clock stepped back): ignore.
			continue
		case now.Sub(s.At) > cfg.ScaleInWindow:
			if older == nil || s.At.After(older.At) {
				older = &obs.Memory.Samples[i]
			}
		default:
			p.Memory.Samples = append(p.Memory.Samples, s)
			peak = max(peak, s.Slots)
			surprise = max(surprise, s.Surprise)
		}
		if last == nil || s.At.After(last.At) {
			last = &obs.Memory.Samples[i]
		}
	}
	// Headroom guards against demand rising again before new nodes boot.
	// Demand that rose unannounced within the window gets it (at most the
	// largest such rise); demand that is steady, falling, or was announced
	// ahead (a scheduled start, counted through BootLead) is held exactly:
	// a spare node on it would be billed for hours and never used. With no
	// memory (a first tick, a restart) all of today's demand is a surprise.
	now0 := dueNow
	if last != nil {
		now0 = max(dueNow-last.Calls, 0)
	}
	if !obs.DemandStale {
		surprise = max(surprise, now0)
	}
	extra := min(int(math.Ceil(float64(p.DemandCalls)*cfg.Headroom)), surprise)
	p.WantedSlots = p.DemandCalls + extra
	if p.DemandCalls > 0 {
		p.WantedSlots += cfg.SpareNodes * cfg.SlotsPerNode
	}
	peak = max(peak, p.WantedSlots)
	windowFull := older != nil
	for _, s := range p.Memory.Samples {
		windowFull = windowFull || now.Sub(s.At) >= cfg.ScaleInWindow
	}
	if older != nil {
		p.Memory.Samples = append(p.Memory.Samples, *older)
	}
	if obs.DemandStale {
		windowFull = false
	} else {
		p.Memory.Samples = append(p.Memory.Samples, DemandSample{At: now, Slots: p.WantedSlots, Calls: p.DemandCalls, Surprise: now0})
	}
	sort.Slice(p.Memory.Samples, func(i, j int) bool { return p.Memory.Samples[i].At.Before(p.Memory.Samples[j].At) })
	// Spike risk: the largest unannounced rise within SpikeMemory.
	for _, sp := range obs.Memory.Spikes {
		if sp.At.Before(now) && now.Sub(sp.At) <= cfg.SpikeMemory {
			p.Memory.Spikes = append(p.Memory.Spikes, sp)
		}
	}
	if !obs.DemandStale && now0 > 0 {
		for len(p.Memory.Spikes) > 0 && p.Memory.Spikes[len(p.Memory.Spikes)-1].Surprise <= now0 {
			p.Memory.Spikes = p.Memory.Spikes[:len(p.Memory.Spikes)-1]
		}
		p.Memory.Spikes = append(p.Memory.Spikes, DemandSample{At: now, Surprise: now0})
	}
	risk := 0
	if len(p.Memory.Spikes) > 0 {
		risk = p.Memory.Spikes[0].Surprise
	}

	// Budget: the most nodes the fleet may run. Draining and terminating
	// nodes bill too, so they count.
	slot := cfg.SlotsPerNode
	// The warm pool's size: the spike risk in nodes, within its limits
	// and what its own budget pays for at the stopped price.
	// hedged is n nodes and the StartHedge share more, for the tail.
	hedged := func(n int) int { return n + int(math.Ceil(max(cfg.StartHedge, 0)*float64(n)-1e-9)) }
	poolMin := 0
	if cfg.WarmPool {
		poolMin = min(hedged(cfg.WarmPoolMin), cfg.WarmPoolMax)
		p.WarmTarget = min(max(hedged((risk+slot-1)/slot), poolMin), cfg.WarmPoolMax)
		if sp := cfg.Pricing.StoppedHourly(); sp > 0 && cfg.WarmPoolBudget > 0 {
			p.WarmTarget = min(p.WarmTarget, int(math.Floor(cfg.WarmPoolBudget/sp+1e-9)))
		}
	}
	// The pool bills too: the budget cap pays for it first.
	poolCost := float64(len(parked)+parking) * cfg.Pricing.StoppedHourly()
	maxNodes := cfg.MaxNodes
	if price := cfg.NodePrice(); cfg.BudgetPerHour > 0 && price > 0 {
		afford := int(math.Floor(max(cfg.BudgetPerHour-poolCost, 0)/price + 1e-9))
		if afford < maxNodes {
			maxNodes = afford
			p.BudgetLimited = true
		}
	}
	minNodes := min(cfg.MinNodes, maxNodes)

	have := p.ReadySlots + p.ComingSlots
	serving := len(ready) + len(coming)
	// Calls that may outlast a spot node's interruption notice are leased
	// to on-demand nodes only: with spot launches, the fleet keeps enough
	// on-demand nodes for those campaigns' demand (they serve the others
	// too, so the total is unchanged).
	odWant, odHave := 0, 0
	if cfg.Spot {
		calls := 0
		for _, c := range obs.Campaigns {
			if c.OnDemand {
				calls += CampaignDemand(c, now, cfg)
			}
		}
		odWant = (min(calls, p.DemandCalls) + slot - 1) / slot
		for _, g := range [][]NodeView{ready, coming} {
			for _, n := range g {
				if !n.Spot {
					odHave++
				}
			}
		}
	}
	p.OnDemandNodes = odWant
	// Spot found short lately: every launch is on-demand until then.
	spotShort := cfg.Spot && obs.Short.SpotShort(now)
	// Launches avoid zones found short of capacity lately (all zones
	// stay in play when every one is short).
	lz := cfg
	lz.Zones = nil
	for _, z := range cfg.Zones {
		if !obs.Short.ZoneShort(z, now) {
			lz.Zones = append(lz.Zones, z)
		}
	}
	if len(lz.Zones) == 0 {
		lz.Zones = cfg.Zones
	}
	if spotShort {
		p.Reasons = append(p.Reasons, fmt.Sprintf("spot short of capacity until %s: launches are on-demand", obs.Short.SpotUntil.Format(time.RFC3339)))
	}
	for _, z := range cfg.Zones {
		if obs.Short.ZoneShort(z, now) {
			p.Reasons = append(p.Reasons, fmt.Sprintf("zone %s short of capacity until %s: launches avoid it", z, obs.Short.Zones[z].Format(time.RFC3339)))
		}
	}
	poolHave := len(parked) + parking
	for _, n := range draining {
		if n.DrainReason == DrainPark {
			poolHave++
		}
	}
	// Filling the pool to its minimum: launched nodes boot and sync, then
	// are parked as surplus once the window passes. Nodes already beyond
	// the wish will be parked the same way and count.
	// Nodes started from the pool still belong to it: they return when
	// the rise they serve passes, so they are not replaced meanwhile.
	fill := 0
	if cfg.WarmPool {
		spare := max(0, (have-p.WantedSlots)/slot)
		lent := 0
		for _, g := range [][]NodeView{ready, coming} {
			for _, n := range g {
				if !n.ResumedAt.IsZero() {
					lent++
				}
			}
		}
		fill = max(0, min(p.WarmTarget, poolMin)-poolHave-spare-lent)
	}
	// Starting parked nodes is the first answer to a shortfall; nodes the
	// plan starts leave the pool.
	sort.Slice(parked, func(i, j int) bool { return parked[i].ID < parked[j].ID })
	started := 0

	switch {
	case serving > maxNodes:
		// Over the cap (budget lowered, or max nodes): drain the emptiest
		// nodes at once, whatever the demand.
		if p.BudgetLimited {
			p.Reasons = append(p.Reasons, fmt.Sprintf("budget cap $%.2f/h: fleet above its cap of %d nodes", cfg.BudgetPerHour, maxNodes))
		} else {
			p.Reasons = append(p.Reasons, fmt.Sprintf("fleet above its cap of %d nodes", maxNodes))
		}
		sortEmptiest(ready)
		var drain []string
		for _, n := range ready {
			if serving <= maxNodes {
				break
			}
			drain = append(drain, n.ID)
			serving--
		}
		if len(drain) > 0 {
			p.Actions = append(p.Actions, Action{Kind: ActDrain, NodeIDs: drain, Reason: "over the node cap", Drain: DrainOverCap})
		}
	case have < p.WantedSlots || serving < minNodes || odHave < odWant:
		// 3. Scale out: drains first (warm, already paid for), fullest
		// first, then parked nodes, then launches (a batch per zone).
		sort.Slice(draining, func(i, j int) bool {
			if draining[i].ActiveCalls != draining[j].ActiveCalls {
				return draining[i].ActiveCalls > draining[j].ActiveCalls
			}
			return draining[i].ID < draining[j].ID
		})
		var cancel []string
		for _, n := range draining {
			enough := have >= p.WantedSlots && serving >= minNodes
			if enough && odHave >= odWant {
				break
			}
			if n.SpotNotice || n.State != StateDraining || n.LastHeartbeat.IsZero() || now.Sub(n.LastHeartbeat) > cfg.HeartbeatDeadline {
				continue
			}
			if enough && n.Spot {
				continue // short of on-demand nodes only: a spot node does not help
			}
			cancel = append(cancel, n.ID)
			have += NodeSlots(n, cfg)
			serving++
			if !n.Spot {
				odHave++
			}
		}
		if len(cancel) > 0 {
			p.Actions = append(p.Actions, Action{Kind: ActCancelDrain, NodeIDs: cancel, Reason: "demand returned"})
		}
		need := 0
		if have < p.WantedSlots {
			need = (p.WantedSlots - have + slot - 1) / slot
		}
		need = max(need, minNodes-serving, odWant-odHave)
		// Starts are hedged: the pool's nodes beyond the shortfall are
		// started too (never launched for): the fastest serve it.
		hedge := 0
		if len(parked) > 0 && need > 0 {
			hedge = hedged(need) - need
			need += hedge
		}
		var start []string
		zc := zoneCounts(cfg.Zones, ready, coming)
		startable := func(n NodeView) bool {
			// A node the cloud refused a moment ago (no capacity) is
			// passed over: launch instead.
			return n.StartFailed.IsZero() || now.Sub(n.StartFailed) >= cfg.StartRetry
		}
		take := func(n NodeView) {
			start = append(start, n.ID)
			zc[n.Zone]++
			need--
			alive++
			serving++
			have += NodeSlots(NodeView{Capacity: n.Capacity}, cfg)
			if !n.Spot {
				odHave++
			}
		}
		if len(lz.Zones) == 0 {
			for _, n := range parked {
				if need <= 0 || alive >= maxNodes {
					break
				}
				if startable(n) {
					take(n)
				}
			}
		} else {
			// Each node wanted goes to the zone with the fewest: a
			// parked node there starts, else that zone gets a launch
			// (below), so a pool parked unevenly never skews the fleet.
			reserved := map[string]int{}
			chosen := map[string]bool{}
			for need > 0 && alive < maxNodes {
				z := lz.Zones[0]
				for _, x := range lz.Zones[1:] {
					if zc[x] < zc[z] {
						z = x
					}
				}
				found := false
				for _, n := range parked {
					if n.Zone == z && !chosen[n.ID] && startable(n) {
						chosen[n.ID], found = true, true
						take(n)
						break
					}
				}
				if !found {
					reserved[z]++
					zc[z]++
					need--
					alive++
				}
			}
			for z, k := range reserved {
				zc[z] -= k
				need += k
				alive -= k
			}
		}
		need = max(0, need-hedge) // what is left to launch
		if len(start) > 0 {
			started = len(start)
			fill = max(0, fill-started)
			rest := parked[:0:0]
			for _, n := range parked {
				if !slices.Contains(start, n.ID) {
					rest = append(rest, n)
				}
			}
			parked = rest
			poolHave -= started
			p.Actions = append(p.Actions, Action{Kind: ActStart, NodeIDs: start, Reason: fmt.Sprintf("want %d slots: start from the warm pool", p.WantedSlots)})
		}
		// The pool is not refilled during a shortfall: the nodes serving
		// it are parked when it passes.
		fill = 0
		room := maxNodes - alive
		if need > room {
			if p.BudgetLimited && room < cfg.MaxNodes-alive {
				p.Reasons = append(p.Reasons, fmt.Sprintf("budget cap $%.2f/h holds the fleet at %d nodes; %d more wanted", cfg.BudgetPerHour, maxNodes, need-max(room, 0)))
			} else {
				p.Reasons = append(p.Reasons, fmt.Sprintf("max nodes %d reached; %d more wanted", maxNodes, need-max(room, 0)))
			}
			need = max(room, 0)
		}
		if need > 0 {
			// On-demand nodes for the long calls first, then spot (all
			// on-demand while spot is short).
			od := min(need, max(odWant-odHave, 0))
			if spotShort {
				od = need
			}
			for _, l := range spread(lz, zc, od) {
				p.Actions = append(p.Actions, Action{Kind: ActLaunch, Count: l.Count, Zone: l.Zone, OnDemand: cfg.Spot,
					Reason: fmt.Sprintf("want %d slots, have %d; %d on-demand nodes for calls that may outlast a spot notice, have %d", p.WantedSlots, have, odWant, odHave)})
			}
			for _, l := range spread(lz, zc, need-od) {
				p.Actions = append(p.Actions, Action{Kind: ActLaunch, Count: l.Count, Zone: l.Zone, Reason: fmt.Sprintf("want %d slots, have %d", p.WantedSlots, have)})
			}
			alive += need
			serving += need
		}
	case have > p.WantedSlots && windowFull:
		// 4. Scale in: only the surplus that lasted the whole window (the
		// peak wish over it), never below min, never a young node: with a
		// 60 s billing minimum, ending it sooner saves nothing.
		// Ready slots alone must still cover the wish: coming nodes are
		// not serving yet, and draining a ready node for them would leave
		// calls unplaced until they boot.
		// Hysteresis: after a drain the fleet must still hold the peak plus
		// the headroom once more, so demand wobbling around a node boundary
		// does not drain a node one tick and launch it again the next.
		// Demand that did not rise unannounced within the window does not
		// wobble: it gets no hysteresis, as it gets no headroom.
		// The test is per node, on the slots it really counts: a node whose
		// capacity was reduced for CPU load holds less than a whole node's
		// slots, and a surplus test in whole nodes would keep it (idle and
		// billed) forever.
		// A node parked in the warm pool is not ended: the churn guard
		// (MinLifetime) does not hold it, since starting it again costs a
		// warm start, not a launch.
		target := max(p.WantedSlots, peak) + extra
		readyHave := p.ReadySlots
		sortEmptiest(ready)
		var drain, park []string
		zc := zoneCounts(cfg.Zones, ready, coming)
		picked := make([]bool, len(ready))
		for {
			// The emptiest eligible node of the fullest zone.
			best := -1
			for i, n := range ready {
				s := NodeSlots(n, cfg)
				toPool := cfg.WarmPool && poolHave < p.WarmTarget && !n.Spot && !n.ReadyAt.IsZero()
				if picked[i] || have-s < target || readyHave-s < target || serving-1 < minNodes || (!toPool && now.Sub(n.LaunchedAt) < cfg.MinLifetime) {
					continue
				}
				if cfg.Spot && !n.Spot && odHave-1 < odWant {
					continue // the on-demand nodes the long calls need stay
				}
				// In the fullest zone; with spot launches, on-demand nodes
				// (a fallback when spot was short) go first: the fleet
				// moves back to spot as it turns over.
				if best < 0 || zc[n.Zone] > zc[ready[best].Zone] || zc[n.Zone] == zc[ready[best].Zone] && cfg.Spot && !n.Spot && ready[best].Spot {
					best = i
				}
			}
			if best < 0 {
				break
			}
			picked[best] = true
			n := ready[best]
			zc[n.Zone]--
			s := NodeSlots(n, cfg)
			toPool := cfg.WarmPool && poolHave < p.WarmTarget && !n.Spot && !n.ReadyAt.IsZero()
			if toPool {
				park = append(park, n.ID)
				poolHave++
			} else {
				drain = append(drain, n.ID)
			}
			have -= s
			readyHave -= s
			serving--
			if !n.Spot {
				odHave--
			}
		}
		if len(park) > 0 {
			p.Actions = append(p.Actions, Action{Kind: ActDrain, NodeIDs: park, Reason: fmt.Sprintf("surplus over %s: want %d slots; park for the warm pool of %d", cfg.ScaleInWindow, target, p.WarmTarget), Drain: DrainPark})
		}
		if len(drain) > 0 {
			p.Actions = append(p.Actions, Action{Kind: ActDrain, NodeIDs: drain, Reason: fmt.Sprintf("surplus over %s: want %d slots", cfg.ScaleInWindow, target), Drain: DrainSurplus})
		}
	}
	if len(spotDrain) > 0 {
		p.Actions = append(p.Actions, Action{Kind: ActDrain, NodeIDs: spotDrain, Reason: string(DrainSpot), Drain: DrainSpot})
	}
	if len(atRisk) > 0 && p.ReadySlots >= p.WantedSlots {
		var ids []string
		for _, n := range atRisk {
			ids = append(ids, n.ID)
		}
		p.Actions = append(p.Actions, Action{Kind: ActDrain, NodeIDs: ids, Reason: "replaced ahead of a likely spot interruption", Drain: DrainRebalance})
	}
	if fill > 0 && alive+fill <= maxNodes {
		// The pool's minimum, with nothing else to launch: nodes to boot,
		// sync and park. Spare nodes (parked by the scale-in above) count.
		parkedNow := 0
		for _, a := range p.Actions {
			if a.Kind == ActDrain && a.Drain == DrainPark {
				parkedNow += len(a.NodeIDs)
			}
		}
		if fill -= parkedNow; fill > 0 {
			// On-demand: a spot node is never parked.
			for _, l := range spread(lz, zoneCounts(cfg.Zones, ready, coming), fill) {
				p.Actions = append(p.Actions, Action{Kind: ActLaunch, Count: l.Count, Zone: l.Zone, OnDemand: cfg.Spot, Reason: fmt.Sprintf("warm pool: %d more nodes to boot, sync and park", fill)})
			}
			alive += fill
		}
	}
	// A pool above its target (the risk aged out, the budget fell, the
	// pool switched off) ends its surplus, the longest parked first.
	if rest := parked; len(rest) > p.WarmTarget {
		sort.SliceStable(rest, func(i, j int) bool { return rest[i].StoppedAt.Before(rest[j].StoppedAt) })
		var ids []string
		for _, x := range rest[:len(rest)-p.WarmTarget] {
			ids = append(ids, x.ID)
		}
		p.Actions = append(p.Actions, Action{Kind: ActTerminate, NodeIDs: ids, Reason: fmt.Sprintf("warm pool above its target of %d", p.WarmTarget)})
		poolHave -= len(ids)
	}
	p.DesiredNodes = serving
	p.Shares = Shares(obs.Campaigns, serving*slot, now, cfg)
	for _, c := range obs.Campaigns {
		if d := CampaignDemand(c, now, cfg); p.Shares[c.ID] < d {
			p.Reasons = append(p.Reasons, fmt.Sprintf("campaign %s (priority %d) gets %d of the %d slots it wants: higher priorities first", c.ID, c.Priority, p.Shares[c.ID], d))
		}
	}
	p.Parked = poolHave
	return p
}

// zoneCounts counts the serving nodes of each configured zone (nodes in
// a zone not configured count under their own name).
func zoneCounts(zones []string, groups ...[]NodeView) map[string]int {
	c := make(map[string]int, len(zones))
	for _, z := range zones {
		c[z] = 0
	}
	for _, g := range groups {
		for _, n := range g {
			c[n.Zone]++
		}
	}
	return c
}

// spread splits n launches into batches, each to the zone with the fewest
// serving nodes at the time (ties in configuration order), at most
// MaxLaunchBatch a batch. zc is updated. Without zones: batches for any
// zone.
func spread(cfg Config, zc map[string]int, n int) []Action {
	var out []Action
	if len(cfg.Zones) == 0 {
		for n > 0 {
			b := min(n, cfg.MaxLaunchBatch)
			out = append(out, Action{Kind: ActLaunch, Count: b})
			n -= b
		}
		return out
	}
	per := map[string]int{}
	for range n {
		best := cfg.Zones[0]
		for _, z := range cfg.Zones[1:] {
			if zc[z] < zc[best] {
				best = z
			}
		}
		zc[best]++
		per[best]++
	}
	for _, z := range cfg.Zones {
		for k := per[z]; k > 0; {
			b := min(k, cfg.MaxLaunchBatch)
			out = append(out, Action{Kind: ActLaunch, Count: b, Zone: z})
			k -= b
		}
	}
	return out
}

// sortEmptiest orders nodes by active calls, fewest first (ties by id, so
// the plan is deterministic).
func sortEmptiest(ns []NodeView) {
	sort.Slice(ns, func(i, j int) bool {
		if ns[i].ActiveCalls != ns[j].ActiveCalls {
			return ns[i].ActiveCalls < ns[j].ActiveCalls
		}
		return ns[i].ID < ns[j].ID
	})
}
