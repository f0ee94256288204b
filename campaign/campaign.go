// Package campaign is the campaign tier's domain: campaigns, trunks,
// contacts, leases and results, and the rules that decide who may be called
// now (calling windows in every zone of a contact, retry schedules, attempt
// limits, pacing). It does no I/O; campaign/sqlstore keeps the state.
package campaign

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Campaign statuses.
const (
	StatusDraft   = "draft"
	StatusRunning = "running"
	// StatusScheduled: started with a start_at ahead; it becomes running
	// at start_at (the store moves it when it leases or forecasts).
	StatusScheduled = "scheduled"
	StatusPaused    = "paused"
	StatusCompleted = "completed"
)

// Dispositions of one call attempt (the nodeapi Disp* values).
const (
	Answered   = "answered"
	Busy       = "busy"
	NoAnswer   = "no_answer"
	Congestion = "congestion"
	Failed     = "failed"
	Machine    = "machine"
	CutOff     = "cut_off"
	// InvalidNumber: the network says the number does not exist (Q.850
	// cause 1, 3 or 28). Never retried, whatever the campaign says.
	InvalidNumber = "invalid_number"
	// Rejected: the callee's side declined the call (cause 21: SIP 603,
	// but also 401/403/407 from a carrier refusing the trunk).
	Rejected = "rejected"
	// IVRFailed: answered, but a step of the IVR failed on the node (a
	// prompt Asterisk cannot read, no recording folder, AMD not loaded)
	// and the flow had no failed branch for it.
	IVRFailed = "ivr_failed"
)

// Dispositions lists every disposition, in report order.
var Dispositions = []string{Answered, Machine, Busy, NoAnswer, Congestion, Rejected, InvalidNumber, Failed, IVRFailed, CutOff}

// Contact states.
const (
	ContactPending = "pending" // waiting for its next attempt
	ContactLeased  = "leased"  // an attempt is live
	ContactDone    = "done"    // reached; no more attempts
	ContactFailed  = "failed"  // attempts exhausted or not retryable
	ContactDNC     = "dnc"     // opted out during a call
)

// Errors callers branch on.
var (
	ErrNotFound     = errors.New("not found")
	ErrStaleLease   = errors.New("lease token is not current")
	ErrForbidden    = errors.New("lease is held by another node")
	ErrConflict     = errors.New("conflict")
	ErrInvalid      = errors.New("invalid")
	ErrUnauthorized = errors.New("unauthorized")
)

// FieldError is a validation error naming the field at fault.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Window is a daily calling window in the contact's local time, as minutes
// since midnight: [Start, End). In JSON it reads "HH:MM" (window_json.go).
type Window struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// DefaultWindow is 08:00 to 21:00 local.
var DefaultWindow = Window{Start: 8 * 60, End: 21 * 60}

// Open reports whether local time t falls inside the window.
func (w Window) Open(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End // wraps past midnight
}

// Retry says what follows one disposition.
type Retry struct {
	AfterSeconds int `json:"after_seconds"` // delay before the next attempt; 0 means no retry
}

// After is the retry delay.
func (r Retry) After() time.Duration { return time.Duration(r.AfterSeconds) * time.Second }

// DefaultRetry is the retry policy of a new campaign.
func DefaultRetry() map[string]Retry {
	return map[string]Retry{
		Busy:       {AfterSeconds: 10 * 60},
		NoAnswer:   {AfterSeconds: 30 * 60},
		Congestion: {AfterSeconds: 5 * 60},
		Failed:     {AfterSeconds: 0},
		Machine:    {AfterSeconds: 2 * 3600},
		CutOff:     {AfterSeconds: 5 * 60},
		Answered:   {AfterSeconds: 0},
		// A decline now may be an answer later; a carrier refusing the
		// trunk needs a person, not a quick redial.
		Rejected: {AfterSeconds: 4 * 3600},
		// The node's fault, not the callee's: try again once another node
		// (or a fixed one) can run the flow.
		IVRFailed:     {AfterSeconds: 30 * 60},
		InvalidNumber: {AfterSeconds: 0},
	}
}

