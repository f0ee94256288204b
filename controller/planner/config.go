package planner

import (
	"cmp"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/controller/cost"
)

// Config are the scaling knobs. Zero fields take the default noted beside
// them (see WithDefaults).
type Config struct {
	SlotsPerNode          int           // call slots of one node; 100
	MinNodes              int           // nodes kept even with no demand; 0
	MaxNodes              int           // hard cap on live instances; 50
	Headroom              float64       // extra share of slots kept above demand that rose unannounced within ScaleInWindow; 0.05
	SpareNodes            int           // nodes kept above any demand, so a node that fails leaves no call unserved while it is replaced; 0
	DefaultAttemptSeconds float64       // attempt duration when a campaign has none observed; 30
	ScaleInWindow         time.Duration // surplus must last this long before a drain; 5m
	MinLifetime           time.Duration // a node younger than this is not drained: no launch-then-terminate churn; 10m
	BootLead              time.Duration // launch-to-ready estimate: Upcoming demand this close counts now; 3m
	RegisterDeadline      time.Duration // from launch to registration; 5m
	ReadyDeadline         time.Duration // from launch to ready; 10m
	HeartbeatDeadline     time.Duration // silence after which a node is unhealthy; 45s
	DrainTimeout          time.Duration // a draining node is terminated at this age of its drain; 15m
	SpotDrainTimeout      time.Duration // EC2 gives two minutes; 2m
	SpotRetry             time.Duration // after a launch found no spot capacity, launches are on-demand this long; 10m
	ZoneRetry             time.Duration // after a launch found no capacity in its zone, launches avoid it this long; 10m
	StruggleCPU           float64       // CPU share above which a node is struggling; 0.85
	StruggleLoad          float64       // load1 above which a node is struggling; 0 = ignore
	StruggleFactor        float64       // share of slots a struggling node keeps; 0.75
	// Pricing is the controller's one price table (on-demand per region
	// and type with the configured overrides, spot from the cloud's price
	// history): the budget cap prices nodes with it. Default cost.Pricing{}.
	Pricing        cost.Pricing
	InstanceType   string  // type the next launch is priced as; Pricing.DefaultType
	Spot           bool    // launches are spot (priced as spot)
	BudgetPerHour  float64 // cap on the fleet's $/h; 0 = none
	MaxLaunchBatch int     // nodes in one Launch call; 50

	// The warm pool: nodes that booted and synced once, parked stopped
	// (billing their volume only) and started on the next rise in a
	// fraction of a boot. Its size follows the spike risk: the largest
	// unannounced rise within SpikeMemory, in nodes, at least WarmPoolMin,
	// at most WarmPoolMax, and no more than WarmPoolBudget (or the budget
	// cap, which counts the pool) pays for at the stopped price.
	WarmPool       bool          // park instead of terminate; needs a cloud that stops and starts (the loop checks)
	WarmPoolMin    int           // parked nodes kept whatever the risk (ops' expected spike); 0
	WarmPoolMax    int           // parked nodes at most; 20
	WarmPoolBudget float64       // cap on the pool's own $/h; 0 = none beyond BudgetPerHour
	SpikeMemory    time.Duration // how long an unannounced rise keeps the pool sized for it; 24h
	Hibernate      bool          // park hibernated (RAM to the root volume) where the instance allows
	StartRetry     time.Duration // a parked node the cloud refused to start is passed over this long; 1m
	// StartHedge is the share of nodes a start from the pool asks for
	// beyond the shortfall, rounded up: warm starts have a long tail, so
	// the shortfall is met by the fastest and the slowest come back to
	// the pool as surplus. The pool holds that share more than the risk
	// (and WarmPoolMin) too. 0.2; negative: none.
	StartHedge float64

	// Zones are the availability zones launches spread across (the
	// loop fills them from a ZonedCloud): each launch goes to the zone
	// with the fewest serving nodes, each drain comes from the zone with
	// the most, so zones stay within one node of each other.
	Zones []string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.SlotsPerNode = cmp.Or(c.SlotsPerNode, 100)
	c.MaxNodes = cmp.Or(c.MaxNodes, 50)
	c.Headroom = cmp.Or(c.Headroom, 0.05)
	c.DefaultAttemptSeconds = cmp.Or(c.DefaultAttemptSeconds, 30)
	c.ScaleInWindow = cmp.Or(c.ScaleInWindow, 5*time.Minute)
	c.MinLifetime = cmp.Or(c.MinLifetime, 10*time.Minute)
	c.BootLead = cmp.Or(c.BootLead, 3*time.Minute)
	c.RegisterDeadline = cmp.Or(c.RegisterDeadline, 5*time.Minute)
	c.ReadyDeadline = cmp.Or(c.ReadyDeadline, 10*time.Minute)
	c.HeartbeatDeadline = cmp.Or(c.HeartbeatDeadline, 45*time.Second)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 15*time.Minute)
	c.SpotDrainTimeout = cmp.Or(c.SpotDrainTimeout, 2*time.Minute)
	c.SpotRetry = cmp.Or(c.SpotRetry, 10*time.Minute)
	c.ZoneRetry = cmp.Or(c.ZoneRetry, 10*time.Minute)
	c.StruggleCPU = cmp.Or(c.StruggleCPU, 0.85)
	c.StruggleFactor = cmp.Or(c.StruggleFactor, 0.75)
	c.Pricing = c.Pricing.WithDefaults()
	c.InstanceType = cmp.Or(c.InstanceType, c.Pricing.DefaultType)
	c.MaxLaunchBatch = cmp.Or(c.MaxLaunchBatch, 50)
	c.WarmPoolMax = cmp.Or(c.WarmPoolMax, 20)
	c.SpikeMemory = cmp.Or(c.SpikeMemory, 24*time.Hour)
	c.StartRetry = cmp.Or(c.StartRetry, time.Minute)
	c.StartHedge = cmp.Or(c.StartHedge, 0.2)
	return c
}

