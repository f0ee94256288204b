package controller

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/controller/cost"
	"github.com/elastidial/elastidial/controller/metrics"
	"github.com/elastidial/elastidial/controller/planner"
)

// Tag keys the controller puts on and reads from instances.
const (
	TagCluster     = "elastidial:cluster"
	TagRole        = "elastidial:role"
	TagLaunchToken = "elastidial:launch-token"
)

// Demand is one running or scheduled campaign's wish, as the campaign tier
// produces it: one type on both sides of the seam.
type Demand = campaign.Demand

// DemandSource is what the loop needs from the campaign tier.
type DemandSource interface {
	Demand(ctx context.Context, now time.Time) ([]Demand, error)
}

// Clock tells the time; tests and the simulator inject their own.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configure a Controller. Zero fields take the default beside them.
type Options struct {
	Plan              planner.Config                            // planner knobs
	Tick              time.Duration                             // reconcile interval; 10s
	HeartbeatInterval time.Duration                             // told to nodes; 10s
	IntentTTL         time.Duration                             // a launch the cloud never confirmed is retried this long; 5m
	AudioVersion      func(ctx context.Context) (string, error) // current manifest version; nil = audio not checked
	AudioVersionTTL   time.Duration                             // cache of AudioVersion; 5s
	Clock             Clock                                     // real clock
	Logger            *slog.Logger                              // slog.Default()
	Metrics           *metrics.Scaler                           // nil = none
	Pricing           cost.Pricing                              // the one price table: budget cap, CostPerHour and reports (SetSpotPrices updates its spot prices)
	NewToken          func() string                             // launch idempotency tokens; random
	// ReleaseNode, when set, is called for a node whose instance has
	// ended (or that we terminated), so the calls it had leased return to
	// their campaigns at once instead of at lease expiry. A node merely
	// missing from the instance list is not released: it may be alive,
	// and its calls with it. Failures are retried on the next tick.
	ReleaseNode func(ctx context.Context, nodeID string) error
	// RenewLeases, when set, is called on every heartbeat of a serving
	// node, so the calls it holds stay its own while it is alive, however
	// long they last, and the leases it never got end (see the lease
	// lifetime in campaign/sqlstore). held lists the calls the node
	// holds; nil when it did not list them.
	RenewLeases func(ctx context.Context, nodeID string, held []string, now time.Time) error
	// LeaderTTL is how long a leadership lasts unrenewed: after a leader
	// dies, another controller takes over within it. 3×Tick, at least 15s.
	LeaderTTL time.Duration
	// Holder names this process in the leadership row; random.
	Holder string
}

// Controller is the scaler: node registry (Register, Heartbeat), the
// reconcile loop (Run, Tick) and the record the cost ledger reads.
type Controller struct {
	cfg    Options
	cloud  Cloud
	demand DemandSource
	store  *Store
	clock  Clock
	log    *slog.Logger

	tickMu sync.Mutex    // one Tick at a time
	wake   chan struct{} // Wake's request for a Tick before the next interval

	// Leadership (with a store): the fence every fleet write and cloud
	// call is made under. Only a Tick (holding tickMu) changes them, under
	// mu so that others may read them.
	fence       Fence
	leading     bool
	leaderSince time.Time

	mu         sync.Mutex
	nodes      map[string]*node
	intents    []LaunchIntent
	memory     planner.Memory
	short      planner.Shortage // what launches taught about capacity; in the store with one
	lastDemand []planner.CampaignView
	lastPlan   planner.Plan
	toRelease  []string     // ended nodes whose leases are not yet released
	pricing    cost.Pricing // cfg.Pricing with the latest spot prices

	audioMu sync.Mutex
	audio   string
	audioAt time.Time
	audioOK bool
}

