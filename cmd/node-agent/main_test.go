package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/internal/cli"
)

func TestParseFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"ELASTIDIAL_CONTROLLER":     "http://ctl:8080",
		"ELASTIDIAL_CLUSTER_SECRET": "s",
		"ELASTIDIAL_CAPACITY":       "40",
		"ELASTIDIAL_AGI_LISTEN":     "127.0.0.1:0",
	}
	o, err := parse([]string{"-capacity", "60", "-simulate"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.controller != "http://ctl:8080" || o.capacity != 60 || o.agiAddr != "127.0.0.1:0" || !o.simulate {
		t.Errorf("flags over env: %+v", o)
	}
	env["ELASTIDIAL_CAPACITY"] = "many"
	delete(env, "ELASTIDIAL_CLUSTER_SECRET")
	_, err = parse(nil, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "ELASTIDIAL_CAPACITY") || !strings.Contains(err.Error(), "ELASTIDIAL_CLUSTER_SECRET") {
		t.Errorf("bad env: got %v", err)
	}
}

// TestSecretsNeverFlags: the cluster and AMI secrets come from the
// environment or a file, never the command line.
func TestSecretsNeverFlags(t *testing.T) {
	env := map[string]string{"ELASTIDIAL_CONTROLLER": "http://ctl:8080", "ELASTIDIAL_CLUSTER_SECRET": "s"}
	for _, f := range []string{"-secret", "-ami-secret"} {
		if _, err := parse([]string{f, "hunter2"}, func(k string) string { return env[k] }); err == nil {
			t.Errorf("%s was accepted on the command line", f)
		}
	}
	file := filepath.Join(t.TempDir(), "ami.secret")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	env["ELASTIDIAL_AMI_SECRET"] = "from-env"
	o, err := parse([]string{"-ami-secret-file", file}, func(k string) string { return env[k] })
	if err != nil || o.secret != "s" || o.amiSecret != "from-file" {
		t.Fatalf("secret %q, AMI secret %q, err %v", o.secret, o.amiSecret, err)
	}
	o, err = parse(nil, func(k string) string { return env[k] })
	if err != nil || o.amiSecret != "from-env" {
		t.Fatalf("AMI secret from the environment: %q %v", o.amiSecret, err)
	}
}

// TestHelp: -h describes the agent, every flag with a placeholder naming
// what it takes, and the environment it reads; it is not an error.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-capacity", "5", "-h"}} {
		if _, err := parse(args, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: %v, want flag.ErrHelp", args, err)
		}
	}
	var b bytes.Buffer
	printHelp(&b)
	help := b.String()
	for _, want := range []string{"usage: node-agent [flags]", "registers with\nthe controller", "-controller URL", "-capacity SLOTS",
		"-sim-answer SHARE", "-sim-ring DURATION", "ELASTIDIAL_CLUSTER_SECRET", "ELASTIDIAL_AMI_SECRET", "ELASTIDIAL_<FLAG>"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	fs, _ := flagSet(new(options))
	fs.VisitAll(func(f *flag.Flag) {
		if cli.Generic(f) {
			t.Errorf("-%s: placeholder %q names a type, not what it takes", f.Name, cli.Placeholder(f))
		}
	})
}

func TestFlagsAnywhereAndStrayArguments(t *testing.T) {
	env := map[string]string{"ELASTIDIAL_CLUSTER_SECRET": "s"}
	o, err := parse([]string{"-simulate", "-controller", "http://ctl:8080", "-capacity=7"}, func(k string) string { return env[k] })
	if err != nil || o.capacity != 7 || !o.simulate {
		t.Fatalf("%+v %v", o, err)
	}
	_, err = parse([]string{"-controller", "http://ctl:8080", "serve"}, func(k string) string { return env[k] })
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), `unexpected argument "serve"`) {
		t.Errorf("stray argument: %v", err)
	}
	_, err = parse([]string{"-colour", "red"}, func(k string) string { return env[k] })
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-colour") {
		t.Errorf("unknown flag: %v", err)
	}
}
