package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Lease hands node up to max contacts to dial now, across running
// campaigns, honouring each campaign's target concurrency and attempts per
// second, its trunk's fleet-wide channel and call-rate limits, every
// contact's calling window in all its zones, retry schedules and attempt
// limits. Each contact leased carries a fresh token and an expiry.
func (s *Store) Lease(ctx context.Context, nodeID string, max int, now time.Time) ([]campaign.Lease, error) {
	if max <= 0 {
		return nil, nil
	}
	if nodeID == "" {
		return nil, &campaign.FieldError{Field: "node_id", Reason: "is required"}
	}
	s.zmu.RLock()
	empty := len(s.zones) == 0
	s.zmu.RUnlock()
	if empty {
		if err := s.loadZones(ctx); err != nil {
			return nil, err
		}
	}
	running, err := s.running(ctx)
	if err != nil || len(running) == 0 {
		return nil, err
	}
	var out []campaign.Lease
	err = s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		// Campaigns take turns, starting from a different one each time,
		// so one large campaign cannot starve the others.
		start := int(now.UnixNano() % int64(len(running)))
		for i := range running {
			c := running[(start+i)%len(running)]
			if len(out) >= max {
				break
			}
			got, err := s.leaseCampaign(ctx, tx, c, nodeID, max-len(out), now)
			if err != nil {
				return err
			}
			out = append(out, got...)
		}
		return nil
	})
	return out, err
}

// counters reads key → value rows.
func (s *Store) counters(ctx context.Context, tx *sql.Tx, query string, args ...any) (map[string]float64, error) {
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("counters: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var k string
		var v float64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("counters: %w", err)
		}
		out[k] = v
	}
	return out, rows.Err()
}

