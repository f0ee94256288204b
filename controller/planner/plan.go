package planner

import (
	"fmt"
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
