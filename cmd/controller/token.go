package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

func init() {
	commands["token"] = command{
		summary: "create an API token for the REST API (printed once), list them, or revoke one",
		args:    "NAME | list | revoke ID",
		config:  []string{"config", "data", "db"},
		run:     token,
		flags: func(fs *flag.FlagSet) {
			fs.String("role", string(campaign.RoleAdmin), "the new token's `ROLE`: admin, ops, manager or viewer")
			fs.String("campaigns", "", "comma-separated campaign `IDS` a manager or viewer token is limited to (empty: all)")
			fs.Duration("expires", 0, "the new token's lifetime, e.g. 720h (0: never)")
		},
	}
}

// token creates an API token and prints it once, lists tokens, or
// revokes one by id.
func token(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, _ *slog.Logger) error {
	args := fs.Args()
	switch {
	case len(args) == 1 && args[0] == "list":
	case len(args) == 2 && args[0] == "revoke":
	case len(args) == 1 && args[0] != "" && args[0] != "revoke":
	default:
		return errors.New("token: want NAME, 'list' or 'revoke ID', e.g. 'controller token -role ops alice'")
	}
	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	switch args[0] {
	case "list":
		ts, err := store.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCAMPAIGNS\tCREATED\tEXPIRES\tSTATE")
		for _, t := range ts {
			state := "live"
			switch {
			case !t.RevokedAt.IsZero():
				state = "revoked " + t.RevokedAt.Format(time.RFC3339)
			case !t.Live(now):
				state = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, orDash(strings.Join(t.Campaigns, ",")),
				t.CreatedAt.Format(time.RFC3339), orDash(formatTime(t.ExpiresAt)), state)
		}
		return tw.Flush()
	case "revoke":
		t, err := store.RevokeToken(ctx, args[1], now)
		if err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		fmt.Fprintf(stdout, "revoked %s (%s, %s)\n", t.ID, t.Name, t.Role)
		return nil
	}
	t := campaign.Token{Name: args[0], Role: campaign.Role(fs.Lookup("role").Value.String())}
	if c := fs.Lookup("campaigns").Value.String(); c != "" {
		t.Campaigns = strings.Split(c, ",")
	}
	if d := fs.Lookup("expires").Value.(flag.Getter).Get().(time.Duration); d > 0 {
		t.ExpiresAt = now.Add(d)
	} else if d < 0 {
		return errors.New("token: -expires must not be negative")
	}
	tok, _, err := store.CreateAPIToken(ctx, t, now)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}
