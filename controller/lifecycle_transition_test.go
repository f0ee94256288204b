package controller

import (
	"errors"
	"testing"
	"time"
)

func TestTransition(t *testing.T) {
	now := time.Unix(1000, 0)
	dl := now.Add(time.Minute)
	for _, tc := range []struct {
		from, to NodeState
		drain    Drain
		wantErr  bool
	}{
		{StatePending, StateBooting, Drain{}, false},
		{StateReady, StateDraining, Drain{DrainSurplus, dl}, false},
		{StateReady, StateDraining, Drain{}, true}, // a drain must say why and until when
		{StateDraining, StateSyncing, Drain{}, false},
		{StateTerminating, StateReady, Drain{}, true},
		{StateGone, StateReady, Drain{}, true},
		{StateGone, StatePending, Drain{}, false},
		{StateDraining, StateReady, Drain{}, true}, // a cancelled drain re-earns readiness
		{StateBooting, StateDraining, Drain{DrainSpot, dl}, true},
		{StateReady, StateReady, Drain{}, false},
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
	r := NodeRecord{ID: "n", State: StateReady}
	if err := transition(&r, StateDraining, now, Drain{DrainSpot, dl}); err != nil || r.DrainReason != DrainSpot || !r.DrainDeadline.Equal(dl) {
		t.Fatalf("drain: %v %+v", err, r)
	}
	if err := transition(&r, StateSyncing, now, Drain{}); err != nil || r.DrainReason != "" || !r.DrainDeadline.IsZero() {
		t.Fatalf("cancel drain keeps the drain: %v %+v", err, r)
	}
	if err := transition(&r, StateGone, now, Drain{}); err != nil || !r.GoneAt.Equal(now) {
		t.Fatalf("gone: %v %+v", err, r)
	}
	later := now.Add(time.Hour)
	if err := transition(&r, StatePending, later, Drain{}); err != nil || !r.GoneAt.IsZero() || !r.LaunchedAt.Equal(later) {
		t.Fatalf("back from gone: %v %+v", err, r)
	}
}

// TestTransitionCoversEveryState: every state the planner knows has its
// row in the lifecycle table, so a new state cannot slip past the guard.
func TestTransitionCoversEveryState(t *testing.T) {
	for _, s := range []NodeState{StateRequested, StatePending, StateBooting, StateRegistered, StateSyncing, StateReady, StateDraining, StateTerminating, StateGone} {
		if _, ok := next[s]; !ok {
			t.Errorf("state %s has no row in the lifecycle table", s)
		}
	}
}
