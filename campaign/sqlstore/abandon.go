package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Abandonment (campaign/abandon.go): each live answer of a campaign is
// appended to abandon_log with its hour and whether it was abandoned;
// foldAbandons moves the log into per-hour counts in abandon_shards, and
// the 30-day rate sums both. A campaign whose flow transfers to people
// keeps its pacing state in abandon_pace (the concurrency it may dial
// at, and the live answers since its last pacing step), stepped by
// campaign.Pace when it leases.

// abandonWindow is the period the abandon rate is counted over.
const abandonWindow = 30 * 24 * time.Hour

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// flowTransfers reports whether a flow document has a transfer state.
func flowTransfers(doc []byte) bool {
	var f struct {
		States map[string]struct {
			Transfer json.RawMessage `json:"transfer"`
		} `json:"states"`
	}
	if json.Unmarshal(doc, &f) != nil {
		return false
	}
	for _, s := range f.States {
		if len(s.Transfer) > 0 && string(s.Transfer) != "null" {
			return true
		}
	}
	return false
}

// countAnswer counts one live answer of a campaign at now: an append,
// which waits for no other result.
func (s *Store) countAnswer(ctx context.Context, tx execer, c *campaign.Campaign, abandoned bool, now time.Time) error {
	ab := 0
	if abandoned {
		ab = 1
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO abandon_log (campaign_id, hour, abandoned) VALUES (?, ?, ?)`), c.ID, hourOf(now), ab); err != nil {
		return fmt.Errorf("count answer: %w", err)
	}
	if !c.Transfers {
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO abandon_pace (campaign_id, pace, sample_live, sample_abandoned) VALUES (?, 0, 1, ?)
		ON CONFLICT (campaign_id) DO UPDATE SET sample_live = abandon_pace.sample_live + 1, sample_abandoned = abandon_pace.sample_abandoned + excluded.sample_abandoned`), c.ID, ab); err != nil {
		return fmt.Errorf("count answer: %w", err)
	}
	return nil
}

// abandonMonth sums a campaign's live answers and abandons over the 30
// days before now: those folded and those still in the log, in one
// statement (one snapshot, so a fold is seen whole or not at all).
func (s *Store) abandonMonth(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string, now time.Time) (campaign.AbandonCounts, error) {
	var a campaign.AbandonCounts
	from, to := hourOf(now.Add(-abandonWindow)), hourOf(now)
	err := q.QueryRowContext(ctx, s.q(`SELECT
		(SELECT COALESCE(SUM(live), 0) FROM abandon_shards WHERE campaign_id = ? AND hour > ? AND hour <= ?) +
		(SELECT COUNT(*) FROM abandon_log WHERE campaign_id = ? AND hour > ? AND hour <= ?),
		(SELECT COALESCE(SUM(abandoned), 0) FROM abandon_shards WHERE campaign_id = ? AND hour > ? AND hour <= ?) +
		(SELECT COALESCE(SUM(abandoned), 0) FROM abandon_log WHERE campaign_id = ? AND hour > ? AND hour <= ?)`),
		id, from, to, id, from, to, id, from, to, id, from, to).Scan(&a.Live, &a.Abandoned)
	if err != nil {
		return a, fmt.Errorf("abandon rate: %w", err)
	}
	return a, nil
}

// foldBatch is the most log rows one fold moves.
const foldBatch = 50_000

