package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
)

// ErrBadTransition: a state change the lifecycle diagram (registry.go)
// does not allow. It is a bug in the caller; the record is left unchanged.
var ErrBadTransition = errors.New("node state change not in the lifecycle")

// next lists, for each state, the states the lifecycle diagram in
// registry.go allows a node to move to. Staying put is always allowed.
var next = map[planner.NodeState][]planner.NodeState{
	planner.StateRequested:   {planner.StatePending, planner.StateGone},
	planner.StatePending:     {planner.StateBooting, planner.StateRegistered, planner.StateTerminating, planner.StateGone},
	planner.StateBooting:     {planner.StateRegistered, planner.StateTerminating, planner.StateGone},
	planner.StateRegistered:  {planner.StateSyncing, planner.StateReady, planner.StateDraining, planner.StateTerminating, planner.StateGone},
	planner.StateSyncing:     {planner.StateReady, planner.StateDraining, planner.StateTerminating, planner.StateGone},
	planner.StateReady:       {planner.StateSyncing, planner.StateDraining, planner.StateTerminating, planner.StateGone},
	planner.StateDraining:    {planner.StateSyncing, planner.StateParking, planner.StateTerminating, planner.StateGone},
	planner.StateParking:     {planner.StateParked, planner.StateTerminating, planner.StateGone},
	planner.StateParked:      {planner.StateResuming, planner.StateTerminating, planner.StateGone},
	planner.StateResuming:    {planner.StateRegistered, planner.StateParked, planner.StateTerminating, planner.StateGone},
	planner.StateTerminating: {planner.StateGone},
	planner.StateGone:        {planner.StatePending}, // thought gone, but the cloud lists it alive
}

// Drain is what a move to draining needs: why, and until when.
type Drain struct {
	Reason   planner.DrainReason
	Deadline time.Time
}

// transition is the one place a node's state changes. It checks the move
// against the lifecycle, then sets the state and the fields that go with
// it: a drain's reason and deadline on entering draining (cleared on
// leaving it), GoneAt on gone, a fresh LaunchedAt on coming back from
// gone (the registration grace starts again). A move to the current state
// changes nothing.
func transition(r *NodeRecord, to planner.NodeState, now time.Time, d Drain) error {
	from := r.State
	if from == to {
		return nil
	}
	allowed := false
	for _, s := range next[from] {
		allowed = allowed || s == to
	}
	if !allowed {
		return fmt.Errorf("node %s: %s → %s: %w", r.ID, from, to, ErrBadTransition)
	}
	if to == planner.StateDraining && (d.Reason == "" || d.Deadline.IsZero()) {
		return fmt.Errorf("node %s: drain without a reason and deadline: %w", r.ID, ErrBadTransition)
	}
	switch {
	case to == planner.StateDraining:
		r.DrainReason, r.DrainDeadline = d.Reason, d.Deadline
	case from == planner.StateDraining:
		r.DrainReason, r.DrainDeadline = "", time.Time{}
	}
	switch {
	case to == planner.StateParking:
		r.Warm.StoppedAt = now
	case (from == planner.StateParked || from == planner.StateParking) && to != planner.StateParked:
		// Leaving the pool (started, or ended): the stop is over.
		r.Warm.Stops = closeStop(r.Warm.Stops, r.Warm.StoppedAt, now)
		r.Warm.StoppedAt = time.Time{}
	}
	if to == planner.StateResuming {
		r.Warm.ResumedAt = now
		r.Warm.Starts++
	}
	switch to {
	case planner.StateGone:
		r.GoneAt = now
	case planner.StatePending:
		if from == planner.StateGone {
			r.GoneAt, r.LaunchedAt = time.Time{}, now
		}
	}
	r.State = to
	return nil
}

// WarmRecord is what the warm pool adds to a node's row: when its current
// stop began, when it was last started again, and its stops so far (the
// ledger bills those at the stopped price).
type WarmRecord struct {
	StoppedAt time.Time `json:"stopped_at,omitzero"` // zero unless parking or parked
	ResumedAt time.Time `json:"resumed_at,omitzero"` // the last start from the pool
	Starts    int       `json:"starts,omitempty"`
	// StartFailed is when the cloud last refused to start it (capacity):
	// the planner launches instead for a while.
	StartFailed time.Time      `json:"start_failed,omitzero"`
	Stops       [maxStops]Stop `json:"stops,omitzero"`
}

// Stop is one period an instance spent stopped.
type Stop struct {
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
}

// maxStops is how many stops a row keeps one by one; older ones are
// folded into the first (billed at the stopped price all the same, as one
// period from its start to the newer one's end, which can only overstate
// the running time saved by a few seconds of start-up).
const maxStops = 16

// closeStop records the stop [from, to) in stops, folding the oldest two
// when full. A zero from (a stop the controller never saw begin) records
// nothing.
func closeStop(stops [maxStops]Stop, from, to time.Time) [maxStops]Stop {
	if from.IsZero() || !to.After(from) {
		return stops
	}
	n := 0
	for n < maxStops && !stops[n].From.IsZero() {
		n++
	}
	if n == maxStops {
		// Fold: keep the stopped time exact by turning the two oldest
		// into one; the running time between them is billed as stopped,
		// a slight under-statement noted above.
		stops[0].To = stops[1].To
		copy(stops[1:], stops[2:])
		n--
		stops[n] = Stop{}
	}
	stops[n] = Stop{From: from, To: to}
	return stops
}
