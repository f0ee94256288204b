package planner

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"
)

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

// Plan is the planner: what to do now, given obs. Zero fields of cfg take
// their defaults. It runs the steps below in order; each adds its actions
// and reasons to the plan and leaves what the later steps decide on in
// the pass.
func (cfg Config) Plan(obs Observed, now time.Time) Plan {
	s := &pass{cfg: cfg.WithDefaults(), obs: obs, now: now}
	s.enforceDeadlines()
	s.measureCapacity()
	s.forecast()
	s.sizeWarmPool()
	s.capFleet()
	s.keepOnDemand()
	s.avoidShortages()
	s.poolShortfall()
	switch { // one way at most: back under the cap, out, or in
	case s.serving > s.maxNodes:
		s.drainOverCap()
	case s.short():
		s.scaleOut()
	case s.surplus():
		s.scaleIn()
	}
	s.drainSpotNotices()
	s.drainAtRisk()
	s.fillWarmPool()
	s.trimWarmPool()
	s.shareSlots()
	return s.p
}

// pass is one run of Plan: its inputs, the plan it builds, and the
// figures one step hands the next. The counts (have, serving, alive,
// odHave, poolHave) follow the actions as they are added, so each step
// sees the fleet as the earlier steps left it.
type pass struct {
	cfg Config // with defaults
	obs Observed
	now time.Time
	p   Plan

	// The fleet, sorted by enforceDeadlines.
	ready    []NodeView // ready, counted as capacity
	coming   []NodeView // on their way to ready
	draining []NodeView // draining, and ready nodes under a spot notice
	atRisk   []NodeView // ready spot nodes EC2 recommends rebalancing: serving, not counted
	noticed  []string   // ready spot nodes under an interruption notice, to drain
	parked   []NodeView // stopped in the warm pool, by id
	parking  int        // nodes being stopped into the pool
	alive    int        // instances billed as running (or about to be), the pool apart

	// Demand, from measureCapacity and forecast.
	dueNow     int  // demand due now, nothing counted ahead through BootLead
	peak       int  // the largest wish over the stabilisation window
	extra      int  // headroom granted on top of demand
	windowFull bool // the memory covers the whole window: scale-in may act
	risk       int  // the largest unannounced rise within SpikeMemory

	// Limits, from sizeWarmPool, capFleet, keepOnDemand and avoidShortages.
	slot      int    // slots of one node
	poolMin   int    // the pool's floor, hedged
	maxNodes  int    // MaxNodes, lowered by the budget cap
	minNodes  int    // MinNodes, within maxNodes
	odWant    int    // on-demand nodes wanted for calls that may outlast a spot notice
	spotShort bool   // spot found short lately: launches are on-demand
	launch    Config // cfg with Zones cut to the zones launches may use

	// Running counts.
	have     int // slots of ready and coming nodes
	serving  int // ready and coming nodes
	odHave   int // on-demand nodes among them (counted with spot launches only)
	poolHave int // nodes parked, parking, or draining to park
	fill     int // nodes to launch only to fill the pool to its floor
}

