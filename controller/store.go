package controller

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/sqldialect"
	"github.com/elastidial/elastidial/nodeapi"
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
	State         planner.NodeState
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
	DrainReason   planner.DrainReason
	GoneAt        time.Time // billing ends

	// What the node said last, written by whichever controller took its
	// heartbeat, so the leader plans on every node's load.
	Epoch         int64                    // registrations so far; a node token carries the one it was issued for
	LastHeartbeat time.Time                // zero before the first
	Load          nodeapi.HeartbeatRequest // the last heartbeat
	CapacityCmd   int                      // slots the leader tells the node to offer; 0 = unchanged
	Rev           int64                    // row revision: every write must name the one it read

	Warm WarmRecord // the warm pool's times: stops and starts
}

// LaunchIntent is a launch asked for and not yet recorded as done.
type LaunchIntent struct {
	Token     string
	Count     int
	CreatedAt time.Time
	// Zone is where the plan wanted the nodes (a preference the cloud
	// honours when it has capacity there). Not stored: a retry after a
	// restart lands where the cloud has room.
	Zone string
	// OnDemand: launched on-demand from a cloud that launches spot (the
	// plan's Action.OnDemand); stored, so a retry asks for the same.
	OnDemand bool
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
	// The scaler's leadership: one row, held until expires, with a fencing
	// token that grows by one at every change of holder.
	`CREATE TABLE IF NOT EXISTS elastidial_leader (
		name TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		token BIGINT NOT NULL,
		expires BIGINT NOT NULL)`,
	// What launches taught about the cloud's capacity (Shortage), as
	// JSON in one row, written under the leader's fence: a new leader
	// resumes it (issue 19).
	`CREATE TABLE IF NOT EXISTS elastidial_shortage (
		name TEXT PRIMARY KEY,
		doc TEXT NOT NULL)`,
}

// nodeColumns are added to elastidial_nodes after its first release: the
// registry moved into the database (issue 15).
var nodeColumns = []struct{ name, def string }{
	{"rev", "BIGINT NOT NULL DEFAULT 1"},
	{"epoch", "BIGINT NOT NULL DEFAULT 0"},
	{"last_hb", "BIGINT NOT NULL DEFAULT 0"},
	{"load", "TEXT NOT NULL DEFAULT ''"},
	{"cap_cmd", "INTEGER NOT NULL DEFAULT 0"},
	{"warm", "TEXT NOT NULL DEFAULT ''"}, // the warm pool (issue 19): WarmRecord as JSON
}

// launchColumns are added to elastidial_launches after its first release.
var launchColumns = []struct{ name, def string }{
	{"on_demand", "INTEGER NOT NULL DEFAULT 0"}, // LaunchIntent.OnDemand (issue 19)
}

// Errors of fenced and revisioned writes.
var (
	// ErrFenced: the write was made under a leadership that is no longer
	// current; a newer leader acts on the fleet now.
	ErrFenced = errors.New("scaler leadership lost (fenced)")
	// ErrNodeChanged: the node's row changed since it was read (another
	// controller took its heartbeat, or the leader moved it); read it again.
	ErrNodeChanged = errors.New("node changed concurrently")
)

// Fence names the leadership a fleet write is made under. The zero Fence
// is for writes any controller may make (a node's registration and
// heartbeats); every write the scaler makes carries its own.
type Fence struct {
	Holder string
	Token  int64
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
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("open node store: %w", err)
	}
	return s, nil
}