// New builds a controller and loads what a previous run stored. store may be
// nil (the trace simulator keeps everything in memory).
func New(ctx context.Context, cloud Cloud, demand DemandSource, store *Store, opt Options) (*Controller, error) {
	if cloud == nil || demand == nil {
		return nil, fmt.Errorf("new controller: cloud and demand source are required")
	}
	if err := opt.Plan.Validate(); err != nil {
		return nil, fmt.Errorf("new controller: %w", err)
	}
	opt.Plan = opt.Plan.WithDefaults()
	if _, ok := cloud.(WarmCloud); !ok {
		// This cloud cannot stop and start instances: no warm pool.
		opt.Plan.WarmPool = false
	}
	if opt.Tick <= 0 {
		opt.Tick = 10 * time.Second
	}
	if opt.HeartbeatInterval <= 0 {
		opt.HeartbeatInterval = 10 * time.Second
	}
	if opt.IntentTTL <= 0 {
		opt.IntentTTL = 5 * time.Minute
	}
	if opt.AudioVersionTTL <= 0 {
		opt.AudioVersionTTL = 5 * time.Second
	}
	if err := opt.Pricing.Validate(); err != nil {
		return nil, fmt.Errorf("new controller: %w", err)
	}
	opt.Pricing = opt.Pricing.WithDefaults()
	opt.Plan.Pricing = opt.Pricing
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.LeaderTTL <= 0 {
		opt.LeaderTTL = max(3*opt.Tick, 15*time.Second)
	}
	if opt.Holder == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opt.Holder = "controller-" + hex.EncodeToString(b[:])
	}
	if opt.NewToken == nil {
		opt.NewToken = func() string {
			var b [12]byte
			_, _ = rand.Read(b[:])
			return "elastidial-" + hex.EncodeToString(b[:])
		}
	}
	c := &Controller{cfg: opt, cloud: cloud, demand: demand, store: store, clock: opt.Clock, log: opt.Logger, nodes: map[string]*node{},
		wake: make(chan struct{}, 1), pricing: opt.Pricing}
	if store != nil {
		if err := c.refresh(ctx); err != nil {
			return nil, fmt.Errorf("new controller: %w", err)
		}
	}
	return c, nil
}

// refresh loads the registry and the open launch intents from the store:
// any controller may have taken a heartbeat, and a leader before this one
// may have launched.
func (c *Controller) refresh(ctx context.Context) error {
	recs, err := c.store.Nodes(ctx)
	if err != nil {
		return err
	}
	intents, err := c.store.OpenIntents(ctx)
	if err != nil {
		return err
	}
	short, err := c.store.Shortage(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.short = short
	for _, r := range recs {
		if n := c.nodes[r.ID]; n != nil {
			n.rec = r
		} else {
			c.nodes[r.ID] = &node{rec: r}
		}
	}
	c.intents = intents
	return nil
}

// lead takes or renews the scaler's leadership; without a store this
// controller is the only one and always leads. Changes are logged and
// counted in /metrics.
func (c *Controller) lead(ctx context.Context, now time.Time) (bool, error) {
	if c.store == nil {
		return true, nil
	}
	f, ok, err := c.store.Lead(ctx, c.cfg.Holder, now, c.cfg.LeaderTTL)
	if err != nil {
		// Unknown: act as if lost. Writes are fenced regardless.
		c.loseLead("leadership unknown: " + err.Error())
		return false, err
	}
	switch {
	case !ok:
		c.loseLead("another controller leads")
	case !c.leading || f != c.fence:
		if c.leading {
			c.loseLead("leadership changed hands meanwhile")
		}
		// Plan on from the last leader's memory: this process's own
		// (of its earlier leadership, or none) would count today's
		// demand as a rise, want its headroom again and relaunch what
		// was just drained.
		m, err := c.store.Memory(ctx)
		if err != nil {
			return false, err
		}
		c.mu.Lock()
		c.fence, c.leading, c.leaderSince, c.memory = f, true, now, m
		c.mu.Unlock()
		c.log.Info("became scaler leader", "holder", f.Holder, "fencing_token", f.Token)
		c.cfg.Metrics.Leader(true, f.Token)
	}
	return ok, nil
}

// loseLead records the end of this controller's leadership.
func (c *Controller) loseLead(why string) {
	if !c.leading {
		return
	}
	c.log.Warn("lost scaler leadership", "fencing_token", c.fence.Token, "why", why)
	c.mu.Lock()
	c.leading, c.fence = false, Fence{}
	c.mu.Unlock()
	c.cfg.Metrics.Leader(false, 0)
}

// stillLeading renews the leadership right before a cloud call and
// refuses it (ErrFenced) if the leadership is no longer the one this tick
// started under. With launch intents and terminations stored under the
// fence first, and the cloud's idempotency tokens, a leader paused between
// this check and the call can only repeat what its successor also sees.
func (c *Controller) stillLeading(ctx context.Context) error {
	if c.store == nil {
		return nil
	}
	f := c.fence
	if ok, err := c.lead(ctx, c.clock.Now()); err != nil {
		return fmt.Errorf("before a cloud call: %w", err)
	} else if !ok || c.fence != f {
		return fmt.Errorf("before a cloud call: %w", ErrFenced)
	}
	return nil
}

// Leading reports whether this controller was the scaler leader at its
// last tick, and since when it has been.
func (c *Controller) Leading() bool {
	ok, _ := c.LeadingSince()
	return ok
}

// LeadingSince reports whether this controller leads, and since when.
func (c *Controller) LeadingSince() (bool, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading, c.leaderSince
}

// Resign gives up the leadership (on shutdown), so a follower takes over
// at its next tick instead of after LeaderTTL.
func (c *Controller) Resign(ctx context.Context) error {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	if c.store == nil || !c.leading {
		return nil
	}
	err := c.store.Resign(ctx, c.fence)
	c.loseLead("resigned")
	return err
}

// Run reconciles every Tick, and at once after Wake, until ctx ends.
// Errors are logged and retried.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		if err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := c.Resign(shutdown); err != nil {
				c.log.Warn("resign scaler leadership", "err", err)
			}
			return nil
		case <-t.C:
		case <-c.wake:
		}
	}
}

