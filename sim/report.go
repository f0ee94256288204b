package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Policies are the simulated policies, in report order.
var Policies = []string{"elastidial", "elastidial-cold", "reactive", "reactive-warm", "static"}

// Compare runs every policy on a trace and puts the two oracles first: the
// floor (a true lower bound) and the realistic oracle (median boots).
func Compare(t *Trace, s Settings) ([]Result, error) {
	out := []Result{Floor(t, s), Oracle(t, s)}
	for _, p := range Policies {
		r, err := Run(t, s, p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// WriteTable prints results as an aligned table, cost also as a multiple
// of the realistic oracle's and of the floor's.
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\tpolicy\tcost $\t× oracle\t× floor\tnode-hours\twarm pool $\tlead $\twarm starts\tunserved\tunserved floor\tdropped by scale-in\tlost to failures\tlaunches\tterminations\tlaunch→terminate <10m\tpeak nodes\t")
	oracle, floor := map[string]float64{}, map[string]float64{}
	for _, r := range rs {
		switch r.Policy {
		case "oracle":
			oracle[r.Trace] = r.Cost
		case "floor":
			floor[r.Trace] = r.Cost
		}
	}
	ratio := func(c, o float64) string {
		if o > 0 {
			return fmt.Sprintf("%.2f", c/o)
		}
		return "-"
	}
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t%.1f\t%.3f\t%.3f\t%d\t%.2f%%\t%.2f%%\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t\n", r.Trace, r.Policy, r.Cost, ratio(r.Cost, oracle[r.Trace]), ratio(r.Cost, floor[r.Trace]), r.NodeHours,
			r.PoolCost, r.LeadCost, r.Starts, 100*r.UnservedShare, 100*r.FloorUnservedShare, r.DroppedByScaleIn, r.LostToFailures, r.Launches, r.Terminations, r.ShortLived, r.PeakNodes)
	}
	return tw.Flush()
}

// WriteJSON prints results as a JSON array.
func WriteJSON(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}

// WriteSVG plots one run: demand and ready capacity (calls, left axis) and
// fleet cost per hour (right axis) over time.
func WriteSVG(w io.Writer, r Result) error {
	const W, H, pad = 900.0, 320.0, 50.0
	if len(r.Series) == 0 {
		return fmt.Errorf("run %s/%s has no series to plot", r.Trace, r.Policy)
	}
	maxCalls, maxCost := 1.0, 0.01
	for _, s := range r.Series {
		maxCalls = max(maxCalls, float64(s.Demand), float64(s.Ready))
		maxCost = max(maxCost, s.CostPerH)
	}
	end := r.Series[len(r.Series)-1].At.Seconds()
	x := func(sec float64) float64 { return pad + (W-2*pad)*sec/max(end, 1) }
	y := func(v, top float64) float64 { return H - pad - (H-2*pad)*v/top }
	line := func(val func(Sample) float64, top float64, colour, dash string) string {
		var b strings.Builder
		for i, s := range r.Series {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(s.At.Seconds()), y(val(s), top))
		}
		return fmt.Sprintf(`<polyline fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="%s" points="%s"/>`, colour, dash, b.String())
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", W, H)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="20" font-size="13">%s — %s: $%.2f, peak %d nodes, unserved %.2f%%</text>`+"\n", pad, r.Trace, r.Policy, r.Cost, r.PeakNodes, 100*r.UnservedShare)
	fmt.Fprintf(w, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`+"\n", pad, H-pad, W-pad, H-pad)
	fmt.Fprintln(w, line(func(s Sample) float64 { return float64(s.Ready) }, maxCalls, "#16a34a", ""))
	fmt.Fprintln(w, line(func(s Sample) float64 { return float64(s.Demand) }, maxCalls, "#2563eb", ""))
	fmt.Fprintln(w, line(func(s Sample) float64 { return s.CostPerH }, maxCost, "#dc2626", "4 3"))
	fmt.Fprintf(w, `<text x="%.0f" y="%.0f">%.0f calls</text><text x="%.0f" y="%.0f" text-anchor="end">$%.2f/h</text>`+"\n", 4.0, pad, maxCalls, W-4, pad, maxCost)
	fmt.Fprintf(w, `<text x="%.0f" y="%.0f">0</text><text x="%.0f" y="%.0f" text-anchor="end">%.0f h</text>`+"\n", pad, H-pad+14, W-pad, H-pad+14, end/3600)
	fmt.Fprintf(w, `<text x="%.0f" y="%.0f" fill="#2563eb">demand</text><text x="%.0f" y="%.0f" fill="#16a34a">ready capacity</text><text x="%.0f" y="%.0f" fill="#dc2626">cost per hour</text>`+"\n",
		pad, H-12, pad+70, H-12, pad+180, H-12)
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}
