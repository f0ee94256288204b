package controller

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/internal/sqldialect"
)

// Store keeps what a restarted controller must not forget: every node it
// knows (state, drain deadline, the launch it came from, billing times) and
// every launch intent, written before the cloud is asked, so a crash between
// asking and recording is retried with the same idempotency token instead of
// launching twice.
//
// It works on SQLite (driver "sqlite", modernc.org/sqlite) and PostgreSQL
// (driver "pgx"); the tables are created on open.
type Store struct {
	db       *sql.DB
	postgres bool
}

// NodeRecord is one node row.
type NodeRecord struct {
	ID            string // instance id
	State         NodeState
	LaunchToken   string // "" for an adopted instance
	Type          string
	Zone          string
	Spot          bool
	PrivateIP     string
	Capacity      int
	LaunchedAt    time.Time // launch asked (or first seen, adopted)
	RunningAt     time.Time // billing starts; zero until the cloud says running
	ReadyAt       time.Time
	DrainDeadline time.Time
	DrainReason   string
	GoneAt        time.Time // billing ends
}

// LaunchIntent is a launch asked for and not yet recorded as done.
type LaunchIntent struct {
	Token     string
	Count     int
	CreatedAt time.Time
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS elastidial_nodes (
		id TEXT PRIMARY KEY,
		state TEXT NOT NULL,
		launch_token TEXT NOT NULL,
		instance_type TEXT NOT NULL,
		zone TEXT NOT NULL,
		spot INTEGER NOT NULL,
		private_ip TEXT NOT NULL,
		capacity INTEGER NOT NULL,
		launched_at BIGINT NOT NULL,
		running_at BIGINT NOT NULL,
		ready_at BIGINT NOT NULL,
		drain_deadline BIGINT NOT NULL,
		drain_reason TEXT NOT NULL,
		gone_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS elastidial_launches (
		token TEXT PRIMARY KEY,
		count INTEGER NOT NULL,
		created_at BIGINT NOT NULL,
		done INTEGER NOT NULL)`,
}

// OpenStore creates the tables if needed. driver is "sqlite" or "pgx".
func OpenStore(ctx context.Context, db *sql.DB, driver string) (*Store, error) {
	s := &Store{db: db}
	switch driver {
	case "sqlite":
	case "pgx", "postgres":
		s.postgres = true
	default:
		return nil, fmt.Errorf("open node store: unsupported driver %q (want sqlite or pgx)", driver)
	}
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("open node store: create tables: %w", err)
		}
	}
	return s, nil
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	return sqldialect.Dollar(query)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PutNode inserts or replaces a node row.
func (s *Store) PutNode(ctx context.Context, n NodeRecord) error {
	if n.ID == "" {
		return errors.New("put node: empty id")
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_nodes
		(id, state, launch_token, instance_type, zone, spot, private_ip, capacity,
		 launched_at, running_at, ready_at, drain_deadline, drain_reason, gone_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET state=excluded.state, launch_token=excluded.launch_token,
		 instance_type=excluded.instance_type, zone=excluded.zone, spot=excluded.spot,
		 private_ip=excluded.private_ip, capacity=excluded.capacity, launched_at=excluded.launched_at,
		 running_at=excluded.running_at, ready_at=excluded.ready_at, drain_deadline=excluded.drain_deadline,
		 drain_reason=excluded.drain_reason, gone_at=excluded.gone_at`),
		n.ID, string(n.State), n.LaunchToken, n.Type, n.Zone, b2i(n.Spot), n.PrivateIP, n.Capacity,
		unixNano(n.LaunchedAt), unixNano(n.RunningAt), unixNano(n.ReadyAt), unixNano(n.DrainDeadline), n.DrainReason, unixNano(n.GoneAt))
	if err != nil {
		return fmt.Errorf("put node %s: %w", n.ID, err)
	}
	return nil
}

// Nodes lists every node row, gone ones included (the cost ledger bills them).
func (s *Store) Nodes(ctx context.Context) ([]NodeRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, state, launch_token, instance_type, zone, spot, private_ip, capacity,
		launched_at, running_at, ready_at, drain_deadline, drain_reason, gone_at FROM elastidial_nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []NodeRecord
	for rows.Next() {
		var n NodeRecord
		var state string
		var spot int
		var la, ra, rd, dd, ga int64
		if err := rows.Scan(&n.ID, &state, &n.LaunchToken, &n.Type, &n.Zone, &spot, &n.PrivateIP, &n.Capacity,
			&la, &ra, &rd, &dd, &n.DrainReason, &ga); err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		n.State, n.Spot = NodeState(state), spot != 0
		n.LaunchedAt, n.RunningAt, n.ReadyAt, n.DrainDeadline, n.GoneAt = fromNano(la), fromNano(ra), fromNano(rd), fromNano(dd), fromNano(ga)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// AddIntent records a launch before the cloud is asked.
func (s *Store) AddIntent(ctx context.Context, in LaunchIntent) error {
	if in.Token == "" || in.Count <= 0 {
		return fmt.Errorf("add launch intent: token %q count %d", in.Token, in.Count)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_launches (token, count, created_at, done) VALUES (?,?,?,0)`),
		in.Token, in.Count, unixNano(in.CreatedAt))
	if err != nil {
		return fmt.Errorf("add launch intent %s: %w", in.Token, err)
	}
	return nil
}

// FinishIntent marks a launch as recorded (or abandoned).
func (s *Store) FinishIntent(ctx context.Context, token string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE elastidial_launches SET done=1 WHERE token=?`), token); err != nil {
		return fmt.Errorf("finish launch intent %s: %w", token, err)
	}
	return nil
}

// OpenIntents lists launches asked for and not finished, oldest first.
func (s *Store) OpenIntents(ctx context.Context) ([]LaunchIntent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT token, count, created_at FROM elastidial_launches WHERE done=0 ORDER BY created_at, token`)
	if err != nil {
		return nil, fmt.Errorf("list launch intents: %w", err)
	}
	defer rows.Close()
	var out []LaunchIntent
	for rows.Next() {
		var in LaunchIntent
		var at int64
		if err := rows.Scan(&in.Token, &in.Count, &at); err != nil {
			return nil, fmt.Errorf("list launch intents: %w", err)
		}
		in.CreatedAt = fromNano(at)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list launch intents: %w", err)
	}
	return out, nil
}
