package repocheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoBinariesCommitted: no compiled program and no file over 2 MB is
// tracked; binaries are built, never committed (.gitignore lists where
// builds land).
func TestNoBinariesCommitted(t *testing.T) {
	root, _ := filepath.Abs("../..")
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	magic := map[string][]byte{"ELF": []byte("\x7fELF"), "Mach-O": {0xcf, 0xfa, 0xed, 0xfe}, "Mach-O universal": {0xca, 0xfe, 0xba, 0xbe}, "Windows PE": []byte("MZ")}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 50 {
		t.Fatalf("git lists %d files; the check is broken", len(files))
	}
	for _, f := range files {
		path := filepath.Join(root, f)
		st, err := os.Lstat(path)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		if st.Size() > 2<<20 {
			t.Errorf("%s is %d bytes: large files do not belong in git", f, st.Size())
		}
		head := make([]byte, 4)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := fh.Read(head)
		fh.Close()
		for kind, m := range magic {
			if n >= len(m) && bytes.Equal(head[:len(m)], m) {
				t.Errorf("%s is a compiled program (%s): build it, do not commit it", f, kind)
			}
		}
	}
}
