// Package planner is the scaling decision: Plan is a pure function of
// what the control loop observed and the time (invariant 5). It does no
// I/O and keeps no state; what it must remember between ticks (recent
// demand, for the scale-in stabilisation window) it hands back in
// Plan.Memory and receives again in Observed.Memory. The live loop
// (package controller) and the trace simulator (package sim) call the
// very same function.
package planner

import (
	"cmp"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// NodeState is where a node is in its lifecycle; the state machine and
// its one guarded transition live with the registry (package controller,
// registry.go and lifecycle.go).
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
	StateTerminating NodeState = "terminating" // terminate requested from the cloud
	StateGone        NodeState = "gone"        // the cloud no longer runs it
)

// Coming reports whether a node in state s will become ready without any
// further decision.
func (s NodeState) Coming() bool {
	switch s {
	case StateRequested, StatePending, StateBooting, StateRegistered, StateSyncing:
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
	DrainSurplus DrainReason = "surplus"                  // demand fell below the fleet (scale-in)
	DrainOverCap DrainReason = "over the node cap"        // the fleet exceeds MaxNodes or the budget
	DrainSpot    DrainReason = "spot interruption notice" // the cloud takes the spot instance back
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
}

// Config are the scaling knobs. Zero fields take the default noted beside
// them (see WithDefaults).
type Config struct {
	SlotsPerNode          int           // call slots of one node; 100
	MinNodes              int           // nodes kept even with no demand; 0
	MaxNodes              int           // hard cap on live instances; 50
	Headroom              float64       // extra share of slots kept above demand that rose unannounced within ScaleInWindow; 0.05
	DefaultAttemptSeconds float64       // attempt duration when a campaign has none observed; 30
	ScaleInWindow         time.Duration // surplus must last this long before a drain; 5m
	MinLifetime           time.Duration // a node younger than this is not drained: no launch-then-terminate churn; 10m
	BootLead              time.Duration // launch-to-ready estimate: Upcoming demand this close counts now; 3m
	RegisterDeadline      time.Duration // from launch to registration; 5m
	ReadyDeadline         time.Duration // from launch to ready; 10m
	HeartbeatDeadline     time.Duration // silence after which a node is unhealthy; 45s
	DrainTimeout          time.Duration // a draining node is terminated at this age of its drain; 15m
	SpotDrainTimeout      time.Duration // EC2 gives two minutes; 2m
	StruggleCPU           float64       // CPU share above which a node is struggling; 0.85
	StruggleLoad          float64       // load1 above which a node is struggling; 0 = ignore
	StruggleFactor        float64       // share of slots a struggling node keeps; 0.75
	PricePerHour          float64       // one node, $/h, for the budget cap; 0.085
	BudgetPerHour         float64       // cap on the fleet's $/h; 0 = none
	MaxLaunchBatch        int           // nodes in one Launch call; 50
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
	c.StruggleCPU = cmp.Or(c.StruggleCPU, 0.85)
	c.StruggleFactor = cmp.Or(c.StruggleFactor, 0.75)
	c.PricePerHour = cmp.Or(c.PricePerHour, 0.085)
	c.MaxLaunchBatch = cmp.Or(c.MaxLaunchBatch, 50)
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
	case c.Headroom < 0 || c.Headroom > 10:
		return fmt.Errorf("config: Headroom %g outside 0..10", c.Headroom)
	case c.StruggleFactor < 0 || c.StruggleFactor > 1:
		return fmt.Errorf("config: StruggleFactor %g outside 0..1", c.StruggleFactor)
	case c.BudgetPerHour < 0:
		return fmt.Errorf("config: BudgetPerHour %g is negative", c.BudgetPerHour)
	case c.PricePerHour < 0:
		return fmt.Errorf("config: PricePerHour %g is negative", c.PricePerHour)
	}
	return nil
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
)

