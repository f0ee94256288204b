package sqlstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestSQLiteFilesPrivate: the database and its WAL hold contacts' numbers
// and token hashes, so only the controller's user may read them, whatever
// the umask, and an existing world-readable file is tightened.
func TestSQLiteFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	setup(t, s, 3, nil) // writes go through the WAL
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want -rw-------", filepath.Base(p), fi.Mode().Perm())
		}
	}
	s.Close()
	os.Chmod(path, 0o644)
	s, err = Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened: %v, want -rw-------", fi.Mode().Perm())
	}
}
