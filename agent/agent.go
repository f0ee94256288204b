// Package agent is the node agent that runs beside Asterisk on every node:
// it registers with the controller, heartbeats its load and readiness, pulls
// leased calls for its free slots, originates them over AMI, runs each
// answered call's IVR over FastAGI by looping call.step, and reports every
// call's result through a durable local queue. It drains on request or on an
// EC2 spot interruption notice.
//
// A call's life as the agent tracks it (by call id = ChannelId = Uniqueid,
// never by event order):
//
//	dialer.next ─► Originate ─► OriginateResponse Failure ─┬─ Reason 3 ──────────────────► no_answer
//	                   │                                  └─ Reason 0/1 + Hangup Cause ──► busy/no_answer/congestion/
//	                   │                                     (either order; CauseWait      invalid_number/rejected/failed
//	                   │                                      for the cause, then failed)
//	                   │
//	                   └─► answered (OriginateResponse Reason 4 or AGI connect, either first)
//	                            │ IVR loop: call.step → AGI commands → input
//	                            ▼
//	                  Hangup event + AGI session ended ─► result (answered/machine/cut_off)
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/elastidial/elastidial/agent/agi"
	"github.com/elastidial/elastidial/agent/ami"
	"github.com/elastidial/elastidial/nodeapi"
)

// AudioSync brings the node's sounds folder to a manifest. The storage
// package implements it.
type AudioSync interface {
	Sync(ctx context.Context, m nodeapi.ManifestResponse) error
}

// SpotWatcher reports an EC2 spot interruption notice; *IMDS implements it.
type SpotWatcher interface {
	SpotNotice(ctx context.Context) (bool, error)
}

// RebalanceWatcher reports EC2's rebalance recommendation; a SpotWatcher
// that also implements it (*IMDS does) has it passed on in heartbeats, so
// the scaler replaces the node before its interruption notice.
type RebalanceWatcher interface {
	Rebalance(ctx context.Context) (bool, error)
}

// Config is everything the agent needs. Zero values take the documented
// defaults.
type Config struct {
	Controller Controller // required
	// AMI session to Asterisk.
	AMIAddr, AMIUser, AMISecret string
	// AGIListener accepts Asterisk's FastAGI connections (127.0.0.1:4573).
	AGIListener net.Listener // required
	Queue       *Queue       // required: durable result queue
	Identity    Identity     // instance id (required), addresses, zone
	Capacity    int          // call slots; default 100
	Version     string       // agent version reported at register
	AudioSync   AudioSync    // nil: manifests are adopted without files
	// Speech fetches synthesised speech into the folder Asterisk reads as
	// sounds/elastidial-tts; nil fails every spoken step.
	Speech SpeechFetch
	Spot   SpotWatcher // nil: no spot notices
	// SpotEvery is how often Spot is polled; default 5s (EC2 gives two minutes).
	SpotEvery time.Duration
	// CPS limits originations per second on this node; default 10.
	CPS float64
	// Poll is how often the dialer asks for work when none came; default 1s.
	Poll time.Duration
	// AnswerGrace is how long an answered call whose channel hung up may
	// still get its AGI connection or Hangup event; default 5s.
	AnswerGrace time.Duration
	// CauseWait is how long an OriginateResponse with Reason 0 or 1 waits
	// for its channel's Hangup cause, which decides the disposition, before
	// the call is recorded as failed; default 3s.
	CauseWait time.Duration
	// Proc is the proc filesystem root, default /proc.
	Proc string
	// Recordings is the folder Asterisk writes recordings into (writable by
	// its user); each is uploaded with its call's result, then removed.
	// Default /var/spool/asterisk/elastidial-recordings.
	Recordings string
	// InflightDir holds the calls originated and not yet settled, so that
	// a restarted agent ends what its predecessor left ringing; default
	// "inflight" beside Queue.Dir.
	InflightDir string
	// TrunksConf is the file the agent writes the controller's carrier
	// trunks into (pjsip.conf includes it); "" keeps the node on the
	// trunk it was given at first boot. cmd/node-agent defaults it to
	// TrunksConf.
	TrunksConf string
	Log        *slog.Logger
	// Clock is the agent's time; default the real clock.
	Clock Clock
}