// Action is one step the loop carries out.
type Action struct {
	Kind    ActionKind
	Count   int
	NodeIDs []string
	Reason  string      // for logs
	Drain   DrainReason // ActDrain: why, typed (the drain deadline depends on it)
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
	BudgetLimited bool
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
	t := &tick{cfg: cfg.WithDefaults(), obs: obs, now: now}
	t.deadlines()
	t.demand()
	t.remember()
	t.budget()
	switch {
	case t.serving > t.maxNodes:
		t.overCap()
	case t.have < t.p.WantedSlots || t.serving < t.minNodes:
		t.scaleOut()
	case t.have > t.p.WantedSlots && t.windowFull:
		t.scaleIn()
	}
	if len(t.spotDrain) > 0 {
		t.p.Actions = append(t.p.Actions, Action{Kind: ActDrain, NodeIDs: t.spotDrain, Reason: string(DrainSpot), Drain: DrainSpot})
	}
	t.p.DesiredNodes = t.serving
	t.shares()
	return t.p
}

// shares is the last step: the fleet's slots once the plan is carried
// out, split by priority as leasing will, and a reason for each campaign
// that gets less than it wants.
func (t *tick) shares() {
	p := &t.p
	p.Shares = Shares(t.obs.Campaigns, t.serving*t.cfg.SlotsPerNode, t.now, t.cfg)
	for _, c := range t.obs.Campaigns {
		if d := CampaignDemand(c, t.now, t.cfg); p.Shares[c.ID] < d {
			p.Reasons = append(p.Reasons, fmt.Sprintf("campaign %s (priority %d) gets %d of the %d slots it wants: higher priorities first", c.ID, c.Priority, p.Shares[c.ID], d))
		}
	}
}

// tick is one Plan call's working state, built up by its steps in order:
// deadlines, demand, remember, budget, then one of overCap, scaleOut or
// scaleIn, then shares.
type tick struct {
	cfg Config
	obs Observed
	now time.Time
	p   Plan

	// deadlines
	ready, coming, draining []NodeView
	alive                   int      // nodes billed (not gone, not ended this tick)
	spotDrain               []string // ready nodes with a spot notice
	// demand
	dueNow int // demand without BootLead
	// remember
	peak, extra int  // the window's peak wish; headroom granted
	windowFull  bool // the memory covers the whole scale-in window
	// budget
	maxNodes, minNodes int
	have, serving      int // slots and nodes ready or coming
}

// deadlines is step 1: lifecycle deadlines, which hold whatever the
// demand; it sorts the surviving nodes into ready, coming and draining.
func (t *tick) deadlines() {
	cfg, now := t.cfg, t.now
	var terminate []string
	kill := func(id, why string) {
		terminate = append(terminate, id)
		t.p.Reasons = append(t.p.Reasons, fmt.Sprintf("terminate %s: %s", id, why))
	}
	for _, n := range t.obs.Nodes {
		age := now.Sub(n.LaunchedAt)
		silent := !n.LastHeartbeat.IsZero() && now.Sub(n.LastHeartbeat) > cfg.HeartbeatDeadline
		switch {
		case n.State == StateGone:
			continue
		case n.State == StateTerminating:
			t.alive++
			continue
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
			case n.NodeDrain && n.ActiveCalls == 0 && n.Pending == 0 && !silent:
				kill(n.ID, "drained")
				continue
			case silent:
				// A silent draining node may still be carrying calls we
				// cannot see; only the drain deadline ends it.
			}
		}
		t.alive++
		switch {
		case n.State == StateReady && n.SpotNotice:
			// Drained below; it no longer counts as capacity.
			t.draining = append(t.draining, n)
			t.spotDrain = append(t.spotDrain, n.ID)
		case n.State == StateReady:
			t.ready = append(t.ready, n)
		case n.State == StateDraining:
			t.draining = append(t.draining, n)
		case n.State.Coming():
			t.coming = append(t.coming, n)
		}
	}
	if len(terminate) > 0 {
		t.p.Actions = append(t.p.Actions, Action{Kind: ActTerminate, NodeIDs: terminate, Reason: "lifecycle deadline"})
	}
}

