package sim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/controller/cost"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/nodeapi"
)

// Settings are the cluster and model knobs shared by every policy.
type Settings struct {
	Slots           int           // calls per node; 100
	MeanCallSeconds float64       // mean attempt length, exponential; 60
	Tick            time.Duration // scaler and heartbeat interval; 10s
	SampleEvery     time.Duration // series resolution for the plot; 1m
	Cloud           CloudModel
	Plan            planner.Config // elastidial's planner knobs
	// Pricing is the price table every policy and the oracles are billed
	// with, the controller's own (cost.Pricing; its default is AWS's
	// us-east-1 list). InstanceType is the node type; Pricing.DefaultType.
	Pricing      cost.Pricing
	InstanceType string
	// WarmPool is the warm pool ops configure, in nodes: elastidial's
	// minimum (it sizes the pool from the spike risk above it) and the
	// reference warm pool's fixed size. 0: elastidial sizes from risk
	// alone and the reference keeps the trace's largest unannounced rise.
	WarmPool int
	// Lead is how long every policy runs before the trace begins, with
	// no demand: a controller (or an Auto Scaling group) is deployed
	// before its first campaign, so its warm pool is filled when the
	// trace starts. What the lead costs is reported apart (LeadCost).
	// 30m; a negative Lead starts the policies with the trace.
	Lead time.Duration
}

func (s Settings) withDefaults() Settings {
	s.Slots = cmp.Or(s.Slots, 100)
	s.MeanCallSeconds = cmp.Or(s.MeanCallSeconds, 60)
	s.Tick = cmp.Or(s.Tick, 10*time.Second)
	s.SampleEvery = cmp.Or(s.SampleEvery, time.Minute)
	s.Lead = cmp.Or(s.Lead, 30*time.Minute)
	s.Pricing = s.Pricing.WithDefaults()
	s.InstanceType = cmp.Or(s.InstanceType, s.Pricing.DefaultType)
	if s.Cloud.PricePerHour == 0 {
		s.Cloud.PricePerHour = s.Pricing.RunningHourly(s.InstanceType, false)
	}
	if s.Cloud.StoppedPricePerHour == 0 {
		s.Cloud.StoppedPricePerHour = s.Pricing.StoppedHourly()
	}
	s.Cloud = s.Cloud.withDefaults()
	s.Plan.SlotsPerNode = s.Slots
	s.Plan.Pricing, s.Plan.InstanceType = s.Pricing, s.InstanceType
	s.Plan.MaxNodes = cmp.Or(s.Plan.MaxNodes, 1000)
	return s
}

// Sample is one point of the series plotted for a run.
type Sample struct {
	At        time.Duration `json:"at_seconds"`
	Demand    int           `json:"demand"`
	Ready     int           `json:"ready_slots"`
	Nodes     int           `json:"nodes"`
	CostPerH  float64       `json:"cost_per_hour"`
	ServedNow float64       `json:"served"`
}

