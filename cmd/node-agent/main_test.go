package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
