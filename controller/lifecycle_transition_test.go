package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
)

func TestTransition(t *testing.T) {
	now := time.Unix(1000, 0)
	dl := now.Add(time.Minute)
	for _, tc := range []struct {
		from, to planner.NodeState
		drain    Drain
		wantErr  bool
	}{
		{planner.StatePending, planner.StateBooting, Drain{}, false},
		{planner.StateReady, planner.StateDraining, Drain{planner.DrainSurplus, dl}, false},
		{planner.StateReady, planner.StateDraining, Drain{}, true}, // a drain must say why and until when
		{planner.StateDraining, planner.StateSyncing, Drain{}, false},
		{planner.StateTerminating, planner.StateReady, Drain{}, true},
		{planner.StateGone, planner.StateReady, Drain{}, true},
		{planner.StateGone, planner.StatePending, Drain{}, false},
		{planner.StateDraining, planner.StateReady, Drain{}, true}, // a cancelled drain re-earns readiness
		{planner.StateBooting, planner.StateDraining, Drain{planner.DrainSpot, dl}, true},
		{planner.StateReady, planner.StateReady, Drain{}, false},
	} {
		r := NodeRecord{ID: "n", State: tc.from}
		err := transition(&r, tc.to, now, tc.drain)
		if got := err != nil; got != tc.wantErr {
			t.Errorf("%s → %s: err %v, want error %v", tc.from, tc.to, err, tc.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadTransition) || r.State != tc.from {
				t.Errorf("%s → %s: refused move changed the record or lost the sentinel: %v, state %s", tc.from, tc.to, err, r.State)
			}
			continue
		}
		if r.State != tc.to {
			t.Errorf("%s → %s: state %s", tc.from, tc.to, r.State)
		}
	}
}

func TestTransitionFields(t *testing.T) {
	now := time.Unix(1000, 0)
	dl := now.Add(time.Minute)
	r := NodeRecord{ID: "n", State: planner.StateReady}
	if err := transition(&r, planner.StateDraining, now, Drain{planner.DrainSpot, dl}); err != nil || r.DrainReason != planner.DrainSpot || !r.DrainDeadline.Equal(dl) {
		t.Fatalf("drain: %v %+v", err, r)
	}
	if err := transition(&r, planner.StateSyncing, now, Drain{}); err != nil || r.DrainReason != "" || !r.DrainDeadline.IsZero() {
		t.Fatalf("cancel drain keeps the drain: %v %+v", err, r)
	}
	if err := transition(&r, planner.StateGone, now, Drain{}); err != nil || !r.GoneAt.Equal(now) {
		t.Fatalf("gone: %v %+v", err, r)
	}
	later := now.Add(time.Hour)
	if err := transition(&r, planner.StatePending, later, Drain{}); err != nil || !r.GoneAt.IsZero() || !r.LaunchedAt.Equal(later) {
		t.Fatalf("back from gone: %v %+v", err, r)
	}
}

// TestTransitionCoversEveryState: every state the planner knows has its
// row in the lifecycle table, so a new state cannot slip past the guard.
func TestTransitionCoversEveryState(t *testing.T) {
	for _, s := range []planner.NodeState{planner.StateRequested, planner.StatePending, planner.StateBooting, planner.StateRegistered, planner.StateSyncing, planner.StateReady, planner.StateDraining, planner.StateTerminating, planner.StateGone} {
		if _, ok := next[s]; !ok {
			t.Errorf("state %s has no row in the lifecycle table", s)
		}
	}
}
