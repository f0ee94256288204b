// Package planner holds the scaling decision: Config.Plan is a pure
// function of what the loop observed and the time (invariant 5). It does
// no I/O, reads no clock and keeps no state; what it must remember between
// ticks (recent demand, for the scale-in stabilisation window) it hands
// back in Plan.Memory and receives again in Observed.Memory. The live loop
// (package controller) and the trace simulator (package sim) call the very
// same function.
package planner

import (
	"time"

	"github.com/elastidial/elastidial/campaign"
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