// Result is what one policy did on one trace.
type Result struct {
	Trace            string  `json:"trace"`
	Policy           string  `json:"policy"`
	Cost             float64 `json:"cost"`
	NodeHours        float64 `json:"node_hours"`
	DemandCallSec    float64 `json:"demand_call_seconds"`
	UnservedCallSec  float64 `json:"unserved_call_seconds"`
	UnservedShare    float64 `json:"unserved_share"`
	DroppedByScaleIn float64 `json:"dropped_by_scale_in"`
	LostToFailures   float64 `json:"lost_to_failures"`
	Launches         int     `json:"launches"`
	Terminations     int     `json:"terminations"`
	ShortLived       int     `json:"launch_then_terminate_10m"`
	Throttled        int     `json:"launch_calls_throttled"`
	Refused          int     `json:"launch_calls_refused"`
	PeakNodes        int     `json:"peak_nodes"`
	// The warm pool: its own cost (parked nodes' volumes, part of Cost),
	// parked node-hours, starts from it, and its size.
	PoolCost      float64 `json:"warm_pool_cost"`
	ParkedHours   float64 `json:"parked_node_hours"`
	Starts        int     `json:"warm_starts"`
	StartsRefused int     `json:"warm_starts_refused"`
	WarmMedian    float64 `json:"warm_start_median_seconds"`
	// FloorUnservedShare is the unserved share the run could not have
	// beaten with the same machines: from each unannounced rise to the
	// next, demand up to the rise's level is served only by the nodes
	// up (or draining) at the rise and by the nodes the run brought up
	// afterwards, each as if asked for at the instant of the rise, with
	// the warm start or boot it really took (see floorPeriod). A true
	// lower bound of this run, whatever its luck: what separates the run
	// from it is the time the policy took to ask.
	FloorUnservedShare float64 `json:"floor_unserved_share"`
	// LeadCost is what the policy spent in the lead before the trace
	// (Settings.Lead), filling its warm pool; not part of Cost.
	LeadCost float64 `json:"lead_cost"`
	// ZoneSkew is the largest spread of serving nodes (booting or ready,
	// neither draining nor parked) across zones seen after any scaler
	// pass: the most in one zone less the fewest in another.
	ZoneSkew int      `json:"zone_skew"`
	Series   []Sample `json:"-"`
}

// policy decides capacity each tick of a simulation.
type policy interface {
	name() string
	start(w *world) error
	tick(w *world) error
}

// waker is a policy told of a demand change between its ticks, as the
// campaign tier tells the live scaler (Controller.Wake) when a campaign is
// started, changed or scheduled.
type waker interface {
	wake(w *world) error
}

// world is one simulation in progress.
type world struct {
	s      Settings
	t      *Trace
	now    time.Duration
	start  time.Time
	cloud  *cloud
	demand *demand
	rng    *rand.Rand
	res    Result
}

func (w *world) clock() time.Time { return w.start.Add(w.now) }

