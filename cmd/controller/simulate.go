package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/sim"
)

func init() {
	commands["simulate"] = command{summary: "replay demand traces (shipped ones by name, or CSV files) through the scaler and compare costs",
		args: "[TRACE...]", config: []string{"node-slots", "min-nodes", "max-nodes", "budget", "spare-nodes"}, run: simulate, flags: func(fs *flag.FlagSet) {
			fs.String("format", "table", "`FORMAT`: table or json")
			fs.String("svg", "", "write a plot of each elastidial run into this `DIR`")
			fs.Uint64("seed", 1, "random `SEED` for boot times and failures")
			fs.String("warm", "", "warm-pool sweep: comma-separated warm-start `MEDIANS`, e.g. 10s,20s,30s,45s (each trace, beside its floor and the reference warm pool)")
		}}
}

// simulate replays traces: the shipped ones by name, or CSV files.
//
//	controller simulate [-format table|json] [-svg DIR] [-seed N] [-warm 10s,20s,...] [TRACE...]
//
// The warm pool ops configure is -warm-pool-min (0: each trace's largest
// unannounced rise, what ops who know their spikes would set); the
// reference warm pool gets the same size.
func simulate(_ context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, _ *slog.Logger) error {
	format := fs.Lookup("format").Value.String()
	svgDir := fs.Lookup("svg").Value.String()
	seed, _ := strconv.ParseUint(fs.Lookup("seed").Value.String(), 10, 64)
	if format != "table" && format != "json" {
		return fmt.Errorf("simulate: -format %q: want table or json", format)
	}
	names := fs.Args()
	if len(names) == 0 {
		names = []string{"ramp-day", "diurnal-week", "spikes", "noisy", "election-50h"}
	}
	var medians []time.Duration
	if v := fs.Lookup("warm").Value.String(); v != "" {
		for _, f := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d <= 0 {
				return fmt.Errorf("simulate: -warm %q: %q is not a positive duration such as 15s", v, f)
			}
			medians = append(medians, d)
		}
	}
	pricing, err := cfg.Pricing()
	if err != nil {
		return err
	}
	s := sim.Settings{Slots: cfg.NodeSlots, Cloud: sim.CloudModel{Seed: seed}, Pricing: pricing, InstanceType: cfg.PricedType(), WarmPool: cfg.WarmPoolMin}
	s.Plan.MinNodes, s.Plan.MaxNodes, s.Plan.BudgetPerHour, s.Plan.SpareNodes = cfg.MinNodes, cfg.MaxNodes, cfg.BudgetPerH, cfg.SpareNodes
	var all []sim.Result
	type sweep struct {
		Rows      []sim.WarmRow `json:"rows"`
		BreakEven float64       `json:"break_even_seconds"`
	}
	var sweeps []sweep
	for _, n := range names {
		tr, err := loadTrace(n)
		if err != nil {
			return err
		}
		rs, err := sim.Compare(tr, s)
		if err != nil {
			return fmt.Errorf("simulate %s: %w", n, err)
		}
		all = append(all, rs...)
		if len(medians) > 0 {
			rows, be, err := sim.WarmSweep(tr, s, medians)
			if err != nil {
				return fmt.Errorf("simulate %s: warm sweep: %w", n, err)
			}
			sweeps = append(sweeps, sweep{rows, be.Seconds()})
		}
		if svgDir != "" {
			for _, r := range rs {
				if r.Policy != "elastidial" {
					continue
				}
				f, err := os.Create(filepath.Join(svgDir, r.Trace+".svg"))
				if err != nil {
					return err
				}
				err = sim.WriteSVG(f, r)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
			}
		}
	}
	if format == "json" {
		if len(medians) > 0 {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				Results []sim.Result `json:"results"`
				Warm    []sweep      `json:"warm_sweep"`
			}{all, sweeps})
		}
		return sim.WriteJSON(stdout, all)
	}
	if err := sim.WriteTable(stdout, all); err != nil {
		return err
	}
	for _, sw := range sweeps {
		fmt.Fprintln(stdout)
		if err := sim.WriteSweep(stdout, sw.Rows, time.Duration(sw.BreakEven*float64(time.Second))); err != nil {
			return err
		}
	}
	return nil
}

func loadTrace(name string) (*sim.Trace, error) {
	if gen, ok := sim.Shipped[name]; ok {
		return gen(), nil
	}
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("simulate: %q is neither a shipped trace (%s) nor a file", name, strings.Join([]string{"ramp-day", "diurnal-week", "spikes", "noisy", "election-50h"}, ", "))
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sim.ReadTrace(filepath.Base(name), f)
}