// Agent is the node agent. Build it with New and start it with Run.
type Agent struct {
	cfg   Config
	clock Clock
	log   *slog.Logger
	ami   *ami.Client
	cpu   cpuMeter

	inflight inflight

	mu           sync.Mutex
	calls        map[string]*callState // by call id
	handed       map[string]bool       // call ids dialer.next answered, not yet placed
	byAction     map[string]*callState // by Originate ActionID
	byChannel    map[string]*callState // by channel name, learned from Newchannel
	capacity     int
	draining     bool // asked by the controller
	spot         bool // spot notice seen: drain for good
	rebalance    bool // EC2 recommends rebalancing: told to the scaler, which replaces us
	registered   bool
	settled      bool // calls an earlier agent left in flight are ended and reported
	timingOK     bool
	channelOK    bool // the PJSIP channel driver is loaded
	trunkOK      bool // the trunk is registered or answers OPTIONS
	audioVersion string
	wantAudio    string
	hbEvery      time.Duration
	slotFree     chan struct{}
	hbNow        chan struct{}
	syncing      bool
	// Results of finished calls wait here for the recorder, which writes
	// them to the durable queue outside mu: a queue write fsyncs twice, and
	// every AMI event, AGI step and dial takes mu. unqueued counts results
	// finished and not yet in the queue (waiting or being written), so
	// Pending never reports a finished result as neither here nor queued.
	unrecorded []nodeapi.ResultRequest
	unqueued   int
	recordNow  chan struct{}
	recordMu   sync.Mutex // one writer of unrecorded at a time
	runCtx     context.Context
	// trunksVersion is the controller's trunk configuration applied;
	// trunksUp and trunksDown what Asterisk last found of each trunk.
	trunksVersion        string
	trunksMu             sync.Mutex // one apply at a time
	trunksUp, trunksDown []string
}

// callState is one call in flight; guarded by Agent.mu.
type callState struct {
	lease      nodeapi.Call
	try        int    // 0, then one more per failover to the next trunk
	chanID     string // the channel's Uniqueid: the call id, "~try" after a failover
	noFailover bool   // report this try's result as it is
	actionID   string
	started    time.Time
	answeredAt time.Time
	haveResp   bool
	reason     int
	hungUp     bool
	cause      int  // Q.850, from Hangup (or HangupRequest)
	causeKnown bool // a Hangup or HangupRequest event gave a cause
	channel    string
	agiStarted bool
	agiDone    bool
	ivr        ivrOutcome
	finished   bool
}

// New checks cfg and builds an agent.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Controller == nil:
		return nil, errors.New("agent: Controller is required")
	case cfg.AGIListener == nil:
		return nil, errors.New("agent: AGIListener is required")
	case cfg.Queue == nil:
		return nil, errors.New("agent: Queue is required")
	case cfg.Identity.InstanceID == "":
		return nil, errors.New("agent: Identity.InstanceID is required")
	case cfg.AMIAddr == "":
		return nil, errors.New("agent: AMIAddr is required")
	case cfg.Capacity < 0:
		return nil, fmt.Errorf("agent: Capacity %d is negative", cfg.Capacity)
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 100
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.CPS <= 0 {
		cfg.CPS = 10
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.AnswerGrace <= 0 {
		cfg.AnswerGrace = 5 * time.Second
	}
	if cfg.CauseWait <= 0 {
		cfg.CauseWait = 3 * time.Second
	}
	if cfg.SpotEvery <= 0 {
		cfg.SpotEvery = 5 * time.Second
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	if cfg.Recordings == "" {
		cfg.Recordings = RecordingsDir
	}
	if cfg.InflightDir == "" {
		cfg.InflightDir = filepath.Join(filepath.Dir(filepath.Clean(cfg.Queue.Dir)), "inflight")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Queue.Log == nil {
		cfg.Queue.Log = cfg.Log
	}
	a := &Agent{
		clock: cfg.Clock,
		cfg:   cfg, log: cfg.Log,
		cpu:       cpuMeter{path: cfg.Proc + "/stat"},
		inflight:  inflight{dir: cfg.InflightDir},
		calls:     map[string]*callState{},
		handed:    map[string]bool{},
		byAction:  map[string]*callState{},
		byChannel: map[string]*callState{},
		capacity:  cfg.Capacity,
		hbEvery:   10 * time.Second,
		slotFree:  make(chan struct{}, 1),
		hbNow:     make(chan struct{}, 1),
		recordNow: make(chan struct{}, 1),
	}
	a.ami = &ami.Client{Addr: cfg.AMIAddr, Username: cfg.AMIUser, Secret: cfg.AMISecret,
		Events: "call,system", Log: cfg.Log, OnEvent: a.onEvent, OnConnect: a.onAMIConnect}
	return a, nil
}

// Status is a snapshot for tests and logs.
type Status struct {
	ActiveCalls  int
	Capacity     int
	Draining     bool
	Spot         bool
	Registered   bool
	AMIConnected bool
	TimingOK     bool
	ChannelOK    bool
	TrunkOK      bool
	AudioVersion string
	Pending      int
}

// Status returns the agent's current state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{ActiveCalls: len(a.calls), Capacity: a.capacity, Draining: a.draining || a.spot, Spot: a.spot,
		Registered: a.registered, AMIConnected: a.ami.Connected(), TimingOK: a.timingOK,
		ChannelOK: a.channelOK, TrunkOK: a.trunkOK, AudioVersion: a.audioVersion, Pending: a.cfg.Queue.Pending() + a.unqueued}
}

// Drain stops pulling new calls (true) or resumes (false, unless a spot
// notice came).
func (a *Agent) Drain(on bool) {
	a.mu.Lock()
	a.draining = on
	a.mu.Unlock()
	a.poke(a.hbNow)
	a.poke(a.slotFree)
}

