package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elastidial/elastidial/campaign"
)

// Lease hands node up to max contacts to dial now, across running
// campaigns, honouring each campaign's target concurrency and attempts per
// second, its trunk's fleet-wide channel and call-rate limits, every
// contact's calling window in all its zones, retry schedules and attempt
// limits. Each contact leased carries a fresh token and an expiry. The
// node is taken as on-demand (LeaseFor).
func (s *Store) Lease(ctx context.Context, nodeID string, max int, now time.Time) ([]campaign.Lease, error) {
	return s.LeaseFor(ctx, nodeID, false, max, now)
}

// LeaseFor is Lease for a node of the capacity type given: a spot node
// gets no campaign whose calls may outlast SpotCallLimit (forNode). The
// XML-RPC tier reads the type with its node check.
func (s *Store) LeaseFor(ctx context.Context, nodeID string, spot bool, max int, now time.Time) ([]campaign.Lease, error) {
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
	running, err := s.running(ctx, now)
	if err != nil || len(running) == 0 {
		return nil, err
	}
	if running = s.forNode(spot, running); len(running) == 0 {
		return nil, nil
	}
	var out []campaign.Lease
	// A lease that PostgreSQL picks as a deadlock's victim is tried again:
	// its pick may hold the row of a contact leased meanwhile (a row that
	// fails FOR UPDATE's recheck stays locked) that a failover or a result
	// of that call waits for, while it waits for their trunk's lock.
	// Nothing of it was written.
	for try := 1; ; try++ {
		err = s.write(ctx, func(tx *sql.Tx) error { return s.leaseTx(ctx, tx, running, nodeID, max, now, &out) })
		var pg *pgconn.PgError
		if try == 3 || !errors.As(err, &pg) || pg.Code != "40P01" {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if len(out) > 0 {
		s.wakeLinker()
	}
	return out, nil
}

// leaseTx is one try of Lease: it leases into *out.
func (s *Store) leaseTx(ctx context.Context, tx *sql.Tx, running []campaign.Campaign, nodeID string, max int, now time.Time, outp *[]campaign.Lease) error {
	out := (*outp)[:0]
	defer func() { *outp = out }()
	dials := &leaseDials{all: map[string][]time.Time{}, ours: map[string]int{}}
	// Higher priority first. Campaigns of one priority take turns,
	// starting from a different one each time, so one large campaign
	// cannot starve the others.
	start := int(now.UnixNano() % int64(len(running)))
	order := make([]campaign.Campaign, 0, len(running))
	for i := range running {
		order = append(order, running[(start+i)%len(running)])
	}
	slices.SortStableFunc(order, func(a, b campaign.Campaign) int { return b.Priority - a.Priority })
	// short holds the trunks a campaign with demand could not get
	// enough of, with its priority: a campaign of lower priority gets
	// nothing on them (pre-emption).
	short := map[string]int{}
	qual, err := s.qualify(ctx, tx, now)
	if err != nil {
		return err
	}
	// First the picks, waiting for no other lease: each campaign's
	// due contacts that no other lease holds, decided by the rules
	// engine (pickCampaign).
	var plans []*leasePlan
	planned := 0
	for _, c := range order {
		if planned >= max {
			// Slots ran out: lower priorities wait for the next node.
			break
		}
		var group []string
		for _, t := range c.Group() {
			if p, ok := short[t]; !ok || p <= c.Priority {
				group = append(group, t)
			}
		}
		p, starved, err := s.pickCampaign(ctx, tx, c, group, qual, max-planned, dials, now)
		if err != nil {
			return err
		}
		for _, t := range starved {
			short[t] = c.Priority
		}
		if p != nil {
			plans = append(plans, p)
			planned += len(p.picks)
		}
	}
	if len(plans) == 0 {
		return nil
	}
	// Then what the picks count against, locked in one order (every
	// writer's): the campaigns' live calls and pacing, their trunks'
	// channels and call rates, their pool caller IDs' daily counts.
	// Leases of other campaigns on other trunks run alongside. On
	// PostgreSQL the first campaign's room is read in the same
	// round trip as the locks.
	if s.postgres {
		p := plans[0]
		p.camp = campaignRoom{key: "c:" + p.c.ID}
		p.rooms, err = s.lockedRooms(ctx, tx, leaseLocks(plans), p.group, qual, &p.camp, now)
		if err != nil {
			return err
		}
		p.roomsRead = true
	}
	for _, p := range plans {
		if len(out) >= max {
			break
		}
		got, err := s.leaseCampaign(ctx, tx, p, qual, nodeID, max-len(out), now)
		if err != nil {
			return err
		}
		out = append(out, got...)
	}
	return nil
}

// Advisory lock classes of leasing on PostgreSQL (the two-key form, so
// apart from every one-key lock). A key is the FNV-1a hash of the name:
// two names sharing one only wait for each other.
const (
	lockCampaign = 1 // a campaign's live calls, pacing bucket and paced target
	lockTrunk    = 2 // a trunk's live calls and pacing bucket
	lockNumber   = 3 // a dialled number's dials (frequency caps): try-locked only
	lockCallerID = 4 // a pool caller ID's uses today
)

// lockKey is the key of name in an advisory lock class.
func lockKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32())
}