// Campaign is one dialing campaign.
type Campaign struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Trunk  string `json:"trunk"`
	// Trunks is the trunk group, in failover order: calls go out on the
	// first trunk with room, and a call a carrier refuses as congested
	// goes again at once on the next. The first is Trunk; empty means
	// Trunk alone.
	Trunks []string `json:"trunks,omitempty"`
	// Priority orders campaigns for channels and nodes: a campaign is
	// served before every campaign of lower priority, which gets nothing
	// on a trunk the higher one is short of (for example 100 for an
	// emergency broadcast, 0, the default, for routine calls).
	Priority    int              `json:"priority"`
	CallerID    string           `json:"caller_id"`
	Target      int              `json:"target"`  // concurrent calls wanted
	MaxCPS      float64          `json:"max_cps"` // call attempts started per second
	Window      Window           `json:"window"`
	MaxAttempts int              `json:"max_attempts"`
	Retry       map[string]Retry `json:"retry"`
	RingSeconds int              `json:"ring_seconds"` // originate timeout
	AudioSet    string           `json:"audio_set"`
	FlowVersion int              `json:"flow_version"` // 0 until a flow is saved
	StartAt     *time.Time       `json:"start_at,omitempty"`
	// Weekdays overrides Window on some local weekdays ("mon" … "sun"); a
	// zero window closes the day. Both only narrow the legal hours.
	Weekdays map[string]Window `json:"weekdays,omitempty"`
	// Countries (ISO 3166 codes) the campaign may call; empty means the
	// caller ID's country.
	Countries []string `json:"countries,omitempty"`
	// AllowTypes lifts the default refusal of premium_rate, shared_cost,
	// satellite and personal_number numbers.
	AllowTypes []string `json:"allow_types,omitempty"`
	// CallerIDPool are numbers shown by area code (local presence): a
	// contact sees the pool number of its own area code, else CallerID.
	CallerIDPool []string `json:"caller_id_pool,omitempty"`
	// CallerIDDailyCap bounds the calls each pool number places per UTC
	// day, across campaigns; 0 means no cap.
	CallerIDDailyCap int `json:"caller_id_daily_cap,omitempty"`
	// AbandonCap is the abandon rate (of live answers, over 30 days) the
	// campaign's pacing holds it under when its flow transfers to people;
	// 0 means DefaultAbandonCap (3%).
	AbandonCap float64 `json:"abandon_cap,omitempty"`
	// Transfers is set by the store when the campaign's flow has a
	// transfer state: it is then paced (Pace). Read-only.
	Transfers bool `json:"transfers"`
	// FlowLength is the longest call of the current flow (flow.Length),
	// set by the store when a flow is saved; nil for a flow saved before
	// lengths were computed. Read-only.
	FlowLength *FlowLength `json:"flow_length,omitempty"`
	// Webhook, when set, receives every finished attempt (webhook.go).
	Webhook *Webhook `json:"webhook,omitempty"`
	// RecordingRetentionDays: recordings older than this are deleted,
	// files and references; 0 keeps them.
	RecordingRetentionDays int       `json:"recording_retention_days,omitempty"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// Defaults fills unset fields.
func (c *Campaign) Defaults() {
	if c.Status == "" {
		c.Status = StatusDraft
	}
	if c.Window == (Window{}) {
		c.Window = DefaultWindow
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.Retry == nil {
		c.Retry = DefaultRetry()
	}
	if c.RingSeconds == 0 {
		c.RingSeconds = 30
	}
	if c.MaxCPS == 0 {
		c.MaxCPS = 10
	}
	switch {
	case len(c.Trunks) == 0 && c.Trunk != "":
		c.Trunks = []string{c.Trunk}
	case c.Trunk == "" && len(c.Trunks) > 0:
		c.Trunk = c.Trunks[0]
	}
	if e := NormaliseCallerID(c.CallerID); e != "" {
		c.CallerID = e
	}
	for i, n := range c.CallerIDPool {
		if e := NormaliseCallerID(n); e != "" {
			c.CallerIDPool[i] = e
		}
	}
}

// Group is the campaign's trunk group in failover order.
func (c *Campaign) Group() []string {
	if len(c.Trunks) == 0 {
		return []string{c.Trunk}
	}
	return c.Trunks
}

var (
	nameRE     = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._'()&-]{0,99}$`)
	trunkRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	callerIDRE = regexp.MustCompile(`^\+?[0-9]{7,15}$`)
)