// demand is step 2: demand and capacity in slots; a struggling ready
// node offers fewer.
func (t *tick) demand() {
	cfg := t.cfg
	t.p.DemandCalls = TotalDemand(t.obs.Campaigns, t.now, cfg)
	due := cfg
	due.BootLead = 0
	t.dueNow = TotalDemand(t.obs.Campaigns, t.now, due)
	for _, n := range t.ready {
		s := NodeSlots(n, cfg)
		t.p.ReadySlots += s
		if Struggling(n, cfg) {
			t.p.Actions = append(t.p.Actions, Action{Kind: ActCapacity, Count: s, NodeIDs: []string{n.ID}, Reason: "struggling"})
		}
	}
	for _, n := range t.coming {
		t.p.ComingSlots += NodeSlots(NodeView{Capacity: n.Capacity}, cfg)
	}
}

// remember is step 3: it adds this tick's wish to the memory, prunes the
// window and decides the headroom. The newest sample older than the
// window is kept too: it proves the window is covered whatever the tick
// interval. A tick whose demand is stale (the campaign tier did not
// answer) adds no sample and never scales in.
func (t *tick) remember() {
	cfg, now, obs, p := t.cfg, t.now, t.obs, &t.p
	var older, last *DemandSample
	surprise := 0
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
			t.peak = max(t.peak, s.Slots)
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
	now0 := t.dueNow
	if last != nil {
		now0 = max(t.dueNow-last.Calls, 0)
	}
	if !obs.DemandStale {
		surprise = max(surprise, now0)
	}
	t.extra = min(int(math.Ceil(float64(p.DemandCalls)*cfg.Headroom)), surprise)
	p.WantedSlots = p.DemandCalls + t.extra
	t.peak = max(t.peak, p.WantedSlots)
	t.windowFull = older != nil
	for _, s := range p.Memory.Samples {
		t.windowFull = t.windowFull || now.Sub(s.At) >= cfg.ScaleInWindow
	}
	if older != nil {
		p.Memory.Samples = append(p.Memory.Samples, *older)
	}
	if obs.DemandStale {
		t.windowFull = false
	} else {
		p.Memory.Samples = append(p.Memory.Samples, DemandSample{At: now, Slots: p.WantedSlots, Calls: p.DemandCalls, Surprise: now0})
	}
	sort.Slice(p.Memory.Samples, func(i, j int) bool { return p.Memory.Samples[i].At.Before(p.Memory.Samples[j].At) })
}

// budget is step 4: the most nodes the fleet may run. Draining and
// terminating nodes bill too, so they count.
func (t *tick) budget() {
	cfg := t.cfg
	t.maxNodes = cfg.MaxNodes
	if cfg.BudgetPerHour > 0 && cfg.PricePerHour > 0 {
		afford := int(math.Floor(cfg.BudgetPerHour/cfg.PricePerHour + 1e-9))
		if afford < t.maxNodes {
			t.maxNodes = afford
			t.p.BudgetLimited = true
		}
	}
	t.minNodes = min(cfg.MinNodes, t.maxNodes)
	t.have = t.p.ReadySlots + t.p.ComingSlots
	t.serving = len(t.ready) + len(t.coming)
}

// overCap drains the emptiest nodes at once, whatever the demand, when
// the fleet is over its cap (budget lowered, or max nodes).
func (t *tick) overCap() {
	if t.p.BudgetLimited {
		t.p.Reasons = append(t.p.Reasons, fmt.Sprintf("budget cap $%.2f/h: fleet above its cap of %d nodes", t.cfg.BudgetPerHour, t.maxNodes))
	} else {
		t.p.Reasons = append(t.p.Reasons, fmt.Sprintf("fleet above its cap of %d nodes", t.maxNodes))
	}
	sortEmptiest(t.ready)
	var drain []string
	for _, n := range t.ready {
		if t.serving <= t.maxNodes {
			break
		}
		drain = append(drain, n.ID)
		t.serving--
	}
	if len(drain) > 0 {
		t.p.Actions = append(t.p.Actions, Action{Kind: ActDrain, NodeIDs: drain, Reason: "over the node cap", Drain: DrainOverCap})
	}
}

