package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/elastidial/elastidial/sim"
)

func init() {
	commands["simulate"] = command{summary: "replay demand traces (shipped ones by name, or CSV files) through the scaler and compare costs",
		args: "[TRACE...]", config: []string{"node-slots", "min-nodes", "max-nodes", "budget"}, run: simulate, flags: func(fs *flag.FlagSet) {
			fs.String("format", "table", "`FORMAT`: table or json")
			fs.String("svg", "", "write a plot of each elastidial run into this `DIR`")
			fs.Uint64("seed", 1, "random `SEED` for boot times and failures")
		}}
}

// simulate replays traces: the shipped ones by name, or CSV files.
//
//	controller simulate [-format table|json] [-svg DIR] [-seed N] [TRACE...]
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
	s := sim.Settings{Slots: cfg.NodeSlots, Cloud: sim.CloudModel{Seed: seed}}
	s.Plan.MinNodes, s.Plan.MaxNodes, s.Plan.BudgetPerHour = cfg.MinNodes, cfg.MaxNodes, cfg.BudgetPerH
	var all []sim.Result
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
		return sim.WriteJSON(stdout, all)
	}
	return sim.WriteTable(stdout, all)
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