func (a *Agent) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run runs the agent until ctx ends. Answered calls still in their IVR at
// shutdown are recorded as cut off.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.cfg.Queue.Open(); err != nil {
		return err
	}
	if err := a.inflight.open(); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	a.mu.Lock()
	a.runCtx = gctx
	a.mu.Unlock()
	g.Go(func() error { return a.ami.Run(gctx) })
	srv := &agi.Server{Handler: a.handleAGI, Log: a.log}
	g.Go(func() error { return srv.Serve(gctx, a.cfg.AGIListener) })
	g.Go(func() error { return a.cfg.Queue.Deliver(gctx, a.cfg.Controller) })
	g.Go(func() error { return a.controlLoop(gctx) })
	g.Go(func() error { return a.dialLoop(gctx) })
	g.Go(func() error { return a.recordLoop(gctx) })
	if a.cfg.Spot != nil {
		g.Go(func() error { return a.spotLoop(gctx) })
	}
	err := g.Wait()
	a.flushOnExit()
	a.recordResults()
	return err
}

// recordLoop writes finished calls' results to the durable queue as they
// come, outside mu.
func (a *Agent) recordLoop(ctx context.Context) error {
	for {
		a.recordResults()
		select {
		case <-ctx.Done():
			return nil
		case <-a.recordNow:
		}
	}
}

// recordResults writes the results waiting in unrecorded to the queue and
// only then drops the calls' in-flight records (a crash in between leaves
// the in-flight record, which the next start settles).
func (a *Agent) recordResults() {
	a.recordMu.Lock()
	defer a.recordMu.Unlock()
	a.mu.Lock()
	// They stay in unrecorded until queued, so that a heartbeat finds
	// each call of them in one place or the other (heldLocked).
	rs := a.unrecorded[:len(a.unrecorded):len(a.unrecorded)]
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.unrecorded = a.unrecorded[len(rs):]
		a.mu.Unlock()
	}()
	for _, r := range rs {
		if err := a.cfg.Queue.Put(r); err != nil {
			a.log.Error("result not queued", "call", r.CallID, "err", err)
		} else if err := a.inflight.remove(r.CallID); err != nil {
			a.log.Error("in-flight record not removed", "call", r.CallID, "err", err)
		}
		a.mu.Lock()
		a.unqueued--
		drained := (a.draining || a.spot) && len(a.calls) == 0 && a.unqueued == 0
		a.mu.Unlock()
		if drained {
			a.poke(a.hbNow) // report drained at once
		}
	}
}

// flushOnExit records answered calls still tracked as cut off, so their
// results are not lost with the process.
func (a *Agent) flushOnExit() {
	a.mu.Lock()
	var left []*callState
	for _, cs := range a.calls {
		if !cs.finished && (cs.agiStarted || cs.reason == 4) {
			left = append(left, cs)
		}
	}
	a.mu.Unlock()
	for _, cs := range left {
		a.mu.Lock()
		cs.ivr.completed = false
		a.finishLocked(cs, "agent stopped")
		a.mu.Unlock()
	}
}

// ---- controller: register, heartbeat, commands ----

