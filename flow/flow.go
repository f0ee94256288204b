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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/nodeapi"
)

// Flow is a parsed, immutable flow.
type Flow struct {
	Name  string `json:"name"`
	Start string `json:"start"`
	// Language is the contact's language, a template such as
	// "{{language}}": Asterisk's SAY commands and stock sounds, and the
	// speech engine, use it. Empty (or a contact without one) leaves the
	// channel's language (en).
	Language string `json:"language,omitempty"`
	// Voice is the text-to-speech voice, a template too ("{{voice}}");
	// empty takes the engine's default for the language.
	Voice  string            `json:"voice,omitempty"`
	States map[string]*State `json:"states"`
}

// State is one step of the flow: exactly one action, and where to go next.
type State struct {
	// Actions: exactly one is set.
	Play []string `json:"play,omitempty"` // prompts, played in order
	// Say is a template spoken as As says: by the speech engine
	// ("Hello {{name}}"), or with Asterisk's stock sounds.
	Say       string            `json:"say,omitempty"`
	As        string            `json:"as,omitempty"`         // one of the Say* kinds; "" is SaySpeech
	SayDigits string            `json:"say_digits,omitempty"` // template, e.g. "{{account}}"
	SayNumber string            `json:"say_number,omitempty"`
	Gather    *Gather           `json:"gather,omitempty"`
	Record    *Record           `json:"record,omitempty"`
	Transfer  *Transfer         `json:"transfer,omitempty"`
	Detect    bool              `json:"detect,omitempty"`  // answering machine or human
	Set       map[string]string `json:"set,omitempty"`     // tags; "dnc":"true" opts the number out
	SetVar    map[string]string `json:"set_var,omitempty"` // variables, name → template
	Branch    []Case            `json:"branch,omitempty"`  // the first case that holds; else next
	HTTP      *HTTP             `json:"http,omitempty"`    // a request to a web service: next on success, else failed
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

// Gather collects DTMF digits after a prompt: up to MaxDigits, or fewer
// ended by the terminator key.
type Gather struct {
	Prompt    string `json:"prompt,omitempty"` // an audio prompt…
	Say       string `json:"say,omitempty"`    // …or a template spoken by the speech engine
	MaxDigits int    `json:"max_digits"`
	TimeoutMS int    `json:"timeout_ms"`
	Retries   int    `json:"retries"` // repeats on timeout or invalid input
	// Terminator is the key that ends an entry shorter than MaxDigits:
	// "#", the default and the only one Asterisk's GET DATA knows.
	Terminator string `json:"terminator,omitempty"`
	// Var keeps the digits in a variable for later states ({{pin}}).
	Var string `json:"var,omitempty"`
}

// HTTP asks a web service (a CRM) during the call: GET or POST to URL
// with contact fields, fields of the JSON answer kept in variables. An
// error, a timeout or a status other than 2xx goes to the state's failed
// branch. The controller makes the request, within the step the node is
// waiting for.
type HTTP struct {
	Method string `json:"method"` // GET or POST
	// URL is a template: {{field}} values are escaped for where they
	// stand (path or query).
	URL string `json:"url"`
	// Params are sent as the query (GET) or as a JSON object (POST):
	// name → template.
	Params map[string]string `json:"params,omitempty"`
	// TimeoutMS bounds the request: 100 to 4000 (the node waits 5 s for
	// a step); default 2000.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// Vars keeps fields of the JSON answer: variable → path ("tier",
	// "customer.balance"). A path the answer lacks sets the variable
	// empty.
	Vars map[string]string `json:"vars,omitempty"`
}

// HTTP limits.
const (
	MaxHTTPTimeoutMS     = 4000
	DefaultHTTPTimeoutMS = 2000
)

// Request is an HTTP state's request, rendered for the contact.
type Request struct {
	Method  string
	URL     string
	Params  map[string]string
	Timeout time.Duration
}

// Fetcher makes an HTTP state's request and returns its JSON answer's
// fields at the paths asked for (flowhttp.Client).
type Fetcher interface {
	Fetch(ctx context.Context, req Request, paths []string) (map[string]string, error)
}

// How a say state speaks its text.
const (
	SaySpeech   = "speech"   // the text-to-speech engine (the default)
	SayDigits   = "digits"   // digit by digit (SAY DIGITS)
	SayNumber   = "number"   // as a whole number (SAY NUMBER)
	SayAlpha    = "alpha"    // spelled letter by letter (SAY ALPHA)
	SayDate     = "date"     // "Thursday December 24th 2026" (SAY DATETIME)
	SayTime     = "time"     // "2 30 p.m." (SAY DATETIME)
	SayDateTime = "datetime" // both (SAY DATETIME)
	SayMoney    = "money"    // "12 dollars 50" (SAY NUMBER and stock sounds)
)

var sayKinds = []string{SaySpeech, SayDigits, SayNumber, SayAlpha, SayDate, SayTime, SayDateTime, SayMoney}

// Branch operators.
const (
	OpEq      = "eq"      // equal text (numbers compare as numbers: "05" eq "5")
	OpNe      = "ne"      // not eq
	OpLt      = "lt"      // numbers: less than
	OpLe      = "le"      // numbers: at most
	OpGt      = "gt"      // numbers: greater than
	OpGe      = "ge"      // numbers: at least
	OpMatch   = "match"   // the regular expression (RE2) in arg matches
	OpMissing = "missing" // the value is empty or absent
	OpPresent = "present" // the value is not empty
)

var ops = []string{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpMatch, OpMissing, OpPresent}

// Case is one test of a branch state: Value (a template) against Arg
// with Op; when it holds, the call goes to Goto.
type Case struct {
	Value string `json:"value"`
	Op    string `json:"op"`
	Arg   string `json:"arg,omitempty"` // a template, or the regular expression of match
	Goto  string `json:"goto"`
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
	MaxPassThru = 64   // set, set_var and branch states passed in one step
	MaxSayText  = 3000 // characters of speech in one state (Polly's limit)
	MaxVars     = 64   // variables a call carries
	MaxVarLen   = 1024 // bytes of one variable's value
	stateSep    = "~"
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	varRE      = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	promptRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$`)
	templateRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)
	transferRE = regexp.MustCompile(`^(\+?[0-9]{3,20}|sip:[^\s"',;]{3,200})$`)
	numberRE   = regexp.MustCompile(`^\s*[-+]?[0-9]+(\.[0-9]+)?\s*$`)
	pathRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$`)
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
	for _, set := range []bool{len(s.Play) > 0, s.Say != "", s.SayDigits != "", s.SayNumber != "", s.Gather != nil, s.Record != nil,
		s.Transfer != nil, s.Detect, s.Set != nil, s.SetVar != nil, s.Branch != nil, s.HTTP != nil, s.Hangup} {
		if set {
			n++
		}
	}
	return n
}

// passThrough reports whether the engine runs the state itself, within
// one step, with no action on the node.
func (s *State) passThrough() bool {
	return s.Set != nil || s.SetVar != nil || s.Branch != nil || s.HTTP != nil
}

// targets lists the states a state can go to.
func (s *State) targets() []string {
	t := []string{s.Next, s.Timeout, s.Invalid, s.Failed, s.Machine, s.Human}
	for _, v := range s.On {
		t = append(t, v)
	}
	for _, c := range s.Branch {
		t = append(t, c.Goto)
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
	for what, t := range map[string]string{"language": f.Language, "voice": f.Voice} {
		if templateRE.ReplaceAllString(t, "") != "" && !varRE.MatchString(templateRE.ReplaceAllString(t, "")) {
			add("", "flow %s %q: want a contact field as {{field}} or a plain name such as en or en-US", what, t)
		}
	}
	prompt := func(state, p string) {
		if !promptRE.MatchString(p) {
			add(state, "prompt %q is not a valid audio name (set/name, no extension)", p)
		} else if promptExists != nil && !promptExists(p) {
			add(state, "prompt %q is not in the audio library", p)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(f.States)) {
		s := f.States[n]
		if !nameRE.MatchString(n) {
			add(n, "state names are 1 to 64 letters, digits, _ or -")
		}
		switch c := s.actionCount(); {
		case c == 0:
			add(n, "has no action (play, say, say_digits, say_number, gather, record, transfer, detect, set, set_var, branch, http or hangup)")
		case c > 1:
			add(n, "has %d actions; a state has exactly one", c)
		}
		for _, p := range s.Play {
			prompt(n, p)
		}
		if s.As != "" && !slices.Contains(sayKinds, s.As) {
			add(n, "say as %q: want one of %s", s.As, strings.Join(sayKinds, ", "))
		}
		if s.As != "" && s.Say == "" {
			add(n, "\"as\" goes with \"say\"")
		}
		if len(s.Say) > MaxSayText {
			add(n, "say text is %d characters; at most %d", len(s.Say), MaxSayText)
		}
		for _, t := range []string{s.SayDigits, s.SayNumber} {
			if t != "" && templateRE.ReplaceAllString(t, "") != "" && !isDigits(templateRE.ReplaceAllString(t, "")) {
				add(n, "%q: say a contact field as {{field}} or literal digits", t)
			}
		}
		if g := s.Gather; g != nil {
			switch {
			case g.Prompt != "" && g.Say != "":
				add(n, "gather has both prompt and say; give one")
			case g.Prompt != "":
				prompt(n, g.Prompt)
			case g.Say == "":
				add(n, "gather needs a prompt (audio) or say (text to speak)")
			}
			if len(g.Say) > MaxSayText {
				add(n, "gather say text is %d characters; at most %d", len(g.Say), MaxSayText)
			}
			if g.MaxDigits < 1 || g.MaxDigits > 32 {
				add(n, "gather max_digits %d: want 1 to 32", g.MaxDigits)
			}
			if g.TimeoutMS < 500 || g.TimeoutMS > 60000 {
				add(n, "gather timeout_ms %d: want 500 to 60000", g.TimeoutMS)
			}
			if g.Retries < 0 || g.Retries > 5 {
				add(n, "gather retries %d: want 0 to 5", g.Retries)
			}
			if g.Terminator != "" && g.Terminator != "#" {
				add(n, "gather terminator %q: Asterisk's GET DATA ends an entry with \"#\" only", g.Terminator)
			}
			if g.Var != "" && !varRE.MatchString(g.Var) {
				add(n, "gather var %q: want 1 to 64 letters, digits or _", g.Var)
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
		if s.passThrough() && s.Next == "" {
			add(n, "a set, set_var, branch or http state needs next")
		}
		if h := s.HTTP; h != nil {
			if s.Failed == "" {
				add(n, "an http state needs failed, the branch taken on an error or timeout")
			}
			if h.Method != "GET" && h.Method != "POST" {
				add(n, "http method %q: want GET or POST", h.Method)
			}
			if u, err := url.Parse(templateRE.ReplaceAllString(h.URL, "x")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
				add(n, "http url %q: want an absolute http:// or https:// URL without credentials", h.URL)
			} else if _, rest, _ := strings.Cut(h.URL, "://"); strings.Contains(rest[:strings.IndexAny(rest+"/", "/?")], "{{") {
				add(n, "http url %q: a contact field may stand in the path or query, never the host", h.URL)
			}
			if h.TimeoutMS != 0 && (h.TimeoutMS < 100 || h.TimeoutMS > MaxHTTPTimeoutMS) {
				add(n, "http timeout_ms %d: want 100 to %d (the node waits 5 s for a step)", h.TimeoutMS, MaxHTTPTimeoutMS)
			}
			for _, k := range slices.Sorted(maps.Keys(h.Vars)) {
				if !varRE.MatchString(k) {
					add(n, "http vars %q: variable names are 1 to 64 letters, digits or _", k)
				} else if !pathRE.MatchString(h.Vars[k]) {
					add(n, "http vars %q: path %q: want JSON field names joined by dots, such as customer.tier", k, h.Vars[k])
				}
			}
			if len(h.Params) > 64 || len(h.Vars) > 32 {
				add(n, "http has %d params and %d vars; at most 64 and 32", len(h.Params), len(h.Vars))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(s.SetVar)) {
			if !varRE.MatchString(k) {
				add(n, "set_var %q: variable names are 1 to 64 letters, digits or _", k)
			}
		}
		if len(s.SetVar) > MaxVars {
			add(n, "set_var sets %d variables; at most %d", len(s.SetVar), MaxVars)
		}
		if s.Branch != nil && len(s.Branch) == 0 {
			add(n, "branch has no cases")
		}
		for i, c := range s.Branch {
			where := fmt.Sprintf("branch case %d", i+1)
			switch {
			case !slices.Contains(ops, c.Op):
				add(n, "%s: op %q: want one of %s", where, c.Op, strings.Join(ops, ", "))
			case c.Value == "":
				add(n, "%s: value is empty; test a field or variable as {{name}}", where)
			case c.Goto == "":
				add(n, "%s: goto is empty", where)
			case (c.Op == OpMissing || c.Op == OpPresent) && c.Arg != "":
				add(n, "%s: op %s takes no arg", where, c.Op)
			case c.Op == OpMatch:
				if len(c.Arg) > 200 {
					add(n, "%s: the regular expression is %d characters; at most 200", where, len(c.Arg))
				} else if _, err := regexp.Compile(c.Arg); err != nil {
					add(n, "%s: arg %q is not a regular expression: %v", where, c.Arg, err)
				}
			case c.Op == OpLt || c.Op == OpLe || c.Op == OpGt || c.Op == OpGe:
				if lit := templateRE.ReplaceAllString(c.Arg, ""); lit == c.Arg && !numberRE.MatchString(c.Arg) {
					add(n, "%s: op %s compares numbers; arg %q is not a number", where, c.Op, c.Arg)
				}
			}
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

// checkGraph finds unreachable states, loops of pass-through states and
// states from which the call can never end.
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
	names := slices.Sorted(maps.Keys(f.States))
	for _, n := range names {
		if !reach[n] {
			ps = append(ps, Problem{n, "is unreachable from the start state"})
		} else if !ends[n] {
			ps = append(ps, Problem{n, "every path from here loops forever; add a way to hang up"})
		}
	}
	// Pass-through states run within one step: a loop of them would spin
	// the engine with no caller input.
	const (
		white = iota
		grey
		black
	)
	colour := map[string]int{}
	var visit func(n string) bool
	visit = func(n string) bool {
		colour[n] = grey
		for _, t := range f.States[n].targets() {
			if !f.States[t].passThrough() {
				continue
			}
			if colour[t] == grey || colour[t] == white && visit(t) {
				return true
			}
		}
		colour[n] = black
		return false
	}
	for _, n := range names {
		if f.States[n].passThrough() && colour[n] == white && visit(n) {
			ps = append(ps, Problem{n, "set, set_var, branch and http states loop back to themselves without an action"})
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
	case s.SetVar != nil, s.Branch != nil:
		return s.Next == ""
	case s.HTTP != nil:
		return s.Next == "" || s.Failed == ""
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

// Outcome is what one step of the engine produces.
type Outcome struct {
	State  string         // the state entered; "" when the call ends
	Action nodeapi.Action // what the node runs there
	Tags   map[string]string
	// Vars is every variable of the call after the step; the node keeps
	// them and sends them back with the next step.
	Vars map[string]string
}

// Step is Run for a call with no variables (flows without set_var,
// gather var or http).
func Step(f *Flow, state string, in Input, fields map[string]string) (next string, action nodeapi.Action, tags map[string]string, err error) {
	o, err := Run(f, state, in, fields, nil)
	return o.State, o.Action, o.Tags, err
}

// Run is the engine: from the current state, the input the node reports
// and the call's variables, it returns the state entered, the action to
// run there, the tags set by states passed through on the way, and the
// variables. The state string carries the gather retry count ("ask~1")
// and the node carries the variables, so the engine keeps no memory.
// A template's {{name}} is the variable name if the call has one, else
// the contact field.
func Run(f *Flow, state string, in Input, fields, vars map[string]string) (Outcome, error) {
	return RunHTTP(context.Background(), nil, f, state, in, fields, vars)
}

// RunHTTP is Run with a Fetcher for http states (nil: every http state
// takes its failed branch). All the http states of one step share one
// deadline, MaxHTTPTimeoutMS, so that the node's step never times out.
func RunHTTP(ctx context.Context, fetch Fetcher, f *Flow, state string, in Input, fields, vars map[string]string) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, MaxHTTPTimeoutMS*time.Millisecond)
	defer cancel()
	var o Outcome
	o.Vars = maps.Clone(vars)
	if o.Vars == nil {
		o.Vars = map[string]string{}
	}
	var target string
	if in.Kind == nodeapi.InputStart {
		target = f.Start
	} else {
		name, tries := splitState(state)
		s := f.States[name]
		if s == nil {
			return Outcome{}, fmt.Errorf("%w %q", ErrBadState, state)
		}
		if g := s.Gather; g != nil && g.Var != "" && in.Kind == nodeapi.InputDigits {
			setVar(o.Vars, g.Var, in.Digits)
		}
		var retry bool
		target, retry = s.transition(in)
		if s.Transfer != nil {
			// The transfer's outcome, for the campaign's abandon rate.
			outcome := campaign.TransferConnected
			if in.Kind == nodeapi.InputFailed {
				outcome = campaign.TransferNoOneFree
			}
			o.Tags = map[string]string{campaign.TagTransfer: outcome}
		}
		if retry && s.Gather != nil && tries < s.Gather.Retries {
			o.State, o.Action = name+stateSep+strconv.Itoa(tries+1), f.action(s, lookup(fields, o.Vars))
			return o, nil
		}
	}
	for hops := 0; ; hops++ {
		if target == "" {
			o.State, o.Action = "", nodeapi.Action{Kind: nodeapi.ActionHangup}
			return o, nil
		}
		s := f.States[target]
		if s == nil {
			return Outcome{}, fmt.Errorf("%w %q", ErrBadState, target)
		}
		if !s.passThrough() {
			o.State, o.Action = target, f.action(s, lookup(fields, o.Vars))
			return o, nil
		}
		if hops >= MaxPassThru {
			return Outcome{}, fmt.Errorf("flow passes through more than %d set, set_var, branch or http states without an action", MaxPassThru)
		}
		get := lookup(fields, o.Vars)
		switch {
		case s.Set != nil:
			if o.Tags == nil {
				o.Tags = map[string]string{}
			}
			for k, v := range s.Set {
				o.Tags[k] = render(v, get)
			}
			target = s.Next
		case s.SetVar != nil:
			vals := map[string]string{}
			for k, v := range s.SetVar { // all rendered before any is set
				vals[k] = render(v, get)
			}
			for k, v := range vals {
				setVar(o.Vars, k, v)
			}
			target = s.Next
		case s.HTTP != nil:
			target = s.Failed
			if fetch == nil {
				break
			}
			paths := slices.Sorted(maps.Values(s.HTTP.Vars))
			got, err := fetch.Fetch(ctx, s.HTTP.request(get), slices.Compact(paths))
			if err != nil {
				if o.Tags == nil {
					o.Tags = map[string]string{}
				}
				o.Tags["http_error"] = clipText(err.Error(), 200)
				break
			}
			for k, p := range s.HTTP.Vars {
				setVar(o.Vars, k, got[p])
			}
			target = s.Next
		default:
			target = s.Next
			for _, c := range s.Branch {
				if c.holds(get) {
					target = c.Goto
					break
				}
			}
		}
	}
}

// request renders an http state's request.
func (h *HTTP) request(get func(string) (string, bool)) Request {
	r := Request{Method: h.Method, Params: map[string]string{}, Timeout: DefaultHTTPTimeoutMS * time.Millisecond}
	if h.TimeoutMS > 0 {
		r.Timeout = time.Duration(h.TimeoutMS) * time.Millisecond
	}
	// A value lands escaped for where it stands: in the query, or a path
	// segment (a "/" in it cannot reach another resource).
	q := strings.IndexByte(h.URL, '?')
	var b strings.Builder
	last := 0
	for _, loc := range templateRE.FindAllStringIndex(h.URL, -1) {
		b.WriteString(h.URL[last:loc[0]])
		v, _ := get(strings.TrimSpace(h.URL[loc[0]+2 : loc[1]-2]))
		if q >= 0 && loc[0] > q {
			b.WriteString(url.QueryEscape(v))
		} else {
			b.WriteString(url.PathEscape(v))
		}
		last = loc[1]
	}
	b.WriteString(h.URL[last:])
	r.URL = b.String()
	for k, v := range h.Params {
		r.Params[k] = render(v, get)
	}
	return r
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// setVar sets a variable within the limits a call carries.
func setVar(vars map[string]string, k, v string) {
	if _, ok := vars[k]; !ok && len(vars) >= MaxVars {
		return
	}
	if len(v) > MaxVarLen {
		v = v[:MaxVarLen]
	}
	vars[k] = v
}

// lookup resolves a template name: a variable of the call, else a contact
// field.
func lookup(fields, vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if v, ok := vars[k]; ok {
			return v, true
		}
		v, ok := fields[k]
		return v, ok
	}
}

// holds evaluates a branch case. A comparison of numbers holds only when
// both sides are numbers.
func (c Case) holds(get func(string) (string, bool)) bool {
	v := render(c.Value, get)
	switch c.Op {
	case OpMissing:
		return strings.TrimSpace(v) == ""
	case OpPresent:
		return strings.TrimSpace(v) != ""
	case OpMatch:
		re, err := regexp.Compile(c.Arg)
		return err == nil && re.MatchString(v)
	}
	arg := render(c.Arg, get)
	a, aerr := strconv.ParseFloat(strings.TrimSpace(v), 64)
	b, berr := strconv.ParseFloat(strings.TrimSpace(arg), 64)
	numbers := aerr == nil && berr == nil && numberRE.MatchString(v) && numberRE.MatchString(arg)
	switch c.Op {
	case OpEq:
		return v == arg || numbers && a == b
	case OpNe:
		return !(v == arg || numbers && a == b)
	case OpLt:
		return numbers && a < b
	case OpLe:
		return numbers && a <= b
	case OpGt:
		return numbers && a > b
	case OpGe:
		return numbers && a >= b
	}
	return false
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
func (f *Flow) action(s *State, get func(string) (string, bool)) nodeapi.Action {
	a := s.action(get)
	if a.Kind != nodeapi.ActionHangup {
		a.Language = render(f.Language, get)
		if !varRE.MatchString(strings.ReplaceAll(a.Language, "-", "_")) {
			a.Language = "" // a contact's odd value never reaches Asterisk
		}
	}
	if a.Kind == nodeapi.ActionSpeak || a.Kind == nodeapi.ActionGather && a.Text != "" {
		a.Voice = render(f.Voice, get)
	}
	return a
}

// Spoken is the speech a call to a contact with these fields may hear
// whatever it answers: the speak actions (and gather prompts given as
// text) of every state whose text, voice and language name contact fields
// only. A controller can render them before the call reaches them.
func (f *Flow) Spoken(fields map[string]string) []nodeapi.Action {
	known := func(ts ...string) bool {
		for _, t := range ts {
			for _, m := range templateRE.FindAllStringSubmatch(t, -1) {
				if _, ok := fields[m[1]]; !ok {
					return false
				}
			}
		}
		return true
	}
	get := lookup(fields, nil)
	var out []nodeapi.Action
	for _, name := range slices.Sorted(maps.Keys(f.States)) {
		s := f.States[name]
		text := s.Say
		if s.Gather != nil {
			text = s.Gather.Say
		}
		if text == "" || !known(text, f.Voice, f.Language) {
			continue
		}
		if a := f.action(s, get); a.Text != "" && (a.Kind == nodeapi.ActionSpeak || a.Kind == nodeapi.ActionGather) {
			out = append(out, a)
		}
	}
	return out
}

func (s *State) action(get func(string) (string, bool)) nodeapi.Action {
	switch {
	case len(s.Play) > 0:
		return nodeapi.Action{Kind: nodeapi.ActionPlay, Prompts: s.Play}
	case s.Say != "":
		return say(s.As, render(s.Say, get))
	case s.SayDigits != "":
		return nodeapi.Action{Kind: nodeapi.ActionSayDigits, Text: digitsOnly(render(s.SayDigits, get))}
	case s.SayNumber != "":
		return nodeapi.Action{Kind: nodeapi.ActionSayNumber, Text: digitsOnly(render(s.SayNumber, get))}
	case s.Gather != nil:
		a := nodeapi.Action{Kind: nodeapi.ActionGather, MaxDigits: s.Gather.MaxDigits, TimeoutMS: s.Gather.TimeoutMS}
		if s.Gather.Say != "" {
			a.Text = speechText(render(s.Gather.Say, get))
		} else {
			a.Prompts = []string{s.Gather.Prompt}
		}
		return a
	case s.Record != nil:
		return nodeapi.Action{Kind: nodeapi.ActionRecord, Target: safeName(render(s.Record.Name, get)), MaxSeconds: s.Record.MaxSeconds}
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

func render(t string, get func(string) (string, bool)) string {
	return templateRE.ReplaceAllStringFunc(t, func(m string) string {
		v, _ := get(strings.TrimSpace(m[2 : len(m)-2]))
		return v
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

// use is one template of a state, and what it is for.
type use struct{ what, t string }

// uses lists every template of a state.
func (s *State) uses() []use {
	u := []use{{"say", s.Say}, {"say_digits", s.SayDigits}, {"say_number", s.SayNumber}}
	if s.Gather != nil {
		u = append(u, use{"gather say", s.Gather.Say})
	}
	if s.Record != nil {
		u = append(u, use{"record name", s.Record.Name})
	}
	for _, k := range slices.Sorted(maps.Keys(s.Set)) {
		u = append(u, use{"tag " + k, s.Set[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(s.SetVar)) {
		u = append(u, use{"set_var " + k, s.SetVar[k]})
	}
	if h := s.HTTP; h != nil {
		u = append(u, use{"http url", h.URL})
		for _, k := range slices.Sorted(maps.Keys(h.Params)) {
			u = append(u, use{"http param " + k, h.Params[k]})
		}
	}
	for i, c := range s.Branch {
		u = append(u, use{fmt.Sprintf("branch case %d", i+1), c.Value})
		if c.Op != OpMatch {
			u = append(u, use{fmt.Sprintf("branch case %d arg", i+1), c.Arg})
		}
	}
	return u
}

// Vars lists the variables the flow sets (set_var, gather var): names a
// template may use that are not dial-list columns.
func (f *Flow) Vars() []string {
	have := map[string]bool{}
	for _, s := range f.States {
		for k := range s.SetVar {
			have[k] = true
		}
		if s.Gather != nil && s.Gather.Var != "" {
			have[s.Gather.Var] = true
		}
		if s.HTTP != nil {
			for k := range s.HTTP.Vars {
				have[k] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(have))
}

// CheckColumns checks the flow against a dial list's columns: every name a
// template uses ({{account}} in a say, a branch, a record name or a tag)
// must be a column or a variable the flow sets, or that state would work
// on an empty value for every contact. Run it when a campaign starts; a
// contact whose field is empty still takes the failed branch (say) or
// the missing case (branch).
func (f *Flow) CheckColumns(columns []string) error {
	have := map[string]bool{"phone": true} // the number dialled; the node sends it
	for _, c := range columns {
		have[c] = true
	}
	for _, v := range f.Vars() {
		have[v] = true
	}
	var ps Problems
	check := func(state string, u use) {
		for _, m := range templateRE.FindAllStringSubmatch(u.t, -1) {
			if !have[m[1]] {
				ps = append(ps, Problem{state, fmt.Sprintf("%s uses field %q, which the dial list has no column for", u.what, m[1])})
			}
		}
	}
	check("", use{"the flow's language", f.Language})
	check("", use{"the flow's voice", f.Voice})
	for _, name := range slices.Sorted(maps.Keys(f.States)) {
		for _, u := range f.States[name].uses() {
			check(name, u)
		}
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}
