package amiimages

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/internal/testenv"
)

// TestPackerTemplateValidates runs Debian's packer on the node template
// (validate needs no AWS account).
func TestPackerTemplateValidates(t *testing.T) {
	packer, err := exec.LookPath("packer")
	if err != nil {
		testenv.Missing(t, "packer")
	}
	agent := filepath.Join(t.TempDir(), "node-agent")
	os.WriteFile(agent, nil, 0o755)
	cmd := exec.Command(packer, "validate", "-var", "asterisk_sha256="+strings.Repeat("0", 64), "-var", "agent_binary="+agent, ".")
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_CACHE_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("packer validate: %v\n%s", err, out)
	}
	// And it catches a broken template.
	dir := t.TempDir()
	b, _ := os.ReadFile("node.pkr.hcl")
	broken := strings.Replace(string(b), "instance_type = var.instance_type", "instance_typo = var.instance_type", 1)
	if broken == string(b) {
		t.Fatal("could not break the template")
	}
	os.WriteFile(filepath.Join(dir, "node.pkr.hcl"), []byte(broken), 0o644)
	bad := exec.Command(packer, "validate", "-var", "asterisk_sha256=0", "-var", "agent_binary="+agent, dir)
	bad.Env = cmd.Env
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("packer validated a broken template:\n%s", out)
	}
}

// TestScriptsPassShellcheck checks every provisioning and boot script.
func TestScriptsPassShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		testenv.Missing(t, "shellcheck")
	}
	scripts, _ := filepath.Glob("scripts/*.sh")
	if len(scripts) < 2 {
		t.Fatalf("only %d scripts", len(scripts))
	}
	if out, err := exec.Command(sc, append([]string{"-s", "sh", "-S", "style"}, scripts...)...).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// TestFirstBootNeverExecutesUserData: user data is parsed line by line
// into an allow-list of keys; it is never sourced or evaluated as is.
func TestFirstBootNeverExecutesUserData(t *testing.T) {
	b, _ := os.ReadFile("scripts/first-boot.sh")
	s := string(b)
	for _, bad := range []string{"eval ", "md user-data | sh", "md user-data | bash", ". <(md user-data"} {
		if strings.Contains(s, bad) {
			t.Errorf("first-boot.sh runs user data: %q", bad)
		}
	}
	if !strings.Contains(s, "ELASTIDIAL_CONTROLLER_URL=* |") {
		t.Error("first-boot.sh does not allow-list user data keys")
	}
}