// enforceDeadlines ends the nodes whose lifecycle deadline passed (no
// registration, no heartbeat, not ready in time, drain over), parks the
// drained nodes bound for the warm pool, and sorts the rest by what they
// offer. Deadlines hold whatever the demand: a node that broke one is
// replaced by the steps below, since it no longer counts.
func (s *pass) enforceDeadlines() {
	cfg, now := s.cfg, s.now
	var terminate, stop []string
	kill := func(id, why string) {
		terminate = append(terminate, id)
		s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("terminate %s: %s", id, why))
	}
	for _, n := range s.obs.Nodes {
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
			s.alive++
			continue
		case n.State == StateParked:
			s.parked = append(s.parked, n)
			continue
		case n.State == StateParking:
			if !n.StoppedAt.IsZero() && now.Sub(n.StoppedAt) > cfg.DrainTimeout {
				kill(n.ID, "stop for the warm pool did not finish")
				continue
			}
			s.parking++
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
				s.parking++
				continue
			case n.NodeDrain && n.ActiveCalls == 0 && n.Pending == 0 && !silent:
				kill(n.ID, "drained")
				continue
			case silent:
				// A silent draining node may still be carrying calls we
				// cannot see; only the drain deadline ends it.
			}
		}
		s.alive++
		switch {
		case n.State == StateReady && n.SpotNotice:
			// Drained by drainSpotNotices; it no longer counts as capacity.
			s.draining = append(s.draining, n)
			s.noticed = append(s.noticed, n.ID)
		case n.State == StateReady && n.Rebalance:
			// At elevated risk of interruption: it serves on, but counts
			// as no capacity, so a replacement is launched now; it drains
			// once the replacements are ready (drainAtRisk).
			s.atRisk = append(s.atRisk, n)
		case n.State == StateReady:
			s.ready = append(s.ready, n)
		case n.State == StateDraining:
			s.draining = append(s.draining, n)
		case n.State.Coming():
			s.coming = append(s.coming, n)
		}
	}
	if len(terminate) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActTerminate, NodeIDs: terminate, Reason: "lifecycle deadline"})
	}
	if len(stop) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActStop, NodeIDs: stop, Reason: "drained into the warm pool"})
	}
	// Starts from the pool and its trimming go in id order, so the plan
	// is deterministic.
	sort.Slice(s.parked, func(i, j int) bool { return s.parked[i].ID < s.parked[j].ID })
}

// measureCapacity counts demand and capacity in slots: the calls wanted
// now and within BootLead, the usable slots of ready nodes (a struggling
// node is told to offer fewer) and the slots of nodes on their way.
func (s *pass) measureCapacity() {
	cfg := s.cfg
	s.p.DemandCalls = TotalDemand(s.obs.Campaigns, s.now, cfg)
	due := cfg
	due.BootLead = 0
	s.dueNow = TotalDemand(s.obs.Campaigns, s.now, due)
	for _, n := range s.ready {
		slots := NodeSlots(n, cfg)
		s.p.ReadySlots += slots
		if Struggling(n, cfg) {
			s.p.Actions = append(s.p.Actions, Action{Kind: ActCapacity, Count: slots, NodeIDs: []string{n.ID}, Reason: "struggling"})
		}
	}
	for _, n := range s.coming {
		s.p.ComingSlots += NodeSlots(NodeView{Capacity: n.Capacity}, cfg)
	}
	s.have = s.p.ReadySlots + s.p.ComingSlots
	s.serving = len(s.ready) + len(s.coming)
}

// window is what the demand memory says at one tick.
type window struct {
	kept     []DemandSample // the samples within ScaleInWindow
	older    *DemandSample  // the newest sample older than the window
	last     *DemandSample  // the newest sample: the previous tick's
	peak     int            // the largest wish among kept
	surprise int            // the largest unannounced rise among kept
}

// recall prunes the memory to the stabilisation window. The newest sample
// older than the window is kept too: it proves the window is covered
// whatever the tick interval. A sample from the future (the clock stepped
// back) is ignored.
func (cfg Config) recall(samples []DemandSample, now time.Time) window {
	var w window
	for i, smp := range samples {
		switch {
		case !smp.At.Before(now):
			continue
		case now.Sub(smp.At) > cfg.ScaleInWindow:
			if w.older == nil || smp.At.After(w.older.At) {
				w.older = &samples[i]
			}
		default:
			w.kept = append(w.kept, smp)
			w.peak = max(w.peak, smp.Slots)
			w.surprise = max(w.surprise, smp.Surprise)
		}
		if w.last == nil || smp.At.After(w.last.At) {
			w.last = &samples[i]
		}
	}
	return w
}