// Validate checks a campaign and names the first field at fault.
func (c *Campaign) Validate() error {
	switch {
	case !nameRE.MatchString(c.Name):
		return &FieldError{"name", "must be 1 to 100 letters, digits, spaces or ._'()&- and start with a letter or digit"}
	case !trunkRE.MatchString(c.Trunk):
		return &FieldError{"trunk", "must name a trunk (letters, digits, _ . -)"}
	case len(c.Trunks) == 0 || c.Trunks[0] != c.Trunk:
		return &FieldError{"trunks", fmt.Sprintf("the group must start with the campaign's trunk %q", c.Trunk)}
	case len(c.Trunks) > MaxTrunkGroup:
		return &FieldError{"trunks", fmt.Sprintf("%d trunks: a group holds at most %d", len(c.Trunks), MaxTrunkGroup)}
	case c.Priority < 0 || c.Priority > MaxPriority:
		return &FieldError{"priority", fmt.Sprintf("%d: want 0 (routine) to %d", c.Priority, MaxPriority)}
	case !callerIDRE.MatchString(c.CallerID) || NormaliseCallerID(c.CallerID) != c.CallerID:
		return &FieldError{"caller_id", fmt.Sprintf("%q: must be a valid phone number in E.164 form such as +14155550100", c.CallerID)}
	case c.Target < 1 || c.Target > 100000:
		return &FieldError{"target", fmt.Sprintf("%d: want 1 to 100000 concurrent calls", c.Target)}
	case !(c.MaxCPS >= MinCPS && c.MaxCPS <= MaxCPS):
		return &FieldError{"max_cps", fmt.Sprintf("%g: want %g to %g attempts per second", c.MaxCPS, MinCPS, MaxCPS)}
	case c.Window == (Window{}):
		return &FieldError{"window", `start and end are local times of day from "00:00" to "24:00", such as {"start": "08:00", "end": "21:00"}, and must differ`}
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return &FieldError{"max_attempts", fmt.Sprintf("%d: want 1 to 100", c.MaxAttempts)}
	case c.RingSeconds < 5 || c.RingSeconds > 300:
		return &FieldError{"ring_seconds", fmt.Sprintf("%d: want 5 to 300", c.RingSeconds)}
	case c.AudioSet != "" && !trunkRE.MatchString(c.AudioSet):
		return &FieldError{"audio_set", "must be letters, digits, _ . -"}
	}
	for i, t := range c.Trunks {
		if !trunkRE.MatchString(t) {
			return &FieldError{fmt.Sprintf("trunks[%d]", i), fmt.Sprintf("%q: must name a trunk (letters, digits, _ . -)", t)}
		}
		if slices.Index(c.Trunks, t) != i {
			return &FieldError{fmt.Sprintf("trunks[%d]", i), fmt.Sprintf("%q is in the group twice", t)}
		}
	}
	if err := c.validateRules(); err != nil {
		return err
	}
	if err := c.validateCallerIDs(); err != nil {
		return err
	}
	if !(c.AbandonCap >= 0 && c.AbandonCap <= 0.2) {
		return &FieldError{"abandon_cap", fmt.Sprintf("%g: want 0 (the default, 3%%) to 0.2, a share of live answers", c.AbandonCap)}
	}
	if c.Webhook != nil {
		if err := c.Webhook.Validate(true); err != nil {
			return err
		}
	}
	if c.RecordingRetentionDays < 0 || c.RecordingRetentionDays > 3650 {
		return &FieldError{"recording_retention_days", fmt.Sprintf("%d: want 0 (keep) to 3650", c.RecordingRetentionDays)}
	}
	for d, r := range c.Retry {
		if !isDisposition(d) {
			return &FieldError{"retry", fmt.Sprintf("unknown disposition %q; want one of %s", d, strings.Join(Dispositions, ", "))}
		}
		if r.AfterSeconds < 0 || r.AfterSeconds > 30*24*3600 {
			return &FieldError{"retry." + d, "delay must be between 0 and 30 days"}
		}
		if d == InvalidNumber && r.AfterSeconds != 0 {
			return &FieldError{"retry." + d, "an invalid number is never retried; the delay must be 0"}
		}
	}
	switch c.Status {
	case StatusDraft, StatusScheduled, StatusRunning, StatusPaused, StatusCompleted:
	default:
		return &FieldError{"status", fmt.Sprintf("%q: want draft, scheduled, running, paused or completed", c.Status)}
	}
	return nil
}

func isDisposition(d string) bool {
	for _, x := range Dispositions {
		if x == d {
			return true
		}
	}
	return false
}

