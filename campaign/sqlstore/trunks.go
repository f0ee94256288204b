package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// trunkConfig is what nodes need to reach a carrier, kept as JSON in
// trunks.config.
type trunkConfig struct {
	Host     string `json:"host,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Register bool   `json:"register,omitempty"`
}

// PutTrunk creates or updates a trunk. An update that leaves the password
// out keeps the one stored (the API never shows it).
func (s *Store) PutTrunk(ctx context.Context, t campaign.Trunk) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if t.Password == "" && t.Username != "" {
			var doc string
			err := tx.QueryRowContext(ctx, s.q(`SELECT config FROM trunks WHERE name = ?`), t.Name).Scan(&doc)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("put trunk: %w", err)
			}
			var old trunkConfig
			if err == nil && json.Unmarshal([]byte(doc), &old) == nil && old.Username == t.Username {
				t.Password = old.Password
			}
		}
		if err := t.Validate(); err != nil {
			return err
		}
		cfg, _ := json.Marshal(trunkConfig{Host: t.Host, Username: t.Username, Password: t.Password, Register: t.Register})
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO trunks (name, max_channels, max_cps, config) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET max_channels = excluded.max_channels, max_cps = excluded.max_cps, config = excluded.config`), t.Name, t.MaxChannels, t.MaxCPS, string(cfg))
		if err != nil {
			return fmt.Errorf("put trunk: %w", err)
		}
		return nil
	})
}

// DeleteTrunk removes a trunk that no campaign has first in its group,
// and no campaign still to complete has in its group at all; nodes drop
// it with their next configuration.
func (s *Store) DeleteTrunk(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// A campaign's first trunk is kept for its records, even once it
		// completed; a running one may not lose any trunk of its group.
		rows, err := tx.QueryContext(ctx, s.q(`SELECT doc FROM campaigns WHERE status <> ? OR trunk = ?`), campaign.StatusCompleted, name)
		if err != nil {
			return fmt.Errorf("delete trunk: %w", err)
		}
		var users []string
		for rows.Next() {
			var doc string
			var c campaign.Campaign
			if err := rows.Scan(&doc); err != nil {
				rows.Close()
				return fmt.Errorf("delete trunk: %w", err)
			}
			if json.Unmarshal([]byte(doc), &c) == nil && slices.Contains(c.Group(), name) {
				users = append(users, c.ID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("delete trunk: %w", err)
		}
		if len(users) > 0 {
			return fmt.Errorf("%w: trunk %q is in the group of campaign(s) %v; take it out of them first", campaign.ErrConflict, name, users)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM trunks WHERE name = ?`), name)
		if err != nil {
			return fmt.Errorf("delete trunk: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("trunk %q: %w", name, campaign.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM trunk_qualify WHERE trunk = ?`), name); err != nil {
			return fmt.Errorf("delete trunk: %w", err)
		}
		return nil
	})
}

// Trunks lists the trunks by name, with their health now and their
// passwords (for nodes; the API blanks them).
func (s *Store) Trunks(ctx context.Context) ([]campaign.Trunk, error) {
	return s.TrunksAt(ctx, time.Now())
}

// TrunksAt is Trunks with their health at now.
func (s *Store) TrunksAt(ctx context.Context, now time.Time) ([]campaign.Trunk, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, max_channels, max_cps, config, congestion_run, paused_until FROM trunks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list trunks: %w", err)
	}
	var out []campaign.Trunk
	var runs []int
	var paused []int64
	for rows.Next() {
		var t campaign.Trunk
		var doc string
		var run int
		var until int64
		if err := rows.Scan(&t.Name, &t.MaxChannels, &t.MaxCPS, &doc, &run, &until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list trunks: %w", err)
		}
		var cfg trunkConfig
		if err := json.Unmarshal([]byte(doc), &cfg); err != nil {
			rows.Close()
			return nil, fmt.Errorf("trunk %s: corrupt config: %w", t.Name, err)
		}
		t.Host, t.Username, t.Password, t.Register = cfg.Host, cfg.Username, cfg.Password, cfg.Register
		t.HasPassword = cfg.Password != ""
		out = append(out, t)
		runs = append(runs, run)
		paused = append(paused, until)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list trunks: %w", err)
	}
	qual, err := s.qualify(ctx, s.db, now)
	if err != nil {
		return nil, err
	}
	for i := range out {
		q := qual[out[i].Name]
		h := campaign.TrunkHealthOf(runs[i], fromMS(paused[i]), q[0], q[1], now)
		out[i].Health = &h
	}
	return out, nil
}