// migrate creates the tables and adds later columns, once, even with
// several controllers starting together on one PostgreSQL.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	defer tx.Rollback()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7338031)`); err != nil {
			return fmt.Errorf("create tables: lock: %w", err)
		}
	}
	for _, q := range schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	for _, t := range []struct {
		table string
		cols  []struct{ name, def string }
	}{{"elastidial_nodes", nodeColumns}, {"elastidial_launches", launchColumns}} {
		for _, c := range t.cols {
			var have int
			q := `SELECT COUNT(*) FROM pragma_table_info('` + t.table + `') WHERE name = ?`
			if s.postgres {
				q = `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '` + t.table + `' AND column_name = $1`
			}
			if err := tx.QueryRowContext(ctx, q, c.name).Scan(&have); err != nil {
				return fmt.Errorf("add column %s.%s: %w", t.table, c.name, err)
			}
			if have == 0 {
				if _, err := tx.ExecContext(ctx, `ALTER TABLE `+t.table+` ADD COLUMN `+c.name+` `+c.def); err != nil {
					return fmt.Errorf("add column %s.%s: %w", t.table, c.name, err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	return nil
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

// PutNode inserts or replaces a node row whatever its revision, unfenced:
// for tools and tests. The controllers write through SaveNode.
func (s *Store) PutNode(ctx context.Context, n NodeRecord) error {
	if n.ID == "" {
		return errors.New("put node: empty id")
	}
	load, err := json.Marshal(n.Load)
	if err != nil {
		return fmt.Errorf("put node %s: %w", n.ID, err)
	}
	warm, err := json.Marshal(n.Warm)
	if err != nil {
		return fmt.Errorf("put node %s: %w", n.ID, err)
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_nodes
		(id, state, launch_token, instance_type, zone, spot, private_ip, capacity,
		 launched_at, running_at, ready_at, drain_deadline, drain_reason, gone_at, epoch, last_hb, load, cap_cmd, warm, rev)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1)
		ON CONFLICT (id) DO UPDATE SET state=excluded.state, launch_token=excluded.launch_token,
		 instance_type=excluded.instance_type, zone=excluded.zone, spot=excluded.spot,
		 private_ip=excluded.private_ip, capacity=excluded.capacity, launched_at=excluded.launched_at,
		 running_at=excluded.running_at, ready_at=excluded.ready_at, drain_deadline=excluded.drain_deadline,
		 drain_reason=excluded.drain_reason, gone_at=excluded.gone_at, epoch=excluded.epoch, last_hb=excluded.last_hb,
		 load=excluded.load, cap_cmd=excluded.cap_cmd, warm=excluded.warm, rev=elastidial_nodes.rev+1`),
		n.ID, string(n.State), n.LaunchToken, n.Type, n.Zone, b2i(n.Spot), n.PrivateIP, n.Capacity,
		unixNano(n.LaunchedAt), unixNano(n.RunningAt), unixNano(n.ReadyAt), unixNano(n.DrainDeadline), string(n.DrainReason), unixNano(n.GoneAt),
		n.Epoch, unixNano(n.LastHeartbeat), string(load), n.CapacityCmd, string(warm))
	if err != nil {
		return fmt.Errorf("put node %s: %w", n.ID, err)
	}
	return nil
}

// fenceCond is the SQL condition that holds while f is the current
// leadership; args are its parameters.
func fenceCond(f Fence) (string, []any) {
	if f == (Fence{}) {
		return "1 = 1", nil
	}
	return `EXISTS (SELECT 1 FROM elastidial_leader WHERE name = 'scaler' AND holder = ? AND token = ?)`, []any{f.Holder, f.Token}
}

// SaveNode writes n if its row is still at revision n.Rev (0: the row
// must not exist yet) and, under a non-zero fence, only while that
// leadership is current. On success n.Rev is the row's new revision. A
// lost race is ErrNodeChanged, a lost leadership ErrFenced; neither
// changes anything.
func (s *Store) SaveNode(ctx context.Context, f Fence, n *NodeRecord) error {
	if n.ID == "" {
		return errors.New("save node: empty id")
	}
	load, err := json.Marshal(n.Load)
	if err != nil {
		return fmt.Errorf("save node %s: %w", n.ID, err)
	}
	warm, err := json.Marshal(n.Warm)
	if err != nil {
		return fmt.Errorf("save node %s: %w", n.ID, err)
	}
	cond, fargs := fenceCond(f)
	vals := []any{string(n.State), n.LaunchToken, n.Type, n.Zone, b2i(n.Spot), n.PrivateIP, n.Capacity,
		unixNano(n.LaunchedAt), unixNano(n.RunningAt), unixNano(n.ReadyAt), unixNano(n.DrainDeadline), string(n.DrainReason), unixNano(n.GoneAt),
		n.Epoch, unixNano(n.LastHeartbeat), string(load), n.CapacityCmd, string(warm)}
	var res sql.Result
	if n.Rev == 0 {
		args := append(append([]any{n.ID}, vals...), fargs...)
		res, err = s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_nodes
			(id, state, launch_token, instance_type, zone, spot, private_ip, capacity,
			 launched_at, running_at, ready_at, drain_deadline, drain_reason, gone_at, epoch, last_hb, load, cap_cmd, warm, rev)
			SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER),
			 CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT),
			 CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS TEXT), 1
			WHERE `+cond+` ON CONFLICT (id) DO NOTHING`), args...)
	} else {
		args := append(append(vals, n.ID, n.Rev), fargs...)
		res, err = s.db.ExecContext(ctx, s.q(`UPDATE elastidial_nodes SET state=?, launch_token=?, instance_type=?, zone=?,
			 spot=?, private_ip=?, capacity=?, launched_at=?, running_at=?, ready_at=?, drain_deadline=?, drain_reason=?,
			 gone_at=?, epoch=?, last_hb=?, load=?, cap_cmd=?, warm=?, rev=rev+1
			WHERE id=? AND rev=? AND `+cond), args...)
	}
	if err != nil {
		return fmt.Errorf("save node %s: %w", n.ID, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save node %s: %w", n.ID, err)
	} else if k == 1 {
		n.Rev++
		return nil
	}
	if err := s.checkFence(ctx, f); err != nil {
		return fmt.Errorf("save node %s: %w", n.ID, err)
	}
	return fmt.Errorf("save node %s at revision %d: %w", n.ID, n.Rev, ErrNodeChanged)
}

// checkFence returns ErrFenced unless f is the current leadership (the
// zero Fence always is).
func (s *Store) checkFence(ctx context.Context, f Fence) error {
	if f == (Fence{}) {
		return nil
	}
	var tok int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT token FROM elastidial_leader WHERE name = 'scaler' AND holder = ?`), f.Holder).Scan(&tok)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && tok != f.Token) {
		return ErrFenced
	}
	if err != nil {
		return fmt.Errorf("check leadership: %w", err)
	}
	return nil
}

const nodeSelect = `SELECT id, state, launch_token, instance_type, zone, spot, private_ip, capacity,
		launched_at, running_at, ready_at, drain_deadline, drain_reason, gone_at, epoch, last_hb, load, cap_cmd, warm, rev FROM elastidial_nodes`

func scanNode(sc interface{ Scan(...any) error }) (NodeRecord, error) {
	var n NodeRecord
	var state, load, drain, warm string
	var spot int
	var la, ra, rd, dd, ga, hb int64
	if err := sc.Scan(&n.ID, &state, &n.LaunchToken, &n.Type, &n.Zone, &spot, &n.PrivateIP, &n.Capacity,
		&la, &ra, &rd, &dd, &drain, &ga, &n.Epoch, &hb, &load, &n.CapacityCmd, &warm, &n.Rev); err != nil {
		return n, err
	}
	if warm != "" {
		if err := json.Unmarshal([]byte(warm), &n.Warm); err != nil {
			return n, fmt.Errorf("node %s: warm pool record: %w", n.ID, err)
		}
	}
	n.State, n.Spot, n.DrainReason = planner.NodeState(state), spot != 0, planner.DrainReason(drain)
	n.LaunchedAt, n.RunningAt, n.ReadyAt, n.DrainDeadline, n.GoneAt = fromNano(la), fromNano(ra), fromNano(rd), fromNano(dd), fromNano(ga)
	n.LastHeartbeat = fromNano(hb)
	if load != "" {
		if err := json.Unmarshal([]byte(load), &n.Load); err != nil {
			return n, fmt.Errorf("node %s: load: %w", n.ID, err)
		}
	}
	return n, nil
}

// Node reads one node row; an unknown id is ErrUnknownNode.
func (s *Store) Node(ctx context.Context, id string) (NodeRecord, error) {
	n, err := scanNode(s.db.QueryRowContext(ctx, s.q(nodeSelect+` WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node %s: %w", id, ErrUnknownNode)
	}
	if err != nil {
		return n, fmt.Errorf("read node %s: %w", id, err)
	}
	return n, nil
}

// NodeCheck is what the XML-RPC tier needs of a node on every call it
// takes: its state, the registration its tokens must carry and its
// capacity type.
type NodeCheck struct {
	State planner.NodeState
	Epoch int64
	Spot  bool
}

// NodeCheck reads a node's state, epoch and capacity type, and nothing
// else of its row (its last heartbeat is a JSON document); an unknown id
// is ErrUnknownNode.
func (s *Store) NodeCheck(ctx context.Context, id string) (NodeCheck, error) {
	var n NodeCheck
	var spot int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT state, epoch, spot FROM elastidial_nodes WHERE id = ?`), id).Scan(&n.State, &n.Epoch, &spot)
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node %s: %w", id, ErrUnknownNode)
	}
	if err != nil {
		return n, fmt.Errorf("read node %s: %w", id, err)
	}
	n.Spot = spot != 0
	return n, nil
}

// Nodes lists every node row, gone ones included (the cost ledger bills them).
func (s *Store) Nodes(ctx context.Context) ([]NodeRecord, error) {
	rows, err := s.db.QueryContext(ctx, nodeSelect+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []NodeRecord
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// AddIntent records a launch before the cloud is asked, only while f is
// the current leadership (ErrFenced otherwise).
func (s *Store) AddIntent(ctx context.Context, f Fence, in LaunchIntent) error {
	if in.Token == "" || in.Count <= 0 {
		return fmt.Errorf("add launch intent: token %q count %d", in.Token, in.Count)
	}
	cond, fargs := fenceCond(f)
	onDemand := 0
	if in.OnDemand {
		onDemand = 1
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_launches (token, count, created_at, done, on_demand)
		SELECT CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS BIGINT), 0, CAST(? AS INTEGER) WHERE `+cond),
		append([]any{in.Token, in.Count, unixNano(in.CreatedAt), onDemand}, fargs...)...)
	if err != nil {
		return fmt.Errorf("add launch intent %s: %w", in.Token, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return fmt.Errorf("add launch intent %s: %w", in.Token, ErrFenced)
	}
	return nil
}

// FinishIntent marks a launch as recorded (or abandoned), only while f is
// the current leadership.
func (s *Store) FinishIntent(ctx context.Context, f Fence, token string) error {
	cond, fargs := fenceCond(f)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE elastidial_launches SET done=1 WHERE token=? AND `+cond), append([]any{token}, fargs...)...)
	if err != nil {
		return fmt.Errorf("finish launch intent %s: %w", token, err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		if err := s.checkFence(ctx, f); err != nil {
			return fmt.Errorf("finish launch intent %s: %w", token, err)
		}
	}
	return nil
}

// Lead takes or keeps the scaler's leadership for holder until now+ttl.
// The holder keeps its token while it renews in time; anyone taking the
// row over (the holder's lease expired) gets the next token, which fences
// every write of the one before. ok is false while another holds it.
func (s *Store) Lead(ctx context.Context, holder string, now time.Time, ttl time.Duration) (f Fence, ok bool, err error) {
	if holder == "" {
		return Fence{}, false, errors.New("lead: empty holder")
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_leader (name, holder, token, expires) VALUES ('scaler', '', 0, 0) ON CONFLICT (name) DO NOTHING`)); err != nil {
		return Fence{}, false, fmt.Errorf("lead: %w", err)
	}
	var tok int64
	err = s.db.QueryRowContext(ctx, s.q(`UPDATE elastidial_leader
		SET token = CASE WHEN holder = ? THEN token ELSE token + 1 END, holder = ?, expires = ?
		WHERE name = 'scaler' AND (holder = ? OR expires < ?) RETURNING token`),
		holder, holder, now.Add(ttl).UnixNano(), holder, now.UnixNano()).Scan(&tok)
	if errors.Is(err, sql.ErrNoRows) {
		return Fence{}, false, nil
	}
	if err != nil {
		return Fence{}, false, fmt.Errorf("lead: %w", err)
	}
	return Fence{Holder: holder, Token: tok}, true, nil
}