// Wake asks Run for a reconcile pass now rather than at the next interval.
// The campaign tier calls it when demand changes (a campaign started or
// resumed, its target raised, contacts imported), so an unannounced rise
// waits only for nodes to boot, not for up to a tick before they are even
// asked for. It never blocks; wakes during a pass fold into one more pass.
func (c *Controller) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Tick is one reconcile pass: observe, plan, act. It returns the first
// error met; the pass goes as far as it safely can regardless.
func (c *Controller) Tick(ctx context.Context) error {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	now := c.clock.Now()
	// Only the leader acts; followers serve the APIs from the shared
	// registry. The pass starts from the database, not from this process's
	// memory: another controller may have led, and every controller takes
	// heartbeats.
	if c.store != nil {
		// Followers refresh too: their REST API shows the fleet.
		if err := c.refresh(ctx); err != nil {
			return fmt.Errorf("observe registry: %w", err)
		}
	}
	if lead, err := c.lead(ctx, now); !lead {
		return err
	}
	c.audioVersion(ctx)

	ds, err := c.demand.Demand(ctx, now)
	stale := err != nil
	if err != nil {
		// Plan on the last known demand: an outage of the campaign tier
		// must neither scale in nor out on its own.
		note(fmt.Errorf("observe demand: %w", err))
	} else {
		views := make([]planner.CampaignView, len(ds))
		for i, d := range ds {
			views[i] = viewOf(d)
		}
		c.mu.Lock()
		c.lastDemand = views
		c.mu.Unlock()
	}

	note(c.retryIntents(ctx, now))

	insts, err := c.cloud.Instances(ctx)
	if err != nil {
		note(fmt.Errorf("observe instances: %w", err))
	} else {
		note(c.sync(ctx, insts, now))
	}
	note(c.release(ctx))
	if errors.Is(firstErr, ErrFenced) {
		c.loseLead("fenced")
		return firstErr
	}

	obs := c.Observe()
	obs.DemandStale = stale
	pc := c.cfg.Plan
	pc.Pricing = c.Pricing()
	if zc, ok := c.cloud.(ZonedCloud); ok {
		if zones, err := zc.Zones(ctx); err != nil {
			c.log.Warn("zones of the cloud; launching anywhere this tick", "err", err)
		} else {
			pc.Zones = zones
		}
	}
	p := pc.Plan(obs, now)
	c.mu.Lock()
	c.memory, c.lastPlan = p.Memory, p
	c.mu.Unlock()
	if c.store != nil {
		note(c.store.SaveMemory(ctx, c.fence, p.Memory))
	}
	for _, r := range p.Reasons {
		c.log.Debug("plan", "reason", r)
	}
	note(c.act(ctx, p, now))
	c.observeMetrics(p)
	return firstErr
}

