package sim

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WarmRow is one warm-start median of a sweep: elastidial with its warm
// pool beside the floor of its run, the reference warm pool, and
// elastidial without a pool.
type WarmRow struct {
	Trace      string  `json:"trace"`
	WarmMedian float64 `json:"warm_start_median_seconds"`
	Oracle     float64 `json:"oracle_cost"` // realistic oracle
	Elastidial Result  `json:"elastidial"`
	Reference  Result  `json:"reactive_warm"`
	Cold       Result  `json:"elastidial_cold"`
	// PerSavedMinute is what the pool costs per call-minute it serves
	// that the cold fleet would not have: the extra cost over the cold
	// run divided by the unserved call-minutes saved. Ops compare it with
	// what an unserved call-minute costs them.
	PerSavedMinute float64 `json:"pool_cost_per_saved_call_minute"`
}

// WarmSweep is the warm pool's report: for each warm-start median, the
// runs above on trace t with the same seed. BreakEven is the warm-start
// median at which the pool saves no demand over launching (interpolated
// between the medians run, extrapolated past the last).
func WarmSweep(t *Trace, s Settings, medians []time.Duration) (rows []WarmRow, breakEven time.Duration, err error) {
	cold, err := Run(t, s, "elastidial-cold")
	if err != nil {
		return nil, 0, err
	}
	for _, m := range medians {
		sm := s
		sm.Cloud.WarmMedian, sm.Cloud.WarmTail = m, 0
		row := WarmRow{Trace: t.Name, WarmMedian: m.Seconds(), Oracle: Oracle(t, sm).Cost, Cold: cold}
		if row.Elastidial, err = Run(t, sm, "elastidial"); err != nil {
			return nil, 0, err
		}
		if row.Reference, err = Run(t, sm, "reactive-warm"); err != nil {
			return nil, 0, err
		}
		if saved := (cold.UnservedCallSec - row.Elastidial.UnservedCallSec) / 60; saved > 0 {
			row.PerSavedMinute = (row.Elastidial.Cost - cold.Cost) / saved
		}
		rows = append(rows, row)
	}
	// Break-even: where the warm run's unserved share meets the cold one's.
	gap := func(r WarmRow) float64 { return r.Cold.UnservedShare - r.Elastidial.UnservedShare }
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		if gap(b) <= 0 || i == len(rows)-1 {
			if gap(a) == gap(b) {
				break
			}
			x := a.WarmMedian + gap(a)*(b.WarmMedian-a.WarmMedian)/(gap(a)-gap(b))
			breakEven = time.Duration(x * float64(time.Second)).Round(time.Second)
			break
		}
	}
	return rows, breakEven, nil
}

// WriteSweep prints a sweep as a table.
func WriteSweep(w io.Writer, rows []WarmRow, breakEven time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\twarm start median\tunserved\tfloor\tcost $\t× oracle\tpool $\t$ per saved call-min\treactive+warm pool unserved\treactive+warm pool cost $\tno pool unserved\tno pool cost $\t")
	for _, r := range rows {
		e := r.Elastidial
		fmt.Fprintf(tw, "%s\t%.0f s\t%.3f%%\t%.3f%%\t%.2f\t%.3f\t%.3f\t%.5f\t%.2f%%\t%.2f\t%.2f%%\t%.2f\t\n", r.Trace, r.WarmMedian,
			100*e.UnservedShare, 100*e.FloorUnservedShare, e.Cost, e.Cost/r.Oracle, e.PoolCost, r.PerSavedMinute,
			100*r.Reference.UnservedShare, r.Reference.Cost, 100*r.Cold.UnservedShare, r.Cold.Cost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if breakEven > 0 {
		_, err := fmt.Fprintf(w, "break-even: the pool stops saving demand at a warm-start median of about %s\n", breakEven)
		return err
	}
	return nil
}
