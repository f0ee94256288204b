package realasterisk

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The node's own configuration on a real Asterisk: every module that
// modules.conf loads is running (chan_pjsip once declined to load for want
// of res_pjsip_pubsub, and no call could be placed), the trunk registers
// with the carrier, and the timing source works.
func TestNodeConfigurationOnRealAsterisk(t *testing.T) {
	root := Root(t)
	carrier := StartCarrier(t, root)
	node := StartNode(t, root, NodeOptions{Carrier: carrier})

	conf, err := os.ReadFile(filepath.Join(RepoDir(), "ami-images/asterisk/modules.conf"))
	if err != nil {
		t.Fatal(err)
	}
	loaded := node.CLI(t, "module show")
	for _, m := range regexp.MustCompile(`(?m)^\s*load\s*=\s*(\S+)\.so`).FindAllStringSubmatch(string(conf), -1) {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m[1]) + `\.so\s.*Running`).MatchString(loaded) {
			t.Errorf("module %s is not running", m[1])
		}
	}
	if out := node.CLI(t, "core show channeltypes"); !strings.Contains(out, "PJSIP") {
		t.Errorf("no PJSIP channel type:\n%s", out)
	}
	if out := node.CLI(t, "timing test"); !strings.Contains(out, "timerfd") {
		t.Errorf("timing test does not use timerfd:\n%s", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := node.CLI(t, "pjsip show registrations")
		if regexp.MustCompile(`\sRegistered\s`).MatchString(out) { // not "Unregistered"
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trunk not registered with the carrier in 20s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if node.RunUser == "" && os.Geteuid() == 0 {
		t.Error("the node's Asterisk runs as root; on a node it runs as its own user")
	}
}