// Run replays the trace under one policy: "elastidial", "reactive" or
// "static". The same seed gives the same result.
func Run(t *Trace, s Settings, policyName string) (Result, error) {
	s = s.withDefaults()
	var p policy
	switch policyName {
	case "elastidial":
		p = &elastidial{warm: true}
	case "elastidial-cold":
		p = &elastidial{}
	case "reactive":
		p = &reactive{}
	case "reactive-warm":
		p = &reactive{warm: true, pool: refPool(t, s)}
	case "static":
		p = &static{}
	default:
		return Result{}, fmt.Errorf("unknown policy %q: want elastidial, elastidial-cold, reactive, reactive-warm or static", policyName)
	}
	w := &world{s: s, t: t, start: Epoch, demand: newDemand(t),
		rng: rand.New(rand.NewPCG(s.Cloud.Seed, 1)), res: Result{Trace: t.Name, Policy: p.name()}}
	w.cloud = &cloud{m: s.Cloud, rng: rand.New(rand.NewPCG(s.Cloud.Seed, 2)), now: &w.now, start: w.start, byTok: map[string][]*instance{}, calls: map[time.Duration]int{}}
	w.now = -max(s.Lead, 0)
	if err := p.start(w); err != nil {
		return Result{}, err
	}
	failPerSec := s.Cloud.FailuresPerHour / 3600
	events := map[time.Duration]bool{}
	surprise := map[time.Duration]bool{}
	for _, c := range t.Changes {
		events[c.At], events[c.Announced] = true, true
		if c.Announced >= c.At {
			surprise[c.At] = true
		}
	}
	var floorSec float64
	var period *floorPeriod
	prevWanted := 0
	w.res.WarmMedian = s.Cloud.WarmMedian.Seconds()
	wk, _ := p.(waker)
	// The lead runs the policy from -Lead with no demand (the trace's
	// first change is at 0 or later): nothing is counted but the zones.
	for ; w.now <= t.End; w.now += time.Second {
		wanted := w.demand.advance(w.now)
		if surprise[w.now] && wanted > prevWanted {
			floorSec += period.close(s.Slots)
			period = w.openPeriod(wanted)
		}
		prevWanted = wanted
		alive := 0
		for _, in := range w.cloud.insts {
			if in.dead || in.parked {
				continue
			}
			alive++
			if w.rng.Float64() < failPerSec {
				w.cloud.end(in, true)
				continue
			}
			// Calls end at random; a node's last fraction of a call ends.
			in.calls -= in.calls / s.MeanCallSeconds
			if in.calls < 0.5 {
				in.calls = 0
			}
		}
		if w.now >= 0 {
			w.res.PeakNodes = max(w.res.PeakNodes, alive)
		}
		if w.now%s.Tick == time.Second {
			// After the tick's actions took effect (a launch lands in its
			// zone, a drain ends in the next pass).
			w.res.ZoneSkew = max(w.res.ZoneSkew, w.cloud.zoneSkew())
		}
		switch {
		case w.now%s.Tick == 0:
			if err := p.tick(w); err != nil {
				return Result{}, err
			}
		case events[w.now] && wk != nil:
			if err := wk.wake(w); err != nil {
				return Result{}, err
			}
		}
		w.arrivals(period)
		served := w.place(float64(wanted))
		if w.now < 0 {
			continue
		}
		w.res.DemandCallSec += float64(wanted)
		// Calls are fractional as they end; a gap under a millionth of a
		// call is their rounding, not a call unserved.
		if gap := float64(wanted) - served; gap > 1e-6 {
			w.res.UnservedCallSec += gap
		}
		period.record(wanted)
		if w.now%s.SampleEvery == 0 {
			w.sample(wanted, served)
		}
	}
	floorSec += period.close(s.Slots)
	w.res.Cost, w.res.NodeHours, w.res.PoolCost, w.res.ParkedHours, w.res.LeadCost = w.cloud.cost(t.End)
	w.res.Starts, w.res.StartsRefused = w.cloud.starts, w.cloud.startRefused
	if w.res.DemandCallSec > 0 {
		w.res.UnservedShare = w.res.UnservedCallSec / w.res.DemandCallSec
		w.res.FloorUnservedShare = floorSec / w.res.DemandCallSec
	}
	w.res.DroppedByScaleIn = math.Round(w.cloud.dropped)
	w.res.LostToFailures = math.Round(w.cloud.lost)
	w.res.Launches, w.res.Terminations, w.res.ShortLived = w.cloud.launches, w.cloud.terminations, w.cloud.shortLived
	w.res.Throttled, w.res.Refused = w.cloud.throttled, w.cloud.insufficient
	return w.res, nil
}

// takesCalls reports whether an instance's agent is up and not draining.
func (w *world) takesCalls(in *instance) bool {
	return !in.dead && !in.draining && !in.parked && w.now >= in.bootAt
}

// floorPeriod is the stretch from one unannounced rise (at) to the next,
// for the run's unserved floor. Calls can only be on nodes that took
// calls at some moment, so at every second of the stretch the run serves
// at most the slots of the nodes up or draining at the rise (up) and of
// the nodes that came up since. Each of those came up after a delay from
// when it was asked for (a launch, a start; a drain cancelled: none); had
// every one been asked for at the instant of the rise it could not have
// come sooner than that delay after it. So the demand of the stretch, up
// to the rise's level (later announced demand could have been met ahead),
// beyond up plus the nodes whose delay had passed, is unserved in this
// run whatever the policy decided: a true lower bound of the run, with
// its own luck in warm starts and boots.
type floorPeriod struct {
	at     time.Duration
	level  int
	up     int
	wanted []int           // demand at each second from at
	delays []time.Duration // of the nodes that came up since at
}

