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
		if s.postgres {
			// Frequency caps count a number's dials across campaigns and
			// trunks: one leasing transaction at a time keeps them exact.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7140001)`); err != nil {
				return fmt.Errorf("lease lock: %w", err)
			}
		}
		dials := map[string][]time.Time{} // the dials seen by this lease, per phone
		// Campaigns take turns, starting from a different one each time,
		// so one large campaign cannot starve the others.
		start := int(now.UnixNano() % int64(len(running)))
		for i := range running {
			c := running[(start+i)%len(running)]
			if len(out) >= max {
				break
			}
			got, err := s.leaseCampaign(ctx, tx, c, nodeID, max-len(out), dials, now)
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

func (s *Store) leaseCampaign(ctx context.Context, tx *sql.Tx, c campaign.Campaign, nodeID string, want int, dials map[string][]time.Time, now time.Time) ([]campaign.Lease, error) {
	var refused []refusal
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
	if !campaign.Dialling(&c, now).OK() {
		return nil, nil // not started yet
	}
	open := s.openGroups(&c, now)
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
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, phone, fields, attempts, round_base, zgroup, next_at FROM contacts
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
		base     int // attempts before this round (recycling)
		group    int64
		nextAt   int64
	}
	var cands []pick
	for rows.Next() {
		var p pick
		if err := rows.Scan(&p.id, &p.phone, &p.fields, &p.attempts, &p.base, &p.group, &p.nextAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
		cands = append(cands, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	// The store fetches the facts; the rules engine decides each contact.
	phones := make([]string, len(cands))
	for i, p := range cands {
		phones[i] = p.phone
	}
	dnc, err := s.onDNC(ctx, tx, c.ID, phones)
	if err != nil {
		return nil, err
	}
	if err := s.loadDials(ctx, tx, dials, phones, now); err != nil {
		return nil, err
	}
	var picks []pick
	var calls []string
	var evidence []any // the compliance record of each pick
	lists := []string{"internal", "campaign " + c.ID}
	s.zmu.RLock()
	for _, p := range cands {
		g := s.zones[p.group]
		k := campaign.Contact{Phone: p.phone, Jurisdiction: g.juris, Zones: g.locs, State: campaign.ContactPending, Attempts: p.attempts - p.base, NextAt: fromMS(p.nextAt)}
		f := campaign.Facts{DNC: dnc[p.phone], Dials: dials[p.phone]}
		v := campaign.Decide(&c, k, f, s.Caps, now)
		if v.OK() {
			picks = append(picks, p)
			id := callID(p.id, p.attempts+1)
			calls = append(calls, id)
			evidence = append(evidence, campaign.Explain(&c, k, f, s.Caps, lists, id, now))
			dials[p.phone] = append(dials[p.phone], now)
			continue
		}
		refused = append(refused, refusal{contact: p.id, v: v})
	}
	s.zmu.RUnlock()
	if err := s.refuse(ctx, tx, refused); err != nil {
		return nil, err
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
	var b strings.Builder
	b.WriteString(`INSERT INTO dials (phone, at_ms) VALUES `)
	args = args[:0]
	for i, p := range picks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?)")
		args = append(args, p.phone, ms(now))
	}
	if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
		return nil, fmt.Errorf("log dials: %w", err)
	}
	if err := s.appendCompliance(ctx, tx, c.ID, "dial", now, calls, evidence); err != nil {
		return nil, err
	}
	return out, nil
}

// refusal is a contact the rules engine refused at lease time.
type refusal struct {
	contact int64
	v       campaign.Verdict
}

// refuse writes what the rules engine decided for contacts it refused: a
// number on a do-not-call list leaves the campaign, a destination never
// allowed fails, the rest wait until the verdict may change.
func (s *Store) refuse(ctx context.Context, tx *sql.Tx, rs []refusal) error {
	for _, r := range rs {
		var err error
		switch {
		case r.v.Reason == campaign.ReasonDNC:
			_, err = tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = ? WHERE id = ? AND state = 'pending'`), campaign.ContactDNC, r.contact)
		case r.v.Until.IsZero():
			_, err = tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = ? WHERE id = ? AND state = 'pending'`), campaign.ContactFailed, r.contact)
		default:
			_, err = tx.ExecContext(ctx, s.q(`UPDATE contacts SET next_at = ? WHERE id = ? AND state = 'pending'`), ms(r.v.Until), r.contact)
		}
		if err != nil {
			return fmt.Errorf("refuse contact %d (%s): %w", r.contact, r.v.Reason, err)
		}
	}
	return nil
}