// Resign gives the leadership up at once (a clean shutdown), so another
// controller need not wait for it to expire.
func (s *Store) Resign(ctx context.Context, f Fence) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE elastidial_leader SET expires = 0 WHERE name = 'scaler' AND holder = ? AND token = ?`), f.Holder, f.Token); err != nil {
		return fmt.Errorf("resign: %w", err)
	}
	return nil
}

// OpenIntents lists launches asked for and not finished, oldest first.
func (s *Store) OpenIntents(ctx context.Context) ([]LaunchIntent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT token, count, created_at, on_demand FROM elastidial_launches WHERE done=0 ORDER BY created_at, token`)
	if err != nil {
		return nil, fmt.Errorf("list launch intents: %w", err)
	}
	defer rows.Close()
	var out []LaunchIntent
	for rows.Next() {
		var in LaunchIntent
		var at, onDemand int64
		if err := rows.Scan(&in.Token, &in.Count, &at, &onDemand); err != nil {
			return nil, fmt.Errorf("list launch intents: %w", err)
		}
		in.CreatedAt, in.OnDemand = fromNano(at), onDemand != 0
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list launch intents: %w", err)
	}
	return out, nil
}

// shortageDoc is Shortage as stored.
type shortageDoc struct {
	SpotUntil int64            `json:"spot_until,omitempty"` // Unix ns
	Zones     map[string]int64 `json:"zones,omitempty"`      // zone → Unix ns
}