// openPeriod starts a stretch at an unannounced rise to wanted.
func (w *world) openPeriod(wanted int) *floorPeriod {
	f := &floorPeriod{at: w.now, level: wanted}
	for _, in := range w.cloud.insts {
		if !in.dead && !in.parked && w.now >= in.bootAt && (w.takesCalls(in) || in.draining) {
			f.up++
		}
	}
	return f
}

// arrivals notes the nodes that take calls from this second on, with the
// delay since they were asked for, counted from the period's rise at the
// earliest.
func (w *world) arrivals(f *floorPeriod) {
	for _, in := range w.cloud.insts {
		took := w.takesCalls(in)
		if took && !in.took && f != nil {
			asked := in.askedAt
			if in.servedSinceAsk {
				asked = w.now // a cancelled drain: it could have served at once
			}
			f.delays = append(f.delays, w.now-max(asked, f.at))
		}
		if took {
			in.servedSinceAsk = true
		}
		in.took = took
	}
}

func (f *floorPeriod) record(wanted int) {
	if f != nil {
		f.wanted = append(f.wanted, wanted)
	}
}

// close returns the stretch's unserved call-seconds at best.
func (f *floorPeriod) close(slots int) float64 {
	if f == nil {
		return 0
	}
	slices.Sort(f.delays)
	sum, k := 0.0, 0
	for i, wanted := range f.wanted {
		for k < len(f.delays) && f.delays[k] <= time.Duration(i)*time.Second {
			k++
		}
		sum += float64(max(0, min(wanted, f.level)-slots*(f.up+k)))
	}
	return sum
}

// refPool is the reference warm pool's size: Settings.WarmPool, or the
// largest unannounced rise of the trace in nodes (what ops who know their
// spikes would configure).
func refPool(t *Trace, s Settings) int {
	if s.WarmPool > 0 {
		return s.WarmPool
	}
	d := newDemand(t)
	prev, most := 0, 0
	for _, c := range t.Changes {
		now := d.advance(c.At)
		if c.Announced >= c.At && now > prev {
			most = max(most, (now-prev+s.Slots-1)/s.Slots)
		}
		prev = now
	}
	return most
}

// place puts new calls on nodes with free slots, as dialer.next does, up
// to the demand; it returns the calls in progress.
func (w *world) place(wanted float64) float64 {
	total := 0.0
	for _, in := range w.cloud.insts {
		total += in.calls
	}
	for _, in := range w.cloud.insts {
		if total >= wanted {
			break
		}
		if !w.takesCalls(in) {
			continue
		}
		add := math.Min(float64(w.s.Slots)-in.calls, wanted-total)
		if add > 0 {
			in.calls += add
			total += add
		}
	}
	return total
}

func (w *world) sample(wanted int, served float64) {
	ready, nodes, parked := 0, 0, 0
	for _, in := range w.cloud.insts {
		switch {
		case in.dead:
			continue
		case in.parked && w.now >= in.stoppedAt:
			parked++
			continue
		}
		nodes++
		if w.takesCalls(in) {
			ready += w.s.Slots
		}
	}
	w.res.Series = append(w.res.Series, Sample{At: w.now, Demand: wanted, Ready: ready, Nodes: nodes,
		CostPerH: float64(nodes)*w.s.Cloud.PricePerHour + float64(parked)*w.s.Cloud.StoppedPricePerHour, ServedNow: served})
}

// --- elastidial: the real controller ---------------------------------------------

type elastidial struct {
	c    *controller.Controller
	warm bool // with its warm pool (the default); elastidial-cold without
}

func (e *elastidial) name() string {
	if e.warm {
		return "elastidial"
	}
	return "elastidial-cold"
}

type worldClock struct{ w *world }

func (c worldClock) Now() time.Time { return c.w.clock() }

type worldDemand struct{ w *world }

