package campaign

// Abandonment, for flows that transfer answered calls to people: a live
// answer (a person, not a machine) whose transfer found no one free is
// abandoned. The flow engine tags each transfer's outcome (TagTransfer);
// the store counts live answers and abandons per campaign and hour, and
// leasing holds the campaign's concurrency at PacedTarget so that the
// abandon rate stays under its cap (FCC 47 CFR 64.1200(a)(7) and the
// FTC's Telemarketing Sales Rule: 3% of live answers over 30 days, with a
// message played within 2 seconds; the flow's transfer state must go to
// a message when no one is free).

// Tags the flow engine sets on a transfer's outcome.
const (
	TagTransfer       = "transfer"
	TransferConnected = "connected"
	TransferNoOneFree = "no_one_free"
)

// DefaultAbandonCap is the abandon rate a campaign is held under unless
// it sets abandon_cap.
const DefaultAbandonCap = 0.03

// minAnswersToJudge is how many live answers a window needs before its
// rate is acted on.
const minAnswersToJudge = 20

// AbandonLimit is the campaign's abandon cap.
func (c *Campaign) AbandonLimit() float64 {
	if c.AbandonCap > 0 {
		return c.AbandonCap
	}
	return DefaultAbandonCap
}

// Abandoned reports whether an attempt is an abandoned call: answered by
// a person, whose transfer found no one free.
func Abandoned(disposition string, tags map[string]string) bool {
	return disposition == Answered && tags[TagTransfer] == TransferNoOneFree
}

// AbandonCounts are a campaign's live answers and abandoned calls over a
// window.
type AbandonCounts struct {
	Live      int `json:"live_answers"`
	Abandoned int `json:"abandoned"`
}

// Rate is the abandon rate, 0 with no live answers.
func (a AbandonCounts) Rate() float64 {
	if a.Live == 0 {
		return 0
	}
	return float64(a.Abandoned) / float64(a.Live)
}

// PaceSample is how many live answers a pacing step judges a rate on;
// a run of quickSample answers with no abandon is enough to go up.
const (
	PaceSample  = 50
	quickSample = 10
)

// StartPace is the concurrency a campaign that transfers to people starts
// at: it climbs from there while no one is left waiting, so the first
// minutes never flood the people with more answers than they can take.
const StartPace = 1.0

// Pace is one step of a campaign's pacing (for flows that transfer to
// people): from the concurrency it dials at (prev; 0 before the first
// step, which starts at StartPace) and the live answers since its last
// step (sample), the concurrency to dial at next, and whether the sample
// was judged (the caller then starts a new one). Abandons beyond 80% of
// the cap over PaceSample answers bring it down in proportion (by a tenth
// to a half) at once; a full sample at most 40% of the cap, or a quick run
// of answers with no abandon, takes it up a tenth (at least one call),
// unless the 30-day rate (the one the law counts) is over 80% of the cap;
// in between it holds. Between one call and the target.
//
// A heuristic, not an optimum: TestPacingHoldsTheAbandonRate simulates
// days of three mixes of people, talk times and answer rates, where full
// pace abandons 80-99% of answers; paced, each stays under 3% with the
// people busy about half the day.
func Pace(prev float64, target int, sample, month AbandonCounts, limit float64) (next float64, judged bool) {
	if prev <= 0 {
		prev = StartPace
	}
	prev = min(prev, float64(target))
	if limit <= 0 {
		return float64(target), true
	}
	aim := 0.8 * limit
	over := month.Live >= PaceSample && month.Rate() > aim
	up := func() float64 {
		if over {
			return prev
		}
		return prev + max(1, prev/10)
	}
	next = prev
	switch {
	case float64(sample.Abandoned) > aim*PaceSample:
		next, judged = prev*min(0.9, max(0.5, aim/max(sample.Rate(), aim))), true
	case sample.Live >= PaceSample:
		if sample.Rate() <= aim/2 {
			next = up()
		}
		judged = true
	case sample.Live >= quickSample && sample.Abandoned == 0:
		next, judged = up(), true
	}
	return min(max(next, 1), float64(target)), judged
}