// forecast decides the slots wanted (demand, headroom and spare nodes)
// and remembers this tick's wish for the scale-in window and the spike
// risk. Headroom guards against demand rising again before new nodes
// boot. Demand that rose unannounced within the window gets it (at most
// the largest such rise); demand that is steady, falling, or was
// announced ahead (a scheduled start, counted through BootLead) is held
// exactly: a spare node on it would be billed for hours and never used.
// With no memory (a first tick, a restart) all of today's demand is a
// surprise. A tick whose demand is stale (the campaign tier did not
// answer) adds no sample and never scales in.
func (s *pass) forecast() {
	cfg, now, stale := s.cfg, s.now, s.obs.DemandStale
	w := cfg.recall(s.obs.Memory.Samples, now)
	s.p.Memory.Samples = w.kept
	rise := s.dueNow // unannounced: due now, and not planned for last tick
	if w.last != nil {
		rise = max(s.dueNow-w.last.Calls, 0)
	}
	surprise := w.surprise
	if !stale {
		surprise = max(surprise, rise)
	}
	s.extra = min(int(math.Ceil(float64(s.p.DemandCalls)*cfg.Headroom)), surprise)
	s.p.WantedSlots = s.p.DemandCalls + s.extra
	if s.p.DemandCalls > 0 {
		s.p.WantedSlots += cfg.SpareNodes * cfg.SlotsPerNode
	}
	s.peak = max(w.peak, s.p.WantedSlots)
	s.windowFull = w.older != nil
	for _, smp := range s.p.Memory.Samples {
		s.windowFull = s.windowFull || now.Sub(smp.At) >= cfg.ScaleInWindow
	}
	if w.older != nil {
		s.p.Memory.Samples = append(s.p.Memory.Samples, *w.older)
	}
	if stale {
		s.windowFull = false
	} else {
		s.p.Memory.Samples = append(s.p.Memory.Samples, DemandSample{At: now, Slots: s.p.WantedSlots, Calls: s.p.DemandCalls, Surprise: rise})
	}
	sort.Slice(s.p.Memory.Samples, func(i, j int) bool { return s.p.Memory.Samples[i].At.Before(s.p.Memory.Samples[j].At) })
	s.rememberSpike(rise)
}

// rememberSpike keeps the unannounced rises within SpikeMemory as a
// sliding-window maximum (each larger than every later one) and takes the
// spike risk, which sizes the warm pool, as the largest of them.
func (s *pass) rememberSpike(rise int) {
	for _, sp := range s.obs.Memory.Spikes {
		if sp.At.Before(s.now) && s.now.Sub(sp.At) <= s.cfg.SpikeMemory {
			s.p.Memory.Spikes = append(s.p.Memory.Spikes, sp)
		}
	}
	if !s.obs.DemandStale && rise > 0 {
		for len(s.p.Memory.Spikes) > 0 && s.p.Memory.Spikes[len(s.p.Memory.Spikes)-1].Surprise <= rise {
			s.p.Memory.Spikes = s.p.Memory.Spikes[:len(s.p.Memory.Spikes)-1]
		}
		s.p.Memory.Spikes = append(s.p.Memory.Spikes, DemandSample{At: s.now, Surprise: rise})
	}
	if len(s.p.Memory.Spikes) > 0 {
		s.risk = s.p.Memory.Spikes[0].Surprise
	}
}

// hedged is n nodes and the StartHedge share more, for the long tail of
// warm starts.
func (cfg Config) hedged(n int) int {
	return n + int(math.Ceil(max(cfg.StartHedge, 0)*float64(n)-1e-9))
}

// sizeWarmPool sets the pool's target: the spike risk in nodes, hedged,
// at least its (hedged) floor WarmPoolMin, at most WarmPoolMax, and no
// more than its own budget pays for at the stopped price.
func (s *pass) sizeWarmPool() {
	cfg := s.cfg
	s.slot = cfg.SlotsPerNode
	if !cfg.WarmPool {
		return
	}
	s.poolMin = min(cfg.hedged(cfg.WarmPoolMin), cfg.WarmPoolMax)
	s.p.WarmTarget = min(max(cfg.hedged((s.risk+s.slot-1)/s.slot), s.poolMin), cfg.WarmPoolMax)
	if sp := cfg.Pricing.StoppedHourly(); sp > 0 && cfg.WarmPoolBudget > 0 {
		s.p.WarmTarget = min(s.p.WarmTarget, int(math.Floor(cfg.WarmPoolBudget/sp+1e-9)))
	}
}

