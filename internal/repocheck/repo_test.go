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

// TestNoDatabasesCommitted: no SQLite store (or its journal) is tracked.
// One was, once: a test ran a command whose -db was ignored, and the store
// it wrote into the package folder was committed with the test.
func TestNoDatabasesCommitted(t *testing.T) {
	root, _ := filepath.Abs("../..")
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	for _, f := range files {
		if isDatabase(f) {
			t.Errorf("%s is a database: tests write theirs under t.TempDir(), and none is committed", f)
			continue
		}
		head := make([]byte, 16)
		fh, err := os.Open(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree, or a link to nowhere
		}
		n, _ := fh.Read(head)
		fh.Close()
		if n == len(head) && string(head) == "SQLite format 3\x00" {
			t.Errorf("%s is a SQLite database whatever its name: none is committed", f)
		}
	}
}

func isDatabase(name string) bool {
	base := strings.ToLower(filepath.Base(name))
	for _, suffix := range []string{".db", ".sqlite", ".sqlite3", ".db-wal", ".db-shm", ".db-journal", ".sqlite-wal", ".sqlite-shm"} {
		if strings.HasSuffix(base, suffix) {
			return true
		}
	}
	return false
}

func TestIsDatabase(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"cmd/controller/elastidial.db", true},
		{"x/store.SQLite", true},
		{"elastidial.db-wal", true},
		{"data.sqlite3", true},
		{"campaign/sqlstore/db.go", false},
		{"docs/dbschema.md", false},
	} {
		if got := isDatabase(tc.name); got != tc.want {
			t.Errorf("isDatabase(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