func (a *Agent) register(ctx context.Context) error {
	backoff := time.Second
	for {
		id := a.cfg.Identity
		a.mu.Lock()
		capacity := a.capacity
		a.mu.Unlock()
		resp, err := a.cfg.Controller.Register(ctx, nodeapi.RegisterRequest{InstanceID: id.InstanceID,
			PrivateIP: id.PrivateIP, PublicIP: id.PublicIP, Zone: id.Zone, Capacity: capacity, Version: a.cfg.Version})
		if err == nil {
			a.mu.Lock()
			a.registered = true
			if resp.HeartbeatSeconds > 0 {
				a.hbEvery = time.Duration(resp.HeartbeatSeconds) * time.Second
			}
			a.wantAudio = resp.AudioVersion
			a.mu.Unlock()
			a.log.Info("registered", "node", resp.NodeID, "heartbeat_s", resp.HeartbeatSeconds, "audio", resp.AudioVersion)
			return nil
		}
		a.log.Warn("register failed", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.clock.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (a *Agent) controlLoop(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return nil
	}
	a.maybeResync(ctx)
	for {
		a.heartbeat(ctx)
		a.mu.Lock()
		every := a.hbEvery
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-a.hbNow:
		case <-a.clock.After(every):
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	var h health
	if a.ami.Connected() {
		h = a.checkHealth(ctx)
		a.settle(ctx, nil) // a no-op once settled
	}
	load, _ := loadAvg(a.cfg.Proc + "/loadavg")
	a.mu.Lock()
	a.timingOK, a.channelOK, a.trunkOK = h.timing, h.channel, h.trunk
	a.trunksUp, a.trunksDown = h.up, h.down
	held, listed := a.heldLocked()
	req := nodeapi.HeartbeatRequest{ActiveCalls: len(a.calls), Capacity: a.capacity, Load1: load,
		CPU: a.cpu.sample(), AMIConnected: a.ami.Connected(), TimingOK: h.timing, ChannelOK: h.channel,
		TrunkOK: h.trunk, AudioVersion: a.audioVersion,
		Draining: a.draining || a.spot, SpotNotice: a.spot, Rebalance: a.rebalance, PendingResults: a.cfg.Queue.Pending() + a.unqueued,
		TrunksVersion: a.trunksVersion, TrunksUp: strings.Join(h.up, ","), TrunksDown: strings.Join(h.down, ",")}
	a.mu.Unlock()
	if listed {
		// After the calls under mu: a result leaves unrecorded only once
		// queued, so no call slips between the two.
		req.Calls, req.CallsListed = strings.Join(dedup(a.cfg.Queue.Held(held)), ","), true
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	resp, err := a.cfg.Controller.Heartbeat(cctx, req)
	cancel()
	if err != nil {
		if IsFault(err, nodeapi.FaultUnauthorized) || IsFault(err, nodeapi.FaultUnknownNode) {
			a.log.Warn("controller does not know this node, registering again", "err", err)
			a.mu.Lock()
			a.registered = false
			a.mu.Unlock()
			if a.register(ctx) == nil {
				a.poke(a.hbNow)
			}
			return
		}
		a.log.Warn("heartbeat failed", "err", err)
		return
	}
	a.mu.Lock()
	if resp.Drain != a.draining {
		a.log.Info("drain command", "drain", resp.Drain)
	}
	a.draining = resp.Drain
	if resp.Capacity > 0 && resp.Capacity != a.capacity {
		a.log.Info("capacity command", "capacity", resp.Capacity)
		a.capacity = resp.Capacity
	}
	if resp.HeartbeatSeconds > 0 {
		a.hbEvery = time.Duration(resp.HeartbeatSeconds) * time.Second
	}
	a.wantAudio = resp.AudioVersion
	a.mu.Unlock()
	a.poke(a.slotFree)
	a.maybeResync(ctx)
	a.maybeApplyTrunks(ctx, resp.TrunksVersion)
}

// heldLocked returns the calls this agent holds outside the result queue:
// handed by dialer.next and not yet placed, in progress, or finished with
// their results not yet queued. The controller ends a lease the heartbeat
// does not list, so listed is false (renew every lease) until the calls an
// earlier agent left in flight are settled: those only the journal knows.
func (a *Agent) heldLocked() (ids []string, listed bool) {
	if !a.settled {
		return nil, false
	}
	ids = make([]string, 0, len(a.handed)+len(a.calls)+len(a.unrecorded))
	for id := range a.handed {
		ids = append(ids, id)
	}
	for id := range a.calls {
		ids = append(ids, id)
	}
	for _, r := range a.unrecorded {
		ids = append(ids, r.CallID)
	}
	return ids, true
}

// dedup sorts ids and drops repeats.
func dedup(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}

// health is what Asterisk says of the parts a call needs.
type health struct {
	timing, channel, trunk bool
	up, down               []string // trunks found reachable and unreachable
}

// checkHealth asks Asterisk, through CLI commands over AMI, whether a timing
// module runs, the PJSIP channel driver is registered (chan_pjsip declines
// to load when a module it requires is missing, while the AMI answers on)
// and the trunk is up: every outbound registration Registered, or, with no
// registration, a contact that answers OPTIONS.
func (a *Agent) checkHealth(ctx context.Context) health {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out := func(cmd string) []string {
		r, err := a.ami.Action(cctx, ami.M("Action", "Command", "Command", cmd))
		if err != nil || !strings.EqualFold(r.Get("Response"), "Success") {
			return nil
		}
		return r.All("Output")
	}
	var h health
	for _, l := range out("module show like timing") {
		h.timing = h.timing || strings.Contains(l, "res_timing_") && strings.Contains(l, "Running")
	}
	for _, l := range out("core show channeltypes") {
		h.channel = h.channel || strings.HasPrefix(strings.TrimSpace(l), "PJSIP ")
	}
	if !h.channel {
		return h
	}
	// The node can dial when one trunk is up: a registering trunk is up
	// when registered, another when its contact answers OPTIONS.
	h.up, h.down = trunkHealth(out("pjsip show registrations"), out("pjsip show contacts"))
	h.trunk = len(h.up) > 0
	return h
}

// maybeResync fetches and applies the manifest when the controller wants
// another audio version. One sync at a time, in the background.
func (a *Agent) maybeResync(ctx context.Context) {
	a.mu.Lock()
	want, have := a.wantAudio, a.audioVersion
	if want == "" || want == have || a.syncing {
		a.mu.Unlock()
		return
	}
	a.syncing = true
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			a.syncing = false
			a.mu.Unlock()
		}()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		m, err := a.cfg.Controller.Manifest(cctx, nodeapi.ManifestRequest{Have: have})
		if err != nil {
			a.log.Warn("audio manifest", "err", err)
			return
		}
		if !m.Unchanged {
			if a.cfg.AudioSync == nil {
				a.log.Warn("no audio sync configured; adopting manifest without files", "version", m.Version)
			} else if err := a.cfg.AudioSync.Sync(cctx, m); err != nil {
				a.log.Error("audio sync", "version", m.Version, "err", err)
				return
			}
		}
		a.mu.Lock()
		a.audioVersion = m.Version
		a.mu.Unlock()
		a.log.Info("audio in sync", "version", m.Version)
		a.poke(a.hbNow)
	}()
}

func (a *Agent) spotLoop(ctx context.Context) error {
	for {
		notice, err := a.cfg.Spot.SpotNotice(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Debug("spot check", "err", err)
		}
		if rw, ok := a.cfg.Spot.(RebalanceWatcher); ok && !notice {
			if r, err := rw.Rebalance(ctx); err == nil && r {
				a.mu.Lock()
				first := !a.rebalance
				a.rebalance = true
				a.mu.Unlock()
				if first {
					a.log.Warn("spot rebalance recommendation: the scaler will replace this node")
					a.poke(a.hbNow)
				}
			}
		}
		if notice {
			a.mu.Lock()
			first := !a.spot
			a.spot = true
			a.mu.Unlock()
			if first {
				a.log.Warn("spot interruption notice: draining")
				a.poke(a.hbNow)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.clock.After(a.cfg.SpotEvery):
		}
	}
}

// ---- dialer ----

func (a *Agent) free() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.registered || !a.settled || a.draining || a.spot || !a.timingOK || !a.channelOK || !a.trunkOK || !a.ami.Connected() {
		return 0
	}
	return max(a.capacity-len(a.calls), 0)
}

func (a *Agent) dialLoop(ctx context.Context) error {
	interval := time.Duration(float64(time.Second) / a.cfg.CPS)
	next := a.clock.Now()
	for {
		got := 0
		if n := a.free(); n > 0 {
			a.mu.Lock()
			have := a.audioVersion
			a.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			a.mu.Lock()
			trunks := a.trunksVersion
			a.mu.Unlock()
			resp, err := a.cfg.Controller.Next(cctx, nodeapi.NextRequest{Free: n, AudioVersion: have, TrunksVersion: trunks})
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				a.log.Warn("dialer.next", "err", err)
			}
			if resp.AudioVersion != "" && resp.AudioVersion != have {
				// No calls until the node holds the prompts they may play.
				a.mu.Lock()
				a.wantAudio = resp.AudioVersion
				a.mu.Unlock()
				a.maybeResync(ctx)
			}
			if resp.TrunksVersion != trunks {
				a.maybeApplyTrunks(ctx, resp.TrunksVersion)
			}
			if len(resp.Calls) > n {
				a.log.Error("dialer.next answered more calls than free slots", "free", n, "got", len(resp.Calls))
			}
			a.mu.Lock()
			for _, c := range resp.Calls {
				a.handed[c.CallID] = true // held while it waits its turn
			}
			a.mu.Unlock()
			for _, c := range resp.Calls {
				if d := next.Sub(a.clock.Now()); d > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-a.clock.After(d):
					}
				}
				next = a.clock.Now().Add(interval)
				a.originate(ctx, c)
				a.mu.Lock()
				delete(a.handed, c.CallID) // placed, or its result queued
				a.mu.Unlock()
				got++
			}
		}
		if got > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.slotFree:
			// A slot freed or a command came; still ask no faster than Poll/4.
			select {
			case <-ctx.Done():
				return nil
			case <-a.clock.After(a.cfg.Poll / 4):
			}
		case <-a.clock.After(a.cfg.Poll):
		}
	}
}

