package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// HistorySample is one sample of the dashboard's charts: named values
// taken at one moment (see internal/history).
type HistorySample struct {
	At     time.Time
	Values map[string]float64
}

// AddHistory stores a sample and deletes those older than keep. Samples
// are kept in the database rather than in one controller's memory, so
// every controller behind a load balancer serves the same past and a
// restart keeps it. A second sample of the same millisecond (two leaders
// for a moment) is dropped. Values that JSON cannot carry (NaN, ±Inf) are
// left out: a chart shows them as a gap.
func (s *Store) AddHistory(ctx context.Context, at time.Time, values map[string]float64, keep time.Duration) error {
	finite := make(map[string]float64, len(values))
	for k, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite[k] = v
		}
	}
	doc, err := json.Marshal(finite)
	if err != nil {
		return fmt.Errorf("history sample: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO history (at, doc) VALUES (?, ?) ON CONFLICT (at) DO NOTHING`), ms(at), string(doc)); err != nil {
			return fmt.Errorf("history sample: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM history WHERE at < ?`), ms(at.Add(-keep))); err != nil {
			return fmt.Errorf("history retention: %w", err)
		}
		return nil
	})
}

// HistorySince returns up to limit samples taken after after, oldest
// first.
func (s *Store) HistorySince(ctx context.Context, after time.Time, limit int) ([]HistorySample, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, doc FROM history WHERE at > ? ORDER BY at LIMIT ?`), ms(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	var out []HistorySample
	for rows.Next() {
		var at int64
		var doc string
		if err := rows.Scan(&at, &doc); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		h := HistorySample{At: fromMS(at)}
		if err := json.Unmarshal([]byte(doc), &h.Values); err != nil {
			return nil, fmt.Errorf("history sample at %d: %w", at, err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