// Validate names the first field that makes no sense.
func (c Config) Validate() error {
	switch {
	case c.SlotsPerNode < 0:
		return fmt.Errorf("config: SlotsPerNode %d is negative", c.SlotsPerNode)
	case c.MinNodes < 0:
		return fmt.Errorf("config: MinNodes %d is negative", c.MinNodes)
	case c.MaxNodes < 0:
		return fmt.Errorf("config: MaxNodes %d is negative", c.MaxNodes)
	case c.MaxNodes > 0 && c.MinNodes > c.MaxNodes:
		return fmt.Errorf("config: MinNodes %d above MaxNodes %d", c.MinNodes, c.MaxNodes)
	case c.SpareNodes < 0:
		return fmt.Errorf("config: SpareNodes %d is negative", c.SpareNodes)
	case c.Headroom < 0 || c.Headroom > 10:
		return fmt.Errorf("config: Headroom %g outside 0..10", c.Headroom)
	case c.StruggleFactor < 0 || c.StruggleFactor > 1:
		return fmt.Errorf("config: StruggleFactor %g outside 0..1", c.StruggleFactor)
	case c.BudgetPerHour < 0:
		return fmt.Errorf("config: BudgetPerHour %g is negative", c.BudgetPerHour)
	case c.WarmPoolMin < 0 || c.WarmPoolMax < 0:
		return fmt.Errorf("config: WarmPoolMin %d and WarmPoolMax %d must not be negative", c.WarmPoolMin, c.WarmPoolMax)
	case c.WarmPoolMax > 0 && c.WarmPoolMin > c.WarmPoolMax:
		return fmt.Errorf("config: WarmPoolMin %d above WarmPoolMax %d", c.WarmPoolMin, c.WarmPoolMax)
	case c.WarmPoolBudget < 0:
		return fmt.Errorf("config: WarmPoolBudget %g is negative", c.WarmPoolBudget)
	case c.StartHedge > 1:
		return fmt.Errorf("config: StartHedge %g above 1", c.StartHedge)
	}
	if err := c.Pricing.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// NodePrice is the $/h of one running node as the budget cap counts it:
// the configured type, spot or on-demand, from the price table.
func (c Config) NodePrice() float64 {
	return c.Pricing.RunningHourly(c.InstanceType, c.Spot)
}