func (d worldDemand) Demand(context.Context, time.Time) ([]controller.Demand, error) {
	w := d.w
	var out []controller.Demand
	ups := map[string][]planner.Upcoming{}
	for _, c := range w.demand.upcoming(w.now) {
		ups[c.Campaign] = append(ups[c.Campaign], planner.Upcoming{At: w.start.Add(c.At), Target: c.Calls})
	}
	names := make([]string, 0, len(w.demand.calls)+len(ups))
	for n := range w.demand.calls {
		names = append(names, n)
	}
	for n := range ups {
		if _, ok := w.demand.calls[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		calls := w.demand.calls[n]
		out = append(out, controller.Demand{CampaignID: n, Target: calls, Callable: calls, AvgAttemptSeconds: w.s.MeanCallSeconds, Upcoming: ups[n]})
	}
	return out, nil
}

func (e *elastidial) start(w *world) error {
	plan := w.s.Plan
	plan.WarmPool = e.warm
	if e.warm {
		// The pool ops configure, the same as the reference warm pool's;
		// the planner grows it with the spike risk above that.
		plan.WarmPoolMin = refPool(w.t, w.s)
		plan.WarmPoolMax = max(plan.WarmPoolMax, plan.WarmPoolMin, 20)
	}
	c, err := controller.New(context.Background(), w.cloud, worldDemand{w}, nil, controller.Options{
		Plan: plan, Tick: w.s.Tick, Pricing: w.s.Pricing, HeartbeatInterval: w.s.Tick, Clock: worldClock{w},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	e.c = c
	return err
}

func (e *elastidial) tick(w *world) error {
	ctx := context.Background()
	// Agents that finished booting register, then every agent heartbeats.
	for _, in := range w.cloud.insts {
		if in.dead || in.parked || w.now < in.bootAt {
			continue
		}
		if in.nodeID == "" {
			r, err := e.c.Register(ctx, nodeapi.RegisterRequest{InstanceID: in.id, Capacity: w.s.Slots, Version: "sim"})
			if err != nil {
				continue // not known yet; the agent retries
			}
			in.nodeID = r.NodeID
		}
		hb, err := e.c.Heartbeat(ctx, in.nodeID, nodeapi.HeartbeatRequest{
			ActiveCalls: int(math.Ceil(in.calls)), Capacity: w.s.Slots, AMIConnected: true, TimingOK: true, ChannelOK: true, TrunkOK: true, Draining: in.draining,
		})
		if err == nil {
			in.draining = hb.Drain
		}
	}
	// The scaler's errors (a throttled or refused launch) are retried on
	// the next tick, as live.
	_ = e.c.Tick(ctx)
	return nil
}

// wake is the reconcile pass Controller.Wake starts; nodes heartbeat on
// their own interval, at the next tick.
func (e *elastidial) wake(*world) error {
	_ = e.c.Tick(context.Background())
	return nil
}

// --- reactive: a stock target-tracking group --------------------------------------

// reactive scales on current load like a stock EC2 Auto Scaling group with
// target tracking: keep utilisation of running nodes near 70%, scale out
// after 60 s, scale in after a 300 s cooldown, calls and all. It picks
// whom to terminate by the default termination policy: one launch
// template, so the instances closest to their next billing hour, ties at
// random.
//
// With pool > 0 it is "reactive-warm": the same group with an EC2 Auto
// Scaling warm pool of that many stopped instances, as ops would deploy
// it: new pool instances boot, initialise and stop; a scale-out starts
// pool instances first and launches the rest; a scale-in returns
// instances to the pool (ReuseOnScaleIn) up to its size and terminates
// the rest; the pool is replenished by launches.
type reactive struct {
	lastOut, lastIn time.Duration
	warm            bool
	pool            int
}

func (r *reactive) name() string {
	if r.warm {
		return "reactive-warm"
	}
	return "reactive"
}

func (r *reactive) start(w *world) error {
	// No cooldown is running when the group is created.
	r.lastOut, r.lastIn = w.now-time.Hour, w.now-time.Hour
	_, err := w.cloud.Launch(context.Background(), controller.LaunchRequest{Count: 1})
	return err
}

// launchPool launches n instances into the warm pool: they take no calls
// and are stopped once booted.
func (r *reactive) launchPool(w *world, n int) {
	got, err := w.cloud.Launch(context.Background(), controller.LaunchRequest{Count: n})
	if err != nil {
		return
	}
	for _, g := range got {
		for _, in := range w.cloud.insts {
			if in.id == g.ID {
				in.poolFill, in.draining = true, true
			}
		}
	}
}

func (r *reactive) tick(w *world) error {
	ctx := context.Background()
	var alive, parked []*instance
	filling := 0
	load := 0.0
	for _, in := range w.cloud.insts {
		switch {
		case in.dead:
		case in.poolFill && w.now >= in.bootAt:
			// Initialised: stop it into the pool.
			in.poolFill = false
			w.cloud.Stop(ctx, []string{in.id}, false)
			filling++
		case in.poolFill:
			filling++
		case in.parked:
			parked = append(parked, in)
		default:
			alive = append(alive, in)
			load += in.calls
		}
	}
	desired := max(1, int(math.Ceil(load/(0.7*float64(w.s.Slots)))))
	switch {
	case desired > len(alive) && w.now-r.lastOut >= time.Minute:
		n := desired - len(alive)
		var start []string
		for _, in := range parked {
			if len(start) < n && w.now >= in.stoppedAt {
				start = append(start, in.id)
			}
		}
		if len(start) > 0 {
			if err := w.cloud.Start(ctx, start); err == nil {
				n -= len(start)
				r.lastOut = w.now
			}
		}
		if n > 0 {
			if _, err := w.cloud.Launch(ctx, controller.LaunchRequest{Count: n}); err == nil {
				r.lastOut = w.now
			}
		}
	case desired < len(alive) && w.now-r.lastIn >= 5*time.Minute && w.now-r.lastOut >= 5*time.Minute:
		toHour := func(in *instance) time.Duration { return time.Hour - (w.now-in.launchedAt)%time.Hour }
		w.rng.Shuffle(len(alive), func(i, j int) { alive[i], alive[j] = alive[j], alive[i] })
		slices.SortStableFunc(alive, func(a, b *instance) int { return cmp.Compare(toHour(a), toHour(b)) })
		var stop, term []string
		room := r.pool - len(parked) - filling
		for _, in := range alive[:len(alive)-desired] {
			if len(stop) < room {
				stop = append(stop, in.id)
			} else {
				term = append(term, in.id)
			}
		}
		if len(stop) > 0 {
			w.cloud.Stop(ctx, stop, false)
		}
		if len(term) > 0 {
			w.cloud.Terminate(ctx, term)
		}
		r.lastIn = w.now
	default:
		// Replenish the pool.
		if short := r.pool - len(parked) - filling; short > 0 {
			r.launchPool(w, short)
		}
	}
	return nil
}

// --- static: peak capacity for the whole trace ------------------------------------

type static struct{}

func (static) name() string { return "static" }

func (static) start(w *world) error {
	peak := 0
	d := newDemand(w.t)
	for _, c := range w.t.Changes {
		peak = max(peak, d.advance(c.At))
	}
	// Provisioned ahead of the trace, outside its API limits: every node
	// is up at the start and billed from it.
	for range int(math.Ceil(float64(peak) / float64(w.s.Slots))) {
		w.cloud.insts = append(w.cloud.insts, &instance{id: fmt.Sprintf("i-%07d", len(w.cloud.insts)+1)})
		w.cloud.launches++
	}
	return nil
}

// tick replaces failed nodes, as a fixed-size group would; the new node
// boots like any other.
func (static) tick(w *world) error {
	for _, in := range w.cloud.insts {
		if in.dead && !in.replaced {
			in.replaced = true
			if _, err := w.cloud.Launch(context.Background(), controller.LaunchRequest{Count: 1}); err != nil {
				in.replaced = false // try again next tick
			}
		}
	}
	return nil
}
