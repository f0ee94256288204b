package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AuditEntry is one change made through the API.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"` // the API token's name
	Method string    `json:"method"`
	Path   string    `json:"path"` // with its query
	Status int       `json:"status"`
	Detail string    `json:"detail"` // the request body, bounded, when it is JSON
}

// RecordAudit appends an entry to the audit log.
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, method, path, status, detail) VALUES (?, ?, ?, ?, ?, ?)`),
			ms(e.At), e.Actor, e.Method, e.Path, e.Status, e.Detail)
		if err != nil {
			return fmt.Errorf("record audit: %w", err)
		}
		return nil
	})
}

// Audit lists up to limit entries after the entry with id after, oldest
// first.
func (s *Store) Audit(ctx context.Context, after int64, limit int) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, at, actor, method, path, status, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Method, &e.Path, &e.Status, &e.Detail); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
