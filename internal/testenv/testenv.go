// Package testenv starts and finds the real servers tests need: memcached
// and PostgreSQL. The test command (scripts/test) installs them; a test that
// needs one fails under CI when it is missing and skips elsewhere, so that a
// quick `go test ./pkg` works on a bare laptop while CI never silently skips.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// Missing skips the test, or fails it when running under CI, where every
// dependency must be present.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("ELASTIDIAL_REQUIRE_DEPS") != "" {
		t.Fatalf("%s is required under CI but not available; run scripts/test", what)
	}
	t.Skipf("%s not available; run scripts/test to install it", what)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Memcached is a memcached server owned by one test.
type Memcached struct {
	Addr string
	t    testing.TB
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// StartMemcached starts a private memcached on a free loopback port and
// stops it when the test ends.
func StartMemcached(t testing.TB) *Memcached {
	t.Helper()
	if _, err := exec.LookPath("memcached"); err != nil {
		Missing(t, "memcached")
	}
	port := FreePort(t)
	m := &Memcached{Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t, port: port}
	m.Start()
	t.Cleanup(m.Kill)
	return m
}

// Start (re)starts the server on the same address and waits until it accepts
// connections.
func (m *Memcached) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	args := []string{"-l", "127.0.0.1", "-p", fmt.Sprint(m.port), "-U", "0", "-m", "64", "-c", "4096"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command("memcached", args...)
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start memcached: %v", err)
	}
	m.cmd = cmd
	waitTCP(m.t, m.Addr)
}

// Kill stops the server at once, as a crash would.
func (m *Memcached) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

func waitTCP(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s did not come up: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PostgresDSN returns the DSN of a fresh, empty database on the PostgreSQL
// server named by ELASTIDIAL_TEST_POSTGRES (a DSN of a database the test may
// CREATE DATABASE from; scripts/test starts one). The database is dropped
// when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("ELASTIDIAL_TEST_POSTGRES")
	if base == "" {
		Missing(t, "PostgreSQL (ELASTIDIAL_TEST_POSTGRES)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return withDatabase(base, name)
}

// withDatabase swaps the database of a key=value or URL DSN.
func withDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		rest := dsn
		q := ""
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			rest, q = rest[:i], rest[i:]
		}
		scheme := rest[:strings.Index(rest, "://")+3]
		hostPart := rest[len(scheme):]
		if i := strings.IndexByte(hostPart, '/'); i >= 0 {
			hostPart = hostPart[:i]
		}
		return scheme + hostPart + "/" + db + q
	}
	var parts []string
	for _, f := range strings.Fields(dsn) {
		if !strings.HasPrefix(f, "dbname=") {
			parts = append(parts, f)
		}
	}
	return strings.Join(append(parts, "dbname="+db), " ")
}

// Postgres is a PostgreSQL server owned by one test, for tests that stop
// or restart the server itself (the shared one of ELASTIDIAL_TEST_POSTGRES
// serves every package at once).
type Postgres struct {
	DSN  string
	t    testing.TB
	bin  string   // the folder of initdb and pg_ctl
	data string   // the cluster's folder
	as   []string // runs a command as the postgres user when we are root
	opts string   // the server's options
	log  string   // the server's log file
}

// StartPostgres creates a cluster in a temporary folder, starts it on a
// free loopback port and stops it when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		Missing(t, "PostgreSQL's server (initdb, pg_ctl)")
	}
	sort.Strings(bins) // the newest last (Debian's versions are two digits)
	dir, err := os.MkdirTemp("", "elastidial-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Postgres{t: t, bin: filepath.Dir(bins[len(bins)-1]), data: filepath.Join(dir, "data"), log: filepath.Join(dir, "log")}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the server runs as postgres.
		if err := exec.Command("chown", "postgres", dir).Run(); err != nil {
			t.Fatalf("chown %s to postgres: %v", dir, err)
		}
		p.as = []string{"runuser", "-u", "postgres", "--"}
	}
	port := FreePort(t)
	p.opts = fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", dir, port)
	p.pg("initdb", "-D", p.data, "-U", "postgres", "-A", "trust", "--no-sync")
	p.pg("pg_ctl", "-D", p.data, "-l", p.log, "-w", "-o", p.opts, "start")
	t.Cleanup(func() {
		if err := p.run("pg_ctl", "-D", p.data, "-m", "immediate", "stop"); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	p.DSN = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
	return p
}

// Restart stops the server (fast: open connections are ended, as by an
// operator's restart or a failover) and starts it again.
func (p *Postgres) Restart() {
	p.t.Helper()
	// The log keeps the server's output off pg_ctl's, which we read to
	// its end.
	p.pg("pg_ctl", "-D", p.data, "-l", p.log, "-m", "fast", "-w", "-o", p.opts, "restart")
}

// pg runs one of PostgreSQL's programs and fails the test if it fails.
func (p *Postgres) pg(name string, args ...string) {
	p.t.Helper()
	if err := p.run(name, args...); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Postgres) run(name string, args ...string) error {
	argv := append(append(append([]string{}, p.as...), filepath.Join(p.bin, name)), args...)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}