// Transition checks a status change asked for by a campaign manager.
//
//	         start, start_at ahead            start_at comes
//	draft ─────────────────────────► scheduled ─────────────► running
//	  └─────────────────── start, no start_at ahead ────────► running
//	scheduled, running ──pause──► paused ──resume──► scheduled or running
//	any of them ──stop──► completed
func Transition(from, to string) error {
	ok := map[string][]string{
		StatusDraft:     {StatusRunning, StatusScheduled, StatusCompleted},
		StatusScheduled: {StatusRunning, StatusScheduled, StatusPaused, StatusCompleted},
		StatusRunning:   {StatusPaused, StatusCompleted},
		StatusPaused:    {StatusRunning, StatusScheduled, StatusCompleted},
	}[from]
	for _, s := range ok {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: a %s campaign cannot become %s", ErrConflict, from, to)
}

// Trunk is a carrier trunk with fleet-wide limits: the channels and new
// calls per second its carrier allows, counted over every node. A trunk
// with a Host is configured on every node by the controller (no re-launch
// to add one); one without is the trunk nodes are given at first boot.
type Trunk struct {
	Name        string  `json:"name"`
	MaxChannels int     `json:"max_channels"`       // concurrent calls across all nodes
	MaxCPS      float64 `json:"max_cps"`            // new calls per second across all nodes
	Host        string  `json:"host,omitempty"`     // the carrier's SIP host, host or host:port
	Username    string  `json:"username,omitempty"` // SIP user (From user, auth, registration)
	// Password is write-only: the API answers has_password instead.
	Password    string `json:"password,omitempty"`
	HasPassword bool   `json:"has_password,omitempty"`
	Register    bool   `json:"register,omitempty"` // nodes register to the carrier as Username
	// Health is the controller's view, read-only: a trunk that is not up
	// gets no calls until it is.
	Health *TrunkHealth `json:"health,omitempty"`
}

// TrunkHealth says whether a trunk is in rotation, and why not.
type TrunkHealth struct {
	Up     bool   `json:"up"`
	Reason string `json:"reason,omitempty"` // why it is out of rotation
	// CongestionRun counts the congestion causes in a row on this trunk.
	CongestionRun int `json:"congestion_run"`
	// PausedUntil ends a pause after a run of congestion causes.
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	// Nodes whose last qualify (SIP OPTIONS) of the trunk, within
	// QualifyFresh, found it reachable or not.
	Reachable   int `json:"nodes_reachable"`
	Unreachable int `json:"nodes_unreachable"`
}

// Trunk health rules.
const (
	// CongestionRunLimit congestion causes in a row take a trunk out of
	// rotation for CongestionPause; after it, the next call tries it
	// again, and one more congestion cause pauses it again.
	CongestionRunLimit = 5
	CongestionPause    = time.Minute
	// QualifyFresh is how long a node's qualify report counts.
	QualifyFresh = 2 * time.Minute
	// MaxTrunkGroup bounds a campaign's trunk group.
	MaxTrunkGroup = 8
	// MaxPriority is the highest campaign priority.
	MaxPriority = 100
)

// TrunkHealthOf decides a trunk's health from its congestion run and its
// nodes' fresh qualify reports: out of rotation while paused after a run
// of congestion causes, or when every node that qualifies it finds it
// unreachable. No report at all is no evidence: the trunk stays up.
func TrunkHealthOf(run int, pausedUntil time.Time, reachable, unreachable int, now time.Time) TrunkHealth {
	h := TrunkHealth{Up: true, CongestionRun: run, Reachable: reachable, Unreachable: unreachable}
	if now.Before(pausedUntil) {
		t := pausedUntil.UTC()
		h.Up, h.PausedUntil = false, &t
		h.Reason = fmt.Sprintf("%d congestion causes in a row; tried again at %s", run, t.Format(time.RFC3339))
	}
	if unreachable > 0 && reachable == 0 {
		h.Up = false
		h.Reason = fmt.Sprintf("unreachable: no answer to OPTIONS from %d node(s)", unreachable)
	}
	return h
}

// CongestionCause reports whether a Q.850 cause says the carrier or the
// network is congested (no circuit, network out of order, temporary
// failure, switching equipment congestion, channel unavailable, resource
// unavailable; SIP 503 arrives as 34): a call refused so is tried again
// at once on the next trunk of its group. Busy and no answer are the
// callee's and never are.
func CongestionCause(cause int) bool {
	switch cause {
	case 34, 38, 41, 42, 44, 47:
		return true
	}
	return false
}

// Bounds of a call rate (campaign or trunk). Below MinCPS the pacing
// bucket refills too slowly to be meant; above MaxCPS counts overflow.
const (
	MinCPS = 0.01 // one attempt every 100 s
	MaxCPS = 10000.0
)

var (
	hostRE     = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)*[A-Za-z0-9-]{1,63}|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)
	sipUserRE  = regexp.MustCompile(`^[A-Za-z0-9_.+!~*'()&=$-]{1,64}$`)
	passwordRE = regexp.MustCompile(`^[\x21-\x3a\x3c-\x7e]{1,128}$`) // printable ASCII but ';' (a comment in Asterisk's config)
)