// capFleet sets the most nodes the fleet may run: MaxNodes, or fewer when
// the budget cap pays for fewer. The pool bills too, so the budget pays
// for it first; draining and terminating nodes bill, so they count
// against the cap (alive).
func (s *pass) capFleet() {
	cfg := s.cfg
	poolCost := float64(len(s.parked)+s.parking) * cfg.Pricing.StoppedHourly()
	s.maxNodes = cfg.MaxNodes
	if price := cfg.NodePrice(); cfg.BudgetPerHour > 0 && price > 0 {
		afford := int(math.Floor(max(cfg.BudgetPerHour-poolCost, 0)/price + 1e-9))
		if afford < s.maxNodes {
			s.maxNodes = afford
			s.p.BudgetLimited = true
		}
	}
	s.minNodes = min(cfg.MinNodes, s.maxNodes)
}

// keepOnDemand counts the on-demand nodes wanted and held. Calls that may
// outlast a spot node's interruption notice are leased to on-demand nodes
// only: with spot launches, the fleet keeps enough on-demand nodes for
// those campaigns' demand (they serve the others too, so the total is
// unchanged).
func (s *pass) keepOnDemand() {
	if s.cfg.Spot {
		calls := 0
		for _, c := range s.obs.Campaigns {
			if c.OnDemand {
				calls += CampaignDemand(c, s.now, s.cfg)
			}
		}
		s.odWant = (min(calls, s.p.DemandCalls) + s.slot - 1) / s.slot
		for _, g := range [][]NodeView{s.ready, s.coming} {
			for _, n := range g {
				if !n.Spot {
					s.odHave++
				}
			}
		}
	}
	s.p.OnDemandNodes = s.odWant
}

// avoidShortages applies what the cloud's answers taught: while spot was
// found short every launch is on-demand, and launches avoid the zones
// found short of capacity (all zones stay in play when every one is
// short).
func (s *pass) avoidShortages() {
	cfg, short, now := s.cfg, s.obs.Short, s.now
	s.spotShort = cfg.Spot && short.SpotShort(now)
	s.launch = cfg
	s.launch.Zones = nil
	for _, z := range cfg.Zones {
		if !short.ZoneShort(z, now) {
			s.launch.Zones = append(s.launch.Zones, z)
		}
	}
	if len(s.launch.Zones) == 0 {
		s.launch.Zones = cfg.Zones
	}
	if s.spotShort {
		s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("spot short of capacity until %s: launches are on-demand", short.SpotUntil.Format(time.RFC3339)))
	}
	for _, z := range cfg.Zones {
		if short.ZoneShort(z, now) {
			s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("zone %s short of capacity until %s: launches avoid it", z, short.Zones[z].Format(time.RFC3339)))
		}
	}
}

// poolShortfall counts the pool (parked, parking, draining to park) and
// the nodes to launch only to fill it to its floor: launched nodes boot
// and sync, then are parked as surplus once the window passes. Nodes
// already beyond the wish will be parked the same way and count. Nodes
// started from the pool still belong to it: they return when the rise
// they serve passes, so they are not replaced meanwhile.
func (s *pass) poolShortfall() {
	s.poolHave = len(s.parked) + s.parking
	for _, n := range s.draining {
		if n.DrainReason == DrainPark {
			s.poolHave++
		}
	}
	if !s.cfg.WarmPool {
		return
	}
	spare := max(0, (s.have-s.p.WantedSlots)/s.slot)
	lent := 0
	for _, g := range [][]NodeView{s.ready, s.coming} {
		for _, n := range g {
			if !n.ResumedAt.IsZero() {
				lent++
			}
		}
	}
	s.fill = max(0, min(s.p.WarmTarget, s.poolMin)-s.poolHave-spare-lent)
}

