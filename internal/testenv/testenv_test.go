package testenv

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p@127.0.0.1:5432/t1?sslmode=disable"},
		{"postgres://127.0.0.1:5432", "postgres://127.0.0.1:5432/t1"},
		{"host=/tmp port=5433 user=postgres dbname=postgres", "host=/tmp port=5433 user=postgres dbname=t1"},
	} {
		if got := withDatabase(tc.in, "t1"); got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMemcachedStartsAndStops(t *testing.T) {
	m := StartMemcached(t)
	m.Kill()
	m.Start()
	waitTCP(t, m.Addr)
}

func TestPostgresDatabaseIsFreshAndUsable(t *testing.T) {
	dsn := PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("fresh database has %d tables", n)
	}
}

func TestWatchTreeNamesWhatAppeared(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"keep.go", "testdata/old.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := WatchTree(dir)
	if err := check(); err != nil {
		t.Fatalf("nothing written, yet: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "elastidial.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "recordings", "c1"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := check()
	if err == nil || !strings.Contains(err.Error(), "elastidial.db") || !strings.Contains(err.Error(), "recordings") || strings.Contains(err.Error(), "c1") {
		t.Fatalf("check = %v, want it to name elastidial.db and recordings, not what recordings holds", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "elastidial.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "recordings")); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Errorf("a removed file is not a write into the tree: %v", err)
	}
}

// TestPostgresRestarts: a test's own server serves, restarts, and serves
// the same data again through the same pool.
func TestPostgresRestarts(t *testing.T) {
	pg := StartPostgres(t)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE kept (n INT); INSERT INTO kept VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	pg.Restart()
	var n int
	var err2 error
	for try := 0; try < 3; try++ { // the pool's old connections fail once each
		if err2 = db.QueryRow(`SELECT n FROM kept`).Scan(&n); err2 == nil {
			break
		}
	}
	if err2 != nil || n != 7 {
		t.Fatalf("after the restart: %d, %v", n, err2)
	}
}