// leaseLock is one advisory lock.
type leaseLock struct{ class, key int32 }

// sortLocks puts locks in (class, key) order, the one order of every
// writer, without repeats, so two writers never wait for each other in a
// cycle. A number is only ever try-locked (pickCampaign) and waits for
// nothing.
func sortLocks(locks []leaseLock) []leaseLock {
	slices.SortFunc(locks, func(a, b leaseLock) int {
		if a.class != b.class {
			return int(a.class - b.class)
		}
		return cmp.Compare(a.key, b.key)
	})
	return slices.Compact(locks)
}

// leaseLocks are the locks of the campaigns planned, of the trunks of
// their groups and of their pool caller IDs (PostgreSQL; SQLite writes
// one at a time already), in no order: lockedRooms sorts them.
func leaseLocks(plans []*leasePlan) []leaseLock {
	var locks []leaseLock
	for _, p := range plans {
		locks = append(locks, leaseLock{lockCampaign, lockKey(p.c.ID)})
		for _, t := range p.group {
			locks = append(locks, leaseLock{lockTrunk, lockKey(t)})
		}
		for _, n := range p.c.CallerIDPool {
			locks = append(locks, leaseLock{lockCallerID, lockKey(n)})
		}
	}
	return locks
}

// liveShards spreads each live count over this many rows: every lease
// and every result of a campaign moved the same two rows, so results
// queued on them; counting leased contacts instead took each lease
// through all of them. A lease adds to one shard, a result takes from its
// contact's, leasing sums them. With 16 shards, results of one campaign
// at 3,500 calls still queued on them (10 backends waiting at any
// moment, sampled in the fleet benchmark); at 128 none did, and a lease
// sums 128 small rows per count.
const liveShards = 128

