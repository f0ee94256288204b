package controller

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadTransition: a state change the lifecycle diagram (registry.go)
// does not allow. It is a bug in the caller; the record is left unchanged.
var ErrBadTransition = errors.New("node state change not in the lifecycle")

// next lists, for each state, the states the lifecycle diagram in
// registry.go allows a node to move to. Staying put is always allowed.
var next = map[NodeState][]NodeState{
	StateRequested:   {StatePending, StateGone},
	StatePending:     {StateBooting, StateRegistered, StateTerminating, StateGone},
	StateBooting:     {StateRegistered, StateTerminating, StateGone},
	StateRegistered:  {StateSyncing, StateReady, StateDraining, StateTerminating, StateGone},
	StateSyncing:     {StateReady, StateDraining, StateTerminating, StateGone},
	StateReady:       {StateSyncing, StateDraining, StateTerminating, StateGone},
	StateDraining:    {StateSyncing, StateTerminating, StateGone},
	StateTerminating: {StateGone},
	StateGone:        {StatePending}, // thought gone, but the cloud lists it alive
}

// Drain is what a move to draining needs: why, and until when.
type Drain struct {
	Reason   DrainReason
	Deadline time.Time
}

// transition is the one place a node's state changes. It checks the move
// against the lifecycle, then sets the state and the fields that go with
// it: a drain's reason and deadline on entering draining (cleared on
// leaving it), GoneAt on gone, a fresh LaunchedAt on coming back from
// gone (the registration grace starts again). A move to the current state
// changes nothing.
func transition(r *NodeRecord, to NodeState, now time.Time, d Drain) error {
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
	if to == StateDraining && (d.Reason == "" || d.Deadline.IsZero()) {
		return fmt.Errorf("node %s: drain without a reason and deadline: %w", r.ID, ErrBadTransition)
	}
	switch {
	case to == StateDraining:
		r.DrainReason, r.DrainDeadline = d.Reason, d.Deadline
	case from == StateDraining:
		r.DrainReason, r.DrainDeadline = "", time.Time{}
	}
	switch to {
	case StateGone:
		r.GoneAt = now
	case StatePending:
		if from == StateGone {
			r.GoneAt, r.LaunchedAt = time.Time{}, now
		}
	}
	r.State = to
	return nil
}
