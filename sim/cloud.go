package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/elastidial/elastidial/controller"
)

// CloudModel describes the simulated EC2.
type CloudModel struct {
	BootMedian time.Duration // launch to agent registered; 45s
	BootTail   time.Duration // about the 99th percentile; 2m
	// PricePerHour is the $/h of one running node; Settings fills it from
	// the price table (Settings.Pricing), the one the controller uses.
	PricePerHour    float64
	MinBilled       time.Duration // per-second billing with this minimum; 60s
	LaunchesPerSec  int           // RunInstances (and StartInstances) calls refilled per second; 2
	LaunchBurst     int           // calls the bucket holds, as EC2's request token bucket; 5
	CapacityFailure float64       // chance a launch call fails with InsufficientInstanceCapacity; 0.01
	FailuresPerHour float64       // chance per node-hour that a node dies; 0.002
	Seed            uint64

	// The warm pool. A start from stopped skips the first boot's
	// provisioning: its time to agent registered is drawn like a boot's,
	// log-normal with WarmMedian and WarmTail (default: the boot's ratio
	// of tail to median), never under WarmMin.
	WarmMedian   time.Duration // start to agent registered; 30s (hibernated: 10-15 s)
	WarmTail     time.Duration // about the 99th percentile; WarmMedian × BootTail/BootMedian
	WarmMin      time.Duration // 5s
	StopLag      time.Duration // stop asked to stopped (billed running until then); 30s
	StartFailure float64       // chance a start call fails with InsufficientInstanceCapacity; CapacityFailure
	// StoppedPricePerHour is the $/h of a parked node (its volume);
	// Settings fills it from the price table.
	StoppedPricePerHour float64
	// Zones is how many availability zones launches may use; 3. A launch
	// without a zone goes to the one with the fewest live nodes, as an
	// Auto Scaling group balances its zones.
	Zones int
}

func (m CloudModel) withDefaults() CloudModel {
	m.BootMedian = cmp.Or(m.BootMedian, 45*time.Second)
	m.BootTail = cmp.Or(m.BootTail, 2*time.Minute)
	m.MinBilled = cmp.Or(m.MinBilled, time.Minute)
	m.LaunchesPerSec = cmp.Or(m.LaunchesPerSec, 2)
	m.LaunchBurst = cmp.Or(m.LaunchBurst, 5)
	m.CapacityFailure = cmp.Or(m.CapacityFailure, 0.01)
	m.FailuresPerHour = cmp.Or(m.FailuresPerHour, 0.002)
	m.WarmMedian = cmp.Or(m.WarmMedian, 30*time.Second)
	m.WarmTail = cmp.Or(m.WarmTail, time.Duration(float64(m.WarmMedian)*m.BootTail.Seconds()/m.BootMedian.Seconds()))
	m.WarmMin = cmp.Or(m.WarmMin, 5*time.Second)
	m.StopLag = cmp.Or(m.StopLag, 30*time.Second)
	m.StartFailure = cmp.Or(m.StartFailure, m.CapacityFailure)
	m.Zones = cmp.Or(m.Zones, 3)
	return m
}

// warmDelay draws a start-to-registered time for a parked node.
func (m CloudModel) warmDelay(r *rand.Rand) time.Duration {
	return lognormal(r, m.WarmMedian, m.WarmTail, m.WarmMin)
}

// lognormal draws a duration with the given median and 99th percentile,
// never under floor.
func lognormal(r *rand.Rand, median, tail, floor time.Duration) time.Duration {
	sigma := math.Log(tail.Seconds()/median.Seconds()) / 2.326
	d := median.Seconds() * math.Exp(sigma*r.NormFloat64())
	return time.Duration(max(d, floor.Seconds()) * float64(time.Second))
}

// bootDelay draws a launch-to-registered time: log-normal with the given
// median, its 99th percentile at BootTail, and never under 20 s.
func (m CloudModel) bootDelay(r *rand.Rand) time.Duration {
	return lognormal(r, m.BootMedian, m.BootTail, 20*time.Second)
}

// instance is one simulated EC2 instance with the node agent on it.
type instance struct {
	id         string
	token      string
	launchedAt time.Duration
	bootAt     time.Duration
	endedAt    time.Duration // 0 while alive
	dead       bool          // failed or terminated
	replaced   bool          // a static group has launched its replacement

	nodeID   string // set when registered
	calls    float64
	draining bool
	nextHB   time.Duration

	// The warm pool.
	parked    bool          // stop asked, not started since
	stoppedAt time.Duration // when the stop completes (billing switches)
	resumedAt time.Duration
	stops     []span // completed stops, billed at the stopped price
	poolFill  bool   // reference pool: stop once booted
	zone      string

	// For the unserved floor: when the node was last asked for (a launch
	// or a start), whether it has taken calls since, and whether it took
	// them in the last second.
	askedAt        time.Duration
	servedSinceAsk bool
	took           bool
}