// addLive moves live counts (key → delta: "c:<campaign>", "t:<trunk>")
// on one shard, in one statement taking the rows in key order ("c:"
// sorts before "t:"), the order of every writer.
func (s *Store) addLive(ctx context.Context, tx execer, deltas map[string]int, shard int64) error {
	b, args := liveValues(deltas, shard%liveShards, "?")
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO live_shards (key, shard, n) VALUES `+b+`
		ON CONFLICT (key, shard) DO UPDATE SET n = live_shards.n + excluded.n`), args...); err != nil {
		return fmt.Errorf("live calls: %w", err)
	}
	return nil
}

// liveValues is the VALUES rows of deltas on shard in key order, with
// param making each placeholder (given the argument's 1-based number).
func liveValues(deltas map[string]int, shard int64, param string) (string, []any) {
	keys := make([]string, 0, len(deltas))
	for k := range deltas {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	args := make([]any, 0, 3*len(keys))
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		args = append(args, k, shard, deltas[k])
		b.WriteString("(" + param + ", " + param + ", " + param + ")")
	}
	return b.String(), args
}

// pick is a contact a lease may dial, as the rules engine saw it.
type pick struct {
	id       int64
	phone    string
	fields   string
	attempts int
	base     int // attempts before this round (recycling)
	group    int64
	nextAt   int64
	callerID string // the contact's own, "" for none
	k        campaign.Contact
	f        campaign.Facts
	cid      campaign.CallerIDChoice
}

// leaseDials are the dials a lease counts against the frequency caps,
// per phone: all, those in the database (read once, first) followed by
// the ones it picked; ours, how many it picked.
type leaseDials struct {
	all  map[string][]time.Time
	ours map[string]int
}

// stored is a phone's dials in the database, without this lease's picks.
func (d *leaseDials) stored(phone string) []time.Time {
	all := d.all[phone]
	return all[:len(all)-d.ours[phone]]
}

// leasePlan is what pickCampaign chose of a campaign, for leaseCampaign.
type leasePlan struct {
	c     campaign.Campaign
	group []string // trunks, in failover order
	picks []pick   // callable now, in dialling order
	lists []string // the do-not-call lists consulted (evidence)

	// The room of the campaign and its trunks, when read with the locks.
	rooms     []trunkRoom
	camp      campaignRoom
	roomsRead bool
}

// pickCampaign chooses up to want contacts of c to dial on the trunks of
// group, without waiting for any other lease: the campaign's room and
// its trunks' are read unlocked (leaseCampaign counts them again under
// their locks, and may take fewer), the contacts are locked with SKIP
// LOCKED, and on PostgreSQL each number is try-locked, so no other lease
// dials it until this one ends; a contact whose number another lease
// holds waits for the next lease. The number's dials are read after its
// lock, so the frequency caps count every dial committed before. dials
// holds the dials seen by this lease and gets the picks'.
// Contacts the rules engine refuses are written off or put back here.
// starved names the trunks of the group it wanted more of while it had
// contacts due: a campaign of lower priority is kept off them.
func (s *Store) pickCampaign(ctx context.Context, tx *sql.Tx, c campaign.Campaign, group []string, qual map[string][2]int, want int, dials *leaseDials, now time.Time) (_ *leasePlan, starved []string, _ error) {
	if len(group) == 0 {
		return nil, nil, nil
	}
	camp := campaignRoom{key: "c:" + c.ID}
	rooms, err := s.rooms(ctx, tx, group, qual, &camp, now)
	if err != nil {
		return nil, nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	// A transferring campaign's paced target is at most its target; it is
	// stepped under the campaign's lock (leaseCampaign).
	n := min(want, c.Target-camp.live, int(refill(camp.tokens, camp.at, c.MaxCPS, now)))
	if n <= 0 || !camp.read {
		return nil, nil, nil
	}
	trunkRoom := 0
	for _, r := range rooms {
		if r.up {
			trunkRoom += min(r.room, int(r.tokens))
		}
	}
	if !campaign.Dialling(&c, now).OK() {
		return nil, nil, nil // not started yet
	}
	open := s.openGroups(&c, now)
	if len(open) == 0 {
		return nil, starved, nil
	}
	// The candidates come with whether the number is on the internal or
	// the campaign's do-not-call list, in the same statement.
	args := []any{c.ID, ms(now)}
	for _, g := range open {
		args = append(args, g)
	}
	args = append(args, n)
	query := `SELECT id, phone, fields, attempts, round_base, zgroup, next_at, caller_id,
		EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = contacts.phone),
		EXISTS (SELECT 1 FROM campaign_dnc WHERE campaign_dnc.campaign_id = contacts.campaign_id AND campaign_dnc.phone = contacts.phone)
		FROM contacts
		WHERE campaign_id = ? AND state = 'pending' AND next_at <= ? AND zgroup IN (` + placeholders(len(open)) + `)
		ORDER BY next_at, id LIMIT ?`
	if s.postgres {
		// Rows another lease holds are skipped, then numbers another
		// lease holds: the try-lock runs on the rows the inner query
		// locked (a volatile function is never pushed below its LIMIT).
		query = `SELECT * FROM (` + query + ` FOR UPDATE OF contacts SKIP LOCKED) k
			WHERE pg_try_advisory_xact_lock(3, hashtext(k.phone)) ORDER BY k.next_at, k.id`
	}
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	var cands []pick
	dnc := map[string]string{}
	for rows.Next() {
		var p pick
		var internal, own bool
		if err := rows.Scan(&p.id, &p.phone, &p.fields, &p.attempts, &p.base, &p.group, &p.nextAt, &p.callerID, &internal, &own); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
		cands = append(cands, p)
		switch {
		case own:
			dnc[p.phone] = "campaign"
		case internal:
			dnc[p.phone] = "internal"
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("lease %s: %w", c.ID, err)
	}
	if len(cands) == 0 {
		return nil, starved, nil
	}
	// The numbers' dials of the last week across every campaign, read by
	// a statement after their locks. A number already seen by this lease
	// (another campaign's contact) keeps what it holds: its dials from
	// the database and the ones this lease picked.
	var unseen []string
	for _, p := range cands {
		if _, seen := dials.all[p.phone]; !seen {
			dials.all[p.phone] = nil
			unseen = append(unseen, p.phone)
		}
	}
	if len(unseen) > 0 {
		since := ms(now.Add(-7 * 24 * time.Hour))
		// On PostgreSQL one text for any number of phones, prepared once
		// per connection.
		query, args := `SELECT phone, at_ms FROM dials WHERE at_ms > ? AND phone = ANY(CAST(? AS TEXT[]))`, []any{since, unseen}
		if !s.postgres {
			query, args = `SELECT phone, at_ms FROM dials WHERE at_ms > ? AND phone IN (`+placeholders(len(unseen))+`)`, []any{since}
			for _, p := range unseen {
				args = append(args, p)
			}
		}
		rows, err := tx.QueryContext(ctx, s.q(query), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("lease %s: dials: %w", c.ID, err)
		}
		for rows.Next() {
			var phone string
			var at int64
			if err := rows.Scan(&phone, &at); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("lease %s: dials: %w", c.ID, err)
			}
			dials.all[phone] = append(dials.all[phone], fromMS(at))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("lease %s: dials: %w", c.ID, err)
		}
	}
	// The store fetched the facts; the rules engine decides each contact.
	lists, err := s.dncLists(ctx, tx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	var refused []refusal
	var picks []pick
	skipped := 0
	s.zmu.RLock()
	for _, p := range cands {
		if len(picks) == trunkRoom {
			break
		}
		g := s.zones[p.group]
		p.k = campaign.Contact{Phone: p.phone, Jurisdiction: g.juris, Zones: g.locs, State: campaign.ContactPending, Attempts: p.attempts - p.base, NextAt: fromMS(p.nextAt)}
		p.f = campaign.Facts{DNC: dnc[p.phone], Dials: dials.all[p.phone]}
		v := campaign.Decide(&c, p.k, p.f, s.Caps, now)
		if v.OK() {
			picks = append(picks, p)
			dials.all[p.phone] = append(dials.all[p.phone], now)
			dials.ours[p.phone]++
			continue
		}
		if v.Reason == campaign.ReasonCap && dials.ours[p.phone] > 0 && campaign.Decide(&c, p.k, campaign.Facts{DNC: p.f.DNC, Dials: dials.stored(p.phone)}, s.Caps, now).OK() {
			// Capped only by the dials this lease picked for other
			// campaigns, which it may yet not make: no refusal, the
			// contact waits for the next lease.
			skipped++
			continue
		}
		refused = append(refused, refusal{contact: p.id, v: v})
	}
	if len(picks) == trunkRoom && trunkRoom < n {
		// The trunks, not the campaign, held it back: is another contact
		// callable now? Then lower priorities must keep off its trunks.
		for _, p := range cands[len(picks)+len(refused)+skipped:] {
			g := s.zones[p.group]
			k := campaign.Contact{Phone: p.phone, Jurisdiction: g.juris, Zones: g.locs, State: campaign.ContactPending, Attempts: p.attempts, NextAt: fromMS(p.nextAt)}
			if campaign.Decide(&c, k, campaign.Facts{DNC: dnc[p.phone], Dials: dials.all[p.phone]}, s.Caps, now).OK() {
				starved = group
				break
			}
		}
	}
	s.zmu.RUnlock()
	if err := s.refuse(ctx, tx, refused); err != nil {
		return nil, nil, err
	}
	if len(picks) == 0 {
		return nil, starved, nil
	}
	return &leasePlan{c: c, group: group, picks: picks, lists: lists}, starved, nil
}

// leaseCampaign leases up to want of the contacts p picked, on the
// trunks of its group (in failover order: each takes what the ones
// before it had no room for), under the locks of the campaign and its
// trunks: the room is read after the locks are held (by lease_rooms
// for the first campaign, by a later statement for others), so it sees
// every lease and failover before, and the counts are exact but for
// results coming in, which only lower them. Picks beyond the room
// counted here are left pending for the next lease.
func (s *Store) leaseCampaign(ctx context.Context, tx *sql.Tx, p *leasePlan, qual map[string][2]int, nodeID string, want int, now time.Time) ([]campaign.Lease, error) {
	c := p.c
	ck := "c:" + c.ID
	camp, rooms := p.camp, p.rooms
	var err error
	if !p.roomsRead {
		camp = campaignRoom{key: ck}
		if rooms, err = s.rooms(ctx, tx, p.group, qual, &camp, now); err != nil {
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
	}
	if !camp.read {
		return nil, nil // no trunk of the group is left
	}
	target := c.Target
	if c.Transfers {
		// Paced so that people free to take the calls it transfers are
		// there: the abandon rate stays under the campaign's cap.
		if target, err = s.pacedTarget(ctx, tx, &c, now); err != nil {
			return nil, err
		}
	}
	campTokens := refill(camp.tokens, camp.at, c.MaxCPS, now)
	n := min(want, target-camp.live, int(campTokens), len(p.picks))
	if n <= 0 {
		return nil, nil
	}
	trunkRoom := 0
	for _, r := range rooms {
		if r.up {
			trunkRoom += min(r.room, int(r.tokens))
		}
	}
	picks := p.picks[:min(n, trunkRoom)]
	if len(picks) == 0 {
		return nil, nil
	}
	uses, err := s.callerIDUses(ctx, tx, c.CallerIDPool, now)
	if err != nil {
		return nil, err
	}
	usedNow := map[string]bool{}
	picker := campaign.NewCallerIDPicker(&c)
	calls := make([]string, len(picks))
	evidence := make([]any, len(picks)) // the compliance record of each pick
	for i := range picks {
		k := &picks[i]
		k.cid = picker.Choose(k.callerID, k.phone, func(n string) int { return uses[n] })
		if k.cid.Source == campaign.CallerIDPool {
			uses[k.cid.Number]++
			usedNow[k.cid.Number] = true
		}
		calls[i] = callID(k.id, k.attempts+1)
		e := campaign.Explain(&c, k.k, k.f, s.Caps, p.lists, calls[i], now)
		e.CallerIDChoice = k.cid
		evidence[i] = e
	}
	expires := now.Add(s.LeaseTTL)
	out := make([]campaign.Lease, 0, len(picks))
	// The lease lives on the contact row. A lease token is a random batch
	// prefix and the contact id, unique per attempt; the call id names the
	// contact and the attempt. Each trunk takes what the ones before it
	// had no room for.
	batch := randomID(16)
	left := map[string]float64{ck: campTokens - float64(len(picks))}
	rest := picks
	var marks []trunkMark
	live := map[string]int{ck: len(picks)} // the live counts added, on the first contact's shard
	for _, r := range rooms {
		if !r.up || len(rest) == 0 {
			continue
		}
		k := min(len(rest), r.room, int(r.tokens))
		if k <= 0 {
			continue
		}
		mine := rest[:k]
		rest = rest[k:]
		m := trunkMark{trunk: r.t.Name}
		for _, p := range mine {
			m.ids = append(m.ids, p.id)
			var fields map[string]string
			_ = json.Unmarshal([]byte(p.fields), &fields)
			out = append(out, campaign.Lease{
				CallID: callID(p.id, p.attempts+1), Token: batch + "-" + strconv.FormatInt(p.id, 10), CampaignID: c.ID, FlowVersion: c.FlowVersion,
				Number: p.phone, CallerID: p.cid.Number, Trunk: r.t.Name, TimeoutSeconds: c.RingSeconds,
				Expires: expires, Fields: fields,
			})
		}
		marks = append(marks, m)
		left["t:"+r.t.Name] = r.tokens - float64(k)
		live["t:"+r.t.Name] = k
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("lease %s: %d contacts picked beyond the trunks' room", c.ID, len(rest))
	}
	phones := make([]string, len(picks))
	for i, p := range picks {
		phones[i] = p.phone
	}
	mark := leaseMark{batch: batch + "-", node: nodeID, at: ms(now), expires: ms(expires)}
	if s.postgres {
		if err := s.leaseWritesPG(ctx, tx, c.ID, mark, marks, left, live, picks[0].id, phones, usedNow, uses, calls, evidence); err != nil {
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
		return out, nil
	}
	// On SQLite one statement per trunk marks the batch, and one per
	// table writes the rest.
	for _, m := range marks {
		args := make([]any, 0, len(m.ids)+5)
		args = append(args, mark.batch, mark.node, m.trunk, mark.at, mark.expires)
		for _, id := range m.ids {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = 'leased', attempts = attempts + 1,
			lease_token = CAST(? AS TEXT) || CAST(id AS TEXT), lease_node = ?, lease_trunk = ?, leased_at = ?, lease_expires = ?
			WHERE id IN (`+placeholders(len(m.ids))+`)`), args...); err != nil {
			return nil, fmt.Errorf("lease %s: %w", c.ID, err)
		}
	}
	if err := s.spend(ctx, tx, now, left); err != nil {
		return nil, err
	}
	if err := s.addLive(ctx, tx, live, picks[0].id); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO dials (phone, at_ms) VALUES `)
	args := make([]any, 0, 2*len(phones))
	for i, p := range phones {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?)")
		args = append(args, p, ms(now))
	}
	if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
		return nil, fmt.Errorf("log dials: %w", err)
	}
	if err := s.saveCallerIDUses(ctx, tx, usedNow, uses, now); err != nil {
		return nil, err
	}
	if err := s.appendCompliance(ctx, tx, c.ID, "dial", now, calls, evidence); err != nil {
		return nil, err
	}
	return out, nil
}

// leaseMark is what every contact of a lease's batch is marked with.
type leaseMark struct {
	batch, node string // token prefix, node
	at, expires int64  // leased at, expires (ms)
}

// trunkMark is the contacts of a batch leased on one trunk.
type trunkMark struct {
	trunk string
	ids   []int64
}

// leaseWritesPG writes what a lease decided on PostgreSQL in one round
// trip rather than one per table and trunk: one statement of
// data-modifying CTEs marks the contacts of each trunk, moves the pacing
// buckets (left: key → tokens left), adds the live counts (live, on
// shard's shard, in key order), logs the dials, counts the pool
// caller IDs used today and leaves the compliance records for the linker
// (chain.go). Each part touches its own rows. The contacts, numbers and
// records go as arrays, so the statement's text depends only on how many
// trunks, buckets and pool numbers the lease moved, not on how many
// contacts: the connection prepares it once, not once per batch size.
func (s *Store) leaseWritesPG(ctx context.Context, tx *sql.Tx, campaignID string, mark leaseMark, marks []trunkMark, left map[string]float64, live map[string]int, shard int64, phones []string, usedNow map[string]bool, uses map[string]int, calls []string, evidence []any) error {
	args := make([]any, 0, 16+2*len(marks)+2*len(left)+3*len(live)+3*len(usedNow))
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var b strings.Builder
	b.WriteString("WITH ")
	prefix, node, at, expires := arg(mark.batch), arg(mark.node), arg(mark.at), arg(mark.expires)
	for i, m := range marks {
		fmt.Fprintf(&b, `leased%d AS (UPDATE contacts SET state = 'leased', attempts = attempts + 1,
		lease_token = CAST(%s AS TEXT) || CAST(id AS TEXT), lease_node = %s, lease_trunk = %s, leased_at = %s, lease_expires = %s
		WHERE id = ANY(CAST(%s AS BIGINT[]))),
