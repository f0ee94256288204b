package testenv

import (
	"database/sql"
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
