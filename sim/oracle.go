package sim

import (
	"math"
	"time"
)

// The two oracles know the whole trace in advance.
//
//   - Floor is a true lower bound on what serving every second of demand
//     can cost: each second bills exactly the nodes that second needs,
//     with no boot, no billing minimum and no spare. No policy that serves
//     all demand can cost less, however lucky its boots.
//   - Oracle is the realistic reference: the cheapest schedule when every
//     boot takes the model's median. A policy whose boots come in under the
//     median may beat it by a little; that is luck, not a broken bound.

// Floor is the true lower bound on the cost of serving the trace.
func Floor(t *Trace, s Settings) Result {
	s = s.withDefaults()
	d := newDemand(t)
	var nodeSec, peak int
	for i := range int(t.End/time.Second) + 1 {
		n := int(math.Ceil(float64(d.advance(time.Duration(i)*time.Second)) / float64(s.Slots)))
		nodeSec += n
		peak = max(peak, n)
	}
	r := Result{Trace: t.Name, Policy: "floor", NodeHours: float64(nodeSec) / 3600, PeakNodes: peak}
	r.Cost = r.NodeHours * s.Cloud.PricePerHour
	return r
}

// Oracle is the realistic reference: the cheapest schedule that serves
// every second of demand, knowing the trace, when every boot takes the
// model's median. Nodes are interchangeable, so the schedule decomposes
// into layers (layer k is up whenever demand needs k nodes); each layer
// starts a node a median boot before it is needed, and across a gap either
// keeps it running or stops it and boots another, whichever costs less.
// Billing is per second with the minimum, boot time included.
func Oracle(t *Trace, s Settings) Result {
	s = s.withDefaults()
	boot := s.Cloud.BootMedian
	// needed[i]: nodes needed in second i.
	n := int(t.End/time.Second) + 1
	needed := make([]int, n)
	d := newDemand(t)
	peak := 0
	for i := range n {
		needed[i] = int(math.Ceil(float64(d.advance(time.Duration(i)*time.Second)) / float64(s.Slots)))
		peak = max(peak, needed[i])
	}
	var billed time.Duration
	launches := 0
	for k := 1; k <= peak; k++ {
		var run time.Duration // billed time of the instance now alive in this layer
		alive, lastEnd := false, 0
		flush := func() {
			if alive {
				billed += max(run, s.Cloud.MinBilled)
			}
		}
		for i := 0; i < n; {
			if needed[i] < k {
				i++
				continue
			}
			j := i
			for j < n && needed[j] >= k {
				j++
			}
			span := time.Duration(j-i) * time.Second
			gap := time.Duration(i-lastEnd) * time.Second
			switch {
			case !alive:
				run, alive = boot+span, true
				launches++
			case gap <= boot:
				run += gap + span // bridging the gap costs less than a new boot
			default:
				flush()
				run = boot + span
				launches++
			}
			lastEnd = j
			i = j
		}
		flush()
	}
	r := Result{Trace: t.Name, Policy: "oracle", NodeHours: billed.Hours(), Launches: launches, Terminations: launches, PeakNodes: peak}
	r.Cost = r.NodeHours * s.Cloud.PricePerHour
	return r
}