`, i, prefix, node, arg(m.trunk), at, expires, arg(m.ids))
	}
	keys := make([]string, 0, len(left))
	for k := range left {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString(`pace AS (INSERT INTO pacing (key, tokens, at_ms) VALUES `)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%s, %s, %s)", arg(k), arg(left[k]), at)
	}
	vals, largs := liveValues(live, shard%liveShards, "%s")
	ps := make([]any, len(largs))
	for i, v := range largs {
		ps[i] = arg(v)
	}
	b.WriteString(` ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms),
	counted AS (INSERT INTO live_shards (key, shard, n) VALUES ` + fmt.Sprintf(vals, ps...) + `
		ON CONFLICT (key, shard) DO UPDATE SET n = live_shards.n + excluded.n),
	logged AS (INSERT INTO dials (phone, at_ms) SELECT phone, ` + at + ` FROM unnest(CAST(` + arg(phones) + ` AS TEXT[])) AS phone)`)
	if len(usedNow) > 0 {
		// The pool numbers are locked (lockCallerID), so the counts read are
		// current (saveCallerIDUses).
		nums := make([]string, 0, len(usedNow))
		for n := range usedNow {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		day := arg(utcDay(time.UnixMilli(mark.at)))
		b.WriteString(`,
	cids AS (INSERT INTO caller_id_uses (caller_id, day, n) VALUES `)
		for i, n := range nums {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(%s, %s, %s)", arg(n), day, arg(uses[n]))
		}
		b.WriteString(` ON CONFLICT (caller_id, day) DO UPDATE SET n = excluded.n)`)
	}
	docs := make([]string, len(evidence))
	for i, d := range evidence {
		doc, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("compliance record: %w", err)
		}
		docs[i] = string(doc)
	}
	// WITH ORDINALITY keeps the records in the order of the calls.
	fmt.Fprintf(&b, `
	INSERT INTO compliance_pending (campaign_id, kind, at, call_id, doc)
	SELECT %s, %s, %s, r.call_id, r.doc FROM unnest(CAST(%s AS TEXT[]), CAST(%s AS TEXT[])) WITH ORDINALITY AS r (call_id, doc, n) ORDER BY r.n`,
		arg(campaignID), arg("dial"), at, arg(calls), arg(docs))
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

// utcDay numbers the UTC day of t, the period of a pool caller ID's cap.
func utcDay(t time.Time) int64 { return t.Unix() / 86400 }

// callerIDUses reads how often each pool number was used today.
func (s *Store) callerIDUses(ctx context.Context, tx *sql.Tx, pool []string, now time.Time) (map[string]int, error) {
	out := make(map[string]int, len(pool))
	if len(pool) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(pool)+1)
	args = append(args, utcDay(now))
	for _, n := range pool {
		args = append(args, n)
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT caller_id, n FROM caller_id_uses WHERE day = ? AND caller_id IN (`+placeholders(len(pool))+`)`), args...)
	if err != nil {
		return nil, fmt.Errorf("caller ID uses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var k int
		if err := rows.Scan(&n, &k); err != nil {
			return nil, fmt.Errorf("caller ID uses: %w", err)
		}
		out[n] = k
	}
	return out, rows.Err()
}

