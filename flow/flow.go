// Package flow is the IVR state machine every answered call runs: a flow is
// a JSON document of states, each with one action and transitions on the
// caller's input. Step, the engine, is a pure function; the XML-RPC tier
// serves it as call.step.
//
//	            ┌──────────── timeout / invalid (retries left) ─┐
//	            ▼                                               │
//	start ─► [state: action] ── input ─► on / next / timeout ──►┴─► [state] … ─► hangup
//	            │   set-only states are passed through within one step,
//	            └── their tags gathered for call.result
package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/nodeapi"
)

// Flow is a parsed, immutable flow.
type Flow struct {
	Name   string            `json:"name"`
	Start  string            `json:"start"`
	States map[string]*State `json:"states"`
}

// State is one step of the flow: exactly one action, and where to go next.
type State struct {
	// Actions: exactly one is set.
	Play      []string          `json:"play,omitempty"`       // prompts, played in order
	SayDigits string            `json:"say_digits,omitempty"` // template, e.g. "{{account}}"
	SayNumber string            `json:"say_number,omitempty"`
	Gather    *Gather           `json:"gather,omitempty"`
	Record    *Record           `json:"record,omitempty"`
	Transfer  *Transfer         `json:"transfer,omitempty"`
	Detect    bool              `json:"detect,omitempty"` // answering machine or human
	Set       map[string]string `json:"set,omitempty"`    // tags; "dnc":"true" opts the number out
	Hangup    bool              `json:"hangup,omitempty"`

	// Transitions.
	Next    string            `json:"next,omitempty"`    // after the action finished with no input
	On      map[string]string `json:"on,omitempty"`      // digits → state; "*" matches any other digits
	Timeout string            `json:"timeout,omitempty"` // no digits, retries used up
	Invalid string            `json:"invalid,omitempty"` // digits not in On, retries used up
	Failed  string            `json:"failed,omitempty"`  // the action failed
	Machine string            `json:"machine,omitempty"`
	Human   string            `json:"human,omitempty"`
}

// Gather collects DTMF digits after a prompt.
type Gather struct {
	Prompt    string `json:"prompt"`
	MaxDigits int    `json:"max_digits"`
	TimeoutMS int    `json:"timeout_ms"`
	Retries   int    `json:"retries"` // repeats on timeout or invalid input
}

// Record records the caller.
type Record struct {
	Name       string `json:"name"` // template; the recording's file name
	MaxSeconds int    `json:"max_seconds"`
}

// Transfer bridges the caller to a number or SIP URI.
type Transfer struct {
	To             string `json:"to"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// Input is what the node reports after running an action.
type Input struct {
	Kind   string // one of the nodeapi.Input* kinds
	Digits string
}

// Problem is one validation finding, naming the state it concerns.
type Problem struct {
	State  string
	Reason string
}

func (p Problem) Error() string {
	if p.State == "" {
		return p.Reason
	}
	return fmt.Sprintf("state %q: %s", p.State, p.Reason)
}

// Problems is every finding of a validation.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "; ")
}

// Limits.
const (
	MaxStates   = 500
	MaxPassThru = 64 // set-only states passed in one step
	stateSep    = "~"
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	promptRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$`)
	templateRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)
	transferRE = regexp.MustCompile(`^(\+?[0-9]{3,20}|sip:[^\s"',;]{3,200})$`)
)

// Parse reads a flow document; it does not validate it (Validate does).
func Parse(doc []byte) (*Flow, error) {
	var f Flow
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("flow is not valid JSON of the flow format: %w", err)
	}
	if len(f.States) > MaxStates {
		return nil, fmt.Errorf("flow has %d states; at most %d are allowed", len(f.States), MaxStates)
	}
	for name, s := range f.States {
		if s == nil {
			return nil, Problem{name, "is null"}
		}
	}
	return &f, nil
}

// actionCount counts the actions a state sets.
func (s *State) actionCount() int {
	n := 0
	for _, set := range []bool{len(s.Play) > 0, s.SayDigits != "", s.SayNumber != "", s.Gather != nil, s.Record != nil, s.Transfer != nil, s.Detect, s.Set != nil, s.Hangup} {
		if set {
			n++
		}
	}
	return n
}

// targets lists the states a state can go to.
func (s *State) targets() []string {
	t := []string{s.Next, s.Timeout, s.Invalid, s.Failed, s.Machine, s.Human}
	for _, v := range s.On {
		t = append(t, v)
	}
	return slices.DeleteFunc(t, func(x string) bool { return x == "" })
}