// span is a period [from, to) of simulated time.
type span struct{ from, to time.Duration }

// cloud is the simulated EC2: it implements controller.Cloud on the
// virtual clock.
type cloud struct {
	m     CloudModel
	rng   *rand.Rand
	now   *time.Duration
	start time.Time
	insts []*instance
	byTok map[string][]*instance
	calls map[time.Duration]int // unused; kept for the zero value
	// tokens is EC2's request bucket for RunInstances and StartInstances:
	// LaunchBurst deep, LaunchesPerSec refilled each second.
	tokens   float64
	refilled time.Duration
	bucketed bool // the bucket was filled at the first call

	launches, terminations, shortLived int
	dropped, lost                      float64
	throttled, insufficient            int
	starts, startRefused               int
}

var (
	_ controller.WarmCloud  = (*cloud)(nil)
	_ controller.ZonedCloud = (*cloud)(nil)
)

// take spends one request token, refilling the bucket first.
func (c *cloud) take() bool {
	if !c.bucketed {
		c.tokens, c.refilled, c.bucketed = float64(c.m.LaunchBurst), *c.now, true
	}
	c.tokens = min(float64(c.m.LaunchBurst), c.tokens+(*c.now-c.refilled).Seconds()*float64(c.m.LaunchesPerSec))
	c.refilled = *c.now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// Zones names the simulated zones.
func (c *cloud) Zones(context.Context) ([]string, error) {
	out := make([]string, c.m.Zones)
	for i := range out {
		out[i] = fmt.Sprintf("sim-%c", 'a'+i)
	}
	return out, nil
}

// zoneFor is where a launch without a zone goes: the zone with the fewest
// live, running nodes.
func (c *cloud) zoneFor() string {
	zones, _ := c.Zones(context.Background())
	n := map[string]int{}
	for _, in := range c.insts {
		if !in.dead && !in.parked {
			n[in.zone]++
		}
	}
	best := zones[0]
	for _, z := range zones[1:] {
		if n[z] < n[best] {
			best = z
		}
	}
	return best
}

// zoneSkew is the spread of serving nodes (booting or ready, neither
// draining nor parked) across zones: the most in one zone less the fewest
// in another.
func (c *cloud) zoneSkew() int {
	zones, _ := c.Zones(context.Background())
	n := map[string]int{}
	for _, in := range c.insts {
		if !in.dead && !in.parked && !in.draining {
			n[in.zone]++
		}
	}
	lo, hi := n[zones[0]], n[zones[0]]
	for _, z := range zones[1:] {
		lo, hi = min(lo, n[z]), max(hi, n[z])
	}
	return hi - lo
}

// Stop parks running instances: calls still on them are dropped (the
// elastidial policy drains first); billing switches to the stopped price
// once the stop completes.
func (c *cloud) Stop(_ context.Context, ids []string, _ bool) error {
	for _, id := range ids {
		for _, in := range c.insts {
			if in.id == id && !in.dead && !in.parked {
				in.parked, in.stoppedAt = true, *c.now+c.m.StopLag
				c.dropped += in.calls
				in.calls, in.draining, in.nodeID = 0, false, ""
			}
		}
	}
	return nil
}

var errIncorrectState = errors.New("IncorrectInstanceState: the instance is not in a state from which it can be started")

// Start starts parked instances; the agent registers again a warm start
// later. A call may fail for capacity, as a launch may; starting one still
// stopping fails as EC2's does.
func (c *cloud) Start(_ context.Context, ids []string) error {
	if !c.take() {
		c.throttled++
		return errThrottled
	}
	if c.rng.Float64() < c.m.StartFailure {
		c.startRefused++
		return errInsufficient
	}
	var todo []*instance
	for _, id := range ids {
		for _, in := range c.insts {
			if in.id != id || in.dead || !in.parked {
				continue
			}
			if *c.now < in.stoppedAt {
				return errIncorrectState
			}
			todo = append(todo, in)
		}
	}
	for _, in := range todo {
		in.stops = append(in.stops, span{in.stoppedAt, *c.now})
		in.parked, in.resumedAt = false, *c.now
		in.askedAt, in.servedSinceAsk = *c.now, false
		in.bootAt = *c.now + c.m.warmDelay(c.rng)
		c.starts++
	}
	return nil
}

var (
	errThrottled    = errors.New("RequestLimitExceeded: request limit exceeded")
	errInsufficient = errors.New("InsufficientInstanceCapacity: no capacity in this zone")
)

func (c *cloud) Launch(_ context.Context, req controller.LaunchRequest) ([]controller.Instance, error) {
	if got, ok := c.byTok[req.Token]; ok && req.Token != "" {
		return c.view(got), nil
	}
	if !c.take() {
		c.throttled++
		return nil, errThrottled
	}
	if c.rng.Float64() < c.m.CapacityFailure {
		c.insufficient++
		return nil, errInsufficient
	}
	var out []*instance
	for range req.Count {
		zone := req.Zone
		if zone == "" {
			zone = c.zoneFor()
		}
		in := &instance{id: fmt.Sprintf("i-%07d", len(c.insts)+1), token: req.Token, launchedAt: *c.now, askedAt: *c.now, zone: zone}
		in.bootAt = *c.now + c.m.bootDelay(c.rng)
		c.insts = append(c.insts, in)
		out = append(out, in)
		c.launches++
	}
	if req.Token != "" {
		c.byTok[req.Token] = out
	}
	return c.view(out), nil
}

func (c *cloud) Terminate(_ context.Context, ids []string) error {
	for _, id := range ids {
		for _, in := range c.insts {
			if in.id == id && !in.dead {
				c.end(in, false)
			}
		}
	}
	return nil
}

// end stops an instance; calls still on it are dropped (by scale-in) or
// lost (to a failure).
func (c *cloud) end(in *instance, failed bool) {
	in.dead, in.endedAt = true, *c.now
	if failed {
		c.lost += in.calls
	} else {
		c.dropped += in.calls
		c.terminations++
		if in.endedAt-in.launchedAt < 10*time.Minute {
			c.shortLived++
		}
	}
	in.calls = 0
}

func (c *cloud) Instances(context.Context) ([]controller.Instance, error) {
	var alive []*instance
	for _, in := range c.insts {
		if !in.dead {
			alive = append(alive, in)
		}
	}
	return c.view(alive), nil
}

func (c *cloud) view(ins []*instance) []controller.Instance {
	out := make([]controller.Instance, len(ins))
	for i, in := range ins {
		state := controller.InstancePending
		if *c.now-in.launchedAt >= 10*time.Second && *c.now-in.resumedAt >= 2*time.Second {
			state = controller.InstanceRunning
		}
		switch {
		case in.dead:
			state = controller.InstanceTerminated
		case in.parked && *c.now < in.stoppedAt:
			state = controller.InstanceStopping
		case in.parked:
			state = controller.InstanceStopped
		}
		out[i] = controller.Instance{ID: in.id, State: state, Type: "c6i.large", Zone: in.zone, LaunchedAt: c.start.Add(in.launchedAt),
			Tags: map[string]string{controller.TagCluster: "sim", controller.TagRole: "node", controller.TagLaunchToken: in.token}}
	}
	return out
}

// cost is what every instance was billed from 0 up to end: per second,
// from launch to termination, at the stopped price while parked, with the
// billing minimum for instances launched from 0 on. pool is the parked
// part of dollars. lead is what the same instances were billed before 0
// (Settings.Lead), the minimum included for those launched then.
func (c *cloud) cost(end time.Duration) (dollars, nodeHours, pool, parkedHours, lead float64) {
	for _, in := range c.insts {
		stop := end
		if in.dead {
			stop = in.endedAt
		}
		var parked, parkedBefore time.Duration
		for _, s := range in.parkedSpans(stop) {
			parked += overlap(s.from, s.to, 0, end)
			parkedBefore += overlap(s.from, s.to, in.launchedAt, 0)
		}
		run := overlap(in.launchedAt, stop, 0, end)
		if in.launchedAt >= 0 {
			run = max(run, c.m.MinBilled)
		} else {
			before := max(overlap(in.launchedAt, stop, in.launchedAt, 0), c.m.MinBilled) - parkedBefore
			lead += before.Hours()*c.m.PricePerHour + parkedBefore.Hours()*c.m.StoppedPricePerHour
		}
		d := run - parked
		nodeHours += d.Hours()
		parkedHours += parked.Hours()
	}
	pool = parkedHours * c.m.StoppedPricePerHour
	return nodeHours*c.m.PricePerHour + pool, nodeHours, pool, parkedHours, lead
}

// overlap is the length of [a, b) within [from, to).
func overlap(a, b, from, to time.Duration) time.Duration {
	return max(0, min(b, to)-max(a, from))
}

// parkedSpans are the periods in was stopped, up to end.
func (in *instance) parkedSpans(end time.Duration) []span {
	out := append([]span(nil), in.stops...)
	if in.parked && in.stoppedAt < end {
		out = append(out, span{in.stoppedAt, end})
	}
	return out
}