// saveCallerIDUses writes today's counts of the pool numbers used (the
// pool numbers are locked (lockCallerID), so the counts read are current).
func (s *Store) saveCallerIDUses(ctx context.Context, tx *sql.Tx, used map[string]bool, uses map[string]int, now time.Time) error {
	day := utcDay(now)
	for n := range used {
		k := uses[n]
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO caller_id_uses (caller_id, day, n) VALUES (?, ?, ?) ON CONFLICT (caller_id, day) DO UPDATE SET n = excluded.n`), n, day, k); err != nil {
			return fmt.Errorf("caller ID uses: %w", err)
		}
	}
	return nil
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
	// On PostgreSQL: one read, then one statement of every write.
	err = s.inBatch(ctx, func(b *batch) error {
		// One read: the lease, the campaign and what settling the
		// contact needs.
		var campaignID, state, token, owner, trunk, doc string
		var attempts int
		var leasedAt, rev int64
		var k contactFacts
		err := b.QueryRowContext(ctx, s.q(`SELECT k.campaign_id, k.state, k.attempts, COALESCE(k.lease_token, ''), COALESCE(k.lease_node, ''), COALESCE(k.lease_trunk, ''), k.leased_at, c.revision, c.doc, `+contactFactsCols+`
			FROM contacts k JOIN campaigns c ON c.id = k.campaign_id WHERE k.id = ?`), contactID).
			Scan(&campaignID, &state, &attempts, &token, &owner, &trunk, &leasedAt, &rev, &doc, &k.phone, &k.fields, &k.base, &k.dnc)
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
			err := b.QueryRowContext(ctx, s.q(`SELECT node_id, token, state FROM attempts WHERE call_id = ?`), r.CallID).Scan(&aOwner, &aToken, &aState)
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
		c, err := s.decoded(campaignID, rev, doc)
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
		// The writes go in one batch. The attempt's row, keyed by its
		// call id, is what makes the result the lease's only end: a
		// second result or the reaper ending the same attempt since the
		// read fails on it, and none of this result's writes land.
		if _, err := b.ExecContext(ctx, s.q(`INSERT INTO attempts (call_id, contact_id, campaign_id, trunk, node_id, token, attempt, state, started_at, expires_at, answered_at, ended_at, disposition, cause, path, tags, recording)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?, 0, ?, ?, ?, ?, ?, ?, ?)`),
			r.CallID, contactID, campaignID, trunk, nodeID, token, attempt, ms(started), ms(r.AnsweredAt), ms(ended), r.Disposition, r.Cause, string(path), string(tags), r.Recording); err != nil {
			return fmt.Errorf("record result: %w", err)
		}
		became, err := s.settle(ctx, b, &c, contactID, k, token, r.Disposition, attempt, r.Tags, now)
		if err != nil {
			return err
		}
		ev := campaign.AttemptEvent{CallID: r.CallID, Attempt: attempt, Disposition: r.Disposition, Cause: r.Cause,
			StartedAt: started.UTC(), EndedAt: ended.UTC(), Path: r.Path, Tags: r.Tags, ContactState: became, Recording: r.Recording}
		if !r.AnsweredAt.IsZero() {
			at := r.AnsweredAt.UTC()
			ev.AnsweredAt = &at
		}
		if err := s.enqueueAttempt(ctx, b, &c, ev, k, now); err != nil {
			return err
		}
		if err := s.noteCause(ctx, b, trunk, r.Cause, !r.AnsweredAt.IsZero() || r.Disposition == campaign.Answered || r.Disposition == campaign.Machine, now); err != nil {
			return err
		}
		// On PostgreSQL the compliance record only waits for the linker
		// (chain.go), and the answer count is an append.
		if err := s.appendCompliance(ctx, b, campaignID, "result", now, []string{r.CallID}, []any{ResultRecord{
			CallID: r.CallID, Disposition: r.Disposition, Cause: r.Cause, Path: orEmpty(r.Path), Tags: orEmptyMap(r.Tags), EndedAt: ended.UTC(), State: became,
		}}); err != nil {
			return err
		}
		if r.Disposition == campaign.Answered {
			if err := s.countAnswer(ctx, b, &c, campaign.Abandoned(r.Disposition, r.Tags), now); err != nil {
				return err
			}
		}
		// Last: the live counts' shard rows, which leases take after a
		// transferring campaign's pacing row and other results share.
		if err := s.addLive(ctx, b, map[string]int{"c:" + campaignID: -1, "t:" + trunk: -1}, contactID); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	if err != nil && recorded {
		recorded = false
		err = fmt.Errorf("record result: %w", err)
	}
	if recorded && err == nil {
		s.wakeLinker()
	}
	return recorded, err
}

// contactFacts are what settling a contact needs to know of it, and what
// a webhook event tells of it.
type contactFacts struct {
	phone, fields string
	base          int  // attempts before this round (recycling)
	dnc           bool // on the internal or the campaign's do-not-call list now
}

// contactFactsCols selects a contact's facts (contactFacts, in order)
// from contacts k.
const contactFactsCols = `k.phone, k.fields, k.round_base,
	EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = k.phone) OR EXISTS (SELECT 1 FROM campaign_dnc d WHERE d.campaign_id = k.campaign_id AND d.phone = k.phone)`

// readContactFacts reads a contact's facts.
func (s *Store) readContactFacts(ctx context.Context, q querier, contactID int64) (contactFacts, error) {
	var k contactFacts
	if err := q.QueryRowContext(ctx, s.q(`SELECT `+contactFactsCols+` FROM contacts k WHERE k.id = ?`), contactID).Scan(&k.phone, &k.fields, &k.base, &k.dnc); err != nil {
		return k, fmt.Errorf("settle contact: %w", err)
	}
	return k, nil
}

// settle moves the contact of a finished attempt on and returns its new
// state. The caller has made sure the attempt holds the contact's lease
// and writes its attempts row, keyed by call id, in the same transaction:
// whatever else ends the attempt meanwhile fails on that row, or this
// transaction does. k was read in the transaction: a number put on a
// do-not-call list while its call was live is not called again.
func (s *Store) settle(ctx context.Context, w execer, c *campaign.Campaign, contactID int64, k contactFacts, token, disposition string, attempt int, tags map[string]string, now time.Time) (string, error) {
	// The round's attempts count: a recycled contact starts a new round.
	state, next := campaign.Settle(c, disposition, attempt-k.base, tags, k.dnc, now)
	if _, err := w.ExecContext(ctx, s.q(`UPDATE contacts SET state = ?, next_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ?`), state, ms(next), contactID, token); err != nil {
		return "", fmt.Errorf("settle contact: %w", err)
	}
	if tags["dnc"] == "true" {
		return state, s.addDNC(ctx, w, []string{k.phone}, "opted out in call", now)
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
// by the campaign's policy. It returns how many it ended. It also prunes
// what the rules no longer look at and folds the answer log.
func (s *Store) Reap(ctx context.Context, now time.Time) (int, error) {
	// The frequency caps look back a week; older dials are of no use.
	if err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM dials WHERE at_ms < ?`), ms(now.Add(-8*24*time.Hour))); err != nil {
			return fmt.Errorf("prune dials: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM caller_id_uses WHERE day < ?`), utcDay(now)-1); err != nil {
			return fmt.Errorf("prune caller ID uses: %w", err)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if _, err := s.foldAbandons(ctx); err != nil {
		return 0, err
	}
	return s.endLive(ctx, `lease_expires < ?`, []any{ms(now)}, nil, now)
}

// ReleaseNode ends every live lease of a node known to be gone, at once
// rather than at lease expiry.
func (s *Store) ReleaseNode(ctx context.Context, nodeID string, now time.Time) (int, error) {
	return s.endLive(ctx, `lease_node = ?`, []any{nodeID}, nil, now)
}

// endLive ends the live leases that cond (with args) selects, but for the
// calls keep names, as cut off.
func (s *Store) endLive(ctx context.Context, cond string, args []any, keep map[string]bool, now time.Time) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		n, err = s.endLiveTx(ctx, tx, cond, args, keep, now)
		return err
	})
	if n > 0 && err == nil {
		s.wakeLinker()
	}
	return n, err
}

