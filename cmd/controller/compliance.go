package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/elastidial/elastidial/campaign/sqlstore"
)

func init() {
	commands["compliance"] = command{summary: "verify the per-attempt compliance record, or export one campaign's as JSON lines",
		args: "verify | export", config: []string{"config", "data", "db"}, run: compliance, flags: func(fs *flag.FlagSet) {
			fs.String("campaign", "", "the campaign's `ID` (verify: default every campaign; export: required)")
		}}
}

// compliance verifies campaigns' hash-chained compliance records, or
// exports one as JSON lines for a regulator or a lawyer.
func compliance(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, _ *slog.Logger) error {
	args := fs.Args()
	if len(args) != 1 || (args[0] != "verify" && args[0] != "export") {
		return errors.New("compliance: want 'controller compliance verify [-campaign ID]' or 'controller compliance export -campaign ID'")
	}
	id := fs.Lookup("campaign").Value.String()
	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	if args[0] == "export" {
		if id == "" {
			return errors.New("compliance export: -campaign is required")
		}
		return store.ExportCompliance(ctx, id, stdout)
	}
	ids := []string{id}
	if id == "" {
		if ids, err = store.ComplianceCampaigns(ctx); err != nil {
			return err
		}
	}
	var broken []error
	for _, id := range ids {
		n, err := store.VerifyCompliance(ctx, id)
		if err != nil {
			broken = append(broken, err)
			fmt.Fprintf(stdout, "%s  BROKEN after %d records: %v\n", id, n, err)
			continue
		}
		fmt.Fprintf(stdout, "%s  ok  %d records\n", id, n)
	}
	if len(broken) > 0 {
		return fmt.Errorf("compliance: %d of %d campaigns' records were altered: %w", len(broken), len(ids), errors.Join(broken...))
	}
	return nil
}