// originate places one leased call.
func (a *Agent) originate(ctx context.Context, c nodeapi.Call) { a.originateTry(ctx, c, 0) }

// channelID is the Uniqueid of a call's channel on try n: the call id,
// with "~n" after a failover (a channel id must be unique).
func channelID(callID string, try int) string {
	if try == 0 {
		return callID
	}
	return callID + "~" + strconv.Itoa(try)
}

// originateTry places try n of a leased call: 0 on its leased trunk,
// then one per failover to the next trunk of its group.
func (a *Agent) originateTry(ctx context.Context, c nodeapi.Call, try int) {
	log := a.log.With("call", c.CallID)
	if c.CallID == "" || c.Number == "" || c.Trunk == "" || strings.ContainsAny(c.CallID+c.Number+c.Trunk+c.Token+c.CallerID, "\r\n,") {
		log.Error("lease refused: bad call id, number, trunk or caller id", "number", c.Number, "trunk", c.Trunk)
		a.record(c, a.clock.Now(), nodeapi.DispFailed)
		return
	}
	if c.LeaseExpires != 0 && a.clock.Now().Unix() >= c.LeaseExpires {
		// Dialling now could make a second live attempt once the controller
		// re-leases the contact.
		log.Warn("lease already expired: not dialling", "expired", c.LeaseExpires)
		return
	}
	timeout := c.TimeoutSeconds
	if timeout <= 0 {
		timeout = 30
	}
	cs := &callState{lease: c, try: try, chanID: channelID(c.CallID, try), actionID: a.ami.NewActionID(), started: a.clock.Now()}
	a.mu.Lock()
	// A failover's try replaces the finished try before it, which kept
	// the call's slot meanwhile.
	if old, dup := a.calls[c.CallID]; dup && (try == 0 || !old.finished) {
		a.mu.Unlock()
		log.Error("lease for a call already in progress ignored")
		return
	}
	a.calls[c.CallID] = cs
	a.byAction[cs.actionID] = cs
	a.mu.Unlock()
	if err := a.inflight.add(c, cs.chanID, cs.started); err != nil {
		// Without the record a crash could leave this call ringing unseen.
		log.Error("not dialling: cannot record the call in flight", "err", err)
		a.mu.Lock()
		cs.haveResp, cs.reason = true, 0
		a.finishLocked(cs, "in-flight record failed")
		a.mu.Unlock()
		return
	}

	msg := ami.M("Action", "Originate", "ActionID", cs.actionID,
		"Channel", "PJSIP/"+c.Number+"@"+c.Trunk, "Context", "elastidial-outbound", "Exten", "s", "Priority", "1",
		"Async", "true", "ChannelId", cs.chanID, "Timeout", strconv.Itoa(timeout*1000), "CallerID", c.CallerID,
		"Variable", "ELASTIDIAL_CALL_ID="+c.CallID, "Variable", "ELASTIDIAL_TOKEN="+c.Token)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := a.ami.Action(cctx, msg)
	cancel()
	if err == nil && !strings.EqualFold(r.Get("Response"), "Success") {
		err = fmt.Errorf("originate refused: %s", r.Get("Message"))
	}
	if err != nil && !originateMayHaveRun(err) {
		log.Warn("originate failed", "err", err)
		a.mu.Lock()
		cs.haveResp, cs.reason = true, 0
		a.finishLocked(cs, "originate failed")
		a.mu.Unlock()
		return
	}
	if err != nil {
		// The action was sent and its reply lost with the session: the
		// call may be ringing. It stays tracked; its channel (Uniqueid =
		// CallID), AGI session, the reconcile after the reconnect or the
		// safety net below ends it.
		log.Warn("originate sent, reply lost: outcome from the channel", "err", err)
	}
	// Safety net: if neither an outcome nor an AGI session ever arrives
	// (events lost while AMI was down), give the slot back.
	a.clock.AfterFunc(time.Duration(timeout)*time.Second+30*time.Second, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !cs.finished && !cs.haveResp && !cs.agiStarted {
			a.finishLocked(cs, "no outcome")
		}
	})
}

