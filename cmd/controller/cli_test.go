package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/internal/cli"
)

// TestHelpPerCommand: 'controller CMD -h' prints only CMD's flags, each
// with a placeholder naming what it takes, and exits 0.
func TestHelpPerCommand(t *testing.T) {
	env := bareEnv(t)
	for _, name := range sortedCommands() {
		cmd := commands[name]
		for _, args := range [][]string{{name, "-h"}, {"help", name}, {name, "x", "--help"}} {
			var out bytes.Buffer
			err := run(context.Background(), args, &out, io.Discard, env)
			if !errors.Is(err, flag.ErrHelp) || exitCode(err) != 0 {
				t.Errorf("%q: err %v, exit %d; want help and 0", args, err, exitCode(err))
			}
			help := out.String()
			if !strings.HasPrefix(help, "usage: controller "+name) || !strings.Contains(help, cmd.summary) {
				t.Errorf("%q: help does not open with the command:\n%s", args, help)
			}
			if strings.Contains(help, " value\n") {
				t.Errorf("%q: a placeholder reads 'value':\n%s", args, help)
			}
			// The flags listed are the command's own: nothing of serve's
			// unless the command offers it.
			listed := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1)
			fs := newFlagSet(name, cmd)
			loadConfig(fs, nil, env, cmd.config)
			var want, got []string
			fs.VisitAll(func(f *flag.Flag) {
				want = append(want, f.Name)
				if f.Name != "ec2-spot" && cli.Placeholder(f) == "" {
					if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
						t.Errorf("%s -%s: no placeholder", name, f.Name)
					}
				}
				if cli.Generic(f) {
					t.Errorf("%s -%s: placeholder %q names a type, not what it takes", name, f.Name, cli.Placeholder(f))
				}
			})
			for _, m := range listed {
				got = append(got, m[1])
			}
			if !slices.Equal(got, want) {
				t.Errorf("%q lists %v, want %v", args, got, want)
			}
			if name != "serve" && strings.Contains(help, "-ec2-subnets") {
				t.Errorf("%s -h shows serve's flags:\n%s", name, help)
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out, io.Discard, env); exitCode(err) != 0 || !strings.Contains(out.String(), "demo") {
		t.Errorf("controller -h: %v\n%s", err, out.String())
	}
	if err := run(context.Background(), nil, io.Discard, io.Discard, env); exitCode(err) != 2 {
		t.Errorf("no command: exit %d, want 2", exitCode(err))
	}
	err := run(context.Background(), []string{"report", "cost", "-colour", "red"}, io.Discard, io.Discard, env)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "-colour") || !strings.Contains(err.Error(), "controller report -h") {
		t.Errorf("unknown flag: exit %d, %v", exitCode(err), err)
	}
}

// TestFlagsAfterArguments: the README's commands put flags after the
// arguments, as people type them.
func TestFlagsAfterArguments(t *testing.T) {
	env := bareEnv(t)
	db := filepath.Join(t.TempDir(), "r.db")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"report", "cost", "-format", "csv", "-db", db}, &out, io.Discard, env); err != nil || !strings.HasPrefix(out.String(), "section,key,value") {
		t.Fatalf("report cost -format csv: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"token", "alice", "-role", "viewer", "-db", db}, &out, io.Discard, env); err != nil {
		t.Fatalf("token NAME -role: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"token", "list", "-db", db}, &out, io.Discard, env); err != nil || !strings.Contains(out.String(), "viewer") {
		t.Fatalf("token list: %v\n%s", err, out.String())
	}
}

// bareEnv is the environment of a user who set nothing but HOME, a fresh
// folder: a command that ignored its -db or -data would write there, not
// into the tester's own data folder (os.UserHomeDir) nor the source tree.
func bareEnv(t *testing.T) func(string) string {
	home := t.TempDir()
	return func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}
}