// Shortage reads what the leaders recorded about the cloud's capacity
// (the zero Shortage when nothing is).
func (s *Store) Shortage(ctx context.Context) (planner.Shortage, error) {
	var d shortageDoc
	if err := s.handedDoc(ctx, "capacity", &d); err != nil {
		return planner.Shortage{}, fmt.Errorf("read capacity shortage: %w", err)
	}
	out := planner.Shortage{SpotUntil: fromNano(d.SpotUntil)}
	for z, t := range d.Zones {
		if out.Zones == nil {
			out.Zones = map[string]time.Time{}
		}
		out.Zones[z] = fromNano(t)
	}
	return out, nil
}

// SaveShortage records what launches taught about the cloud's capacity,
// only while f is the current leadership (ErrFenced otherwise).
func (s *Store) SaveShortage(ctx context.Context, f Fence, sh planner.Shortage) error {
	d := shortageDoc{SpotUntil: unixNano(sh.SpotUntil)}
	for z, t := range sh.Zones {
		if d.Zones == nil {
			d.Zones = map[string]int64{}
		}
		d.Zones[z] = unixNano(t)
	}
	if err := s.handDoc(ctx, f, "capacity", d); err != nil {
		return fmt.Errorf("save capacity shortage: %w", err)
	}
	return nil
}