// qualify counts, per trunk, the nodes whose fresh qualify found it
// reachable ([0]) and unreachable ([1]).
func (s *Store) qualify(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, now time.Time) (map[string][2]int, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT trunk, ok, COUNT(*) FROM trunk_qualify WHERE at_ms > ? GROUP BY trunk, ok`), ms(now.Add(-campaign.QualifyFresh)))
	if err != nil {
		return nil, fmt.Errorf("trunk qualify: %w", err)
	}
	defer rows.Close()
	out := map[string][2]int{}
	for rows.Next() {
		var name string
		var ok, n int
		if err := rows.Scan(&name, &ok, &n); err != nil {
			return nil, fmt.Errorf("trunk qualify: %w", err)
		}
		c := out[name]
		if ok != 0 {
			c[0] += n
		} else {
			c[1] += n
		}
		out[name] = c
	}
	return out, rows.Err()
}

// TrunkConfig returns the trunks nodes configure (those with a host) and a
// version that changes whenever any of them does; "" when there is none.
func (s *Store) TrunkConfig(ctx context.Context) (version string, trunks []campaign.Trunk, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, config FROM trunks WHERE config <> '{}' ORDER BY name`)
	if err != nil {
		return "", nil, fmt.Errorf("trunk config: %w", err)
	}
	defer rows.Close()
	var all []campaign.Trunk
	for rows.Next() {
		var t campaign.Trunk
		var doc string
		var cfg trunkConfig
		if err := rows.Scan(&t.Name, &doc); err != nil {
			return "", nil, fmt.Errorf("trunk config: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &cfg); err != nil {
			return "", nil, fmt.Errorf("trunk %s: corrupt config: %w", t.Name, err)
		}
		t.Host, t.Username, t.Password, t.Register = cfg.Host, cfg.Username, cfg.Password, cfg.Register
		all = append(all, t)
	}
	if err := rows.Err(); err != nil {
		return "", nil, fmt.Errorf("trunk config: %w", err)
	}
	h := sha256.New()
	for _, t := range all {
		if t.Host == "" {
			continue
		}
		t.Health, t.MaxChannels, t.MaxCPS, t.HasPassword = nil, 0, 0, false
		trunks = append(trunks, t)
		b, _ := json.Marshal(t)
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	if len(trunks) == 0 {
		return "", nil, nil
	}
	return hex.EncodeToString(h.Sum(nil))[:16], trunks, nil
}

// ReportQualify records what a node's Asterisk found of each trunk it
// qualifies: reachable (answers OPTIONS, or registered) or not.
func (s *Store) ReportQualify(ctx context.Context, nodeID string, reachable map[string]bool, now time.Time) error {
	if nodeID == "" || len(reachable) == 0 {
		return nil
	}
	names := make([]string, 0, len(reachable))
	for n := range reachable {
		names = append(names, n)
	}
	slices.Sort(names)
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, n := range names {
			ok := 0
			if reachable[n] {
				ok = 1
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO trunk_qualify (trunk, node_id, ok, at_ms) VALUES (?, ?, ?, ?)
				ON CONFLICT (trunk, node_id) DO UPDATE SET ok = excluded.ok, at_ms = excluded.at_ms`), n, nodeID, ok, ms(now)); err != nil {
				return fmt.Errorf("trunk qualify: %w", err)
			}
		}
		return nil
	})
}

// campaignRoom is a campaign's live calls and pacing bucket, read with
// its trunks' rooms (rooms).
type campaignRoom struct {
	key    string // "c:<campaign>"
	live   int
	tokens sql.NullFloat64
	at     sql.NullInt64
	read   bool
}

// trunkRoom is one trunk of a group as a lease sees it.
type trunkRoom struct {
	t      campaign.Trunk
	up     bool
	room   int     // channels free across the fleet
	tokens float64 // calls it may start now
}

// rooms reads the trunks of a group, in order, with their room now, in
// one statement: each trunk's limits and health, its live calls (summed
// over their shards) and its pacing bucket. The counts are exact when the
// caller holds the trunks' leasing locks (lockTrunk), taken by an earlier
// statement (lockedRooms, which reads the first group's rooms itself), so
// that this statement's snapshot sees every lease and failover before
// it; Lease also reads them unlocked, as an estimate.
// qual is the nodes' qualify counts (Store.qualify), read once per
// transaction. With camp, the same statement reads a campaign's live
// calls and pacing bucket (camp.key) too, saving a round trip under the
// locks; camp.read says whether it did (not when no trunk of the group
// exists, and then there is no room).
func (s *Store) rooms(ctx context.Context, tx *sql.Tx, group []string, qual map[string][2]int, camp *campaignRoom, now time.Time) ([]trunkRoom, error) {
	if len(group) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(group)+3)
	cols := ""
	if camp != nil {
		cols = `, COALESCE((SELECT sum(n) FROM live_shards WHERE key = ?), 0), (SELECT tokens FROM pacing WHERE key = ?), (SELECT at_ms FROM pacing WHERE key = ?)`
		args = append(args, camp.key, camp.key, camp.key)
	}
	for _, name := range group {
		args = append(args, name)
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT t.name, t.max_channels, t.max_cps, t.congestion_run, t.paused_until,
		COALESCE((SELECT sum(n) FROM live_shards WHERE key = 't:' || t.name), 0), p.tokens, p.at_ms`+cols+`
		FROM trunks t LEFT JOIN pacing p ON p.key = 't:' || t.name
		WHERE t.name IN (`+placeholders(len(group))+`) ORDER BY t.name`), args...)
	if err != nil {
		return nil, fmt.Errorf("trunks: %w", err)
	}
	return scanRooms(rows, group, qual, camp, now)
}

// scanRooms reads the rows of rooms or lease_rooms: a trunk's name,
// limits, congestion run, pause, live calls and pacing bucket, then with
// camp the campaign's live calls and bucket. It returns the trunks in the
// group's order and closes rows.
func scanRooms(rows *sql.Rows, group []string, qual map[string][2]int, camp *campaignRoom, now time.Time) ([]trunkRoom, error) {
	defer rows.Close()
	byName := map[string]trunkRoom{}
	for rows.Next() {
		var r trunkRoom
		var run, live int
		var paused int64
		var tok sql.NullFloat64
		var at sql.NullInt64
		dest := []any{&r.t.Name, &r.t.MaxChannels, &r.t.MaxCPS, &run, &paused, &live, &tok, &at}
		if camp != nil {
			dest = append(dest, &camp.live, &camp.tokens, &camp.at)
			camp.read = true
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("trunks: %w", err)
		}
		r.judge(run, paused, live, tok, at, qual, now)
		byName[r.t.Name] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trunks: %w", err)
	}
	return inGroupOrder(group, byName), nil
}

// judge sets a trunk's health, room and calls it may start now from its
// congestion run, pause, live calls and pacing bucket.
func (r *trunkRoom) judge(run int, paused int64, live int, tok sql.NullFloat64, at sql.NullInt64, qual map[string][2]int, now time.Time) {
	q := qual[r.t.Name]
	r.up = campaign.TrunkHealthOf(run, fromMS(paused), q[0], q[1], now).Up
	r.room = max(0, r.t.MaxChannels-live)
	r.tokens = refill(tok, at, r.t.MaxCPS, now)
}

// inGroupOrder is the trunks of group found, in the group's (failover)
// order: a trunk deleted under the campaign takes nothing.
func inGroupOrder(group []string, byName map[string]trunkRoom) []trunkRoom {
	out := make([]trunkRoom, 0, len(group))
	for _, name := range group {
		if r, ok := byName[name]; ok {
			out = append(out, r)
		}
	}
	return out
}

// lockedRooms takes locks (sortLocks) and then reads rooms as rooms
// does, in one round trip (lease_rooms, PostgreSQL only): the counts are
// exact as soon as the locks are held. camp may be nil.
func (s *Store) lockedRooms(ctx context.Context, tx *sql.Tx, locks []leaseLock, group []string, qual map[string][2]int, camp *campaignRoom, now time.Time) ([]trunkRoom, error) {
	locks = sortLocks(locks)
	classes, keys := make([]int32, len(locks)), make([]int32, len(locks))
	for i, l := range locks {
		classes[i], keys[i] = l.class, l.key
	}
	var campKey any // NULL: the function's campaign columns come back empty
	if camp == nil {
		camp = &campaignRoom{}
	} else {
		campKey = camp.key
	}
	rows, err := tx.QueryContext(ctx, `SELECT * FROM lease_rooms($1, $2, $3, $4)`, classes, keys, group, campKey)
	if err != nil {
		return nil, fmt.Errorf("lease locks: %w", err)
	}
	return scanRooms(rows, group, qual, camp, now)
}

// noteCause keeps a trunk's run of congestion causes: a congestion cause
// before answer lengthens it, and at CongestionRunLimit pauses the trunk;
// any other outcome the carrier gave ends it.
func (s *Store) noteCause(ctx context.Context, tx execer, trunk string, cause int, answered bool, now time.Time) error {
	var err error
	switch {
	case !answered && cause == 0:
		return nil // no word from the carrier (a node fault, a lost channel)
	case !answered && campaign.CongestionCause(cause):
		_, err = tx.ExecContext(ctx, s.q(`UPDATE trunks SET congestion_run = congestion_run + 1,
			paused_until = CASE WHEN congestion_run + 1 >= ? THEN ? ELSE paused_until END WHERE name = ?`),
			campaign.CongestionRunLimit, ms(now.Add(campaign.CongestionPause)), trunk)
	default:
		_, err = tx.ExecContext(ctx, s.q(`UPDATE trunks SET congestion_run = 0 WHERE name = ? AND congestion_run <> 0`), trunk)
	}
	if err != nil {
		return fmt.Errorf("trunk health: %w", err)
	}
	return nil
}

// Failover moves a live lease whose call the carrier refused as congested
// (cause, before any answer) to the next trunk of its campaign's group
// that is up and has a channel and a call to spare, and returns that
// trunk; "" when there is none, and the node reports the result as usual.
// The try on the refusing trunk is logged in failovers; the contact's
// attempt count is not touched. Asking again for the same try (a lost
// reply) answers the trunk already chosen.
func (s *Store) Failover(ctx context.Context, nodeID, callID, token string, cause int, now time.Time) (string, error) {
	if !campaign.CongestionCause(cause) {
		return "", &campaign.FieldError{Field: "cause", Reason: fmt.Sprintf("%d is not a congestion cause (34, 38, 41, 42, 44, 47)", cause)}
	}
	contactID, attempt, ok := parseCallID(callID)
	if !ok {
		return "", fmt.Errorf("call %q: %w", callID, campaign.ErrNotFound)
	}
	next := ""
	err := s.write(ctx, func(tx *sql.Tx) error {
		next = ""
		var campaignID, state, leaseToken, owner, trunk string
		var attempts int
		query := `SELECT campaign_id, state, attempts, COALESCE(lease_token, ''), COALESCE(lease_node, ''), COALESCE(lease_trunk, '') FROM contacts WHERE id = ?`
		if s.postgres {
			// The contact's row first, then the trunks' locks: a lease
			// may hold this row (its pick locks a row that another lease
			// took meanwhile) while it waits for those locks.
			query += ` FOR UPDATE`
		}
		err := tx.QueryRowContext(ctx, s.q(query), contactID).
			Scan(&campaignID, &state, &attempts, &leaseToken, &owner, &trunk)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("call %q: %w", callID, campaign.ErrNotFound)
		case err != nil:
			return fmt.Errorf("failover: %w", err)
		case state != campaign.ContactLeased || attempts != attempt || leaseToken != token:
			return fmt.Errorf("call %s: %w", callID, campaign.ErrStaleLease)
		case owner != nodeID:
			return fmt.Errorf("call %s: %w", callID, campaign.ErrForbidden)
		}
		c, err := s.campaignTx(ctx, tx, campaignID)
		if err != nil {
			return err
		}
		group := c.Group()
		at := slices.Index(group, trunk)
		last := at < 0 || at == len(group)-1 // the group changed under the call, or no trunk left
		if last {
			return s.noteCause(ctx, tx, trunk, cause, false, now)
		}
		qual, err := s.qualify(ctx, tx, now)
		if err != nil {
			return err
		}
		var rooms []trunkRoom
		if s.postgres {
			// A failover adds a live call to one of the trunks after
			// this one: it takes their leasing locks, so that the rooms
			// count exactly (Lease), before any row it writes, as Lease.
			var locks []leaseLock
			for _, t := range group[at+1:] {
				locks = append(locks, leaseLock{lockTrunk, lockKey(t)})
			}
			rooms, err = s.lockedRooms(ctx, tx, locks, group[at+1:], qual, nil, now)
		} else {
			rooms, err = s.rooms(ctx, tx, group[at+1:], qual, nil, now)
		}
		if err != nil {
			return err
		}
		if err := s.noteCause(ctx, tx, trunk, cause, false, now); err != nil {
			return err
		}
		for _, r := range rooms {
			if r.up && r.room > 0 && r.tokens >= 1 {
				next = r.t.Name
				break
			}
		}
		if next == "" {
			return nil
		}
		var seq int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM failovers WHERE call_id = ?`), callID).Scan(&seq); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO failovers (call_id, seq, campaign_id, trunk, next_trunk, node_id, cause, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			callID, seq+1, campaignID, trunk, next, nodeID, cause, ms(now)); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET lease_trunk = ? WHERE id = ? AND lease_token = ?`), next, contactID, token); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		if err := s.addLive(ctx, tx, map[string]int{"t:" + trunk: -1, "t:" + next: 1}, contactID); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		return s.spend(ctx, tx, now, map[string]float64{"t:" + next: rooms[slices.IndexFunc(rooms, func(r trunkRoom) bool { return r.t.Name == next })].tokens - 1})
	})
	return next, err
}

// Failovers counts a campaign's tries moved to the next trunk, by the
// trunk that refused them.
func (s *Store) Failovers(ctx context.Context, campaignID string) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT trunk, COUNT(*) FROM failovers WHERE campaign_id = ? GROUP BY trunk`), campaignID)
	if err != nil {
		return nil, fmt.Errorf("failovers: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("failovers: %w", err)
		}
		out[t] = n
	}
	return out, rows.Err()
}

// spend writes pacing buckets' remaining tokens.
func (s *Store) spend(ctx context.Context, tx *sql.Tx, now time.Time, left map[string]float64) error {
	for k, v := range left {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO pacing (key, tokens, at_ms) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms`), k, v, ms(now)); err != nil {
			return fmt.Errorf("pacing: %w", err)
		}
	}
	return nil
}
