// Command controller is elastidial's control center: the campaign REST API,
// the node-facing XML-RPC tier, the scaler and the cost reports, in one
// binary.
//
//	controller serve    run the control center
//	controller token    create an API token for the REST API
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

// command is one subcommand. flags, when set, declares the command's own
// flags beside the common configuration; run reads them from fs.
type command struct {
	summary string
	run     func(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, log *slog.Logger) error
	flags   func(fs *flag.FlagSet)
}

// commands maps each subcommand to its implementation; each file registers
// its own.
var commands = map[string]command{}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: controller <command> [flags]\n\ncommands:")
	for _, name := range sortedCommands() {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'controller <command> -h' for its flags.")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		usage(stderr)
		return flag.ErrHelp
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("controller "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	cfg, err := LoadConfig(fs, args[1:], getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	return cmd.run(ctx, cfg, fs, stdout, log)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func sortedCommands() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