// endLiveTx is endLive in the caller's transaction; the caller wakes the
// linker once it commits with n > 0.
func (s *Store) endLiveTx(ctx context.Context, tx *sql.Tx, cond string, args []any, keep map[string]bool, now time.Time) (n int, err error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, campaign_id, attempts, lease_token, lease_node, lease_trunk, leased_at, lease_expires FROM contacts WHERE state = 'leased' AND `+cond), args...)
	if err != nil {
		return 0, fmt.Errorf("expired leases: %w", err)
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
			return 0, fmt.Errorf("expired leases: %w", err)
		}
		if keep[callID(d.contact, d.attempt)] {
			continue
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("expired leases: %w", err)
	}
	camps := map[string]*campaign.Campaign{}
	ended := map[string]int{} // live count key → calls ended
	for _, d := range ds {
		c, ok := camps[d.campaign]
		if !ok {
			cc, err := s.campaignTx(ctx, tx, d.campaign)
			if err != nil {
				return 0, err
			}
			c = &cc
			camps[d.campaign] = c
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attempts (call_id, contact_id, campaign_id, trunk, node_id, token, attempt, state, started_at, expires_at, ended_at, disposition)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'expired', ?, ?, ?, ?)`),
			callID(d.contact, d.attempt), d.contact, d.campaign, d.trunk, d.node, d.token, d.attempt, d.leasedAt, d.expires, ms(now), campaign.CutOff); err != nil {
			return 0, fmt.Errorf("expire lease: %w", err)
		}
		k, err := s.readContactFacts(ctx, tx, d.contact)
		if err != nil {
			return 0, err
		}
		state, err := s.settle(ctx, tx, c, d.contact, k, d.token, campaign.CutOff, d.attempt, nil, now)
		if err != nil {
			return 0, err
		}
		id := callID(d.contact, d.attempt)
		if err := s.enqueueAttempt(ctx, tx, c, campaign.AttemptEvent{CallID: id, Attempt: d.attempt, Disposition: campaign.CutOff,
			StartedAt: fromMS(d.leasedAt), EndedAt: now.UTC(), ContactState: state}, k, now); err != nil {
			return 0, err
		}
		if err := s.appendCompliance(ctx, tx, d.campaign, "result", now, []string{id}, []any{ResultRecord{
			CallID: id, Disposition: campaign.CutOff, Path: []string{}, Tags: map[string]string{}, EndedAt: now.UTC(), State: state,
		}}); err != nil {
			return 0, err
		}
		ended["c:"+d.campaign]--
		ended["t:"+d.trunk]--
		n++
	}
	// The live counts last, in one statement taking their rows in
	// key order, the order of every writer.
	if len(ended) == 0 {
		return n, nil
	}
	return n, s.addLive(ctx, tx, ended, 0)
}