// originateMayHaveRun reports whether an Originate that returned err was
// written to Asterisk, so the call may exist: its reply was lost with the
// session or not awaited in time. An action never sent (no session, a
// failed write) placed no call.
func originateMayHaveRun(err error) bool {
	return errors.Is(err, ami.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}

// record queues a result for a call that was never placed.
func (a *Agent) record(c nodeapi.Call, started time.Time, disp string) {
	r := nodeapi.ResultRequest{CallID: c.CallID, Token: c.Token, Disposition: disp, StartedAt: started.Unix(), EndedAt: a.clock.Now().Unix()}
	if err := a.cfg.Queue.Put(r); err != nil {
		a.log.Error("result lost: queue", "call", c.CallID, "err", err)
	}
}

// ---- AMI events ----

func (a *Agent) onEvent(m ami.Message) {
	switch m.Get("Event") {
	case "Newchannel":
		a.mu.Lock()
		defer a.mu.Unlock()
		if cs := a.callByUniqueidLocked(m.Get("Uniqueid")); cs != nil && cs.channel == "" && m.Get("Channel") != "" {
			cs.channel = m.Get("Channel")
			a.byChannel[cs.channel] = cs
		}
	case "OriginateResponse":
		a.mu.Lock()
		defer a.mu.Unlock()
		cs := a.byAction[m.Get("ActionID")]
		if cs == nil || cs.haveResp {
			return
		}
		cs.haveResp = true
		cs.reason, _ = strconv.Atoi(m.Get("Reason"))
		if cs.reason == reasonAnswered && cs.answeredAt.IsZero() {
			cs.answeredAt = a.clock.Now()
		}
		a.maybeFinishLocked(cs)
		if !cs.finished && !cs.agiStarted && cs.reason != reasonAnswered {
			// Reason 0 or 1 says only "not answered": the Hangup event's
			// cause, which may still be on its way, says why (and is
			// reported with any Reason).
			a.clock.AfterFunc(a.cfg.CauseWait, func() {
				a.mu.Lock()
				defer a.mu.Unlock()
				if !cs.finished && !cs.agiStarted {
					a.finishLocked(cs, "no hangup cause within the wait")
				}
			})
		}
	case "HangupRequest":
		// Carries the cause a channel driver queued (chan_pjsip: the SIP
		// response's); the Hangup event follows. Not SoftHangupRequest:
		// its Cause is the soft-hangup flag (32 for AGI's HANGUP, an
		// explicit soft hang-up), not a Q.850 cause.
		a.mu.Lock()
		defer a.mu.Unlock()
		cs := a.callForEventLocked(m)
		if cs == nil || cs.finished {
			return
		}
		if c, err := strconv.Atoi(m.Get("Cause")); err == nil && c != 0 && !cs.causeKnown {
			cs.cause, cs.causeKnown = c, true
			a.maybeFinishLocked(cs)
		}
	case "Hangup":
		a.mu.Lock()
		defer a.mu.Unlock()
		cs := a.callForEventLocked(m)
		if cs == nil {
			return
		}
		cs.hungUp = true
		if c, err := strconv.Atoi(m.Get("Cause")); err == nil && (c != 0 || !cs.causeKnown) {
			cs.cause, cs.causeKnown = c, true
		}
		a.maybeFinishLocked(cs)
		if !cs.finished && !cs.agiStarted {
			// Answered per OriginateResponse but AGI not (yet) connected,
			// or the OriginateResponse is still on its way.
			a.clock.AfterFunc(a.cfg.AnswerGrace, func() {
				a.mu.Lock()
				defer a.mu.Unlock()
				if !cs.finished && !cs.agiStarted {
					a.finishLocked(cs, "hung up before AGI")
				}
			})
		}
	}
}

// callForEventLocked finds the call a channel event is about: by Uniqueid
// (the ChannelId the agent gave Originate), else by the channel's name.
// Never by Linkedid: a transfer leg shares it and its hang-up is not ours.
func (a *Agent) callForEventLocked(m ami.Message) *callState {
	if cs := a.callByUniqueidLocked(m.Get("Uniqueid")); cs != nil {
		return cs
	}
	if ch := m.Get("Channel"); ch != "" {
		return a.byChannel[ch]
	}
	return nil
}

// uniqueid is the Uniqueid of the call's current channel.
func (cs *callState) uniqueid() string {
	if cs.chanID == "" {
		return cs.lease.CallID
	}
	return cs.chanID
}

// callByUniqueidLocked finds the call whose current try's channel has
// Uniqueid id; an earlier try's channel is no longer the call's.
func (a *Agent) callByUniqueidLocked(id string) *callState {
	callID, _, _ := strings.Cut(id, "~")
	if cs := a.calls[callID]; cs != nil && cs.uniqueid() == id {
		return cs
	}
	return nil
}

// onAMIConnect reconciles tracked calls with Asterisk's channels after a
// (re)connect: calls whose channel is gone ended while events were lost.
func (a *Agent) onAMIConnect(ctx context.Context) {
	a.poke(a.hbNow)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, list, err := a.ami.List(cctx, ami.M("Action", "CoreShowChannels"))
	if err != nil {
		a.log.Warn("reconcile channels", "err", err)
		return
	}
	a.settle(ctx, list)
	live := map[string]bool{}
	for _, ev := range list {
		if u := ev.Get("Uniqueid"); u != "" {
			live[u] = true
		}
	}
	cutoff := a.clock.Now().Add(-2 * time.Second)
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, cs := range a.calls {
		if live[cs.uniqueid()] || cs.finished || cs.started.After(cutoff) {
			continue
		}
		if cs.agiStarted && !cs.agiDone {
			continue // the IVR ends it
		}
		cs.hungUp = true
		if !cs.haveResp && !cs.agiStarted {
			cs.haveResp, cs.reason = true, reasonFailed
		}
		a.log.Info("call ended while AMI was down", "call", id)
		a.maybeFinishLocked(cs)
		if !cs.finished {
			a.finishLocked(cs, "channel gone")
		}
	}
}

// settle ends the calls an earlier agent left in flight, once; until then
// the agent takes no work. channels is Asterisk's list, or nil to fetch it.
func (a *Agent) settle(ctx context.Context, channels []ami.Message) {
	a.mu.Lock()
	done := a.settled
	a.mu.Unlock()
	if done {
		return
	}
	if channels == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, list, err := a.ami.List(cctx, ami.M("Action", "CoreShowChannels"))
		cancel()
		if err != nil {
			a.log.Warn("list channels to settle orphaned calls", "err", err)
			return
		}
		channels = list
	}
	if err := a.settleOrphans(ctx, channels); err != nil {
		a.log.Error("orphaned calls not settled: taking no calls yet", "err", err)
		return
	}
	a.mu.Lock()
	a.settled = true
	a.mu.Unlock()
	a.poke(a.slotFree)
}