// drainOverCap drains the emptiest ready nodes at once, whatever the
// demand, when the fleet is above its cap (the budget was lowered, or
// MaxNodes).
func (s *pass) drainOverCap() {
	if s.p.BudgetLimited {
		s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("budget cap $%.2f/h: fleet above its cap of %d nodes", s.cfg.BudgetPerHour, s.maxNodes))
	} else {
		s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("fleet above its cap of %d nodes", s.maxNodes))
	}
	sortEmptiest(s.ready)
	var drain []string
	for _, n := range s.ready {
		if s.serving <= s.maxNodes {
			break
		}
		drain = append(drain, n.ID)
		s.serving--
	}
	if len(drain) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActDrain, NodeIDs: drain, Reason: "over the node cap", Drain: DrainOverCap})
	}
}

// short reports whether the fleet falls short: of the slots wanted, of
// MinNodes, or of the on-demand nodes the long calls need.
func (s *pass) short() bool {
	return s.have < s.p.WantedSlots || s.serving < s.minNodes || s.odHave < s.odWant
}

// scaleOut meets a shortfall with what is cheapest and quickest first:
// draining nodes take calls again (warm, already paid for), then parked
// nodes start, then new nodes launch (a batch per zone). The pool is not
// refilled during a shortfall: the nodes serving it are parked when it
// passes.
func (s *pass) scaleOut() {
	s.cancelDrains()
	need := 0
	if s.have < s.p.WantedSlots {
		need = (s.p.WantedSlots - s.have + s.slot - 1) / s.slot
	}
	need = max(need, s.minNodes-s.serving, s.odWant-s.odHave)
	zc := zoneCounts(s.cfg.Zones, s.ready, s.coming)
	need = s.startFromPool(need, zc)
	s.fill = 0
	s.launchNodes(need, zc)
}

// cancelDrains takes draining nodes back into service, fullest first,
// until the shortfall is met. A node under a spot notice, or silent past
// HeartbeatDeadline, stays draining; when only on-demand nodes are short,
// a spot node does not help and stays draining too.
func (s *pass) cancelDrains() {
	sort.Slice(s.draining, func(i, j int) bool {
		if s.draining[i].ActiveCalls != s.draining[j].ActiveCalls {
			return s.draining[i].ActiveCalls > s.draining[j].ActiveCalls
		}
		return s.draining[i].ID < s.draining[j].ID
	})
	var cancel []string
	for _, n := range s.draining {
		enough := s.have >= s.p.WantedSlots && s.serving >= s.minNodes
		if enough && s.odHave >= s.odWant {
			break
		}
		if n.SpotNotice || n.State != StateDraining || n.LastHeartbeat.IsZero() || s.now.Sub(n.LastHeartbeat) > s.cfg.HeartbeatDeadline {
			continue
		}
		if enough && n.Spot {
			continue
		}
		cancel = append(cancel, n.ID)
		s.have += NodeSlots(n, s.cfg)
		s.serving++
		if !n.Spot {
			s.odHave++
		}
	}
	if len(cancel) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActCancelDrain, NodeIDs: cancel, Reason: "demand returned"})
	}
}

// startable reports whether parked node n may be started: one the cloud
// refused a moment ago (no capacity) is passed over for StartRetry, and a
// launch takes its place.
func (s *pass) startable(n NodeView) bool {
	return n.StartFailed.IsZero() || s.now.Sub(n.StartFailed) >= s.cfg.StartRetry
}