// Observe is the planner's input from the registry, the open launch intents
// and the last known demand.
func (c *Controller) Observe() planner.Observed {
	c.mu.Lock()
	defer c.mu.Unlock()
	obs := planner.Observed{Campaigns: c.lastDemand, Memory: c.memory, Short: c.short, Nodes: make([]planner.NodeView, 0, len(c.nodes)+8)}
	byToken := map[string]int{}
	for _, n := range c.nodes {
		if n.rec.State == planner.StateGone {
			continue
		}
		obs.Nodes = append(obs.Nodes, n.view(c.leaderSince))
		if n.rec.LaunchToken != "" {
			byToken[n.rec.LaunchToken]++
		}
	}
	for _, in := range c.intents {
		for i := byToken[in.Token]; i < in.Count; i++ {
			obs.Nodes = append(obs.Nodes, planner.NodeView{ID: fmt.Sprintf("%s#%d", in.Token, i), State: planner.StateRequested, LaunchedAt: in.CreatedAt, Zone: in.Zone,
				Spot: c.cfg.Plan.Spot && !in.OnDemand})
		}
	}
	// A stable order makes the plan (and the simulator) deterministic.
	sort.Slice(obs.Nodes, func(i, j int) bool { return obs.Nodes[i].ID < obs.Nodes[j].ID })
	return obs
}

// LastPlan is the plan of the last Tick.
func (c *Controller) LastPlan() planner.Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastPlan
}