// Memory reads the demand memory the last leader planned with (the zero
// Memory when none is kept).
func (s *Store) Memory(ctx context.Context) (planner.Memory, error) {
	var m planner.Memory
	if err := s.handedDoc(ctx, "demand_memory", &m); err != nil {
		return planner.Memory{}, fmt.Errorf("read demand memory: %w", err)
	}
	return m, nil
}

// SaveMemory keeps the demand memory for the next leader, only while f
// is the current leadership (ErrFenced otherwise).
func (s *Store) SaveMemory(ctx context.Context, f Fence, m planner.Memory) error {
	if err := s.handDoc(ctx, f, "demand_memory", m); err != nil {
		return fmt.Errorf("save demand memory: %w", err)
	}
	return nil
}

// handedDoc reads into v the JSON row name of elastidial_shortage, the
// table of what one leader hands the next; v is left as it is when
// there is no such row.
func (s *Store) handedDoc(ctx context.Context, name string, v any) error {
	var doc string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT doc FROM elastidial_shortage WHERE name = ?`), name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(doc), v)
}

// handDoc writes v as the JSON row name of elastidial_shortage, only
// while f is the current leadership (ErrFenced otherwise).
func (s *Store) handDoc(ctx context.Context, f Fence, name string, v any) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	cond, fargs := fenceCond(f)
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO elastidial_shortage (name, doc) SELECT ?, CAST(? AS TEXT) WHERE `+cond+`
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`), append([]any{name, string(doc)}, fargs...)...)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return ErrFenced
	}
	return nil
}
