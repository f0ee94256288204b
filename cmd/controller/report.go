package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/controller/cost"
)

func init() {
	commands["report"] = command{summary: "print what the fleet cost over a period: per hour, per campaign, per answered call",
		args: "cost", config: []string{"config", "data", "db", "price-region", "instance-type"}, run: report, flags: func(fs *flag.FlagSet) {
			fs.String("from", "", "period start, an RFC 3339 `TIME` such as 2026-11-22T09:00:00Z (default: 24 hours before -to)")
			fs.String("to", "", "period end, an RFC 3339 `TIME` (default: now)")
			fs.String("format", "table", "`FORMAT`: table, csv or json")
		}}
}

// report prints what the fleet cost over a period, from the store the
// control center keeps: per hour, per campaign (by call-seconds), per
// answered call and per connected minute, beside static peak provisioning.
func report(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, _ *slog.Logger) error {
	if args := fs.Args(); len(args) != 1 || args[0] != "cost" {
		return fmt.Errorf("report: want 'controller report cost [flags]'")
	}
	now := time.Now().UTC()
	to, err := parseTime("to", fs.Lookup("to").Value.String(), now)
	if err != nil {
		return err
	}
	from, err := parseTime("from", fs.Lookup("from").Value.String(), to.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	nodes, err := controller.OpenStore(ctx, store.DB(), store.Driver())
	if err != nil {
		return err
	}
	recs, err := nodes.Nodes(ctx)
	if err != nil {
		return err
	}
	pricing, err := cfg.Pricing()
	if err != nil {
		return err
	}
	r, err := cost.Build(ctx, controller.CostNodes(recs), store, pricing, from, to, now)
	if err != nil {
		return err
	}
	switch f := fs.Lookup("format").Value.String(); f {
	case "table":
		return r.WriteTable(stdout)
	case "csv":
		return r.WriteCSV(stdout)
	case "json":
		return r.WriteJSON(stdout)
	default:
		return fmt.Errorf("report: -format %q: want table, csv or json", f)
	}
}

func parseTime(name, v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, fmt.Errorf("report: -%s %q: want an RFC 3339 time such as 2026-11-22T09:00:00Z", name, v)
	}
	return t, nil
}