// startFromPool starts parked nodes for up to need nodes of the
// shortfall, within the cap, and returns how many are left to launch.
// Starts are hedged: the pool's nodes beyond the shortfall are started
// too (never launched for), and the fastest serve it; the slowest come
// back to the pool as surplus. zc (serving nodes per zone) counts the
// started nodes.
func (s *pass) startFromPool(need int, zc map[string]int) int {
	hedge := 0
	if len(s.parked) > 0 && need > 0 {
		hedge = s.cfg.hedged(need) - need
		need += hedge
	}
	picks := s.pickStarts(need, zc)
	if len(picks) == 0 {
		return max(0, need-hedge)
	}
	var start []string
	for _, n := range picks {
		start = append(start, n.ID)
		zc[n.Zone]++
		need--
		s.alive++
		s.serving++
		s.have += NodeSlots(NodeView{Capacity: n.Capacity}, s.cfg)
		if !n.Spot {
			s.odHave++
		}
	}
	rest := s.parked[:0:0]
	for _, n := range s.parked {
		if !slices.Contains(start, n.ID) {
			rest = append(rest, n)
		}
	}
	s.parked = rest
	s.poolHave -= len(start)
	s.p.Actions = append(s.p.Actions, Action{Kind: ActStart, NodeIDs: start, Reason: fmt.Sprintf("want %d slots: start from the warm pool", s.p.WantedSlots)})
	return max(0, need-hedge)
}

// pickStarts chooses, in order, the parked nodes to start for need nodes
// while the fleet is under its cap. With zones, each node wanted goes to
// the zone with the fewest serving nodes: a parked node there starts, else
// that zone is left a launch (launchNodes), so a pool parked unevenly
// never skews the fleet. zc is not changed.
func (s *pass) pickStarts(need int, zc map[string]int) []NodeView {
	var picks []NodeView
	alive := s.alive
	zones := s.launch.Zones
	if len(zones) == 0 {
		for _, n := range s.parked {
			if need <= 0 || alive >= s.maxNodes {
				break
			}
			if s.startable(n) {
				picks = append(picks, n)
				need--
				alive++
			}
		}
		return picks
	}
	counts := maps.Clone(zc)
	chosen := map[string]bool{}
	for need > 0 && alive < s.maxNodes {
		z := zones[0]
		for _, x := range zones[1:] {
			if counts[x] < counts[z] {
				z = x
			}
		}
		for _, n := range s.parked {
			if n.Zone == z && !chosen[n.ID] && s.startable(n) {
				chosen[n.ID] = true
				picks = append(picks, n)
				break
			}
		}
		counts[z]++ // a start or a launch
		need--
		alive++
	}
	return picks
}

// launchNodes launches need nodes, within the cap (saying why when the cap
// holds them back): on-demand nodes for the long calls first, then spot
// (all on-demand while spot is short), spread over the zones with the
// fewest serving nodes (zc).
func (s *pass) launchNodes(need int, zc map[string]int) {
	cfg := s.cfg
	room := s.maxNodes - s.alive
	if need > room {
		if s.p.BudgetLimited && room < cfg.MaxNodes-s.alive {
			s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("budget cap $%.2f/h holds the fleet at %d nodes; %d more wanted", cfg.BudgetPerHour, s.maxNodes, need-max(room, 0)))
		} else {
			s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("max nodes %d reached; %d more wanted", s.maxNodes, need-max(room, 0)))
		}
		need = max(room, 0)
	}
	if need <= 0 {
		return
	}
	od := min(need, max(s.odWant-s.odHave, 0))
	if s.spotShort {
		od = need
	}
	for _, l := range spread(s.launch, zc, od) {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActLaunch, Count: l.Count, Zone: l.Zone, OnDemand: cfg.Spot,
			Reason: fmt.Sprintf("want %d slots, have %d; %d on-demand nodes for calls that may outlast a spot notice, have %d", s.p.WantedSlots, s.have, s.odWant, s.odHave)})
	}
	for _, l := range spread(s.launch, zc, need-od) {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActLaunch, Count: l.Count, Zone: l.Zone, Reason: fmt.Sprintf("want %d slots, have %d", s.p.WantedSlots, s.have)})
	}
	s.alive += need
	s.serving += need
}