// Nodes returns every node record, gone ones included, ordered by id.
func (c *Controller) Nodes() []NodeRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NodeRecord, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n.rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// sync folds the cloud's instance list into the registry: new instances of
// ours are adopted (as pending, so the registration deadline applies), state
// changes are recorded, vanished ones are gone.
func (c *Controller) sync(ctx context.Context, insts []Instance, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var firstErr error
	seen := make(map[string]bool, len(insts))
	for _, in := range insts {
		seen[in.ID] = true
		n := c.nodes[in.ID]
		if n == nil {
			if in.State == InstanceTerminated {
				continue
			}
			n = &node{rec: NodeRecord{ID: in.ID, State: planner.StatePending, LaunchToken: in.Tags[TagLaunchToken],
				Type: in.Type, Zone: in.Zone, Spot: in.Spot, PrivateIP: in.PrivateIP, LaunchedAt: now}}
			if !c.knownToken(n.rec.LaunchToken) {
				// Not from a launch we recorded: an orphan, adopted if it
				// registers within the deadline, else terminated.
				c.log.Info("found unknown instance of ours", "node", in.ID)
				n.rec.LaunchToken = ""
			}
			c.nodes[in.ID] = n
		}
		n.inCloud, n.missedAt, n.cloudState = true, time.Time{}, in.State
		if n.rec.Zone == "" && in.Zone != "" {
			n.rec.Zone = in.Zone
		}
		old := n.rec
		if n.rec.State == planner.StateGone && (in.State == InstancePending || in.State == InstanceRunning) {
			// Thought gone (long unlisted) but alive after all: give it the
			// registration grace again rather than leak it.
			c.log.Warn("instance thought gone is alive", "node", in.ID)
			if err := transition(&n.rec, planner.StatePending, now, Drain{}); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		switch in.State {
		case InstanceRunning:
			if n.rec.RunningAt.IsZero() {
				n.rec.RunningAt = now
			}
			if n.rec.State == planner.StatePending {
				if err := transition(&n.rec, planner.StateBooting, now, Drain{}); err != nil && firstErr == nil {
					firstErr = err
				}
			}
		case InstanceStopping, InstanceStopped:
			switch n.rec.State {
			case planner.StateParking:
				if in.State == InstanceStopped {
					if err := transition(&n.rec, planner.StateParked, now, Drain{}); err != nil && firstErr == nil {
						firstErr = err
					}
				}
			case planner.StateParked, planner.StateResuming, planner.StateTerminating, planner.StateGone:
				// Parked as planned; a start EC2 has not applied yet; ending.
			default:
				// Stopped without us (a stop from the console, a failed
				// host): it serves no calls. Terminate it rather than leak
				// a volume; the planner replaces it.
				c.log.Warn("instance stopped without us: terminating", "node", in.ID, "state", in.State)
				if err := transition(&n.rec, planner.StateTerminating, now, Drain{}); err != nil && firstErr == nil {
					firstErr = err
				}
			}
		case InstanceShuttingDown, InstanceTerminated:
			if n.rec.State != planner.StateGone {
				if n.rec.State != planner.StateTerminating {
					c.log.Warn("instance ended without us", "node", in.ID, "state", in.State)
				}
				if err := transition(&n.rec, planner.StateGone, now, Drain{}); err != nil && firstErr == nil {
					firstErr = err
				}
				c.cfg.Metrics.Terminated()
				c.toRelease = append(c.toRelease, in.ID)
			}
		}
		if n.rec != old {
			if err := c.persist(ctx, n); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	for id, n := range c.nodes {
		if seen[id] || n.rec.State == planner.StateGone {
			continue
		}
		if n.missedAt.IsZero() {
			n.missedAt = now
		}
		// Right after a launch the cloud may not list an instance yet
		// (EC2 eventual consistency); only a long absence means gone.
		if n.rec.State == planner.StateTerminating || now.Sub(n.missedAt) > c.cfg.Plan.RegisterDeadline {
			if n.rec.State == planner.StateTerminating {
				c.toRelease = append(c.toRelease, id)
			}
			if err := transition(&n.rec, planner.StateGone, now, Drain{}); err != nil && firstErr == nil {
				firstErr = err
			}
			c.cfg.Metrics.Terminated()
			if err := c.persist(ctx, n); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return fmt.Errorf("sync instances: %w", firstErr)
	}
	return nil
}

// release hands the leases of ended nodes back to their campaigns.
func (c *Controller) release(ctx context.Context) error {
	c.mu.Lock()
	ids := c.toRelease
	c.toRelease = nil
	c.mu.Unlock()
	if c.cfg.ReleaseNode == nil {
		return nil
	}
	var failed []string
	var firstErr error
	for _, id := range ids {
		if err := c.cfg.ReleaseNode(ctx, id); err != nil {
			failed = append(failed, id)
			firstErr = cmp.Or(firstErr, fmt.Errorf("release the leases of %s: %w", id, err))
		}
	}
	c.mu.Lock()
	c.toRelease = append(c.toRelease, failed...)
	c.mu.Unlock()
	return firstErr
}

func (c *Controller) knownToken(tok string) bool {
	if tok == "" {
		return false
	}
	for _, in := range c.intents {
		if in.Token == tok {
			return true
		}
	}
	for _, n := range c.nodes {
		if n.rec.LaunchToken == tok {
			return true
		}
	}
	return false
}

// retryIntents re-asks the cloud for launches a crash (or an error) left
// unconfirmed, with the same token, so nothing starts twice.
func (c *Controller) retryIntents(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	intents := append([]LaunchIntent(nil), c.intents...)
	c.mu.Unlock()
	var firstErr error
	for _, in := range intents {
		if err := c.launch(ctx, in, now); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// launch asks the cloud for an intent's nodes and records them. The intent
// is already stored.
func (c *Controller) launch(ctx context.Context, in LaunchIntent, now time.Time) error {
	if err := c.stillLeading(ctx); err != nil {
		return fmt.Errorf("launch %d (token %s): %w", in.Count, in.Token, err)
	}
	insts, err := c.cloud.Launch(ctx, LaunchRequest{Count: in.Count, Token: in.Token, Zone: in.Zone, OnDemand: in.OnDemand,
		Tags: map[string]string{TagRole: "node", TagLaunchToken: in.Token, "Name": "elastidial-node"}})
	c.mu.Lock()
	defer c.mu.Unlock()
	firstErr := c.learn(ctx, in, insts, now)
	for _, inst := range insts {
		n := c.nodes[inst.ID]
		if n == nil {
			n = &node{rec: NodeRecord{ID: inst.ID, State: planner.StatePending, LaunchedAt: in.CreatedAt}}
			c.nodes[inst.ID] = n
			c.cfg.Metrics.Launched(1)
		}
		n.rec.LaunchToken, n.rec.Type, n.rec.Zone, n.rec.Spot = in.Token, inst.Type, inst.Zone, inst.Spot
		if inst.PrivateIP != "" {
			n.rec.PrivateIP = inst.PrivateIP
		}
		if perr := c.persist(ctx, n); perr != nil && firstErr == nil {
			firstErr = perr
		}
	}
	done := err == nil || len(insts) > 0 || now.Sub(in.CreatedAt) > c.cfg.IntentTTL
	if firstErr == nil && done {
		if c.store != nil {
			firstErr = c.store.FinishIntent(ctx, c.fence, in.Token)
		}
		if firstErr == nil {
			for i, x := range c.intents {
				if x.Token == in.Token {
					c.intents = append(c.intents[:i], c.intents[i+1:]...)
					break
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("launch %d (token %s): %w", in.Count, in.Token, err)
	}
	return firstErr
}

// learn records what a launch's answer taught about the cloud's capacity:
// spot asked and on-demand given (the cloud fell back: spot is short), or
// a zone asked and another given (that zone is short). The shortage is
// stored under the fence before it is used, so a new leader resumes it;
// entries expire after SpotRetry and ZoneRetry. The caller holds c.mu.
func (c *Controller) learn(ctx context.Context, in LaunchIntent, insts []Instance, now time.Time) error {
	sh := c.short.Live(now)
	if sh.Zones != nil {
		sh.Zones = maps.Clone(sh.Zones)
	}
	var why []string
	if c.cfg.Plan.Spot && !in.OnDemand && slices.ContainsFunc(insts, func(i Instance) bool { return !i.Spot }) {
		sh.SpotUntil = now.Add(c.cfg.Plan.SpotRetry)
		why = append(why, "no spot capacity: launches on-demand until "+sh.SpotUntil.Format(time.RFC3339))
	}
	if in.Zone != "" && slices.ContainsFunc(insts, func(i Instance) bool { return i.Zone != "" && i.Zone != in.Zone }) {
		if sh.Zones == nil {
			sh.Zones = map[string]time.Time{}
		}
		sh.Zones[in.Zone] = now.Add(c.cfg.Plan.ZoneRetry)
		why = append(why, "zone "+in.Zone+" short of capacity: launches avoid it until "+sh.Zones[in.Zone].Format(time.RFC3339))
	}
	if sh.Equal(c.short) {
		return nil
	}
	if c.store != nil {
		if err := c.store.SaveShortage(ctx, c.fence, sh); err != nil {
			return fmt.Errorf("launch %s: record the capacity shortage: %w", in.Token, err)
		}
	}
	for _, w := range why {
		c.log.Warn("capacity shortage", "token", in.Token, "what", w)
	}
	c.short = sh
	return nil
}

// act carries out a plan. Each state change is stored before the cloud is
// asked, so a crash at any point leaves a record that the next run finishes.
func (c *Controller) act(ctx context.Context, p planner.Plan, now time.Time) error {
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	c.mu.Lock()
	for _, n := range c.nodes {
		// Full slots unless the plan reduces them below: a node that
		// struggled is given its capacity back once it recovers.
		n.capCmd = n.rec.Capacity
		if n.capCmd <= 0 {
			n.capCmd = c.cfg.Plan.SlotsPerNode
		}
	}
	c.mu.Unlock()
	asked := map[string]bool{}
	for _, a := range p.Actions {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(firstErr, ErrFenced) {
			// Another controller leads now: nothing more from this one.
			c.loseLead("fenced")
			return firstErr
		}
		switch a.Kind {
		case planner.ActTerminate:
			ids := c.moveNodes(ctx, a.NodeIDs, planner.StateTerminating, now, note)
			for _, id := range ids {
				asked[id] = true
			}
			if len(ids) > 0 {
				c.log.Info("terminate", "nodes", ids, "reason", a.Reason)
				note(c.terminate(ctx, ids))
			}
		case planner.ActCancelDrain:
			c.mu.Lock()
			for _, id := range a.NodeIDs {
				if n := c.nodes[id]; n != nil && n.rec.State == planner.StateDraining {
					if err := transition(&n.rec, planner.StateSyncing, now, Drain{}); err != nil {
						note(err)
						continue
					}
					note(c.persist(ctx, n))
				}
			}
			c.mu.Unlock()
			c.log.Info("cancel drain", "nodes", a.NodeIDs, "reason", a.Reason)
		case planner.ActDrain:
			c.mu.Lock()
			for _, id := range a.NodeIDs {
				if n := c.nodes[id]; n != nil && n.rec.State != planner.StateDraining && n.rec.State != planner.StateTerminating && n.rec.State != planner.StateGone {
					dl := c.cfg.Plan.DrainTimeout
					if a.Drain == planner.DrainSpot {
						dl = c.cfg.Plan.SpotDrainTimeout
					}
					if err := transition(&n.rec, planner.StateDraining, now, Drain{a.Drain, now.Add(dl)}); err != nil {
						note(err)
						continue
					}
					note(c.persist(ctx, n))
				}
			}
			c.mu.Unlock()
			c.log.Info("drain", "nodes", a.NodeIDs, "reason", a.Reason)
		case planner.ActLaunch:
			in := LaunchIntent{Token: c.cfg.NewToken(), Count: a.Count, CreatedAt: now, Zone: a.Zone, OnDemand: a.OnDemand}
			if c.store != nil {
				if err := c.store.AddIntent(ctx, c.fence, in); err != nil {
					note(err)
					continue
				}
			}
			c.mu.Lock()
			c.intents = append(c.intents, in)
			c.mu.Unlock()
			c.log.Info("launch", "count", a.Count, "token", in.Token, "reason", a.Reason)
			note(c.launch(ctx, in, now))
		case planner.ActStop:
			ids := c.moveNodes(ctx, a.NodeIDs, planner.StateParking, now, note)
			for _, id := range ids {
				asked[id] = true
			}
			if len(ids) > 0 {
				c.log.Info("park in the warm pool", "nodes", ids, "hibernate", c.cfg.Plan.Hibernate)
				note(c.stop(ctx, ids))
			}
		case planner.ActStart:
			ids := c.moveNodes(ctx, a.NodeIDs, planner.StateResuming, now, note)
			if len(ids) == 0 {
				continue
			}
			c.log.Info("start from the warm pool", "nodes", ids, "reason", a.Reason)
			if err := c.start(ctx, ids); err != nil {
				note(err)
				// Not started (capacity, a refused call): back to the pool,
				// so the next plan launches instead of waiting for them.
				c.mu.Lock()
				for _, id := range ids {
					if n := c.nodes[id]; n != nil && n.rec.State == planner.StateResuming {
						n.rec.Warm.Starts--
						if terr := transition(&n.rec, planner.StateParked, now, Drain{}); terr == nil {
							n.rec.Warm.StoppedAt, n.rec.Warm.StartFailed = now, now
							note(c.persist(ctx, n))
						}
					}
				}
				c.mu.Unlock()
			}
		case planner.ActCapacity:
			c.mu.Lock()
			if n := c.nodes[a.NodeIDs[0]]; n != nil {
				n.capCmd = a.Count
			}
			c.mu.Unlock()
		}
	}
	// Terminating nodes the cloud still runs (a crash after the state was
	// stored, or a failed call) are asked again; Terminate is idempotent.
	// So are nodes still parking: Stop is idempotent too.
	var again, stopAgain []string
	c.mu.Lock()
	for id, n := range c.nodes {
		switch {
		case n.rec.State == planner.StateTerminating && n.inCloud && !asked[id]:
			again = append(again, id)
		case n.rec.State == planner.StateParking && n.inCloud && !asked[id] && n.cloudState == InstanceRunning:
			stopAgain = append(stopAgain, id)
		}
	}
	c.mu.Unlock()
	if len(again) > 0 && !errors.Is(firstErr, ErrFenced) {
		sort.Strings(again)
		note(c.terminate(ctx, again))
	}
	if len(stopAgain) > 0 && !errors.Is(firstErr, ErrFenced) {
		sort.Strings(stopAgain)
		note(c.stop(ctx, stopAgain))
	}
	// The capacity commands go out with the nodes' next heartbeats, which
	// any controller may take: they live on the nodes' rows.
	c.mu.Lock()
	for _, n := range c.nodes {
		if n.rec.State != planner.StateGone && n.rec.CapacityCmd != n.capCmd && !errors.Is(firstErr, ErrFenced) {
			old := n.rec
			n.rec.CapacityCmd = n.capCmd
			if err := c.persist(ctx, n); err != nil {
				n.rec = old
				note(err)
			}
		}
	}
	c.mu.Unlock()
	if errors.Is(firstErr, ErrFenced) {
		c.loseLead("fenced")
	}
	return firstErr
}

// stop parks ids in the warm pool (the cloud is a WarmCloud: the planner
// parks nothing otherwise).
func (c *Controller) stop(ctx context.Context, ids []string) error {
	wc, ok := c.cloud.(WarmCloud)
	if !ok {
		return fmt.Errorf("stop %v: the cloud cannot stop instances", ids)
	}
	if err := c.stillLeading(ctx); err != nil {
		return fmt.Errorf("stop %v: %w", ids, err)
	}
	if err := wc.Stop(ctx, ids, c.cfg.Plan.Hibernate); err != nil {
		return fmt.Errorf("stop %v: %w", ids, err)
	}
	return nil
}

// start starts parked ids.
func (c *Controller) start(ctx context.Context, ids []string) error {
	wc, ok := c.cloud.(WarmCloud)
	if !ok {
		return fmt.Errorf("start %v: the cloud cannot start instances", ids)
	}
	if err := c.stillLeading(ctx); err != nil {
		return fmt.Errorf("start %v: %w", ids, err)
	}
	if err := wc.Start(ctx, ids); err != nil {
		return fmt.Errorf("start %v: %w", ids, err)
	}
	return nil
}

func (c *Controller) terminate(ctx context.Context, ids []string) error {
	if err := c.stillLeading(ctx); err != nil {
		return fmt.Errorf("terminate %v: %w", ids, err)
	}
	if err := c.cloud.Terminate(ctx, ids); err != nil {
		return fmt.Errorf("terminate %v: %w", ids, err)
	}
	return nil
}

// moveNodes moves each node of ids the controller knows to state to and
// stores it, returning the ids moved; a refused transition or a failed
// write goes to note and leaves that node out.
func (c *Controller) moveNodes(ctx context.Context, ids []string, to planner.NodeState, now time.Time, note func(error)) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var moved []string
	for _, id := range ids {
		n := c.nodes[id]
		if n == nil {
			continue
		}
		if err := transition(&n.rec, to, now, Drain{}); err != nil {
			note(err)
			continue
		}
		if err := c.persist(ctx, n); err != nil {
			note(err)
			continue
		}
		moved = append(moved, id)
	}
	return moved
}
