package controller

import "github.com/elastidial/elastidial/controller/planner"

// The planner's vocabulary, under the names the control loop, the
// registry and their callers have always used. The decision itself lives
// in package planner, pure and tested on its own; these are aliases (the
// same types), not copies.
type (
	NodeState    = planner.NodeState
	DrainReason  = planner.DrainReason
	Upcoming     = planner.Upcoming
	CampaignView = planner.CampaignView
	NodeView     = planner.NodeView
	DemandSample = planner.DemandSample
	Memory       = planner.Memory
	Observed     = planner.Observed
	Config       = planner.Config
	ActionKind   = planner.ActionKind
	Action       = planner.Action
	Plan         = planner.Plan
)

// Node states.
const (
	StateRequested   = planner.StateRequested
	StatePending     = planner.StatePending
	StateBooting     = planner.StateBooting
	StateRegistered  = planner.StateRegistered
	StateSyncing     = planner.StateSyncing
	StateReady       = planner.StateReady
	StateDraining    = planner.StateDraining
	StateTerminating = planner.StateTerminating
	StateGone        = planner.StateGone
)

// Why a node drains.
const (
	DrainSurplus = planner.DrainSurplus
	DrainOverCap = planner.DrainOverCap
	DrainSpot    = planner.DrainSpot
)

// Action kinds.
const (
	ActTerminate   = planner.ActTerminate
	ActCancelDrain = planner.ActCancelDrain
	ActLaunch      = planner.ActLaunch
	ActDrain       = planner.ActDrain
	ActCapacity    = planner.ActCapacity
)

// The planner's figures, for the loop's metrics and the simulator.
var (
	CampaignDemand = planner.CampaignDemand
	TotalDemand    = planner.TotalDemand
	NodeSlots      = planner.NodeSlots
	Struggling     = planner.Struggling
)