// surplus reports whether the fleet holds more slots than wanted and the
// demand memory covers the whole stabilisation window (never on stale
// demand): only then may scaleIn act.
func (s *pass) surplus() bool {
	return s.have > s.p.WantedSlots && s.windowFull
}

// scaleIn drains the surplus that lasted the whole window (the peak wish
// over it, plus the headroom once more), node by node, parking what the
// warm pool wants and ending the rest.
//
// Hysteresis: after a drain the fleet must still hold the peak plus the
// headroom once more, so demand wobbling around a node boundary does not
// drain a node one tick and launch it again the next. Demand that did not
// rise unannounced within the window does not wobble: it gets no
// hysteresis, as it gets no headroom.
func (s *pass) scaleIn() {
	target := max(s.p.WantedSlots, s.peak) + s.extra
	readyHave := s.p.ReadySlots
	sortEmptiest(s.ready)
	var drain, park []string
	zc := zoneCounts(s.cfg.Zones, s.ready, s.coming)
	picked := make([]bool, len(s.ready))
	for {
		best := s.nextSurplus(target, readyHave, picked, zc)
		if best < 0 {
			break
		}
		picked[best] = true
		n := s.ready[best]
		zc[n.Zone]--
		slots := NodeSlots(n, s.cfg)
		if s.parks(n) {
			park = append(park, n.ID)
			s.poolHave++
		} else {
			drain = append(drain, n.ID)
		}
		s.have -= slots
		readyHave -= slots
		s.serving--
		if !n.Spot {
			s.odHave--
		}
	}
	if len(park) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActDrain, NodeIDs: park, Reason: fmt.Sprintf("surplus over %s: want %d slots; park for the warm pool of %d", s.cfg.ScaleInWindow, target, s.p.WarmTarget), Drain: DrainPark})
	}
	if len(drain) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActDrain, NodeIDs: drain, Reason: fmt.Sprintf("surplus over %s: want %d slots", s.cfg.ScaleInWindow, target), Drain: DrainSurplus})
	}
}

// parks reports whether surplus node n goes to the warm pool rather than
// ending: the pool is on and below its target, and n is on-demand (a spot
// node is never parked) and was ready once (it synced).
func (s *pass) parks(n NodeView) bool {
	return s.cfg.WarmPool && s.poolHave < s.p.WarmTarget && !n.Spot && !n.ReadyAt.IsZero()
}

// nextSurplus returns the index in ready of the next node to drain, or -1:
// the emptiest eligible node of the fullest zone; with spot launches,
// on-demand nodes (a fallback when spot was short) go first, so the fleet
// moves back to spot as it turns over.
//
// A node is eligible when, without it, the fleet's slots and the ready
// slots alone still cover target (coming nodes are not serving yet, and
// draining a ready node for them would leave calls unplaced until they
// boot), the fleet keeps MinNodes and the on-demand nodes the long calls
// need, and it is older than MinLifetime: with a 60 s billing minimum,
// ending it sooner saves nothing. A node bound for the warm pool is not
// held by MinLifetime, since starting it again costs a warm start, not a
// launch. The test is per node, on the slots it really counts: a node
// whose capacity was reduced for CPU load holds less than a whole node's
// slots, and a surplus test in whole nodes would keep it (idle and
// billed) forever.
func (s *pass) nextSurplus(target, readyHave int, picked []bool, zc map[string]int) int {
	cfg := s.cfg
	best := -1
	for i, n := range s.ready {
		slots := NodeSlots(n, cfg)
		if picked[i] || s.have-slots < target || readyHave-slots < target || s.serving-1 < s.minNodes || (!s.parks(n) && s.now.Sub(n.LaunchedAt) < cfg.MinLifetime) {
			continue
		}
		if cfg.Spot && !n.Spot && s.odHave-1 < s.odWant {
			continue
		}
		if best < 0 || zc[n.Zone] > zc[s.ready[best].Zone] || zc[n.Zone] == zc[s.ready[best].Zone] && cfg.Spot && !n.Spot && s.ready[best].Spot {
			best = i
		}
	}
	return best
}

