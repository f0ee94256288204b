package campaign

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// List recycling: a campaign manager re-runs contacts whose attempts are
// used up, chosen by the outcome of their last attempt (every no-answer
// and busy, say, of calls made before 18:00). A recycled contact starts a
// new round: it is pending again with a fresh allowance of max_attempts,
// while its attempt counter (which names its calls) and its history of
// attempts are kept. It is dialled only as the rules engine allows:
// do-not-call lists, destinations, legal hours, frequency caps.
//
//	failed ──recycle──► pending (round_base = attempts, recycles + 1)
//	done, dnc, invalid_number, a captured result: final, never recycled
//	pending, leased: already in play, left alone

// Recycle asks for contacts to be re-run.
type Recycle struct {
	// Dispositions of the contact's last attempt to re-run: any of busy,
	// no_answer, congestion, failed, cut_off, rejected, ivr_failed.
	Dispositions []string `json:"dispositions"`
	// After and Before, when set, keep only contacts whose last attempt
	// started at or after After, and before Before.
	After  *time.Time `json:"after,omitempty"`
	Before *time.Time `json:"before,omitempty"`
	// TimeOfDay, when set, keeps only contacts whose last attempt started
	// within these minutes of the day in TimeZone: {"start":1080,"end":1440}
	// re-runs the calls made after 18:00. It may wrap past midnight.
	TimeOfDay *Window `json:"time_of_day,omitempty"`
	// TimeZone is TimeOfDay's IANA zone, e.g. America/New_York; default UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// MaxTotalAttempts, when above 0, leaves out contacts that have had
	// this many attempts in all rounds together.
	MaxTotalAttempts int `json:"max_total_attempts,omitempty"`
	// DryRun counts what would be recycled and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// Recyclable are the outcomes a contact may be re-run for: an answer,
// an invalid number, a captured result and a message left on a machine
// (its contact is done) are final.
var Recyclable = []string{Busy, NoAnswer, Congestion, Failed, CutOff, Rejected, IVRFailed}

// Validate checks a recycle request and names the field at fault.
func (r *Recycle) Validate() error {
	if len(r.Dispositions) == 0 {
		return &FieldError{"dispositions", "name at least one outcome to re-run: " + strings.Join(Recyclable, ", ")}
	}
	for _, d := range r.Dispositions {
		if !slices.Contains(Recyclable, d) {
			why := "unknown"
			if isDisposition(d) {
				why = "final"
			}
			return &FieldError{"dispositions", fmt.Sprintf("%q: %s outcome; want any of %s", d, why, strings.Join(Recyclable, ", "))}
		}
	}
	if r.After != nil && r.Before != nil && !r.After.Before(*r.Before) {
		return &FieldError{"before", "must be later than after"}
	}
	if w := r.TimeOfDay; w != nil && (w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End > 1440 || w.Start == w.End) {
		return &FieldError{"time_of_day", "start and end are minutes of the day, 0 to 1440, and must differ"}
	}
	if _, err := time.LoadLocation(r.TimeZone); err != nil || (r.TimeZone != "" && r.TimeOfDay == nil) {
		return &FieldError{"time_zone", fmt.Sprintf("%q: want an IANA zone such as America/New_York, with time_of_day", r.TimeZone)}
	}
	if r.MaxTotalAttempts < 0 || r.MaxTotalAttempts > 1000 {
		return &FieldError{"max_total_attempts", fmt.Sprintf("%d: want 0 (no bound) to 1000", r.MaxTotalAttempts)}
	}
	return nil
}

// Matches reports whether a last attempt that started at t is within
// the request's time of day (After and Before are the store's to check).
func (r *Recycle) Matches(t time.Time) bool {
	if r.TimeOfDay == nil {
		return true
	}
	loc, err := time.LoadLocation(r.TimeZone)
	if err != nil {
		return false // Validate refuses it first
	}
	return r.TimeOfDay.Open(t.In(loc))
}

// Why a contact is left out of a recycle.
const (
	SkipFinal    = "final"           // reached, opted out, invalid number, or a result captured
	SkipInPlay   = "in_play"         // pending or leased: it is still being dialled
	SkipDNC      = "do_not_call"     // on a do-not-call list now
	SkipAttempts = "attempts_capped" // max_total_attempts reached
)

// RecycleCandidate is what the decision needs about one contact whose
// last attempt matched the request's outcomes and times.
type RecycleCandidate struct {
	State           string
	Attempts        int // in all rounds
	LastDisposition string
	LastTags        map[string]string
	DNC             bool // on a do-not-call list now
}

// Recycles decides whether one contact is re-run, and if not, why.
func (r *Recycle) Recycles(k RecycleCandidate) (ok bool, skip string) {
	switch {
	case k.State == ContactDone || k.State == ContactDNC || k.LastDisposition == InvalidNumber || k.LastDisposition == Answered || k.LastTags["result"] != "" || k.LastTags["dnc"] == "true":
		return false, SkipFinal
	case k.State != ContactFailed:
		return false, SkipInPlay
	case k.DNC:
		return false, SkipDNC
	case r.MaxTotalAttempts > 0 && k.Attempts >= r.MaxTotalAttempts:
		return false, SkipAttempts
	}
	return true, ""
}

// RecycleReport says what a recycle did (or, dry, would do).
type RecycleReport struct {
	Matched  int            `json:"matched"`  // contacts whose last attempt matched
	Recycled int            `json:"recycled"` // pending again
	Skipped  map[string]int `json:"skipped"`  // by reason
	DryRun   bool           `json:"dry_run"`
}