// Validate checks the flow and returns every problem found, each naming
// its state. promptExists reports whether a prompt is in the audio library;
// nil skips that check.
func (f *Flow) Validate(promptExists func(name string) bool) error {
	var ps Problems
	add := func(state, format string, a ...any) { ps = append(ps, Problem{state, fmt.Sprintf(format, a...)}) }
	if f.Start == "" {
		add("", "the flow has no start state")
	} else if f.States[f.Start] == nil {
		add("", "start state %q does not exist", f.Start)
	}
	names := make([]string, 0, len(f.States))
	for n := range f.States {
		names = append(names, n)
	}
	slices.Sort(names)
	prompt := func(state, p string) {
		if !promptRE.MatchString(p) {
			add(state, "prompt %q is not a valid audio name (set/name, no extension)", p)
		} else if promptExists != nil && !promptExists(p) {
			add(state, "prompt %q is not in the audio library", p)
		}
	}
	for _, n := range names {
		s := f.States[n]
		if !nameRE.MatchString(n) {
			add(n, "state names are 1 to 64 letters, digits, _ or -")
		}
		switch c := s.actionCount(); {
		case c == 0:
			add(n, "has no action (play, say_digits, say_number, gather, record, transfer, detect, set or hangup)")
		case c > 1:
			add(n, "has %d actions; a state has exactly one", c)
		}
		for _, p := range s.Play {
			prompt(n, p)
		}
		for _, t := range []string{s.SayDigits, s.SayNumber} {
			if t != "" && templateRE.ReplaceAllString(t, "") != "" && !isDigits(templateRE.ReplaceAllString(t, "")) {
				add(n, "%q: say a contact field as {{field}} or literal digits", t)
			}
		}
		if g := s.Gather; g != nil {
			prompt(n, g.Prompt)
			if g.MaxDigits < 1 || g.MaxDigits > 32 {
				add(n, "gather max_digits %d: want 1 to 32", g.MaxDigits)
			}
			if g.TimeoutMS < 500 || g.TimeoutMS > 60000 {
				add(n, "gather timeout_ms %d: want 500 to 60000", g.TimeoutMS)
			}
			if g.Retries < 0 || g.Retries > 5 {
				add(n, "gather retries %d: want 0 to 5", g.Retries)
			}
			if len(s.On) == 0 {
				add(n, "gather has no \"on\" transitions for the digits it collects")
			}
			for d := range s.On {
				if d != "*" && (!isDigitsOrKeys(d) || len(d) > g.MaxDigits) {
					add(n, "on %q: want DTMF keys (0-9 * #) no longer than max_digits, or \"*\" for any", d)
				}
			}
		} else if len(s.On) > 0 || s.Timeout != "" || s.Invalid != "" {
			add(n, "only a gather state takes on, timeout and invalid")
		}
		if r := s.Record; r != nil && (r.MaxSeconds < 1 || r.MaxSeconds > 600 || r.Name == "") {
			add(n, "record needs a name and max_seconds from 1 to 600")
		}
		if t := s.Transfer; t != nil {
			if !transferRE.MatchString(t.To) {
				add(n, "transfer to %q: want a phone number or sip: URI", t.To)
			} else if why := campaign.TransferTarget(t.To); why != "" {
				add(n, "transfer to %q: %s; never a transfer target", t.To, why)
			}
			if t.TimeoutSeconds < 5 || t.TimeoutSeconds > 300 {
				add(n, "transfer timeout_seconds %d: want 5 to 300", t.TimeoutSeconds)
			}
			// When no one is free the caller must hear a message at once
			// (the abandoned-call rule): failed leads, through set states
			// only, to a play state.
			if !f.playsNext(s.Failed) {
				add(n, "transfer needs failed: a play state (through set states only) telling the caller no one is free")
			}
		}
		if (s.Machine != "" || s.Human != "") && !s.Detect {
			add(n, "only a detect state takes machine and human")
		}
		if s.Hangup && len(s.targets()) > 0 {
			add(n, "a hangup state ends the call and has no transitions")
		}
		if s.Set != nil && s.Next == "" {
			add(n, "a set state needs next")
		}
		for _, t := range s.targets() {
			if f.States[t] == nil {
				add(n, "goes to unknown state %q", t)
			}
		}
	}
	if len(ps) == 0 {
		ps = append(ps, f.checkGraph()...)
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

// playsNext reports whether the state named leads, through set states
// only, to a play state.
func (f *Flow) playsNext(name string) bool {
	for hops := 0; name != "" && hops <= MaxPassThru; hops++ {
		s := f.States[name]
		switch {
		case s == nil:
			return false
		case len(s.Play) > 0:
			return true
		case s.Set == nil:
			return false
		}
		name = s.Next
	}
	return false
}

// checkGraph finds unreachable states, set-only loops and states from
// which the call can never end.
func (f *Flow) checkGraph() Problems {
	var ps Problems
	reach := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if reach[n] {
			return
		}
		reach[n] = true
		for _, t := range f.States[n].targets() {
			walk(t)
		}
	}
	walk(f.Start)
	// A state ends the call when it hangs up or lacks a transition for an
	// input it can get; the call can end from a state when some path
	// leads to such a state.
	ends := map[string]bool{}
	for n, s := range f.States {
		ends[n] = s.Hangup || s.implicitEnd()
	}
	for changed := true; changed; {
		changed = false
		for n, s := range f.States {
			if ends[n] {
				continue
			}
			for _, t := range s.targets() {
				if ends[t] {
					ends[n], changed = true, true
					break
				}
			}
		}
	}
	names := make([]string, 0, len(f.States))
	for n := range f.States {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !reach[n] {
			ps = append(ps, Problem{n, "is unreachable from the start state"})
		} else if !ends[n] {
			ps = append(ps, Problem{n, "every path from here loops forever; add a way to hang up"})
		}
		if f.States[n].Set != nil {
			seen := map[string]bool{n: true}
			for cur := f.States[n].Next; cur != ""; cur = f.States[cur].Next {
				if seen[cur] {
					ps = append(ps, Problem{n, "set states loop back to themselves without an action"})
					break
				}
				if f.States[cur] == nil || f.States[cur].Set == nil {
					break
				}
				seen[cur] = true
			}
		}
	}
	return ps
}

// implicitEnd reports whether some input leaves the state with nowhere to
// go, which ends the call.
func (s *State) implicitEnd() bool {
	switch {
	case s.Gather != nil:
		_, any := s.On["*"]
		return s.Timeout == "" || (!any && s.Invalid == "") || s.Failed == ""
	case s.Detect:
		return s.Machine == "" || s.Human == "" || s.Failed == ""
	default:
		return s.Next == "" || s.Failed == ""
	}
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func isDigitsOrKeys(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && r != '*' && r != '#' {
			return false
		}
	}
	return s != ""
}

// ErrBadState is returned for a state the flow does not have.
var ErrBadState = errors.New("unknown state")

// Step is the engine: from the current state and the input the node
// reports, it returns the state entered, the action to run there, and the
// tags set by states passed through on the way. The state string carries
// the gather retry count ("ask~1"), so the engine keeps no memory.
func Step(f *Flow, state string, in Input, fields map[string]string) (next string, action nodeapi.Action, tags map[string]string, err error) {
	var target string
	if in.Kind == nodeapi.InputStart {
		target = f.Start
	} else {
		name, tries := splitState(state)
		s := f.States[name]
		if s == nil {
			return "", nodeapi.Action{}, nil, fmt.Errorf("%w %q", ErrBadState, state)
		}
		var retry bool
		target, retry = s.transition(in)
		if s.Transfer != nil {
			// The transfer's outcome, for the campaign's abandon rate.
			outcome := campaign.TransferConnected
			if in.Kind == nodeapi.InputFailed {
				outcome = campaign.TransferNoOneFree
			}
			tags = map[string]string{campaign.TagTransfer: outcome}
		}
		if retry && s.Gather != nil && tries < s.Gather.Retries {
			return name + stateSep + strconv.Itoa(tries+1), s.action(fields), nil, nil
		}
	}
	for hops := 0; ; hops++ {
		if target == "" {
			return "", nodeapi.Action{Kind: nodeapi.ActionHangup}, tags, nil
		}
		s := f.States[target]
		if s == nil {
			return "", nodeapi.Action{}, nil, fmt.Errorf("%w %q", ErrBadState, target)
		}
		if s.Set == nil {
			return target, s.action(fields), tags, nil
		}
		if hops >= MaxPassThru {
			return "", nodeapi.Action{}, nil, fmt.Errorf("flow passes through more than %d set states without an action", MaxPassThru)
		}
		if tags == nil {
			tags = map[string]string{}
		}
		for k, v := range s.Set {
			tags[k] = render(v, fields)
		}
		target = s.Next
	}
}

// transition picks the next state for an input; retry is true when the
// input was a timeout or invalid digits, which a gather may repeat.
func (s *State) transition(in Input) (target string, retry bool) {
	switch in.Kind {
	case nodeapi.InputDone:
		return s.Next, false
	case nodeapi.InputDigits:
		if s.Gather == nil {
			return s.Next, false
		}
		if t, ok := s.On[in.Digits]; ok {
			return t, false
		}
		if t, ok := s.On["*"]; ok && in.Digits != "" {
			return t, false
		}
		return s.Invalid, true
	case nodeapi.InputTimeout:
		return s.Timeout, true
	case nodeapi.InputMachine:
		return s.Machine, false
	case nodeapi.InputHuman:
		return s.Human, false
	default: // failed, or anything unknown
		return s.Failed, false
	}
}

// action renders the state's action for the node.
func (s *State) action(fields map[string]string) nodeapi.Action {
	switch {
	case len(s.Play) > 0:
		return nodeapi.Action{Kind: nodeapi.ActionPlay, Prompts: s.Play}
	case s.SayDigits != "":
		return nodeapi.Action{Kind: nodeapi.ActionSayDigits, Text: digitsOnly(render(s.SayDigits, fields))}
	case s.SayNumber != "":
		return nodeapi.Action{Kind: nodeapi.ActionSayNumber, Text: digitsOnly(render(s.SayNumber, fields))}
	case s.Gather != nil:
		return nodeapi.Action{Kind: nodeapi.ActionGather, Prompts: []string{s.Gather.Prompt}, MaxDigits: s.Gather.MaxDigits, TimeoutMS: s.Gather.TimeoutMS}
	case s.Record != nil:
		return nodeapi.Action{Kind: nodeapi.ActionRecord, Target: safeName(render(s.Record.Name, fields)), MaxSeconds: s.Record.MaxSeconds}
	case s.Transfer != nil:
		if campaign.TransferTarget(s.Transfer.To) != "" {
			// Saved before the target rules existed: end the call instead.
			return nodeapi.Action{Kind: nodeapi.ActionHangup}
		}
		return nodeapi.Action{Kind: nodeapi.ActionTransfer, Target: s.Transfer.To, MaxSeconds: s.Transfer.TimeoutSeconds}
	case s.Detect:
		return nodeapi.Action{Kind: nodeapi.ActionDetect}
	default:
		return nodeapi.Action{Kind: nodeapi.ActionHangup}
	}
}

func splitState(s string) (string, int) {
	name, n, ok := strings.Cut(s, stateSep)
	if !ok {
		return s, 0
	}
	tries, _ := strconv.Atoi(n)
	return name, tries
}

func render(t string, fields map[string]string) string {
	return templateRE.ReplaceAllStringFunc(t, func(m string) string {
		return fields[strings.TrimSpace(m[2:len(m)-2])]
	})
}

func digitsOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// safeName keeps a recording name to letters, digits, _ and -.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// Check parses and validates a flow document: what a campaign store runs
// before saving one.
func Check(doc []byte, promptExists func(name string) bool) error {
	f, err := Parse(doc)
	if err != nil {
		return err
	}
	return f.Validate(promptExists)
}

// CheckColumns checks the flow against a dial list's columns: every
// contact field a state's template uses ({{account}} in say_digits,
// say_number, a record name or a tag) must be a column, or that state would
// say nothing (and the call end as ivr_failed) for every contact. Run it
// when a campaign starts; the node still fails a step whose field is empty
// for one contact.
func (f *Flow) CheckColumns(columns []string) error {
	have := map[string]bool{}
	for _, c := range columns {
		have[c] = true
	}
	var ps Problems
	for _, name := range slices.Sorted(maps.Keys(f.States)) {
		s := f.States[name]
		uses := []struct{ what, t string }{{"say_digits", s.SayDigits}, {"say_number", s.SayNumber}}
		if s.Record != nil {
			uses = append(uses, struct{ what, t string }{"record name", s.Record.Name})
		}
		for _, k := range slices.Sorted(maps.Keys(s.Set)) {
			uses = append(uses, struct{ what, t string }{"tag " + k, s.Set[k]})
		}
		for _, u := range uses {
			for _, m := range templateRE.FindAllStringSubmatch(u.t, -1) {
				if !have[m[1]] {
					ps = append(ps, Problem{name, fmt.Sprintf("%s uses field %q, which the dial list has no column for", u.what, m[1])})
				}
			}
		}
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}
