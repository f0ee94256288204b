package amiimages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unit reads a systemd unit's [Service] settings, key → values.
func unit(t *testing.T, name string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Service]" && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestUnitsKeepSecretsOffCommandLines: ps shows every process's command
// line to every local user, so no unit puts a secret there.
func TestUnitsKeepSecretsOffCommandLines(t *testing.T) {
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) < 3 {
		t.Fatalf("only %d units", len(units))
	}
	for _, u := range units {
		for _, exec := range unit(t, filepath.Base(u))["ExecStart"] {
			up := strings.ToUpper(exec)
			if strings.Contains(up, "SECRET") || strings.Contains(up, "PASSWORD") || strings.Contains(up, "TOKEN") {
				t.Errorf("%s: a secret on the command line: %s", u, exec)
			}
		}
	}
}

// TestUnitsLeastPrivilege: the agent is not root and may write only its
// state, the audio and recordings folders and the folder of the trunks it
// writes for PJSIP; every unit has a tight umask.
func TestUnitsLeastPrivilege(t *testing.T) {
	agent := unit(t, "node-agent.service")
	for k, want := range map[string]string{
		"User": "elastidial", "UMask": "0027", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"CapabilityBoundingSet": "", "SupplementaryGroups": "asterisk",
		"ReadWritePaths": "/var/lib/elastidial /var/lib/asterisk/sounds/elastidial /var/spool/asterisk/elastidial-recordings /etc/asterisk/elastidial",
	} {
		if got := agent[k]; len(got) != 1 || got[0] != want {
			t.Errorf("node-agent.service %s=%q, want %q", k, got, want)
		}
	}
	for name, umask := range map[string]string{"asterisk.service": "0027", "elastidial-first-boot.service": "0077"} {
		if got := unit(t, name)["UMask"]; len(got) != 1 || got[0] != umask {
			t.Errorf("%s UMask=%q, want %s", name, got, umask)
		}
	}
	b, _ := os.ReadFile("scripts/provision.sh")
	if !strings.Contains(string(b), "useradd --system --home /var/lib/elastidial") {
		t.Error("provision.sh does not create the agent's user")
	}
}
