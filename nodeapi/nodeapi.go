// Package nodeapi is the wire contract between the node agent on every
// Asterisk node and the controller's XML-RPC tier.
//
// Both sides encode these structs: the agent with github.com/kolo/xmlrpc, the
// controller with the codec in package xmlrpc. Field tags are the XML-RPC
// struct member names; change one only together with both sides.
//
// Authentication travels in HTTP, not in the params: every request carries
// "Authorization: Bearer <credential>". For node.register the credential is
// the cluster secret handed to the node at launch; the answer holds a node
// token that the node presents on every later call. The token names the node,
// so the controller knows which node is calling without trusting a field.
//
// Times are Unix seconds in UTC (XML-RPC's dateTime.iso8601 carries no zone).
package nodeapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Method names served at /RPC2.
const (
	MethodRegister  = "node.register"
	MethodHeartbeat = "node.heartbeat"
	MethodNext      = "dialer.next"
	MethodStep      = "call.step"
	MethodResult    = "call.result"
	MethodManifest  = "audio.manifest"
	MethodFailover  = "call.failover"
	MethodTrunks    = "node.trunks"
)

// Fault codes. The -32xxx codes follow the widely used "specification for
// fault code interoperability"; the positive ones are elastidial's own.
const (
	FaultParse          = -32700 // not well-formed XML
	FaultEncoding       = -32701 // unsupported encoding
	FaultInvalidRequest = -32600 // not an XML-RPC methodCall
	FaultUnknownMethod  = -32601
	FaultInvalidParams  = -32602
	FaultInternal       = -32603
	FaultTooLarge       = -32000 // request body or nesting over the limit

	FaultUnauthorized = 1 // missing or wrong credential
	FaultUnknownNode  = 2 // token names a node the controller does not know
	FaultStaleLease   = 3 // lease token no longer current; the result was not recorded
	FaultNotFound     = 4 // campaign, flow, call or manifest not found
	FaultForbidden    = 5 // e.g. a node reporting another node's lease
	FaultNodeGone     = 6 // the node was terminated (or is being): no more calls; register refused
)

// RegisterRequest is node.register's single param.
type RegisterRequest struct {
	InstanceID string `xmlrpc:"instance_id"` // EC2 instance id, or the local cloud's id
	PrivateIP  string `xmlrpc:"private_ip"`
	PublicIP   string `xmlrpc:"public_ip"`
	Zone       string `xmlrpc:"zone"`     // availability zone, "" when unknown
	Capacity   int    `xmlrpc:"capacity"` // concurrent call slots the node offers
	Version    string `xmlrpc:"version"`  // node-agent version
}

// RegisterResponse answers node.register.
type RegisterResponse struct {
	NodeID           string `xmlrpc:"node_id"`
	Epoch            int    `xmlrpc:"epoch"` // registrations of this node so far; the token is valid for this one only
	Token            string `xmlrpc:"token"` // credential for every later call
	HeartbeatSeconds int    `xmlrpc:"heartbeat_seconds"`
	AudioVersion     string `xmlrpc:"audio_version"` // manifest version the node must hold to be ready
}

// HeartbeatRequest is node.heartbeat's single param, sent every
// HeartbeatSeconds.
type HeartbeatRequest struct {
	ActiveCalls    int     `xmlrpc:"active_calls"`
	Capacity       int     `xmlrpc:"capacity"`
	Load1          float64 `xmlrpc:"load1"` // 1-minute load average
	CPU            float64 `xmlrpc:"cpu"`   // busy share of all cores since the last heartbeat, 0..1
	AMIConnected   bool    `xmlrpc:"ami_connected"`
	TimingOK       bool    `xmlrpc:"timing_ok"`  // a timing module is loaded
	ChannelOK      bool    `xmlrpc:"channel_ok"` // the PJSIP channel driver is loaded
	TrunkOK        bool    `xmlrpc:"trunk_ok"`   // the trunk is registered, or answers OPTIONS
	AudioVersion   string  `xmlrpc:"audio_version"`
	Draining       bool    `xmlrpc:"draining"`
	SpotNotice     bool    `xmlrpc:"spot_notice"`     // EC2 announced a spot interruption
	Rebalance      bool    `xmlrpc:"rebalance"`       // EC2 recommends rebalancing: this spot instance is at elevated risk of interruption
	PendingResults int     `xmlrpc:"pending_results"` // results queued locally, not yet delivered
	TrunksVersion  string  `xmlrpc:"trunks_version"`  // the trunk configuration the node applied ("" none)
	// Trunks Asterisk finds reachable (OPTIONS answered, or registered),
	// and those it qualifies and finds unreachable: names joined by ","
	// (a string keeps the request comparable for the node registry).
	TrunksUp   string `xmlrpc:"trunks_up"`
	TrunksDown string `xmlrpc:"trunks_down"`
	// Calls are the call ids the node holds, joined by ",": handed by
	// dialer.next and not yet reported, whether waiting to be placed, in
	// progress, or their results queued and not yet accepted. The
	// controller ends a lease the list leaves out once it is older than a
	// grace (the node never got that call). CallsListed tells an empty
	// list from an older agent that sends none (every lease is renewed).
	Calls       string `xmlrpc:"calls"`
	CallsListed bool   `xmlrpc:"calls_listed"`
}