// scaleOut cancels drains first (warm, already paid for), fullest first,
// then launches what is still missing in batches.
func (t *tick) scaleOut() {
	cfg, now, p := t.cfg, t.now, &t.p
	draining := t.draining
	sort.Slice(draining, func(i, j int) bool {
		if draining[i].ActiveCalls != draining[j].ActiveCalls {
			return draining[i].ActiveCalls > draining[j].ActiveCalls
		}
		return draining[i].ID < draining[j].ID
	})
	var cancel []string
	for _, n := range draining {
		if t.have >= p.WantedSlots && t.serving >= t.minNodes {
			break
		}
		if n.SpotNotice || n.State != StateDraining || n.LastHeartbeat.IsZero() || now.Sub(n.LastHeartbeat) > cfg.HeartbeatDeadline {
			continue
		}
		cancel = append(cancel, n.ID)
		t.have += NodeSlots(n, cfg)
		t.serving++
	}
	if len(cancel) > 0 {
		p.Actions = append(p.Actions, Action{Kind: ActCancelDrain, NodeIDs: cancel, Reason: "demand returned"})
	}
	slot := cfg.SlotsPerNode
	need := 0
	if t.have < p.WantedSlots {
		need = (p.WantedSlots - t.have + slot - 1) / slot
	}
	need = max(need, t.minNodes-t.serving)
	room := t.maxNodes - t.alive
	if need > room {
		if p.BudgetLimited && room < cfg.MaxNodes-t.alive {
			p.Reasons = append(p.Reasons, fmt.Sprintf("budget cap $%.2f/h holds the fleet at %d nodes; %d more wanted", cfg.BudgetPerHour, t.maxNodes, need-max(room, 0)))
		} else {
			p.Reasons = append(p.Reasons, fmt.Sprintf("max nodes %d reached; %d more wanted", t.maxNodes, need-max(room, 0)))
		}
		need = max(room, 0)
	}
	for need > 0 {
		b := min(need, cfg.MaxLaunchBatch)
		p.Actions = append(p.Actions, Action{Kind: ActLaunch, Count: b, Reason: fmt.Sprintf("want %d slots, have %d", p.WantedSlots, t.have)})
		need -= b
		t.alive += b
		t.serving += b
	}
}

// scaleIn drains only the surplus that lasted the whole window (the peak
// wish over it), never below min, never a young node: with a 60 s billing
// minimum, ending it sooner saves nothing.
//
// Ready slots alone must still cover the wish: coming nodes are not
// serving yet, and draining a ready node for them would leave calls
// unplaced until they boot. Hysteresis: after a drain the fleet must still
// hold the peak plus the headroom once more, so demand wobbling around a
// node boundary does not drain a node one tick and launch it again the
// next. Demand that did not rise unannounced within the window does not
// wobble: it gets no hysteresis, as it gets no headroom. The test is per
// node, on the slots it really counts: a node whose capacity was reduced
// for CPU load holds less than a whole node's slots, and a surplus test in
// whole nodes would keep it (idle and billed) forever.
func (t *tick) scaleIn() {
	cfg := t.cfg
	target := max(t.p.WantedSlots, t.peak) + t.extra
	readyHave := t.p.ReadySlots
	sortEmptiest(t.ready)
	var drain []string
	for _, n := range t.ready {
		s := NodeSlots(n, cfg)
		if t.have-s < target || readyHave-s < target || t.serving-1 < t.minNodes || t.now.Sub(n.LaunchedAt) < cfg.MinLifetime {
			continue
		}
		drain = append(drain, n.ID)
		t.have -= s
		readyHave -= s
		t.serving--
	}
	if len(drain) > 0 {
		t.p.Actions = append(t.p.Actions, Action{Kind: ActDrain, NodeIDs: drain, Reason: fmt.Sprintf("surplus over %s: want %d slots", cfg.ScaleInWindow, target), Drain: DrainSurplus})
	}
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
