package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// On PostgreSQL, a lease or a result does not link its compliance
// records into the campaign's chain itself: every lease and result of a
// campaign would queue on the chain's head row (455 ms a result at 100 a
// second in the fleet benchmark). It writes them, in its own transaction
// so they are as durable as the result, to compliance_pending, and one
// linker at a time moves pending records into the chains in batches,
// taking each head once per batch:
//
//	Record/Lease ──tx──► compliance_pending ──linker (advisory lock 7140002)──► compliance + compliance_heads
//
// After each commit that left pending records the process's linker is
// woken; it runs until, holding the lock, it finds less than a batch
// left (all there was: a record committed after that read woke its own
// process's linker), so every record committed before a wake-up is
// linked soon after it. Readers of
// the chain (ComplianceRecords, VerifyCompliance, ComplianceCampaigns)
// link first, so they see every committed record.

// pendingCompliance stores records for the linker within tx.
func (s *Store) pendingCompliance(ctx context.Context, tx execer, campaignID, kind string, at time.Time, callIDs []string, docs []any) error {
	const perStmt = 500
	for len(docs) > 0 {
		n := min(perStmt, len(docs))
		args := make([]any, 0, 3+2*n)
		args = append(args, campaignID, kind, ms(at))
		var b strings.Builder
		b.WriteString(`INSERT INTO compliance_pending (campaign_id, kind, at, call_id, doc) VALUES `)
		for i := range n {
			doc, err := json.Marshal(docs[i])
			if err != nil {
				return fmt.Errorf("compliance record: %w", err)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			args = append(args, callIDs[i], string(doc))
			fmt.Fprintf(&b, "($1, $2, $3, $%d, $%d)", len(args)-1, len(args))
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("compliance record: %w", err)
		}
		docs, callIDs = docs[n:], callIDs[n:]
	}
	return nil
}

// wakeLinker wakes the process's linker; called after each commit that
// may have left pending records.
func (s *Store) wakeLinker() {
	if !s.postgres {
		return
	}
	select {
	case s.linkKick <- struct{}{}:
	default: // already woken
	}
}

// linker links pending records whenever woken, until the store closes.
func (s *Store) linker(ctx context.Context) {
	defer s.linkDone.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.linkKick:
		}
		for ctx.Err() == nil {
			if err := s.LinkCompliance(ctx); err == nil {
				break
			}
			// The database failed: try again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// LinkCompliance moves every pending compliance record into its
// campaign's chain, in batches, and returns once none is left; on SQLite,
// where records are linked as they are written, it does nothing. Linkers
// take turns: one waits for another's batch to commit.
func (s *Store) LinkCompliance(ctx context.Context) error {
	if !s.postgres {
		return nil
	}
	for {
		// A batch short of the limit took every record committed
		// before its read, which came after the call: none is left that
		// the caller must see linked. Looking again only to find none
		// was a transaction of four round trips, in most wake-ups
		// (0.2 a result, in the fleet benchmark).
		n, err := s.linkBatch(ctx, linkBatchMax)
		if err != nil || n < linkBatchMax {
			return err
		}
	}
}

// linkBatchMax is the most records one linking transaction takes.
const linkBatchMax = 1000

// linkBatch links up to max pending records, oldest first.
func (s *Store) linkBatch(ctx context.Context, max int) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		// After the lock, this transaction's statements see every
		// record committed before it was taken.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7140002)`); err != nil {
			return fmt.Errorf("link compliance records: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, campaign_id, kind, at, call_id, doc FROM compliance_pending ORDER BY seq LIMIT $1`, max)
		if err != nil {
			return fmt.Errorf("link compliance records: %w", err)
		}
		type rec struct {
			seq                       int64
			campaign, kind, call, doc string
			at                        int64
		}
		var recs []rec
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.seq, &r.campaign, &r.kind, &r.at, &r.call, &r.doc); err != nil {
				rows.Close()
				return fmt.Errorf("link compliance records: %w", err)
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("link compliance records: %w", err)
		}
		n = len(recs)
		if n == 0 {
			return nil
		}
		byCampaign := map[string][]rec{}
		for _, r := range recs {
			byCampaign[r.campaign] = append(byCampaign[r.campaign], r)
		}
		ids := make([]string, 0, len(byCampaign))
		for id := range byCampaign {
			ids = append(ids, id)
		}
		slices.Sort(ids) // heads locked in one order
		for _, id := range ids {
			prev, err := s.complianceHeadPG(ctx, tx, id)
			if err != nil {
				return err
			}
			var b strings.Builder
			args := []any{id}
			arg := func(v any) string {
				args = append(args, v)
				return "$" + strconv.Itoa(len(args))
			}
			for i, r := range byCampaign[id] {
				h := chainHash(prev, id, r.call, r.kind, r.at, []byte(r.doc))
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "($1, %s, %s, %s, %s, %s, %s)", arg(r.call), arg(r.kind), arg(r.at), arg(r.doc), arg(prev), arg(h))
				prev = h
			}
			q := `WITH chain AS (INSERT INTO compliance (campaign_id, call_id, kind, at, doc, prev, hash) VALUES ` + b.String() + `)
				UPDATE compliance_heads SET hash = ` + arg(prev) + ` WHERE campaign_id = $1`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("link compliance records: %w", err)
			}
		}
		seqs := make([]int64, len(recs))
		for i, r := range recs {
			seqs[i] = r.seq
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM compliance_pending WHERE seq = ANY($1)`, seqs); err != nil {
			return fmt.Errorf("link compliance records: %w", err)
		}
		return nil
	})
	return n, err
}