// maybeFinishLocked finishes a call once its outcome is known.
func (a *Agent) maybeFinishLocked(cs *callState) {
	if cs.finished {
		return
	}
	answered := cs.agiStarted || (cs.haveResp && cs.reason == reasonAnswered)
	switch {
	case cs.haveResp && !answered:
		if cs.causeKnown || cs.hungUp {
			a.finishLocked(cs, "")
		}
		// else: wait CauseWait for the Hangup event and its cause (see
		// onEvent); then the Reason decides, or failed.
	case answered && cs.hungUp && (!cs.agiStarted || cs.agiDone):
		if cs.agiStarted {
			a.finishLocked(cs, "")
		}
		// else: wait AnswerGrace for the AGI connection (see onEvent).
	}
}

// finishLocked queues the call's result and frees its slot.
func (a *Agent) finishLocked(cs *callState, why string) {
	if cs.finished {
		return
	}
	if a.failoverLocked(cs) {
		return
	}
	cs.finished = true
	delete(a.calls, cs.lease.CallID)
	delete(a.byAction, cs.actionID)
	if cs.channel != "" {
		delete(a.byChannel, cs.channel)
	}
	r := nodeapi.ResultRequest{CallID: cs.lease.CallID, Token: cs.lease.Token, Cause: cs.cause,
		StartedAt: cs.started.Unix(), EndedAt: a.clock.Now().Unix(), Path: cs.ivr.path, Tags: cs.ivr.tags,
		Recording: cs.ivr.recording}
	answered := cs.agiStarted || (cs.haveResp && cs.reason == 4)
	switch {
	case !answered:
		r.Disposition, _ = unansweredDisposition(cs.reason, cs.cause, cs.causeKnown)
	case cs.ivr.failed != nil:
		r.Disposition = nodeapi.DispIVRFailed
	case cs.ivr.completed && cs.ivr.machine:
		r.Disposition = nodeapi.DispMachine
	case cs.ivr.completed:
		r.Disposition = nodeapi.DispAnswered
	default:
		r.Disposition = nodeapi.DispCutOff
	}
	if answered && !cs.answeredAt.IsZero() {
		r.AnsweredAt = cs.answeredAt.Unix()
	}
	if r.Path == nil {
		r.Path = []string{}
	}
	if r.Tags == nil {
		r.Tags = map[string]string{}
	}
	a.log.Info("call ended", "call", r.CallID, "disposition", r.Disposition, "cause", r.Cause, "path", r.Path, "why", why)
	a.unrecorded = append(a.unrecorded, r)
	a.unqueued++
	a.poke(a.recordNow)
	a.poke(a.slotFree)
}