// foldAbandons moves up to foldBatch of the oldest answers in
// abandon_log into their hours' counts in abandon_shards, and reports
// how many it moved. On PostgreSQL the rows moved are those one DELETE
// removed, so an answer committed meanwhile is never dropped uncounted
// and two folds at once never count one twice.
func (s *Store) foldAbandons(ctx context.Context) (int, error) {
	moved := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		const upsert = ` ON CONFLICT (campaign_id, hour, shard) DO UPDATE SET live = abandon_shards.live + excluded.live, abandoned = abandon_shards.abandoned + excluded.abandoned`
		if s.postgres {
			return tx.QueryRowContext(ctx, `WITH moved AS (
				DELETE FROM abandon_log WHERE seq IN (SELECT seq FROM abandon_log ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
				RETURNING campaign_id, hour, abandoned),
			counted AS (INSERT INTO abandon_shards (campaign_id, hour, shard, live, abandoned)
				SELECT campaign_id, hour, 0, COUNT(*), SUM(abandoned) FROM moved GROUP BY campaign_id, hour`+upsert+`)
			SELECT COUNT(*) FROM moved`, foldBatch).Scan(&moved)
		}
		// SQLite: this is the only writer.
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM (SELECT seq FROM abandon_log ORDER BY seq LIMIT ?)`, foldBatch).Scan(&last); err != nil || !last.Valid {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO abandon_shards (campaign_id, hour, shard, live, abandoned)
			SELECT campaign_id, hour, 0, COUNT(*), SUM(abandoned) FROM abandon_log WHERE seq <= ? GROUP BY campaign_id, hour`+upsert, last.Int64); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM abandon_log WHERE seq <= ?`, last.Int64)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		moved = int(n)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("fold answers: %w", err)
	}
	return moved, nil
}

// paceState reads a campaign's pacing state (pace 0: not stepped yet).
func (s *Store) paceState(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (pace float64, sample campaign.AbandonCounts, err error) {
	err = q.QueryRowContext(ctx, s.q(`SELECT pace, sample_live, sample_abandoned FROM abandon_pace WHERE campaign_id = ?`), id).Scan(&pace, &sample.Live, &sample.Abandoned)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, sample, nil
	}
	if err != nil {
		return 0, sample, fmt.Errorf("pacing state: %w", err)
	}
	return pace, sample, nil
}

// pacedTarget steps a transferring campaign's pacing within the leasing
// transaction and returns the concurrency it may dial at now.
func (s *Store) pacedTarget(ctx context.Context, tx *sql.Tx, c *campaign.Campaign, now time.Time) (int, error) {
	prev, sample, err := s.paceState(ctx, tx, c.ID)
	if err != nil {
		return 0, err
	}
	month, err := s.abandonMonth(ctx, tx, c.ID, now)
	if err != nil {
		return 0, err
	}
	pace, judged := campaign.Pace(prev, c.Target, sample, month, c.AbandonLimit())
	if judged || pace != prev {
		// Take off what was judged, not all: a result recorded meanwhile
		// (another controller) stays in the next sample.
		var usedLive, usedAb int
		if judged {
			usedLive, usedAb = sample.Live, sample.Abandoned
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO abandon_pace (campaign_id, pace, sample_live, sample_abandoned) VALUES (?, ?, 0, 0)
			ON CONFLICT (campaign_id) DO UPDATE SET pace = excluded.pace, sample_live = abandon_pace.sample_live - ?, sample_abandoned = abandon_pace.sample_abandoned - ?`),
			c.ID, pace, usedLive, usedAb); err != nil {
			return 0, fmt.Errorf("pacing state: %w", err)
		}
	}
	return int(math.Floor(pace + 1e-9)), nil
}

// StatsAt is Stats with the abandon rate counted over the 30 days before
// now.
func (s *Store) StatsAt(ctx context.Context, id string, now time.Time) (campaign.Stats, error) {
	st, err := s.Stats(ctx, id)
	if err != nil {
		return st, err
	}
	c, err := s.Campaign(ctx, id)
	if err != nil || !c.Transfers {
		return st, err
	}
	month, err := s.abandonMonth(ctx, s.db, id, now)
	if err != nil {
		return st, err
	}
	pace, _, err := s.paceState(ctx, s.db, id)
	if err != nil {
		return st, err
	}
	if pace <= 0 {
		pace = campaign.StartPace
	}
	st.Abandon = &campaign.AbandonStats{AbandonCounts: month, Rate: month.Rate(), Cap: c.AbandonLimit(), Pace: int(math.Floor(min(pace, float64(c.Target)) + 1e-9))}
	return st, nil
}
