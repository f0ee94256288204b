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
	LaunchesPerSec  int           // RunInstances calls allowed per second; 2
	CapacityFailure float64       // chance a launch call fails with InsufficientInstanceCapacity; 0.01
	FailuresPerHour float64       // chance per node-hour that a node dies; 0.002
	Seed            uint64
}

func (m CloudModel) withDefaults() CloudModel {
	m.BootMedian = cmp.Or(m.BootMedian, 45*time.Second)
	m.BootTail = cmp.Or(m.BootTail, 2*time.Minute)
	m.MinBilled = cmp.Or(m.MinBilled, time.Minute)
	m.LaunchesPerSec = cmp.Or(m.LaunchesPerSec, 2)
	m.CapacityFailure = cmp.Or(m.CapacityFailure, 0.01)
	m.FailuresPerHour = cmp.Or(m.FailuresPerHour, 0.002)
	return m
}

// bootDelay draws a launch-to-registered time: log-normal with the given
// median, its 99th percentile at BootTail, and never under 20 s.
func (m CloudModel) bootDelay(r *rand.Rand) time.Duration {
	sigma := math.Log(m.BootTail.Seconds()/m.BootMedian.Seconds()) / 2.326
	d := m.BootMedian.Seconds() * math.Exp(sigma*r.NormFloat64())
	return time.Duration(max(d, 20) * float64(time.Second))
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
}

// cloud is the simulated EC2: it implements controller.Cloud on the
// virtual clock.
type cloud struct {
	m     CloudModel
	rng   *rand.Rand
	now   *time.Duration
	start time.Time
	insts []*instance
	byTok map[string][]*instance
	calls map[time.Duration]int // RunInstances calls per second

	launches, terminations, shortLived int
	dropped, lost                      float64
	throttled, insufficient            int
}

var _ controller.Cloud = (*cloud)(nil)

var (
	errThrottled    = errors.New("RequestLimitExceeded: request limit exceeded")
	errInsufficient = errors.New("InsufficientInstanceCapacity: no capacity in this zone")
)

func (c *cloud) Launch(_ context.Context, req controller.LaunchRequest) ([]controller.Instance, error) {
	if got, ok := c.byTok[req.Token]; ok && req.Token != "" {
		return c.view(got), nil
	}
	sec := *c.now / time.Second
	if c.calls[sec] >= c.m.LaunchesPerSec {
		c.throttled++
		return nil, errThrottled
	}
	c.calls[sec]++
	if c.rng.Float64() < c.m.CapacityFailure {
		c.insufficient++
		return nil, errInsufficient
	}
	var out []*instance
	for range req.Count {
		in := &instance{id: fmt.Sprintf("i-%07d", len(c.insts)+1), token: req.Token, launchedAt: *c.now}
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
		if *c.now-in.launchedAt >= 10*time.Second {
			state = controller.InstanceRunning
		}
		if in.dead {
			state = controller.InstanceTerminated
		}
		out[i] = controller.Instance{ID: in.id, State: state, Type: "c6i.large", LaunchedAt: c.start.Add(in.launchedAt),
			Tags: map[string]string{controller.TagCluster: "sim", controller.TagRole: "node", controller.TagLaunchToken: in.token}}
	}
	return out
}

// cost is what every instance was billed up to end: per second, with the
// minimum, from launch to termination.
func (c *cloud) cost(end time.Duration) (dollars, nodeHours float64) {
	for _, in := range c.insts {
		stop := end
		if in.dead {
			stop = in.endedAt
		}
		d := max(stop-in.launchedAt, c.m.MinBilled)
		nodeHours += d.Hours()
	}
	return nodeHours * c.m.PricePerHour, nodeHours
}