// failoverer is the controller's call.failover (optional: a controller
// without it gets every result as it is).
type failoverer interface {
	Failover(ctx context.Context, req nodeapi.FailoverRequest) (nodeapi.FailoverResponse, error)
}

// maxTries bounds one call's tries over its trunk group.
const maxTries = 8

// failoverLocked starts the move of a call the carrier refused as
// congested, never answered, to the next trunk of its group, and reports
// whether it did: the try is over, the call keeps its slot, and the
// controller is asked for the next trunk outside mu. With none (or no
// answer from the controller) the result is reported as usual.
func (a *Agent) failoverLocked(cs *callState) bool {
	f, ok := a.cfg.Controller.(failoverer)
	answered := cs.agiStarted || (cs.haveResp && cs.reason == reasonAnswered) || !cs.answeredAt.IsZero()
	if !ok || cs.noFailover || answered || !cs.causeKnown || !congestionCause(cs.cause) || cs.try+1 >= maxTries || a.runCtx == nil {
		return false
	}
	cs.finished = true // this try; the call stays in a.calls, holding its slot
	delete(a.byAction, cs.actionID)
	if cs.channel != "" {
		delete(a.byChannel, cs.channel)
	}
	ctx := a.runCtx
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := f.Failover(cctx, nodeapi.FailoverRequest{CallID: cs.lease.CallID, Token: cs.lease.Token, Cause: cs.cause})
		cancel()
		a.mu.Lock()
		if err != nil || resp.Trunk == "" || strings.ContainsAny(resp.Trunk, "\r\n,@/") || ctx.Err() != nil {
			if err != nil {
				a.log.Warn("failover refused: reporting the result", "call", cs.lease.CallID, "err", err)
			}
			cs.finished, cs.noFailover = false, true
			a.finishLocked(cs, "congested, no trunk to fail over to")
			a.mu.Unlock()
			return
		}
		a.mu.Unlock() // the finished try holds the slot until originateTry replaces it
		a.log.Info("congested: failing over to the next trunk", "call", cs.lease.CallID, "cause", cs.cause, "from", cs.lease.Trunk, "to", resp.Trunk)
		next := cs.lease
		next.Trunk = resp.Trunk
		a.originateTry(ctx, next, cs.try+1)
		a.mu.Lock()
		if a.calls[cs.lease.CallID] == cs {
			// Not dialled (the lease expired meanwhile, or was refused):
			// free the slot; the controller ends the lease.
			delete(a.calls, cs.lease.CallID)
			a.poke(a.slotFree)
		}
		a.mu.Unlock()
	}()
	return true
}
