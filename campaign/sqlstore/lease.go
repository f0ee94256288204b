package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
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
	if err == nil && len(out) > 0 {
		s.wakeLinker()
	}
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

// liveShards spreads each live count over this many rows.
const liveShards = 16

// addLive moves the live counts of a campaign and its trunk by delta, on
// one shard. Rows are taken campaign then trunk ("c:" sorts before "t:"),
// the order of every writer.
func (s *Store) addLive(ctx context.Context, tx *sql.Tx, campaignID, trunk string, shard int64, delta int) error {
	shard %= liveShards
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO live_shards (key, shard, n) VALUES (?, ?, ?), (?, ?, ?)
		ON CONFLICT (key, shard) DO UPDATE SET n = live_shards.n + excluded.n`), "c:"+campaignID, shard, delta, "t:"+trunk, shard, delta)
	if err != nil {
		return fmt.Errorf("live calls: %w", err)
	}
	return nil
}

func (s *Store) leaseCampaign(ctx context.Context, tx *sql.Tx, c campaign.Campaign, nodeID string, want int, dials map[string][]time.Time, now time.Time) ([]campaign.Lease, error) {
	var refused []refusal
	// One statement reads the trunk, the live calls of the campaign and
	// of the trunk (summed over their shards) and the pacing buckets. On
	// PostgreSQL it locks the trunk row, which serialises leasing per
	// trunk across controllers; leases run one at a time (the advisory
	// lock, taken by an earlier statement, so this one's snapshot sees
	// every earlier lease), so the counts are exact but for results
	// coming in, which only lower them.
	ck, tk := "c:"+c.ID, "t:"+c.Trunk
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE OF t"
	}
	q := `SELECT t.name, t.max_channels, t.max_cps,
		COALESCE((SELECT sum(n) FROM live_shards WHERE key = ?), 0),
		COALESCE((SELECT sum(n) FROM live_shards WHERE key = ?), 0),
		(SELECT tokens FROM pacing WHERE key = ?), (SELECT at_ms FROM pacing WHERE key = ?),
		(SELECT tokens FROM pacing WHERE key = ?), (SELECT at_ms FROM pacing WHERE key = ?)
		FROM trunks t WHERE t.name = ?` + lock
	args := []any{ck, tk, ck, ck, tk, tk, c.Trunk}
	var t campaign.Trunk
	var liveC, liveT int
	var cTok, tTok sql.NullFloat64
	var cAt, tAt sql.NullInt64
	err := tx.QueryRowContext(ctx, s.q(q), args...).
		Scan(&t.Name, &t.MaxChannels, &t.MaxCPS, &liveC, &liveT, &cTok, &cAt, &tTok, &tAt)
	if err != nil {
		return nil, fmt.Errorf("lease %s: trunk %s: %w", c.ID, c.Trunk, err)
	}
	n := min(want, c.Target-liveC, t.MaxChannels-liveT)
	if n <= 0 {
		return nil, nil
	}
	campTokens, trunkTokens := refill(cTok, cAt, c.MaxCPS, now), refill(tTok, tAt, t.MaxCPS, now)
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
	// The candidates come with the facts the rules engine needs beyond
	// the contact row, in the same statement: whether the number is on
	// the internal or the campaign's do-not-call list, and its dials of
	// the last week across every campaign.
	agg := "group_concat(at_ms)"
	if s.postgres {
		agg = "string_agg(CAST(at_ms AS TEXT), ',')"
	}
	args = []any{ms(now.Add(-7 * 24 * time.Hour)), c.ID, ms(now)}
	for _, g := range open {
		args = append(args, g)
	}
	args = append(args, n)
	skip := ""
	if s.postgres {
		skip = " FOR UPDATE OF contacts SKIP LOCKED"
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, phone, fields, attempts, zgroup, next_at,
		EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = contacts.phone),
		EXISTS (SELECT 1 FROM campaign_dnc WHERE campaign_dnc.campaign_id = contacts.campaign_id AND campaign_dnc.phone = contacts.phone),
		COALESCE((SELECT `+agg+` FROM dials WHERE dials.phone = contacts.phone AND dials.at_ms > ?), '')
		FROM contacts
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
		group    int64
		nextAt   int64
	}
	var cands []pick
	dnc := map[string]string{}
	for rows.Next() {
		var p pick
		var internal, own bool
		var recent string
		if err := rows.Scan(&p.id, &p.phone, &p.fields, &p.attempts, &p.group, &p.nextAt, &internal, &own, &recent); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
		cands = append(cands, p)
		switch {
		case own:
			dnc[p.phone] = "campaign"
		case internal:
			dnc[p.phone] = "internal"
		}
		// A number already seen by this lease (another campaign's
		// contact) keeps what it holds: its dials from the database and
		// the ones this lease made, which the database now holds too.
		if _, seen := dials[p.phone]; !seen {
			dials[p.phone] = nil
			for _, at := range strings.Split(recent, ",") {
				if v, err := strconv.ParseInt(at, 10, 64); err == nil {
					dials[p.phone] = append(dials[p.phone], fromMS(v))
				}
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	var picks []pick
	var calls []string
	var evidence []any // the compliance record of each pick
	lists := []string{"internal", "campaign " + c.ID}
	s.zmu.RLock()
	for _, p := range cands {
		g := s.zones[p.group]
		k := campaign.Contact{Phone: p.phone, Jurisdiction: g.juris, Zones: g.locs, State: campaign.ContactPending, Attempts: p.attempts, NextAt: fromMS(p.nextAt)}
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
	used := float64(len(out))
	if s.postgres && len(picks) <= 1000 {
		phones := make([]string, len(picks))
		for i, p := range picks {
			phones[i] = p.phone
		}
		if err := s.leaseWritesPG(ctx, tx, c.ID, t.Name, args, phones, calls, evidence, campTokens-used, trunkTokens-used, now); err != nil {
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
		return out, nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = 'leased', attempts = attempts + 1,
		lease_token = CAST(? AS TEXT) || CAST(id AS TEXT), lease_node = ?, lease_trunk = ?, leased_at = ?, lease_expires = ?
		WHERE id IN (`+placeholders(len(picks))+`)`), args...); err != nil {
		return nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO pacing (key, tokens, at_ms) VALUES (?, ?, ?), (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms`), ck, campTokens-used, ms(now), tk, trunkTokens-used, ms(now)); err != nil {
		return nil, fmt.Errorf("pacing: %w", err)
	}
	if err := s.addLive(ctx, tx, c.ID, t.Name, picks[0].id, len(out)); err != nil {
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

// leaseWritesPG writes what a lease decided on PostgreSQL in one round
// trip rather than eight: one statement of data-modifying CTEs marks the
// contacts (update holds the generic path's arguments: token prefix,
// node, trunk, leased at, expires, contact ids), moves the pacing
// buckets, logs the dials and leaves the compliance records for the
// linker (chain.go); each part touches its own table.
func (s *Store) leaseWritesPG(ctx context.Context, tx *sql.Tx, campaignID, trunk string, update []any, phones, calls []string, evidence []any, campTokens, trunkTokens float64, now time.Time) error {
	args := append(make([]any, 0, len(update)+16+9*len(phones)), update...)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var b strings.Builder
	b.WriteString(`WITH leased AS (UPDATE contacts SET state = 'leased', attempts = attempts + 1,
		lease_token = CAST($1 AS TEXT) || CAST(id AS TEXT), lease_node = $2, lease_trunk = $3, leased_at = $4, lease_expires = $5
		WHERE id IN (`)
	for i := 5; i < len(update); i++ {
		if i > 5 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(i+1))
	}
	ck, tk, at := "c:"+campaignID, "t:"+trunk, ms(now)
	shard := update[5].(int64) % liveShards // the first contact's
	fmt.Fprintf(&b, `)),
	pace AS (INSERT INTO pacing (key, tokens, at_ms) VALUES (%s, %s, %s), (%s, %s, %s)
		ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms),
	counted AS (INSERT INTO live_shards (key, shard, n) VALUES (%s, %s, %s), (%s, %s, %s)
		ON CONFLICT (key, shard) DO UPDATE SET n = live_shards.n + excluded.n),
	logged AS (INSERT INTO dials (phone, at_ms) VALUES `,
		arg(ck), arg(campTokens), arg(at), arg(tk), arg(trunkTokens), arg(at),
		arg(ck), arg(shard), arg(len(phones)), arg(tk), arg(shard), arg(len(phones)))
	atArg := arg(at)
	for i, p := range phones {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%s, %s)", arg(p), atArg)
	}
	b.WriteString(`)
	INSERT INTO compliance_pending (campaign_id, kind, at, call_id, doc) VALUES `)
	campArg, kindArg := arg(campaignID), arg("dial")
	for i, d := range evidence {
		doc, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("compliance record: %w", err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%s, %s, %s, %s, %s)", campArg, kindArg, atArg, arg(calls[i]), arg(string(doc)))
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return err
	}
	return nil
}

// refill is what a pacing bucket holds at now: what it held at its last
// use, refilled at rate per second up to a burst of one second's worth
// (a full bucket if it was never used).
func refill(have sql.NullFloat64, at sql.NullInt64, rate float64, now time.Time) float64 {
	burst := math.Max(1, rate)
	if !have.Valid || !at.Valid {
		return burst
	}
	elapsed := math.Max(0, float64(ms(now)-at.Int64)/1000)
	return math.Min(burst, have.Float64+elapsed*rate)
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
		became, err := s.settle(ctx, tx, &c, contactID, token, r.Disposition, attempt, r.Tags, now)
		if err != nil {
			return err
		}
		if err := s.appendCompliance(ctx, tx, campaignID, "result", now, []string{r.CallID}, []any{ResultRecord{
			CallID: r.CallID, Disposition: r.Disposition, Cause: r.Cause, Path: orEmpty(r.Path), Tags: orEmptyMap(r.Tags), EndedAt: ended.UTC(), State: became,
		}}); err != nil {
			return err
		}
		// Last: the live count's shard row is shared with other results.
		if err := s.addLive(ctx, tx, campaignID, trunk, contactID, -1); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	if recorded && err == nil {
		s.wakeLinker()
	}
	return recorded, err
}

// settle moves the contact of a finished attempt on, if that attempt still
// holds its lease.
func (s *Store) settle(ctx context.Context, tx *sql.Tx, c *campaign.Campaign, contactID int64, token, disposition string, attempt int, tags map[string]string, now time.Time) (string, error) {
	var phone string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT phone FROM contacts WHERE id = ?`), contactID).Scan(&phone); err != nil {
		return "", fmt.Errorf("settle contact: %w", err)
	}
	// The number may have gone on a do-not-call list while its call was live.
	dnc, err := s.onDNC(ctx, tx, c.ID, []string{phone})
	if err != nil {
		return "", err
	}
	state, next := campaign.Settle(c, disposition, attempt, tags, dnc[phone] != "", now)
	res, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = ?, next_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ?`), state, ms(next), contactID, token)
	if err != nil {
		return "", fmt.Errorf("settle contact: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 && tags["dnc"] == "true" {
		return state, s.addDNC(ctx, tx, []string{phone}, "opted out in call", now)
	}
	return state, nil
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
		ended := map[string]int{} // live count key → calls ended
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
			state, err := s.settle(ctx, tx, c, d.contact, d.token, campaign.CutOff, d.attempt, nil, now)
			if err != nil {
				return err
			}
			id := callID(d.contact, d.attempt)
			if err := s.appendCompliance(ctx, tx, d.campaign, "result", now, []string{id}, []any{ResultRecord{
				CallID: id, Disposition: campaign.CutOff, Path: []string{}, Tags: map[string]string{}, EndedAt: now.UTC(), State: state,
			}}); err != nil {
				return err
			}
			ended["c:"+d.campaign]++
			ended["t:"+d.trunk]++
			n++
		}
		// The live counts last, in one statement taking their rows in
		// key order, the order of every writer.
		if len(ended) == 0 {
			return nil
		}
		keys := make([]string, 0, len(ended))
		for k := range ended {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		args := make([]any, 0, 2*len(keys))
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, 0, ?)")
			args = append(args, k, -ended[k])
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO live_shards (key, shard, n) VALUES `+b.String()+`
			ON CONFLICT (key, shard) DO UPDATE SET n = live_shards.n + excluded.n`), args...); err != nil {
			return fmt.Errorf("live calls: %w", err)
		}
		return nil
	})
	if n > 0 && err == nil {
		s.wakeLinker()
	}
	return n, err
}
