package flow

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/elastidial/elastidial/campaign"
)

// Length is the longest a call can spend in a flow, from the answer to
// the hangup, along the flow's longest path: Seconds, or Unbounded with
// Why naming the state. The scaler keeps a campaign whose calls may
// outlast a spot instance's two-minute interruption notice off spot
// nodes (campaign.Campaign.OffSpot): a reclaimed node would cut them off.
type Length = campaign.FlowLength

// MaxLengthSeconds is the longest bound reported; a longer one (from
// values no validated flow has) is Unbounded.
const MaxLengthSeconds = 86400

// Timing is the model a flow's length is computed with. The audio
// library knows its prompts' lengths; speech and Asterisk's SAY commands
// are estimated from the text, on the slow side. Zero fields take the
// default noted beside them.
type Timing struct {
	// Prompt is a recorded prompt's length in seconds; nil, or false
	// for a prompt, makes the flow Unbounded (a length unknown is no
	// bound).
	Prompt func(name string) (seconds float64, ok bool)
	// SpeechCharsPerSecond is the slowest speech rate assumed: 10
	// characters a second (flite and Polly speak about 14).
	SpeechCharsPerSecond float64
	// FieldChars is the characters a {{field}} stands for in a text: 64
	// (names, dates, amounts, account numbers).
	FieldChars int
	// CharSeconds is one character said by SAY DIGITS or SAY ALPHA: 1.
	CharSeconds float64
}

// Fixed lengths of Asterisk's own actions (seconds).
const (
	// A SAY NUMBER of a 32-bit integer: "two billion one hundred …".
	sayNumberSeconds = 10
	// SAY NUMBER of units up to 9 digits, "dollars", and the cents.
	sayMoneySeconds   = 15
	sayDateSeconds    = 5
	sayTimeSeconds    = 4
	sayDateTimeSecond = 9
	// detect: AMD decides within 5 s (amd.conf's total_analysis_time);
	// on a machine the node waits up to 20 s for the greeting to end
	// (WaitForSilence 1000,1,20).
	detectSeconds = 25
)

func (t Timing) withDefaults() Timing {
	if !(t.SpeechCharsPerSecond > 0) {
		t.SpeechCharsPerSecond = 10
	}
	if t.FieldChars <= 0 {
		t.FieldChars = 64
	}
	if !(t.CharSeconds > 0) {
		t.CharSeconds = 1
	}
	return t
}

// unbounded is a state's length that has no bound.
type unbounded struct{ why string }

// Length computes the flow's longest call under the timing model t. It
// accepts any flow, validated or not: a negative value counts as zero (it
// cannot shorten a path), a huge one saturates to Unbounded, a loop
// reachable from the start is Unbounded.
func (f *Flow) Length(t Timing) Length {
	t = t.withDefaults()
	if f.States[f.Start] == nil {
		return Length{Unbounded: true, Why: fmt.Sprintf("start state %q does not exist", f.Start)}
	}
	const (
		white = iota
		grey
		black
	)
	colour := map[string]int{}
	longest := map[string]float64{}
	var bad *unbounded
	// visit returns the longest time from entering n to the call's end.
	var visit func(n string) float64
	visit = func(n string) float64 {
		colour[n] = grey
		s := f.States[n]
		own, err := s.length(n, t)
		if err != nil && bad == nil {
			bad = err
		}
		best := 0.0
		for _, to := range slices.Sorted(maps.Keys(setOf(s.targets()))) {
			if bad != nil {
				break
			}
			if f.States[to] == nil {
				continue // an unknown state ends the call
			}
			switch colour[to] {
			case grey:
				bad = &unbounded{fmt.Sprintf("state %q: goes back to %q, a loop a caller can go round without end", n, to)}
			case white:
				best = max(best, visit(to))
			default:
				best = max(best, longest[to])
			}
		}
		colour[n] = black
		longest[n] = own + best
		return longest[n]
	}
	total := visit(f.Start)
	switch {
	case bad != nil:
		return Length{Unbounded: true, Why: bad.why}
	case !(total <= MaxLengthSeconds):
		return Length{Unbounded: true, Why: fmt.Sprintf("longer than %d s", MaxLengthSeconds)}
	}
	return Length{Seconds: math.Ceil(total*1000) / 1000}
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// nonNeg counts a negative (or NaN) value as zero.
func nonNeg(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return x
}

// length is the longest the node spends running state n's action.
func (s *State) length(n string, t Timing) (float64, *unbounded) {
	switch {
	case len(s.Play) > 0:
		return t.prompts(n, s.Play)
	case s.Say != "":
		return t.say(s.As, s.Say), nil
	case s.SayDigits != "":
		return t.say(SayDigits, s.SayDigits), nil
	case s.SayNumber != "":
		return t.say(SayNumber, s.SayNumber), nil
	case s.Gather != nil:
		g := s.Gather
		prompt := t.say(SaySpeech, g.Say)
		if g.Prompt != "" {
			p, err := t.prompts(n, []string{g.Prompt})
			if err != nil {
				return 0, err
			}
			prompt = p
		}
		// GET DATA waits timeout_ms after the prompt and between keys: a
		// caller keying slowly takes max_digits waits. Each retry repeats
		// it all.
		wait := nonNeg(float64(g.TimeoutMS)/1000) * float64(max(g.MaxDigits, 1))
		return (prompt + wait) * float64(max(g.Retries, 0)+1), nil
	case s.Record != nil:
		return nonNeg(float64(s.Record.MaxSeconds)), nil
	case s.Transfer != nil:
		return 0, &unbounded{fmt.Sprintf("state %q: a transfer lasts as long as the people talk", n)}
	case s.Detect:
		return detectSeconds, nil
	case s.HTTP != nil:
		ms := s.HTTP.TimeoutMS
		if ms == 0 {
			ms = DefaultHTTPTimeoutMS
		}
		return nonNeg(float64(ms) / 1000), nil
	}
	return 0, nil // set, set_var, branch, hangup
}

// prompts sums recorded prompts' lengths.
func (t Timing) prompts(n string, names []string) (float64, *unbounded) {
	sum := 0.0
	for _, p := range names {
		if t.Prompt == nil {
			return 0, &unbounded{fmt.Sprintf("state %q: the length of prompt %q is unknown", n, p)}
		}
		sec, ok := t.Prompt(p)
		if !ok {
			return 0, &unbounded{fmt.Sprintf("state %q: the length of prompt %q is unknown", n, p)}
		}
		sum += nonNeg(sec)
	}
	return sum, nil
}

// chars is the most characters a template can render to: its text, each
// {{field}} standing for FieldChars.
func (t Timing) chars(tmpl string) int {
	fields := len(templateRE.FindAllStringIndex(tmpl, -1))
	return len(templateRE.ReplaceAllString(tmpl, "")) + fields*t.FieldChars
}

// say is the longest a say of tmpl takes, said as as.
func (t Timing) say(as, tmpl string) float64 {
	if tmpl == "" {
		return 0
	}
	switch as {
	case SayDigits, SayAlpha:
		return float64(min(t.chars(tmpl), MaxVarLen)) * t.CharSeconds
	case SayNumber:
		return sayNumberSeconds
	case SayMoney:
		return sayMoneySeconds
	case SayDate:
		return sayDateSeconds
	case SayTime:
		return sayTimeSeconds
	case SayDateTime:
		return sayDateTimeSecond
	}
	return float64(min(t.chars(tmpl), MaxSayText)) / t.SpeechCharsPerSecond
}
