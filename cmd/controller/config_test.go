package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return LoadConfig(fs, args, func(k string) string { return env[k] })
}

func TestConfigLayers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "elastidial.conf")
	os.WriteFile(file, []byte("# comment\nmax-nodes = 7\nELASTIDIAL_TICK=2s\nnode-slots=80\n"), 0o600)

	c, err := load(t, []string{"-config", file, "-node-slots", "90"}, map[string]string{
		"ELASTIDIAL_NODE_SLOTS":  "70", // the flag wins over the environment
		"ELASTIDIAL_MAX_NODES":   "9",  // the environment wins over the file
		"ELASTIDIAL_EC2_SUBNETS": "subnet-a, subnet-b,",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeSlots != 90 || c.MaxNodes != 9 || c.Tick != 2*time.Second || c.Listen != ":8080" {
		t.Errorf("got slots=%d max=%d tick=%s listen=%q", c.NodeSlots, c.MaxNodes, c.Tick, c.Listen)
	}
	if strings.Join(c.EC2Subnets, "|") != "subnet-a|subnet-b" {
		t.Errorf("subnets = %q", c.EC2Subnets)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-node-slots", "many"}, nil, "node-slots"},
		{nil, map[string]string{"ELASTIDIAL_TICK": "soon"}, "ELASTIDIAL_TICK"},
		{[]string{"-cloud", "gcp"}, nil, "cloud"},
		{[]string{"-cloud", "ec2"}, nil, "ec2-launch-template"},
		{[]string{"-min-nodes", "5", "-max-nodes", "2"}, nil, "max-nodes"},
		{[]string{"-public-url", "ftp://x"}, nil, "public-url"},
		{[]string{"-audio", "s3://"}, nil, "audio"},
		{[]string{"-log-level", "loud"}, nil, "log-level"},
		{[]string{"-cap-day", "-1"}, nil, "cap-day"},
		{nil, map[string]string{"ELASTIDIAL_CAP_WEEK": "-2"}, "cap-week"},
		{[]string{"-prices", "c6i.large=0.09,c5.large"}, nil, `prices: price entry 2 "c5.large"`},
		{[]string{"-prices", "c6i.large=-1"}, nil, `prices: price entry 1 "c6i.large=-1"`},
		{nil, map[string]string{"ELASTIDIAL_SPOT_PRICES": "eu-west-1/large=0.03"}, `spot-prices: price entry 1`},
		{[]string{"-node-public-ipv4", "static"}, nil, "node-public-ipv4"},
		{[]string{"-ebs-gb-month", "-0.1"}, nil, "ebs-gb-month"},
		{[]string{"-warm-pool-min", "5", "-warm-pool-max", "2"}, nil, "warm-pool-max"},
		{[]string{"-spike-memory", "1s"}, nil, "spike-memory"},
		{[]string{"-spot-call-limit", "3m"}, nil, "spot-call-limit"},
		{nil, map[string]string{"ELASTIDIAL_SPOT_CALL_LIMIT": "-1s"}, "spot-call-limit"},
	} {
		_, err := load(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err = %v, want it to name %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"max-nodes\n", ":1: want KEY=value"},
		{"\n\ncolour=blue\n", ":3: unknown setting \"colour\""},
		{"max-nodes=lots\n", ":1: max-nodes"},
	} {
		file := filepath.Join(dir, "c.conf")
		os.WriteFile(file, []byte(tc.body), 0o600)
		_, err := load(t, []string{"-config", file}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
}

// TestSecretsNeverFlags: a secret on a command line is visible to every
// local user in ps, so secrets come from the environment, the config file
// or a file of their own, never from a flag.
func TestSecretsNeverFlags(t *testing.T) {
	for _, name := range []string{"cluster-secret", "trunk-password"} {
		if _, err := load(t, []string{"-" + name, "hunter2"}, nil); err == nil {
			t.Errorf("-%s was accepted on the command line", name)
		}
	}
	pw := filepath.Join(t.TempDir(), "trunk.pw")
	os.WriteFile(pw, []byte("s3cret-pw\n"), 0o600)
	c, err := load(t, []string{"-trunk-password-file", pw}, map[string]string{"ELASTIDIAL_CLUSTER_SECRET": "cs"})
	if err != nil {
		t.Fatal(err)
	}
	if c.TrunkPassword != "s3cret-pw" || c.ClusterSecret != "cs" {
		t.Errorf("trunk password %q, cluster secret %q", c.TrunkPassword, c.ClusterSecret)
	}
	if _, err := load(t, []string{"-trunk-password-file", filepath.Join(t.TempDir(), "none")}, nil); err == nil || !strings.Contains(err.Error(), "trunk-password-file") {
		t.Errorf("a missing password file: %v", err)
	}
}

// TestDataFolder: serve keeps its state in a data folder, never the
// working folder: -data, ELASTIDIAL_DATA, else the user's data folder;
// a path given on its own wins.
func TestDataFolder(t *testing.T) {
	home := t.TempDir()
	c, err := load(t, nil, map[string]string{"HOME": home})
	data := filepath.Join(home, ".local", "share", "elastidial")
	if err != nil || c.Data != data || c.DB != filepath.Join(data, "elastidial.db") || c.Audio != filepath.Join(data, "audio") ||
		c.Recordings != filepath.Join(data, "recordings") || c.SecretFile != filepath.Join(data, "elastidial.secret") || c.LocalDir != filepath.Join(data, "nodes") {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, _ = load(t, nil, map[string]string{"HOME": home, "XDG_DATA_HOME": "/xdg"})
	if c.DB != "/xdg/elastidial/elastidial.db" {
		t.Errorf("XDG_DATA_HOME: %s", c.DB)
	}
	c, _ = load(t, []string{"-data", "/srv/ed", "-audio", "s3://bucket/prompts"}, map[string]string{"HOME": home})
	if c.DB != "/srv/ed/elastidial.db" || c.Audio != "s3://bucket/prompts" || c.Recordings != "/srv/ed/recordings" {
		t.Errorf("-data with -audio: %+v", c)
	}
	c, _ = load(t, nil, map[string]string{"HOME": home, "ELASTIDIAL_DATA": "/env/ed", "ELASTIDIAL_DB": "postgres://db/x"})
	if c.DB != "postgres://db/x" || c.SecretFile != "/env/ed/elastidial.secret" {
		t.Errorf("environment: %+v", c)
	}

	// serve writes nothing in the working folder: run it from an empty
	// one and look.
	wd := t.TempDir()
	t.Chdir(wd)
	srv := startServe(t)
	if code, body := srv.upload("prompts", "hello.wav", silence(8000, 0.2)); code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	if left, _ := os.ReadDir(wd); len(left) > 0 {
		t.Errorf("serve wrote %s into the working folder", left[0].Name())
	}
}