// loadDials adds to dials the last week's attempts of the phones it does
// not hold yet, across every campaign.
func (s *Store) loadDials(ctx context.Context, tx *sql.Tx, dials map[string][]time.Time, phones []string, now time.Time) error {
	var want []any
	for _, p := range phones {
		if _, ok := dials[p]; !ok {
			dials[p] = nil
			want = append(want, p)
		}
	}
	if len(want) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT phone, at_ms FROM dials WHERE phone IN (`+placeholders(len(want))+`) AND at_ms > ?`), append(want, ms(now.Add(-7*24*time.Hour)))...)
	if err != nil {
		return fmt.Errorf("frequency caps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var at int64
		if err := rows.Scan(&p, &at); err != nil {
			return fmt.Errorf("frequency caps: %w", err)
		}
		dials[p] = append(dials[p], fromMS(at))
	}
	return rows.Err()
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
		became, k, err := s.settle(ctx, tx, &c, contactID, token, r.Disposition, attempt, r.Tags, now)
		if err != nil {
			return err
		}
		ev := campaign.AttemptEvent{CallID: r.CallID, Attempt: attempt, Disposition: r.Disposition, Cause: r.Cause,
			StartedAt: started.UTC(), EndedAt: ended.UTC(), Path: r.Path, Tags: r.Tags, ContactState: became, Recording: r.Recording}
		if !r.AnsweredAt.IsZero() {
			at := r.AnsweredAt.UTC()
			ev.AnsweredAt = &at
		}
		if err := s.enqueueAttempt(ctx, tx, &c, ev, k, now); err != nil {
			return err
		}
		if err := s.appendCompliance(ctx, tx, campaignID, "result", now, []string{r.CallID}, []any{ResultRecord{
			CallID: r.CallID, Disposition: r.Disposition, Cause: r.Cause, Path: orEmpty(r.Path), Tags: orEmptyMap(r.Tags), EndedAt: ended.UTC(), State: became,
		}}); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	return recorded, err
}

// contactFacts are what a webhook event tells of its contact.
type contactFacts struct{ phone, fields string }

// settle moves the contact of a finished attempt on, if that attempt still
// holds its lease. It returns the contact's new state, its phone and, when
// the campaign has a webhook, its fields (read in the same query).
func (s *Store) settle(ctx context.Context, tx *sql.Tx, c *campaign.Campaign, contactID int64, token, disposition string, attempt int, tags map[string]string, now time.Time) (string, contactFacts, error) {
	var k contactFacts
	var base int
	fields := "''"
	if c.Webhook != nil {
		fields = "fields"
	}
	if err := tx.QueryRowContext(ctx, s.q(`SELECT phone, round_base, `+fields+` FROM contacts WHERE id = ?`), contactID).Scan(&k.phone, &base, &k.fields); err != nil {
		return "", k, fmt.Errorf("settle contact: %w", err)
	}
	phone := k.phone
	// The number may have gone on a do-not-call list while its call was live.
	dnc, err := s.onDNC(ctx, tx, c.ID, []string{phone})
	if err != nil {
		return "", k, err
	}
	// The round's attempts count: a recycled contact starts a new round.
	state, next := campaign.Settle(c, disposition, attempt-base, tags, dnc[phone] != "", now)
	res, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = ?, next_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ?`), state, ms(next), contactID, token)
	if err != nil {
		return "", k, fmt.Errorf("settle contact: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 && tags["dnc"] == "true" {
		return state, k, s.addDNC(ctx, tx, []string{phone}, "opted out in call", now)
	}
	return state, k, nil
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
	// The frequency caps look back a week; older dials are of no use.
	if err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM dials WHERE at_ms < ?`), ms(now.Add(-8*24*time.Hour))); err != nil {
			return fmt.Errorf("prune dials: %w", err)
		}
		return nil
	}); err != nil {
		return 0, err
	}
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
			state, k, err := s.settle(ctx, tx, c, d.contact, d.token, campaign.CutOff, d.attempt, nil, now)
			if err != nil {
				return err
			}
			id := callID(d.contact, d.attempt)
			if err := s.enqueueAttempt(ctx, tx, c, campaign.AttemptEvent{CallID: id, Attempt: d.attempt, Disposition: campaign.CutOff,
				StartedAt: fromMS(d.leasedAt), EndedAt: now.UTC(), ContactState: state}, k, now); err != nil {
				return err
			}
			if err := s.appendCompliance(ctx, tx, d.campaign, "result", now, []string{id}, []any{ResultRecord{
				CallID: id, Disposition: campaign.CutOff, Path: []string{}, Tags: map[string]string{}, EndedAt: now.UTC(), State: state,
			}}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