// drainSpotNotices drains the ready nodes under a spot interruption
// notice: the cloud takes them back within SpotDrainTimeout, so they
// drain whatever the demand (enforceDeadlines already stopped counting
// them, and the steps above replaced them).
func (s *pass) drainSpotNotices() {
	if len(s.noticed) > 0 {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActDrain, NodeIDs: s.noticed, Reason: string(DrainSpot), Drain: DrainSpot})
	}
}

// drainAtRisk drains the spot nodes EC2 recommends rebalancing once the
// ready nodes alone cover the wish: their replacements were launched as
// soon as the recommendation came, and until they are ready the nodes at
// risk serve on.
func (s *pass) drainAtRisk() {
	if len(s.atRisk) == 0 || s.p.ReadySlots < s.p.WantedSlots {
		return
	}
	var ids []string
	for _, n := range s.atRisk {
		ids = append(ids, n.ID)
	}
	s.p.Actions = append(s.p.Actions, Action{Kind: ActDrain, NodeIDs: ids, Reason: "replaced ahead of a likely spot interruption", Drain: DrainRebalance})
}

// fillWarmPool launches the nodes the pool lacks of its floor, with
// nothing else to launch and within the cap: they boot, sync and are
// parked. Nodes parked by scaleIn this tick count. The launches are
// on-demand: a spot node is never parked.
func (s *pass) fillWarmPool() {
	if s.fill <= 0 || s.alive+s.fill > s.maxNodes {
		return
	}
	parkedNow := 0
	for _, a := range s.p.Actions {
		if a.Kind == ActDrain && a.Drain == DrainPark {
			parkedNow += len(a.NodeIDs)
		}
	}
	fill := s.fill - parkedNow
	if fill <= 0 {
		return
	}
	for _, l := range spread(s.launch, zoneCounts(s.cfg.Zones, s.ready, s.coming), fill) {
		s.p.Actions = append(s.p.Actions, Action{Kind: ActLaunch, Count: l.Count, Zone: l.Zone, OnDemand: s.cfg.Spot, Reason: fmt.Sprintf("warm pool: %d more nodes to boot, sync and park", fill)})
	}
	s.alive += fill
}

// trimWarmPool ends the pool's nodes above its target (the risk aged out,
// the budget fell, the pool switched off), the longest parked first.
func (s *pass) trimWarmPool() {
	rest := s.parked
	if len(rest) <= s.p.WarmTarget {
		return
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].StoppedAt.Before(rest[j].StoppedAt) })
	var ids []string
	for _, x := range rest[:len(rest)-s.p.WarmTarget] {
		ids = append(ids, x.ID)
	}
	s.p.Actions = append(s.p.Actions, Action{Kind: ActTerminate, NodeIDs: ids, Reason: fmt.Sprintf("warm pool above its target of %d", s.p.WarmTarget)})
	s.poolHave -= len(ids)
}

// shareSlots records the fleet the plan aims at and how its slots will be
// shared among the campaigns (higher priorities first), saying which
// campaigns get less than they want.
func (s *pass) shareSlots() {
	s.p.DesiredNodes = s.serving
	s.p.Shares = Shares(s.obs.Campaigns, s.serving*s.slot, s.now, s.cfg)
	for _, c := range s.obs.Campaigns {
		if d := CampaignDemand(c, s.now, s.cfg); s.p.Shares[c.ID] < d {
			s.p.Reasons = append(s.p.Reasons, fmt.Sprintf("campaign %s (priority %d) gets %d of the %d slots it wants: higher priorities first", c.ID, c.Priority, s.p.Shares[c.ID], d))
		}
	}
	s.p.Parked = s.poolHave
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
