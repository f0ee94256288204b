package controller

import (
	"context"
	"net/http"
	"time"

	"github.com/elastidial/elastidial/controller/cost"
	"github.com/elastidial/elastidial/controller/planner"
)

// CostNodes is what billing needs of recs.
func CostNodes(recs []NodeRecord) []cost.Node {
	out := make([]cost.Node, len(recs))
	for i, r := range recs {
		out[i] = cost.Node{Type: r.Type, Spot: r.Spot, RunningAt: r.RunningAt, GoneAt: r.GoneAt, StoppedSince: r.Warm.StoppedAt}
		for _, st := range r.Warm.Stops {
			if !st.From.IsZero() {
				out[i].Stops = append(out[i].Stops, cost.Interval{From: st.From, To: st.To})
			}
		}
	}
	return out
}

// CostPerHour is what the fleet running now costs per hour.
func (c *Controller) CostPerHour() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0.0
	for _, n := range c.nodes {
		switch {
		case n.rec.RunningAt.IsZero() || n.rec.State == planner.StateGone:
		case !n.rec.Warm.StoppedAt.IsZero():
			total += c.pricing.StoppedHourly()
		default:
			total += c.pricing.RunningHourly(n.rec.Type, n.rec.Spot)
		}
	}
	return total
}

// CostReport builds the report over [from, to) from the controller's records.
func (c *Controller) CostReport(ctx context.Context, stats cost.CallStats, from, to time.Time) (cost.Report, error) {
	return cost.Build(ctx, CostNodes(c.Nodes()), stats, c.Pricing(), from, to, c.clock.Now())
}

// CostHandler serves the report of this controller's nodes (cost.Handler).
func (c *Controller) CostHandler(stats cost.CallStats) http.Handler {
	fleet := func(context.Context) ([]cost.Node, error) { return CostNodes(c.Nodes()), nil }
	return cost.Handler(fleet, stats, c.Pricing, c.clock.Now, c.log)
}

// Pricing is the controller's price table now: the configured one with the
// latest spot prices. The budget cap, CostPerHour and the cost report all
// read it.
func (c *Controller) Pricing() cost.Pricing {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pricing
}

// SetSpotPrices replaces the spot prices ($/h per instance type) of the
// price table's region, as the cloud's price history reports them.
// Configured spot prices stay for types the cloud did not price.
func (c *Controller) SetSpotPrices(prices map[string]float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pricing = c.pricing.WithSpot(prices)
}