// Held returns the call ids the node holds, or nil when it did not list
// them.
func (r HeartbeatRequest) Held() []string {
	if !r.CallsListed {
		return nil
	}
	if r.Calls == "" {
		return []string{}
	}
	return strings.Split(r.Calls, ",")
}

// Ready reports whether the node itself is fit to take calls: Asterisk up,
// a timing source, the channel driver loaded and the trunk reachable (an AMI
// that answers says nothing of the others). The controller also checks
// AudioVersion against the current manifest.
func (h HeartbeatRequest) Ready() bool {
	return h.AMIConnected && h.TimingOK && h.ChannelOK && h.TrunkOK
}

// HeartbeatResponse carries the controller's commands.
type HeartbeatResponse struct {
	Drain            bool   `xmlrpc:"drain"`         // desired state: true drains, false cancels a drain
	Capacity         int    `xmlrpc:"capacity"`      // slots to offer; 0 leaves it unchanged
	AudioVersion     string `xmlrpc:"audio_version"` // resync when it differs from the node's
	HeartbeatSeconds int    `xmlrpc:"heartbeat_seconds"`
	TrunksVersion    string `xmlrpc:"trunks_version"` // fetch node.trunks when it differs from the node's
}

// NextRequest is dialer.next's single param.
type NextRequest struct {
	Free         int    `xmlrpc:"free"`          // free call slots; the answer holds at most this many calls
	AudioVersion string `xmlrpc:"audio_version"` // the audio manifest version the node holds
	// TrunksVersion is the trunk configuration the node applied: a node
	// behind the current one gets no calls (a call could name a trunk it
	// lacks), only TrunksVersion in the answer.
	TrunksVersion string `xmlrpc:"trunks_version"`
}

// NextResponse answers dialer.next. A node whose audio is not the current
// version gets no calls, and AudioVersion tells it what to sync: it never
// plays a prompt it does not hold yet.
type NextResponse struct {
	Calls         []Call `xmlrpc:"calls"`
	AudioVersion  string `xmlrpc:"audio_version"`  // the current version; "" when no audio library is served
	TrunksVersion string `xmlrpc:"trunks_version"` // the current trunk configuration; "" when none
}

// Call is one leased contact to dial now.
type Call struct {
	CallID         string            `xmlrpc:"call_id"`
	Token          string            `xmlrpc:"token"` // lease token; present it with every step and the result
	CampaignID     string            `xmlrpc:"campaign_id"`
	FlowVersion    int               `xmlrpc:"flow_version"`
	Number         string            `xmlrpc:"number"` // E.164, with the leading +
	CallerID       string            `xmlrpc:"caller_id"`
	Trunk          string            `xmlrpc:"trunk"` // PJSIP endpoint name of the carrier trunk
	TimeoutSeconds int               `xmlrpc:"timeout_seconds"`
	LeaseExpires   int64             `xmlrpc:"lease_expires"` // Unix seconds
	Fields         map[string]string `xmlrpc:"fields"`        // the contact's extra columns, for the IVR
}

// Input kinds sent with call.step.
const (
	InputStart   = "start"   // call answered, first step; State is ""
	InputDone    = "done"    // the action finished with no input (prompt played, recording saved)
	InputDigits  = "digits"  // DTMF collected, in Input.Digits
	InputTimeout = "timeout" // gather ended with no digits
	InputHuman   = "human"   // answering-machine detection said human
	InputMachine = "machine" // answering-machine detection said machine
	InputFailed  = "failed"  // the action failed (missing file, transfer not answered)
)

