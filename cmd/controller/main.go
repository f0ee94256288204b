// Command controller is elastidial's control center: the campaign REST API,
// the node-facing XML-RPC tier, the scaler and the cost reports, in one
// binary.
//
//	controller serve       run the control center
//	controller demo        run the whole system here with a sample campaign
//	controller token       create, list or revoke API tokens
//	controller report      print the cost report
//	controller compliance  verify or export the compliance record
//	controller simulate    replay demand traces through the scaler
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
	"strings"
	"syscall"

	"github.com/elastidial/elastidial/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	servePprof(os.Getenv("ELASTIDIAL_DEBUG_PPROF"))
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if code := exitCode(err); code != 0 {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(code)
	}
}

// exitCode maps run's error to the process's status: 0 for success and
// for help asked for, 2 for a bad command line, 1 for a failure.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

// errUsage marks a command line that names no command or bad flags.
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e usageError) Error() string   { return e.msg }
func (e usageError) Is(t error) bool { return t == errUsage }

// command is one subcommand.
type command struct {
	summary string   // one line for the command list and the top of -h
	args    string   // its positional arguments, for -h: "NAME | list | revoke ID"
	config  []string // the configuration settings it offers as flags ("config" for -config); nil: all
	run     func(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, log *slog.Logger) error
	flags   func(fs *flag.FlagSet) // its own flags, beside the configuration's
}

// commands maps each subcommand to its implementation; each file registers
// its own.
var commands = map[string]command{}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: controller <command> [arguments] [flags]\n\ncommands:")
	for _, name := range sortedCommands() {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nFlags go before or after the arguments. Every flag also reads ELASTIDIAL_<FLAG>\nfrom the environment (-node-slots: ELASTIDIAL_NODE_SLOTS).\nRun 'controller <command> -h' for a command's flags.")
}

// commandHelp is a command's -h: what it does, its arguments, and only
// its own flags.
func commandHelp(w io.Writer, name string, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: controller %s", name)
	if cmd.args != "" {
		fmt.Fprintf(w, " %s", cmd.args)
	}
	fmt.Fprintf(w, " [flags]\n\n%s\n\nflags:\n", cmd.summary)
	cli.PrintFlags(w, fs)
}

// newFlagSet declares a command's flags: its own, then the configuration
// settings it offers (registered by loadConfig).
func newFlagSet(name string, cmd command) *flag.FlagSet {
	fs := flag.NewFlagSet("controller "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // help and errors are reported by run
	fs.Usage = func() {}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return fs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		usage(stderr)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if cmd, ok := commands[args[1]]; ok {
				fs := newFlagSet(args[1], cmd)
				loadConfig(fs, []string{"-h"}, func(string) string { return "" }, cmd.config)
				commandHelp(stdout, args[1], cmd, fs)
				return flag.ErrHelp
			}
		}
		usage(stdout)
		return flag.ErrHelp
	}
	name := args[0]
	cmd, ok := commands[name]
	if !ok {
		usage(stderr)
		return usageError{fmt.Sprintf("unknown command %q", name)}
	}
	fs := newFlagSet(name, cmd)
	cfg, err := loadConfig(fs, args[1:], getenv, cmd.config)
	if errors.Is(err, flag.ErrHelp) {
		commandHelp(stdout, name, cmd, fs)
		return err
	}
	if err != nil && isFlagError(err) {
		return usageError{fmt.Sprintf("%s: %v (run 'controller %s -h' for its flags)", name, err, name)}
	}
	if err != nil {
		return err
	}
	paths := []string{cfg.DB} // what token, report and compliance use
	if cmd.config == nil {
		paths = append(paths, cfg.Audio, cfg.Recordings, cfg.SecretFile, cfg.LocalDir) // serve
	}
	if cmd.config == nil || slices.Contains(cmd.config, "db") {
		if err := cfg.MakeDataDir(paths...); err != nil {
			return err
		}
	}
	log := newLogger(stderr, cfg.LogLevel)
	return cmd.run(ctx, cfg, fs, stdout, log)
}

// isFlagError reports whether err is the flag package's complaint about
// the command line rather than a setting's value.
func isFlagError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "flag provided but not defined") || strings.HasPrefix(msg, "flag needs an argument") ||
		strings.HasPrefix(msg, "invalid value") || strings.HasPrefix(msg, "invalid boolean")
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