// Validate checks a trunk. Every value a node writes into its PJSIP
// configuration is checked here, so none can inject a line.
func (t *Trunk) Validate() error {
	switch {
	case !trunkRE.MatchString(t.Name):
		return &FieldError{"name", "must be letters, digits, _ . - (the PJSIP endpoint name)"}
	case t.MaxChannels < 1 || t.MaxChannels > 1000000:
		return &FieldError{"max_channels", fmt.Sprintf("%d: want at least 1", t.MaxChannels)}
	case !(t.MaxCPS >= MinCPS && t.MaxCPS <= MaxCPS):
		return &FieldError{"max_cps", fmt.Sprintf("%g: want %g to %g new calls per second", t.MaxCPS, MinCPS, MaxCPS)}
	case t.Host != "" && !hostRE.MatchString(t.Host):
		return &FieldError{"host", fmt.Sprintf("%q: want a host name or address, with an optional :port", t.Host)}
	case t.Host == "" && (t.Username != "" || t.Password != "" || t.Register):
		return &FieldError{"host", "is required with username, password or register"}
	case t.Username != "" && !sipUserRE.MatchString(t.Username):
		return &FieldError{"username", fmt.Sprintf("%q: want 1 to 64 letters, digits or _.+!~*'()&=$-", t.Username)}
	case t.Password != "" && !passwordRE.MatchString(t.Password):
		return &FieldError{"password", "want 1 to 128 printable ASCII characters, no spaces and no ';'"}
	case t.Password != "" && t.Username == "":
		return &FieldError{"username", "is required with a password"}
	case t.Register && (t.Username == "" || t.Password == ""):
		return &FieldError{"register", "needs username and password"}
	}
	rest := t.Host[strings.LastIndex(t.Host, "]")+1:] // past an IPv6 address
	if _, port, ok := strings.Cut(rest, ":"); ok {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return &FieldError{"host", fmt.Sprintf("port %q: want 1 to 65535", port)}
		}
	}
	return nil
}

// Lease is one contact handed to a node to dial now.
type Lease struct {
	CallID         string            `json:"call_id"`
	Token          string            `json:"token"`
	CampaignID     string            `json:"campaign_id"`
	FlowVersion    int               `json:"flow_version"`
	Number         string            `json:"number"`
	CallerID       string            `json:"caller_id"`
	Trunk          string            `json:"trunk"`
	TimeoutSeconds int               `json:"timeout_seconds"`
	Expires        time.Time         `json:"expires"`
	Fields         map[string]string `json:"fields"`
}

// Result is a node's report of one attempt.
type Result struct {
	CallID      string
	Token       string
	Disposition string
	Cause       int
	StartedAt   time.Time
	AnsweredAt  time.Time // zero if never answered
	EndedAt     time.Time
	Path        []string
	Tags        map[string]string
	Recording   string
}

// Validate checks a result before it is recorded.
func (r *Result) Validate() error {
	switch {
	case r.CallID == "":
		return &FieldError{"call_id", "is required"}
	case r.Token == "":
		return &FieldError{"token", "is required"}
	case !isDisposition(r.Disposition):
		return &FieldError{"disposition", fmt.Sprintf("%q: want one of %s", r.Disposition, strings.Join(Dispositions, ", "))}
	case !r.EndedAt.IsZero() && !r.StartedAt.IsZero() && r.EndedAt.Before(r.StartedAt):
		return &FieldError{"ended_at", "is before started_at"}
	case len(r.Path) > 1000:
		return &FieldError{"path", "has more than 1000 states"}
	case len(r.Tags) > 100:
		return &FieldError{"tags", "has more than 100 tags"}
	}
	return nil
}

