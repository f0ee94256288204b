package campaign

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// The controller must accept every disposition a node reports, or a result
// is refused and lost.
func TestDispositionsMatchTheNodeAPI(t *testing.T) {
	node := []string{nodeapi.DispAnswered, nodeapi.DispBusy, nodeapi.DispNoAnswer, nodeapi.DispCongestion,
		nodeapi.DispFailed, nodeapi.DispMachine, nodeapi.DispCutOff, nodeapi.DispInvalidNumber,
		nodeapi.DispRejected, nodeapi.DispIVRFailed}
	if got, want := slices.Sorted(slices.Values(Dispositions)), slices.Sorted(slices.Values(node)); !slices.Equal(got, want) {
		t.Errorf("campaign dispositions %v, node dispositions %v", got, want)
	}
	def := DefaultRetry()
	for _, d := range Dispositions {
		if _, ok := def[d]; !ok {
			t.Errorf("DefaultRetry has no rule for %s", d)
		}
		r := Result{CallID: "k1", Token: "t", Disposition: d}
		if err := r.Validate(); err != nil {
			t.Errorf("result with %s refused: %v", d, err)
		}
	}
}

func TestNextForNewDispositions(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := &Campaign{}
	c.Defaults()
	for _, tt := range []struct {
		disp     string
		attempts int
		state    string
		after    time.Duration
	}{
		{InvalidNumber, 1, ContactFailed, 0},
		{Rejected, 1, ContactPending, 4 * time.Hour},
		{Rejected, 3, ContactFailed, 0},
		{IVRFailed, 1, ContactPending, 30 * time.Minute},
		{IVRFailed, 3, ContactFailed, 0},
		{Busy, 1, ContactPending, 10 * time.Minute},
		{Failed, 1, ContactFailed, 0},
	} {
		state, next := Next(c, tt.disp, tt.attempts, nil, now)
		if state != tt.state || (tt.after != 0 && next != now.Add(tt.after)) || (tt.after == 0 && !next.IsZero()) {
			t.Errorf("%s after %d attempts: %s at %v, want %s after %v", tt.disp, tt.attempts, state, next, tt.state, tt.after)
		}
	}
	// Even a campaign that asks for it never redials an invalid number.
	c.Retry = map[string]Retry{InvalidNumber: {AfterSeconds: 60}}
	if state, _ := Next(c, InvalidNumber, 1, nil, now); state != ContactFailed {
		t.Errorf("invalid number retried: %s", state)
	}
}

func TestValidateRefusesRetryingInvalidNumbers(t *testing.T) {
	c := &Campaign{Name: "Survey", Trunk: "carrier", CallerID: "+14155550100", Target: 10}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c.Retry = map[string]Retry{InvalidNumber: {AfterSeconds: 600}}
	var fe *FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "retry.invalid_number" {
		t.Errorf("retrying invalid numbers: %v", err)
	}
	c.Retry = map[string]Retry{IVRFailed: {AfterSeconds: 600}, Rejected: {AfterSeconds: 0}}
	if err := c.Validate(); err != nil {
		t.Errorf("retry rules for new dispositions refused: %v", err)
	}
}

// TestOffSpot: ring time plus the flow's longest call against the limit;
// a flow of unknown or unbounded length is long; no flow rings only.
func TestOffSpot(t *testing.T) {
	limit := 105 * time.Second
	for _, tc := range []struct {
		name  string
		c     Campaign
		limit time.Duration
		want  bool
	}{
		{"fits", Campaign{RingSeconds: 30, FlowVersion: 1, FlowLength: &FlowLength{Seconds: 75}}, limit, false},
		{"a second over", Campaign{RingSeconds: 30, FlowVersion: 1, FlowLength: &FlowLength{Seconds: 75.5}}, limit, true},
		{"unbounded", Campaign{RingSeconds: 30, FlowVersion: 1, FlowLength: &FlowLength{Unbounded: true}}, limit, true},
		{"length unknown", Campaign{RingSeconds: 30, FlowVersion: 2}, limit, true},
		{"no flow yet", Campaign{RingSeconds: 30}, limit, false},
		{"long ring alone", Campaign{RingSeconds: 120}, limit, true},
		{"no limit", Campaign{RingSeconds: 30, FlowVersion: 1, FlowLength: &FlowLength{Unbounded: true}}, 0, false},
	} {
		if got := tc.c.OffSpot(tc.limit); got != tc.want {
			t.Errorf("%s: OffSpot = %v, want %v", tc.name, got, tc.want)
		}
	}
}