// StepRequest is call.step's single param. Fields echoes the contact fields
// from the lease so that a step needs no per-call state on the server.
type StepRequest struct {
	CallID      string            `xmlrpc:"call_id"`
	Token       string            `xmlrpc:"token"`
	CampaignID  string            `xmlrpc:"campaign_id"`
	FlowVersion int               `xmlrpc:"flow_version"`
	State       string            `xmlrpc:"state"` // current state; "" with InputStart
	Input       string            `xmlrpc:"input"` // one of the Input* kinds
	Digits      string            `xmlrpc:"digits"`
	Fields      map[string]string `xmlrpc:"fields"`
	// Vars are the call's variables as the last StepResponse left them
	// (gathered digits, set_var, web-service answers).
	Vars map[string]string `xmlrpc:"vars"`
}

// Action kinds the node runs, each with AGI commands.
const (
	ActionPlay      = "play"       // STREAM FILE each of Prompts
	ActionSayDigits = "say_digits" // SAY DIGITS Text
	ActionSayNumber = "say_number" // SAY NUMBER Text
	ActionSayAlpha  = "say_alpha"  // SAY ALPHA Text
	// ActionSayDateTime is SAY DATETIME Text (Unix seconds) "" Format UTC.
	ActionSayDateTime = "say_datetime"
	// ActionSayMoney says Text ("12.50") as SAY NUMBER 12, the stock sound
	// digits/dollars, then SAY NUMBER 50 when there are cents.
	ActionSayMoney = "say_money"
	// ActionSpeak plays Prompts, speech the controller synthesised from
	// Text: each is in Files, which the node fetches before playing.
	ActionSpeak    = "speak"
	ActionGather   = "gather"   // GET DATA Prompts[0] TimeoutMS MaxDigits
	ActionRecord   = "record"   // RECORD FILE Target, up to MaxSeconds
	ActionTransfer = "transfer" // EXEC Dial Target (a number or SIP URI)
	ActionDetect   = "detect"   // EXEC AMD, answer machine or human
	ActionHangup   = "hangup"   // end of flow
)

// StepResponse answers call.step: the state entered and its action.
type StepResponse struct {
	State  string `xmlrpc:"state"`
	Action Action `xmlrpc:"action"`
	// Tags set by the states passed through on the way (result, dnc, custom
	// tags). The node keeps them and reports them with call.result.
	Tags map[string]string `xmlrpc:"tags"`
	// Vars is every variable of the call after this step: the node sends
	// them back with the next step.
	Vars map[string]string `xmlrpc:"vars"`
}

// Action is what the node runs for one state.
type Action struct {
	Kind       string   `xmlrpc:"kind"`
	Prompts    []string `xmlrpc:"prompts"` // audio names relative to the sounds folder, no extension
	Text       string   `xmlrpc:"text"`    // digits or number to say, already rendered
	MaxDigits  int      `xmlrpc:"max_digits"`
	TimeoutMS  int      `xmlrpc:"timeout_ms"`
	Target     string   `xmlrpc:"target"`      // transfer destination or recording name
	MaxSeconds int      `xmlrpc:"max_seconds"` // recording or transfer limit
	Format     string   `xmlrpc:"format"`      // SAY DATETIME format
	Language   string   `xmlrpc:"language"`    // the channel's language for SAY and stock sounds; "" leaves it
	Voice      string   `xmlrpc:"voice"`       // text-to-speech voice of Text
	// Files are synthesised speech the node fetches (if it does not hold
	// them) before it runs the action; Name is "<hash>.wav", played as
	// SpeechPrefix + the name without extension.
	Files []AudioFile `xmlrpc:"files"`
}

// SpeechPrefix is where a node keeps synthesised speech, under Asterisk's
// sounds folder (beside the campaign audio, which an audio sync prunes).
const SpeechPrefix = "elastidial-tts/"

// Dispositions reported with call.result. An unanswered call's
// disposition comes from the Q.850 cause of its channel's Hangup event
// (chan_pjsip reports OriginateResponse Reason 0 for every rejected call);
// Reason 3 (ring timeout) is no_answer and Reason 4 answered.
const (
	DispAnswered      = "answered"       // answered by a person, flow ran to its end
	DispBusy          = "busy"           // cause 17
	DispNoAnswer      = "no_answer"      // cause 18, 19 or Reason 3 (ring timeout)
	DispCongestion    = "congestion"     // cause 34, 38, 41, 42
	DispFailed        = "failed"         // any other cause, or none within the wait
	DispMachine       = "machine"        // answering machine detected
	DispCutOff        = "cut_off"        // answered, but ended before the flow did (caller hung up, node lost)
	DispInvalidNumber = "invalid_number" // cause 1, 3, 28: the number cannot be reached; never retried
	DispRejected      = "rejected"       // cause 21: the callee's side declined the call
	DispIVRFailed     = "ivr_failed"     // answered, but an IVR step failed and the flow had no failed branch
)

