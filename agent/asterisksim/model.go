// Package asterisksim is a simulated Asterisk for tests and the local cloud.
// It speaks the real protocols on real sockets: an AMI server (banner, Login
// with event classes, async Originate with OriginateResponse / Newchannel /
// Hangup events, CoreShowChannels, Ping, Command, Logoff) and, for every
// answered call, a FastAGI client that connects to the agent with a full
// agi_* environment and answers AGI commands as res_agi does. Who answers,
// what they press and when they hang up comes from a seeded callee model, so
// a run is reproducible.
package asterisksim

import (
	"hash/fnv"
	"math/rand/v2"
	"time"
)

// Outcome of an origination attempt, with the OriginateResponse Reason and
// the Q.850 cause a real Asterisk 22 with chan_pjsip reports for it: Reason
// 0 for every call the carrier rejects (the outcome is only in the Hangup
// cause), 3 for a ring timeout, 4 for an answer.
type Outcome int

// Outcomes, with the SIP response the carrier sends.
const (
	Answer      Outcome = iota + 1
	Busy                // 486 → cause 17
	NoAnswer            // 180 Ringing until the Originate Timeout → Reason 3, cause 19
	Congestion          // 503 → cause 34
	Failed              // another 4xx (400) → cause 127
	Unallocated         // 404 → cause 1
	Rejected            // 603 Decline → cause 21
	Unavailable         // 480 → cause 19, Reason 0
	EarlyMedia          // 183 with media until the Timeout → Reason 3, no cause set
)

func (o Outcome) reason() int {
	switch o {
	case Answer:
		return 4
	case NoAnswer, EarlyMedia:
		return 3
	}
	return 0
}

// rings reports whether the call rings until the Originate Timeout.
func (o Outcome) rings() bool { return o == NoAnswer || o == EarlyMedia }

func (o Outcome) cause() (int, string) {
	switch o {
	case Answer:
		return 16, "Normal Clearing"
	case Busy:
		return 17, "User busy"
	case NoAnswer, Unavailable:
		return 19, "No answer"
	case Congestion:
		return 34, "Circuit/channel congestion"
	case Unallocated:
		return 1, "Unallocated (unassigned) number"
	case Rejected:
		return 21, "Call Rejected"
	case EarlyMedia:
		// __ast_request_and_dial sets NO_ANSWER only when the last
		// control frame was RINGING; after 183 the cause stays unset.
		return 0, "Unknown"
	}
	return 127, "Interworking, unspecified"
}

// Order is the order of the OriginateResponse and the Hangup events of an
// unanswered call: they travel different paths inside Asterisk, so an AMI
// client sees either first.
type Order int

// Orders. OrderRandom (the zero value) draws one from the model's seed.
const (
	OrderRandom Order = iota
	HangupFirst
	ResponseFirst
)

// Callee is the behaviour of one called party.
type Callee struct {
	Outcome Outcome
	Ring    time.Duration // until answer / busy / congestion / failure
	Machine bool          // an answering machine picked up (AMD says MACHINE)
	// Digits are the DTMF answers to successive GET DATA prompts; "" is a
	// timeout. Past the end, gathers time out.
	Digits []string
	// HangupAfter > 0: the callee hangs up this long after answering.
	HangupAfter time.Duration
	// TransferAnswered: a Dial from the IVR is answered.
	TransferAnswered bool
	// AMDStatus is what AMD sets AMDSTATUS to (MACHINE, HUMAN, NOTSURE,
	// HANGUP); "" means MACHINE when Machine is set, else HUMAN.
	AMDStatus string
	// Order of the OriginateResponse and Hangup events when unanswered.
	Order Order
}

// Model draws callees. Rates are probabilities; whatever Answer, Busy,
// NoAnswer and Congestion leave is Failed (Reason 0).
type Model struct {
	Seed       uint64
	Answer     float64 // default (all rates zero) 0.7
	Busy       float64 // default 0.1
	NoAnswer   float64 // default 0.15
	Congestion float64 // default 0.03
	Machine    float64 // share of answered calls that reach a machine
	// HangupMidIVR is the share of answered calls whose callee hangs up
	// between HangupMin and HangupMax after answering.
	HangupMidIVR         float64
	HangupMin, HangupMax time.Duration
	RingMin, RingMax     time.Duration // default 1s..6s
	// PromptTime is how long a prompt, a SAY, a recording or a gather's wait
	// lasts; default 500ms.
	PromptTime time.Duration
	// DigitChoices are the keys a person may press at a gather (one drawn per
	// gather); NoInput is the share of gathers with no key. Default "12", 0.1.
	DigitChoices string
	NoInput      float64
	// Callees overrides the model for given numbers (E.164 as dialled).
	Callees map[string]Callee
}

func (m *Model) defaults() {
	if m.Answer+m.Busy+m.NoAnswer+m.Congestion == 0 {
		m.Answer, m.Busy, m.NoAnswer, m.Congestion = 0.7, 0.1, 0.15, 0.03
	}
	if m.RingMax == 0 {
		m.RingMin, m.RingMax = time.Second, 6*time.Second
	}
	if m.PromptTime == 0 {
		m.PromptTime = 500 * time.Millisecond
	}
	if m.DigitChoices == "" {
		m.DigitChoices = "12"
		if m.NoInput == 0 {
			m.NoInput = 0.1
		}
	}
	if m.HangupMax == 0 {
		m.HangupMin, m.HangupMax = time.Second, 10*time.Second
	}
}

// Draw returns the callee for a number on a given attempt. The same seed,
// number and attempt always give the same callee.
func (m *Model) Draw(number string, attempt int) Callee {
	h := fnv.New64a()
	h.Write([]byte(number))
	r := rand.New(rand.NewPCG(m.Seed, h.Sum64()+uint64(attempt)))
	// A stream of its own, so adding the order changed no other draw.
	order := HangupFirst + Order(rand.New(rand.NewPCG(^m.Seed, h.Sum64()+uint64(attempt))).IntN(2))
	if c, ok := m.Callees[number]; ok {
		if c.Order == OrderRandom {
			c.Order = order
		}
		return c
	}
	c := Callee{Ring: between(r, m.RingMin, m.RingMax), Order: order}
	x := r.Float64()
	switch {
	case x < m.Answer:
		c.Outcome = Answer
	case x < m.Answer+m.Busy:
		c.Outcome = Busy
	case x < m.Answer+m.Busy+m.NoAnswer:
		c.Outcome = NoAnswer
	case x < m.Answer+m.Busy+m.NoAnswer+m.Congestion:
		c.Outcome = Congestion
	default:
		c.Outcome = Failed
	}
	if c.Outcome != Answer {
		return c
	}
	c.Machine = r.Float64() < m.Machine
	if r.Float64() < m.HangupMidIVR {
		c.HangupAfter = between(r, m.HangupMin, m.HangupMax)
	}
	c.TransferAnswered = r.Float64() < 0.8
	for range 8 {
		if r.Float64() < m.NoInput {
			c.Digits = append(c.Digits, "")
			continue
		}
		k := m.DigitChoices[r.IntN(len(m.DigitChoices))]
		c.Digits = append(c.Digits, string(k))
	}
	return c
}

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}
