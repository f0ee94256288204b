// Package sim replays a demand trace through the scaler under a virtual
// clock, against a simulated EC2 with realistic boot times, and reports what
// it cost beside three references: the oracle (a computed lower bound),
// static peak provisioning, and a plain reactive target-tracking policy.
//
// The elastidial policy is not a model of the scaler: it is the scaler,
// controller.Controller, with its planner and node lifecycle, driven tick by
// tick. Simulated nodes register and heartbeat through the same methods the
// XML-RPC tier calls.
package sim

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Change is one row of a trace: from At on, Campaign wants Calls
// concurrent calls. Announced, when before At, is when the controller
// learns of it (a scheduled start); otherwise it is a surprise.
type Change struct {
	At        time.Duration
	Campaign  string
	Calls     int
	Announced time.Duration
}

// Trace is a demand trace: step changes per campaign, in time order.
type Trace struct {
	Name    string
	Changes []Change
	End     time.Duration
}

// ReadTrace parses a trace CSV with the header
// seconds,campaign,calls[,announced_seconds]. Lines starting with # are
// comments; a last row may set the end with an empty campaign.
func ReadTrace(name string, r io.Reader) (*Trace, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	t := &Trace{Name: name}
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", name, err)
	}
	want := []string{"seconds", "campaign", "calls"}
	if len(header) < 3 || !slices.Equal(header[:3], want) || (len(header) == 4 && header[3] != "announced_seconds") || len(header) > 4 {
		return nil, fmt.Errorf("trace %s: header must be seconds,campaign,calls[,announced_seconds], got %s", name, strings.Join(header, ","))
	}
	var last time.Duration
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("trace %s: %w", name, err)
		}
		if len(rec) < 3 || len(rec) > 4 {
			return nil, fmt.Errorf("trace %s:%d: want 3 or 4 fields, got %d", name, line, len(rec))
		}
		sec, err := strconv.ParseFloat(rec[0], 64)
		if err != nil || sec < 0 {
			return nil, fmt.Errorf("trace %s:%d: seconds %q is not a non-negative number", name, line, rec[0])
		}
		at := time.Duration(sec * float64(time.Second))
		if at < last {
			return nil, fmt.Errorf("trace %s:%d: time goes backwards (%s after %s)", name, line, at, last)
		}
		last = at
		if rec[1] == "" {
			t.End = at
			continue
		}
		calls, err := strconv.Atoi(rec[2])
		if err != nil || calls < 0 || calls > 1_000_000 {
			return nil, fmt.Errorf("trace %s:%d: calls %q is not a whole number from 0 to 1000000", name, line, rec[2])
		}
		c := Change{At: at, Campaign: rec[1], Calls: calls, Announced: at}
		if len(rec) == 4 && rec[3] != "" {
			a, err := strconv.ParseFloat(rec[3], 64)
			if err != nil || a < 0 || a > sec {
				return nil, fmt.Errorf("trace %s:%d: announced_seconds %q must be a time at or before seconds", name, line, rec[3])
			}
			c.Announced = time.Duration(a * float64(time.Second))
		}
		t.Changes = append(t.Changes, c)
	}
	if len(t.Changes) == 0 {
		return nil, fmt.Errorf("trace %s: no rows", name)
	}
	if t.End < last {
		t.End = last + time.Hour
	}
	return t, nil
}

// WriteCSV writes the trace in the format ReadTrace reads.
func (t *Trace) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\nseconds,campaign,calls,announced_seconds\n", t.Name)
	for _, c := range t.Changes {
		ann := ""
		if c.Announced < c.At {
			ann = strconv.FormatFloat(c.Announced.Seconds(), 'f', -1, 64)
		}
		fmt.Fprintf(bw, "%s,%s,%d,%s\n", strconv.FormatFloat(c.At.Seconds(), 'f', -1, 64), c.Campaign, c.Calls, ann)
	}
	fmt.Fprintf(bw, "%s,,,\n", strconv.FormatFloat(t.End.Seconds(), 'f', -1, 64))
	return bw.Flush()
}

// demand replays a trace second by second.
type demand struct {
	t     *Trace
	next  int
	calls map[string]int
}

func newDemand(t *Trace) *demand { return &demand{t: t, calls: map[string]int{}} }

// advance applies every change up to at and returns the total wanted.
func (d *demand) advance(at time.Duration) int {
	for d.next < len(d.t.Changes) && d.t.Changes[d.next].At <= at {
		c := d.t.Changes[d.next]
		d.calls[c.Campaign] = c.Calls
		d.next++
	}
	total := 0
	for _, n := range d.calls {
		total += n
	}
	return total
}

// upcoming lists changes announced by at that have not happened yet.
func (d *demand) upcoming(at time.Duration) []Change {
	var out []Change
	for _, c := range d.t.Changes[d.next:] {
		if c.Announced <= at && c.At > at {
			out = append(out, c)
		}
		if c.At > at+2*time.Hour {
			break
		}
	}
	return out
}