// ResultRequest is call.result's single param.
type ResultRequest struct {
	CallID      string            `xmlrpc:"call_id"`
	Token       string            `xmlrpc:"token"`
	Disposition string            `xmlrpc:"disposition"`
	Cause       int               `xmlrpc:"cause"` // Q.850 cause from the Hangup event, 0 if unknown
	StartedAt   int64             `xmlrpc:"started_at"`
	AnsweredAt  int64             `xmlrpc:"answered_at"` // 0 if never answered
	EndedAt     int64             `xmlrpc:"ended_at"`
	Path        []string          `xmlrpc:"path"` // states visited, in order
	Tags        map[string]string `xmlrpc:"tags"`
	Recording   string            `xmlrpc:"recording"` // name of a recording made, if any
}

// ResultResponse answers call.result.
type ResultResponse struct {
	Recorded bool `xmlrpc:"recorded"` // false when the same result was already recorded
}

// FailoverRequest is call.failover's single param: the carrier refused
// the call on its trunk with a congestion cause before any answer.
type FailoverRequest struct {
	CallID string `xmlrpc:"call_id"`
	Token  string `xmlrpc:"token"`
	Cause  int    `xmlrpc:"cause"` // Q.850: 34, 38, 41, 42, 44 or 47
}

// FailoverResponse answers call.failover: the trunk to place the same
// call on now, or "" when the group has none to spare (the node then
// reports the result as usual).
type FailoverResponse struct {
	Trunk string `xmlrpc:"trunk"`
}

// TrunksRequest is node.trunks's single param.
type TrunksRequest struct {
	Have string `xmlrpc:"have"` // the version the node applied
}

// TrunksResponse is every carrier trunk nodes configure in PJSIP.
type TrunksResponse struct {
	Version string        `xmlrpc:"version"`
	Trunks  []TrunkConfig `xmlrpc:"trunks"`
}

// TrunkConfig is one carrier trunk as a node writes it.
type TrunkConfig struct {
	Name     string `xmlrpc:"name"`     // PJSIP endpoint, aor and identify name
	Host     string `xmlrpc:"host"`     // host or host:port
	Username string `xmlrpc:"username"` // "" for an IP-authenticated trunk
	Password string `xmlrpc:"password"`
	Register bool   `xmlrpc:"register"`
}

// ManifestRequest is audio.manifest's single param.
type ManifestRequest struct {
	Have string `xmlrpc:"have"` // version the node holds; "" if none
}

// ManifestResponse answers audio.manifest. When Have is already current,
// Unchanged is true and Files is empty.
type ManifestResponse struct {
	Version   string      `xmlrpc:"version"`
	Unchanged bool        `xmlrpc:"unchanged"`
	Files     []AudioFile `xmlrpc:"files"`
}

// AudioFile is one entry of an audio manifest.
type AudioFile struct {
	Name   string `xmlrpc:"name"` // path under the sounds folder, e.g. "survey/welcome.wav"
	Size   int64  `xmlrpc:"size"`
	SHA256 string `xmlrpc:"sha256"` // hex
	URL    string `xmlrpc:"url"`    // short-lived signed URL to GET the bytes
}

// RecordingsPath is where a node PUTs a call's recording (a WAV), under the
// key RecordingKey names, with its node token, before it reports the
// call's result with Recording set to that key.
const RecordingsPath = "/node/recordings/"

// RecordingKey names a call's recording in the controller's recording
// store. It carries a digest of the lease token: only the node that holds
// the lease knows it, so no other node can write over the recording.
func RecordingKey(callID, leaseToken string) string {
	sum := sha256.Sum256([]byte(leaseToken))
	var b strings.Builder
	for _, r := range strings.ToLower(callID) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	id := b.String()
	if len(id) > 60 {
		id = id[:60]
	}
	return "calls/" + id + "-" + hex.EncodeToString(sum[:8]) + ".wav"
}
