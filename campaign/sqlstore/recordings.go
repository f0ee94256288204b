package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/storage"
)

// RecordingRow is one attempt's recording.
type RecordingRow struct {
	CallID      string    `json:"call_id"`
	Phone       string    `json:"phone"`
	Attempt     int       `json:"attempt"`
	Disposition string    `json:"disposition"`
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	Key         string    `json:"key"`
}

// CampaignRecordings lists up to limit of a campaign's attempts that have
// a recording, by call id after the call id after ("" from the start);
// callID, when set, names one attempt.
func (s *Store) CampaignRecordings(ctx context.Context, campaignID, callID, after string, limit int) ([]RecordingRow, error) {
	if _, err := s.Campaign(ctx, campaignID); err != nil {
		return nil, err
	}
	q, args := `SELECT a.call_id, c.phone, a.attempt, a.disposition, a.started_at, a.ended_at, a.recording
		FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.campaign_id = ? AND a.recording <> '' AND a.call_id > ?`, []any{campaignID, after}
	if callID != "" {
		q, args = q+` AND a.call_id = ?`, append(args, callID)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY a.call_id LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	defer rows.Close()
	out := []RecordingRow{}
	for rows.Next() {
		var r RecordingRow
		var st, en int64
		if err := rows.Scan(&r.CallID, &r.Phone, &r.Attempt, &r.Disposition, &st, &en, &r.Key); err != nil {
			return nil, fmt.Errorf("list recordings: %w", err)
		}
		r.StartedAt, r.EndedAt = fromMS(st), fromMS(en)
		out = append(out, r)
	}
	return out, rows.Err()
}

var _ storage.RecordingIndex = (*Store)(nil)

// ExpiredRecordings returns up to limit recordings of attempts that ended
// longer ago than their campaign's recording retention, at now.
func (s *Store) ExpiredRecordings(ctx context.Context, now time.Time, limit int) ([]storage.ExpiredRecording, error) {
	cs, err := s.Campaigns(ctx)
	if err != nil {
		return nil, err
	}
	var out []storage.ExpiredRecording
	for _, c := range cs {
		if c.RecordingRetentionDays <= 0 || len(out) >= limit {
			continue
		}
		cutoff := now.Add(-time.Duration(c.RecordingRetentionDays) * 24 * time.Hour)
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT call_id, recording FROM attempts WHERE campaign_id = ? AND recording <> '' AND ended_at < ? ORDER BY ended_at LIMIT ?`),
			c.ID, ms(cutoff), limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("expired recordings: %w", err)
		}
		for rows.Next() {
			var e storage.ExpiredRecording
			if err := rows.Scan(&e.CallID, &e.Key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("expired recordings: %w", err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("expired recordings: %w", err)
		}
	}
	return out, nil
}

// ForgetRecording drops an attempt's reference to its deleted recording;
// the attempt itself, a result, stays.
func (s *Store) ForgetRecording(ctx context.Context, callID, key string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE attempts SET recording = '' WHERE call_id = ? AND recording = ?`), callID, key); err != nil {
			return fmt.Errorf("forget recording: %w", err)
		}
		return nil
	})
}
