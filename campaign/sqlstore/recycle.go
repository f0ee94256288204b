package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Recycle re-runs a campaign's contacts whose last attempt had one of
// r's outcomes (and started within r's times): each that campaign.Recycle
// allows becomes pending at once with a new round of attempts; its
// attempt counter and history stay. A completed campaign is not recycled.
func (s *Store) Recycle(ctx context.Context, campaignID string, r campaign.Recycle, now time.Time) (campaign.RecycleReport, error) {
	rep := campaign.RecycleReport{Skipped: map[string]int{}, DryRun: r.DryRun}
	if err := r.Validate(); err != nil {
		return rep, err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		rep = campaign.RecycleReport{Skipped: map[string]int{}, DryRun: r.DryRun}
		c, err := s.campaignTx(ctx, tx, campaignID)
		if err != nil {
			return err
		}
		if c.Status == campaign.StatusCompleted {
			return fmt.Errorf("%w: campaign %s is completed; its contacts cannot be re-run", campaign.ErrConflict, campaignID)
		}
		// The last attempt of each contact is the one its counter names.
		q := `SELECT c.id, c.phone, c.state, c.attempts, a.disposition, a.tags, a.started_at FROM contacts c
			JOIN attempts a ON a.call_id = 'k' || c.id || '-' || c.attempts
			WHERE c.campaign_id = ? AND c.attempts > 0 AND a.disposition IN (` + placeholders(len(r.Dispositions)) + `)`
		args := []any{campaignID}
		for _, d := range r.Dispositions {
			args = append(args, d)
		}
		if r.After != nil {
			q, args = q+` AND a.started_at >= ?`, append(args, ms(*r.After))
		}
		if r.Before != nil {
			q, args = q+` AND a.started_at < ?`, append(args, ms(*r.Before))
		}
		rows, err := tx.QueryContext(ctx, s.q(q+` ORDER BY c.id`), args...)
		if err != nil {
			return fmt.Errorf("recycle: %w", err)
		}
		type cand struct {
			id    int64
			phone string
			k     campaign.RecycleCandidate
		}
		var cands []cand
		for rows.Next() {
			var k cand
			var tags string
			var started int64
			if err := rows.Scan(&k.id, &k.phone, &k.k.State, &k.k.Attempts, &k.k.LastDisposition, &tags, &started); err != nil {
				rows.Close()
				return fmt.Errorf("recycle: %w", err)
			}
			if !r.Matches(fromMS(started)) {
				continue
			}
			json.Unmarshal([]byte(tags), &k.k.LastTags)
			cands = append(cands, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("recycle: %w", err)
		}
		rep.Matched = len(cands)
		const batch = 400 // under every driver's parameter limit
		for len(cands) > 0 {
			part := cands[:min(batch, len(cands))]
			cands = cands[len(part):]
			phones := make([]string, len(part))
			for i, k := range part {
				phones[i] = k.phone
			}
			dnc, err := s.onDNC(ctx, tx, campaignID, phones)
			if err != nil {
				return err
			}
			var ids []any
			for _, k := range part {
				k.k.DNC = dnc[k.phone] != ""
				if ok, why := r.Recycles(k.k); !ok {
					rep.Skipped[why]++
					continue
				}
				ids = append(ids, k.id)
			}
			if len(ids) == 0 || r.DryRun {
				rep.Recycled += len(ids)
				continue
			}
			res, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = 'pending', next_at = ?, round_base = attempts, recycles = recycles + 1
				WHERE state = 'failed' AND id IN (`+placeholders(len(ids))+`)`), append([]any{ms(now)}, ids...)...)
			if err != nil {
				return fmt.Errorf("recycle: %w", err)
			}
			n, _ := res.RowsAffected()
			rep.Recycled += int(n)
		}
		return nil
	})
	return rep, err
}
