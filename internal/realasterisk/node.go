package realasterisk

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Render runs the image's render-asterisk-conf.sh on src with env (the
// variables first-boot.sh would set) and returns the rendered folder.
func Render(t testing.TB, src string, env map[string]string) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "conf")
	cmd := exec.Command("sh", filepath.Join(RepoDir(), "ami-images/scripts/render-asterisk-conf.sh"), src, dest)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render %s: %v\n%s", src, err, out)
	}
	return dest
}

// Carrier is the second Asterisk: the node's SIP trunk and its callees.
type Carrier struct {
	*Asterisk
	Host           string // host:port of its SIP transport
	User, Password string // what the node authenticates and registers with
	// More accounts on the carrier with the same password: SecondUser's
	// calls reach the same callees; JammedUser's are all refused as
	// congested (SIP 503).
	SecondUser, JammedUser string
}

// StartCarrier starts the carrier on a free loopback port.
func StartCarrier(t testing.TB, root string) *Carrier {
	t.Helper()
	c := &Carrier{Host: "127.0.0.1:" + strconv.Itoa(FreePort(t)), User: "node", Password: "carrier-secret-1",
		SecondUser: "node-b", JammedUser: "node-jammed"}
	conf := Render(t, filepath.Join(RepoDir(), "internal/realasterisk/carrier"), map[string]string{
		"PUBLIC_IPV4": "127.0.0.1", "VPC_CIDR": "127.0.0.0/8",
		"ELASTIDIAL_TRUNK_NAME": "unused", "ELASTIDIAL_TRUNK_HOST": "unused", "ELASTIDIAL_AMI_SECRET": "unused",
		"ELASTIDIAL_TRUNK_USER": c.User, "ELASTIDIAL_TRUNK_PASSWORD": c.Password, "ELASTIDIAL_SIP_BIND": c.Host,
	})
	c.Asterisk = Start(t, root, Options{Name: "carrier", Conf: conf, AsRoot: true})
	return c
}

// Node is the node's Asterisk on the image's configuration.
type Node struct {
	*Asterisk
	AMIAddr, AMIUser, AMISecret string
	AGIAddr                     string // where its dialplan sends FastAGI
	SIPAddr                     string
	Trunk                       string // the trunk's endpoint name
	// TrunksConf is the file its pjsip.conf includes for the
	// controller's trunks (the agent's -pjsip-trunks).
	TrunksConf string
}

// NodeOptions set up a node.
type NodeOptions struct {
	Carrier *Carrier
	Trunk   string // endpoint name; "carrier"
	// Sounds is the folder the agent syncs campaign audio into; Asterisk
	// reads it as sounds/elastidial.
	Sounds string
	// Speech is the folder the agent fetches synthesised speech into;
	// Asterisk reads it as sounds/elastidial-tts.
	Speech string
}

// StartNode renders ami-images/asterisk as first-boot.sh does, for a node
// whose public address is loopback, and starts it.
func StartNode(t testing.TB, root string, o NodeOptions) *Node {
	t.Helper()
	if o.Trunk == "" {
		o.Trunk = "carrier"
	}
	n := &Node{AMIAddr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), AMIUser: "elastidial", AMISecret: "ami-secret-for-tests",
		AGIAddr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), SIPAddr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), Trunk: o.Trunk}
	_, amiPort, _ := net.SplitHostPort(n.AMIAddr)
	conf := Render(t, filepath.Join(RepoDir(), "ami-images/asterisk"), map[string]string{
		"PUBLIC_IPV4": "127.0.0.1", "VPC_CIDR": "127.0.0.0/8",
		"ELASTIDIAL_TRUNK_NAME": o.Trunk, "ELASTIDIAL_TRUNK_HOST": o.Carrier.Host,
		"ELASTIDIAL_TRUNK_USER": o.Carrier.User, "ELASTIDIAL_TRUNK_PASSWORD": o.Carrier.Password,
		"ELASTIDIAL_AMI_SECRET": n.AMISecret, "ELASTIDIAL_SIP_BIND": n.SIPAddr,
		"ELASTIDIAL_AMI_BIND": "127.0.0.1", "ELASTIDIAL_AMI_PORT": amiPort, "ELASTIDIAL_AGI_ADDR": n.AGIAddr,
	})
	sounds := map[string]string{}
	if o.Sounds != "" {
		sounds["elastidial"] = o.Sounds
	}
	if o.Speech != "" {
		sounds["elastidial-tts"] = o.Speech
	}
	n.Asterisk = Start(t, root, Options{Name: "node", Conf: conf, Sounds: sounds})
	// As first-boot.sh lays it out: the agent writes, Asterisk's group
	// reads (the folder's group passes to the files).
	n.TrunksConf = filepath.Join(n.Dir, "etc", "elastidial", "pjsip_trunks.conf")
	if err := os.Mkdir(filepath.Dir(n.TrunksConf), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(n.TrunksConf), 0o2750); err != nil {
		t.Fatal(err)
	}
	if n.RunUser != "" {
		chownTree(t, filepath.Join(n.Dir, "etc"), n.RunUser, "elastidial")
	}
	return n
}

// LiveCalls returns how many channels the carrier holds for each dialled
// number right now.
func (c *Carrier) LiveCalls(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(c.CLI(t, "core show channels concise"), "\n") {
		f := strings.Split(line, "!")
		if len(f) > 8 && f[8] != "" {
			out[f[8]]++
		}
	}
	return out
}