// addLive moves the live counters of a campaign and its trunk by delta.
func (s *Store) addLive(ctx context.Context, tx *sql.Tx, campaignID, trunk string, delta int) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO live (key, n) VALUES (?, ?), (?, ?) ON CONFLICT (key) DO UPDATE SET n = live.n + excluded.n`), "c:"+campaignID, delta, "t:"+trunk, delta)
	if err != nil {
		return fmt.Errorf("live calls: %w", err)
	}
	return nil
}

func (s *Store) leaseCampaign(ctx context.Context, tx *sql.Tx, c campaign.Campaign, nodeID string, want int, now time.Time) ([]campaign.Lease, error) {
	var t campaign.Trunk
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE" // serialises leasing per trunk across controllers
	}
	err := tx.QueryRowContext(ctx, s.q(`SELECT name, max_channels, max_cps FROM trunks WHERE name = ?`+lock), c.Trunk).Scan(&t.Name, &t.MaxChannels, &t.MaxCPS)
	if err != nil {
		return nil, fmt.Errorf("lease %s: trunk %s: %w", c.ID, c.Trunk, err)
	}
	// On PostgreSQL the trunk row lock above makes these counts exact.
	ck, tk := "c:"+c.ID, "t:"+t.Name
	live, err := s.counters(ctx, tx, `SELECT key, n FROM live WHERE key IN (?, ?)`, ck, tk)
	if err != nil {
		return nil, err
	}
	n := min(want, c.Target-int(live[ck]), t.MaxChannels-int(live[tk]))
	if n <= 0 {
		return nil, nil
	}
	buckets, err := s.buckets(ctx, tx, now, ck, c.MaxCPS, tk, t.MaxCPS)
	if err != nil {
		return nil, err
	}
	campTokens, trunkTokens := buckets[ck], buckets[tk]
	n = min(n, int(campTokens), int(trunkTokens))
	if n <= 0 {
		return nil, nil
	}
	open := s.openGroups(c.Window, now)
	if len(open) == 0 {
		return nil, nil
	}
	args := []any{c.ID, ms(now)}
	for _, g := range open {
		args = append(args, g)
	}
	args = append(args, n)
	skip := ""
	if s.postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, phone, fields, attempts FROM contacts
		WHERE campaign_id = ? AND state = 'pending' AND next_at <= ? AND zgroup IN (`+placeholders(len(open))+`)
		ORDER BY next_at, id LIMIT ?`+skip), args...)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	type pick struct {
		id       int64
		phone    string
		fields   string
		attempts int
	}
	var picks []pick
	for rows.Next() {
		var p pick
		if err := rows.Scan(&p.id, &p.phone, &p.fields, &p.attempts); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
		picks = append(picks, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	if len(picks) == 0 {
		return nil, nil
	}
	expires := now.Add(s.LeaseTTL)
	out := make([]campaign.Lease, 0, len(picks))
	// The lease lives on the contact row: one statement marks the batch. A
	// lease token is a random batch prefix and the contact id, unique per
	// attempt; the call id names the contact and the attempt.
	batch := randomID(16)
	args = make([]any, 0, len(picks)+6)
	args = append(args, batch+"-", nodeID, t.Name, ms(now), ms(expires))
	for _, p := range picks {
		args = append(args, p.id)
		var fields map[string]string
		_ = json.Unmarshal([]byte(p.fields), &fields)
		out = append(out, campaign.Lease{
			CallID: callID(p.id, p.attempts+1), Token: batch + "-" + strconv.FormatInt(p.id, 10), CampaignID: c.ID, FlowVersion: c.FlowVersion,
			Number: p.phone, CallerID: c.CallerID, Trunk: t.Name, TimeoutSeconds: c.RingSeconds,
			Expires: expires, Fields: fields,
		})
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = 'leased', attempts = attempts + 1,
		lease_token = CAST(? AS TEXT) || CAST(id AS TEXT), lease_node = ?, lease_trunk = ?, leased_at = ?, lease_expires = ?
		WHERE id IN (`+placeholders(len(picks))+`)`), args...); err != nil {
		return nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	used := float64(len(out))
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO pacing (key, tokens, at_ms) VALUES (?, ?, ?), (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms`), ck, campTokens-used, ms(now), tk, trunkTokens-used, ms(now)); err != nil {
		return nil, fmt.Errorf("pacing: %w", err)
	}
	if err := s.addLive(ctx, tx, c.ID, t.Name, len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// buckets returns the call-rate tokens available now in two buckets, each
// refilled at its rate per second up to a burst of one second's worth.
func (s *Store) buckets(ctx context.Context, tx *sql.Tx, now time.Time, k1 string, r1 float64, k2 string, r2 float64) (map[string]float64, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT key, tokens, at_ms FROM pacing WHERE key IN (?, ?)`), k1, k2)
	if err != nil {
		return nil, fmt.Errorf("pacing: %w", err)
	}
	defer rows.Close()
	rate := map[string]float64{k1: r1, k2: r2}
	out := map[string]float64{k1: math.Max(1, r1), k2: math.Max(1, r2)}
	for rows.Next() {
		var k string
		var have float64
		var at int64
		if err := rows.Scan(&k, &have, &at); err != nil {
			return nil, fmt.Errorf("pacing: %w", err)
		}
		elapsed := math.Max(0, float64(ms(now)-at)/1000)
		out[k] = math.Min(math.Max(1, rate[k]), have+elapsed*rate[k])
	}
	return out, rows.Err()
}

// callID names attempt n of a contact.
func callID(contact int64, n int) string { return fmt.Sprintf("k%d-%d", contact, n) }

// parseCallID is callID's inverse.
func parseCallID(id string) (contact int64, n int, ok bool) {
	c, a, found := strings.Cut(strings.TrimPrefix(id, "k"), "-")
	contact, err1 := strconv.ParseInt(c, 10, 64)
	n, err2 := strconv.Atoi(a)
	return contact, n, found && strings.HasPrefix(id, "k") && err1 == nil && err2 == nil && contact > 0 && n > 0
}

// Record stores a node's result for one attempt. A token that is not the
// attempt's current one (the lease expired and the contact moved on) gets
// ErrStaleLease and changes nothing; another node's attempt gets
// ErrForbidden. Recording the same result twice is not an error: recorded
// is false the second time.
func (s *Store) Record(ctx context.Context, nodeID string, r campaign.Result, now time.Time) (recorded bool, err error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	contactID, attempt, ok := parseCallID(r.CallID)
	if !ok {
		return false, fmt.Errorf("call %q: %w", r.CallID, campaign.ErrNotFound)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var campaignID, state, token, owner, trunk string
		var attempts int
		var leasedAt int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT campaign_id, state, attempts, COALESCE(lease_token, ''), COALESCE(lease_node, ''), COALESCE(lease_trunk, ''), leased_at FROM contacts WHERE id = ?`), contactID).
			Scan(&campaignID, &state, &attempts, &token, &owner, &trunk, &leasedAt)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && attempt > attempts) {
			return fmt.Errorf("call %q: %w", r.CallID, campaign.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("record result: %w", err)
		}
		if state != campaign.ContactLeased || attempts != attempt || token != r.Token {
			// Not the live lease: recorded already, expired, or a stale or
			// forged token.
			var aOwner, aToken, aState string
			err := tx.QueryRowContext(ctx, s.q(`SELECT node_id, token, state FROM attempts WHERE call_id = ?`), r.CallID).Scan(&aOwner, &aToken, &aState)
			switch {
			case err == nil && aToken == r.Token && aOwner != nodeID:
				return fmt.Errorf("call %s: %w", r.CallID, campaign.ErrForbidden)
			case err == nil && aToken == r.Token && aState == "done":
				return nil // already recorded
			case err == nil && aToken == r.Token:
				return fmt.Errorf("call %s: lease expired: %w", r.CallID, campaign.ErrStaleLease)
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("record result: %w", err)
			}
			return fmt.Errorf("call %s: %w", r.CallID, campaign.ErrStaleLease)
		}
		if owner != nodeID {
			return fmt.Errorf("call %s: %w", r.CallID, campaign.ErrForbidden)
		}
		c, err := s.campaignTx(ctx, tx, campaignID)
		if err != nil {
			return err
		}
		path, _ := json.Marshal(orEmpty(r.Path))
		tags, _ := json.Marshal(orEmptyMap(r.Tags))
		started := r.StartedAt
		if started.IsZero() {
			started = fromMS(leasedAt)
		}
		ended := r.EndedAt
		if ended.IsZero() {
			ended = now
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attempts (call_id, contact_id, campaign_id, trunk, node_id, token, attempt, state, started_at, expires_at, answered_at, ended_at, disposition, cause, path, tags, recording)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?, 0, ?, ?, ?, ?, ?, ?, ?)`),
			r.CallID, contactID, campaignID, trunk, nodeID, token, attempt, ms(started), ms(r.AnsweredAt), ms(ended), r.Disposition, r.Cause, string(path), string(tags), r.Recording); err != nil {
			return fmt.Errorf("record result: %w", err)
		}
		if err := s.addLive(ctx, tx, campaignID, trunk, -1); err != nil {
			return err
		}
		if err := s.settle(ctx, tx, &c, contactID, token, r.Disposition, attempt, r.Tags, now); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	return recorded, err
}

// settle moves the contact of a finished attempt on, if that attempt still
// holds its lease.
func (s *Store) settle(ctx context.Context, tx *sql.Tx, c *campaign.Campaign, contactID int64, token, disposition string, attempt int, tags map[string]string, now time.Time) error {
	state, next := campaign.Next(c, disposition, attempt, tags, now)
	res, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = ?, next_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ?`), state, ms(next), contactID, token)
	if err != nil {
		return fmt.Errorf("settle contact: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 && state == campaign.ContactDNC {
		var phone string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT phone FROM contacts WHERE id = ?`), contactID).Scan(&phone); err != nil {
			return fmt.Errorf("settle contact: %w", err)
		}
		return s.addDNC(ctx, tx, []string{phone}, "opted out in call", now)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Reap ends leases that expired before now (their node died or lost
// touch): each attempt is recorded as cut off and its contact is retried
// by the campaign's policy. It returns how many it ended.
func (s *Store) Reap(ctx context.Context, now time.Time) (int, error) {
	return s.endLive(ctx, `lease_expires < ?`, ms(now), now)
}

// ReleaseNode ends every live lease of a node known to be gone, at once
// rather than at lease expiry.
func (s *Store) ReleaseNode(ctx context.Context, nodeID string, now time.Time) (int, error) {
	return s.endLive(ctx, `lease_node = ?`, nodeID, now)
}

func (s *Store) endLive(ctx context.Context, cond string, arg any, now time.Time) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, campaign_id, attempts, lease_token, lease_node, lease_trunk, leased_at, lease_expires FROM contacts WHERE state = 'leased' AND `+cond), arg)
		if err != nil {
			return fmt.Errorf("expired leases: %w", err)
		}
		type dead struct {
			contact                      int64
			campaign, token, node, trunk string
			attempt                      int
			leasedAt, expires            int64
		}
		var ds []dead
		for rows.Next() {
			var d dead
			if err := rows.Scan(&d.contact, &d.campaign, &d.attempt, &d.token, &d.node, &d.trunk, &d.leasedAt, &d.expires); err != nil {
				rows.Close()
				return fmt.Errorf("expired leases: %w", err)
			}
			ds = append(ds, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("expired leases: %w", err)
		}
		camps := map[string]*campaign.Campaign{}
		for _, d := range ds {
			c, ok := camps[d.campaign]
			if !ok {
				cc, err := s.campaignTx(ctx, tx, d.campaign)
				if err != nil {
					return err
				}
				c = &cc
				camps[d.campaign] = c
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attempts (call_id, contact_id, campaign_id, trunk, node_id, token, attempt, state, started_at, expires_at, ended_at, disposition)
				VALUES (?, ?, ?, ?, ?, ?, ?, 'expired', ?, ?, ?, ?)`),
				callID(d.contact, d.attempt), d.contact, d.campaign, d.trunk, d.node, d.token, d.attempt, d.leasedAt, d.expires, ms(now), campaign.CutOff); err != nil {
				return fmt.Errorf("expire lease: %w", err)
			}
			if err := s.addLive(ctx, tx, d.campaign, d.trunk, -1); err != nil {
				return err
			}
			if err := s.settle(ctx, tx, c, d.contact, d.token, campaign.CutOff, d.attempt, nil, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