// Next decides what follows an attempt: the contact's new state and, when
// it is to be retried, when.
func Next(c *Campaign, disposition string, attempts int, tags map[string]string, now time.Time) (state string, nextAt time.Time) {
	if tags["dnc"] == "true" {
		return ContactDNC, time.Time{}
	}
	if disposition == Answered {
		return ContactDone, time.Time{}
	}
	if disposition == InvalidNumber {
		return ContactFailed, time.Time{}
	}
	r, ok := c.Retry[disposition]
	if !ok || r.AfterSeconds <= 0 || attempts >= c.MaxAttempts {
		if disposition == Machine {
			return ContactDone, time.Time{} // a message was left
		}
		return ContactFailed, time.Time{}
	}
	return ContactPending, now.Add(r.After())
}

// Demand is what one running or scheduled campaign asks of the fleet. The
// campaign tier produces it and the scaler consumes it; it is the one type
// both sides share (the controller names it controller.Demand).
type Demand struct {
	CampaignID        string
	Target            int        // concurrent calls wanted now; 0 when not running
	Callable          int        // contacts callable now, not leased
	MaxCPS            float64    // attempts per second; 0 = unlimited
	Priority          int        // the campaign's priority: the scaler serves higher first
	Trunk             string     // the trunk the campaign dials through (the group's first)
	TrunkChannels     int        // the group's channels, over its trunks in rotation; 0 = unlimited
	TrunkCPS          float64    // the group's attempts per second; 0 = unlimited
	Active            int        // leases outstanding
	AvgAttemptSeconds float64    // observed mean attempt duration; 0 = the scaler's default
	Upcoming          []Upcoming // demand known to start soon
	// OnDemand: the campaign's calls may outlast a spot node's
	// interruption notice (Campaign.OffSpot), so only on-demand nodes
	// lease them.
	OnDemand bool
}

// FlowLength is the longest a call can spend in a flow, from the answer to
// the hangup (flow.Length computes it; the flow package names it
// flow.Length).
type FlowLength struct {
	// Seconds is the bound when the flow is bounded.
	Seconds float64 `json:"seconds"`
	// Unbounded: some path has no bound (a loop a caller can go round,
	// a transfer to people, a prompt of unknown length).
	Unbounded bool `json:"unbounded"`
	// Why names the state that makes the flow unbounded.
	Why string `json:"why,omitempty"`
}

// OffSpot reports whether the campaign's calls may last longer than limit
// (a spot node's two-minute interruption notice less a margin): its ring
// time plus its flow's longest call. Such calls are kept off spot nodes,
// which would cut them off when reclaimed. A flow whose length is not
// known (saved before lengths were computed) counts as long; a campaign
// with no flow yet rings only. limit 0 keeps nothing off spot.
func (c *Campaign) OffSpot(limit time.Duration) bool {
	if limit <= 0 {
		return false
	}
	call := float64(c.RingSeconds)
	if c.FlowVersion > 0 {
		if c.FlowLength == nil || c.FlowLength.Unbounded {
			return true
		}
		call += c.FlowLength.Seconds
	}
	return call > limit.Seconds()
}

// Upcoming is demand known to start soon: a scheduled campaign start or a
// calling window opening.
type Upcoming struct {
	At     time.Time
	Target int // concurrent calls wanted from At
}

// Stats is a campaign's live progress.
type Stats struct {
	Contacts      map[string]int `json:"contacts"`       // by state
	Attempts      map[string]int `json:"attempts"`       // by disposition
	InProgress    int            `json:"in_progress"`    // live leases
	AnsweredCalls int            `json:"answered_calls"` // attempts answered by a person
	TalkSeconds   float64        `json:"talk_seconds"`
	// Failovers counts the tries a trunk refused as congested that went
	// again on the next trunk of the group, by the refusing trunk.
	Failovers map[string]int `json:"failovers"`
	// Abandon is the abandoned-call measure of a campaign whose flow
	// transfers to people; nil otherwise.
	Abandon *AbandonStats `json:"abandon,omitempty"`
}

// AbandonStats is a campaign's abandon rate over the last 30 days and the
// concurrency its pacing allows now.
type AbandonStats struct {
	AbandonCounts
	Rate float64 `json:"rate"` // abandoned / live answers, 0 with none
	Cap  float64 `json:"cap"`
	Pace int     `json:"pace"` // concurrent calls the pacing allows now
}

// StartStatus is what "start" makes of a campaign at now: scheduled while
// its start_at is ahead, else running.
func StartStatus(c *Campaign, now time.Time) string {
	if c.StartAt != nil && now.Before(*c.StartAt) {
		return StatusScheduled
	}
	return StatusRunning
}
