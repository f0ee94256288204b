package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The compliance record: for every attempt, what the rules engine checked
// before it was dialled (campaign.Evidence) and what happened on the call
// (disposition, the flow's path, its tags). Each campaign's records form a
// hash chain: a record's hash covers the previous record's hash and its
// own document, and compliance_heads keeps the latest, so an edited,
// deleted, inserted or reordered record is found by VerifyCompliance.

// ComplianceRecord is one link of a campaign's chain.
type ComplianceRecord struct {
	Seq      int64           `json:"seq"`
	Campaign string          `json:"campaign"`
	CallID   string          `json:"call_id"`
	Kind     string          `json:"kind"` // "dial" or "result"
	At       time.Time       `json:"at"`
	Doc      json.RawMessage `json:"doc"`
	Prev     string          `json:"prev"`
	Hash     string          `json:"hash"`
}

// ResultRecord is the result half of an attempt's compliance record.
type ResultRecord struct {
	CallID      string            `json:"call_id"`
	Disposition string            `json:"disposition"`
	Cause       int               `json:"cause"`
	Path        []string          `json:"path"` // what was played and asked, state by state
	Tags        map[string]string `json:"tags"` // what was answered
	EndedAt     time.Time         `json:"ended_at"`
	State       string            `json:"contact_state"` // what the contact became
}

// chainHash links a document to the chain.
func chainHash(prev, campaignID, callID, kind string, at int64, doc []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%d\n", prev, campaignID, callID, kind, at)
	h.Write(doc)
	return hex.EncodeToString(h.Sum(nil))
}

// appendCompliance adds records to a campaign's chain within tx. On
// PostgreSQL they wait in compliance_pending for the linker (chain.go).
func (s *Store) appendCompliance(ctx context.Context, tx writeTx, campaignID, kind string, at time.Time, callIDs []string, docs []any) error {
	if len(docs) == 0 {
		return nil
	}
	if s.postgres {
		return s.pendingCompliance(ctx, tx, campaignID, kind, at, callIDs, docs)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO compliance_heads (campaign_id, hash) VALUES (?, '') ON CONFLICT (campaign_id) DO NOTHING`), campaignID); err != nil {
		return fmt.Errorf("compliance record: %w", err)
	}
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE"
	}
	var prev string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT hash FROM compliance_heads WHERE campaign_id = ?`+lock), campaignID).Scan(&prev); err != nil {
		return fmt.Errorf("compliance record: %w", err)
	}
	// One statement per 100 records: a lease batch is one or two.
	const perStmt = 100
	args := make([]any, 0, 7*min(perStmt, len(docs)))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		q := `INSERT INTO compliance (campaign_id, call_id, kind, at, doc, prev, hash) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?),", len(args)/7), ",")
		if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
			return fmt.Errorf("compliance record: %w", err)
		}
		args = args[:0]
		return nil
	}
	for i, d := range docs {
		doc, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("compliance record: %w", err)
		}
		h := chainHash(prev, campaignID, callIDs[i], kind, ms(at), doc)
		args = append(args, campaignID, callIDs[i], kind, ms(at), string(doc), prev, h)
		prev = h
		if len(args) == 7*perStmt {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE compliance_heads SET hash = ? WHERE campaign_id = ?`), prev, campaignID); err != nil {
		return fmt.Errorf("compliance record: %w", err)
	}
	return nil
}

// complianceHeadPG locks and reads a campaign's compliance head in one
// statement, making it if the campaign has none yet.
func (s *Store) complianceHeadPG(ctx context.Context, tx *sql.Tx, campaignID string) (string, error) {
	var prev string
	err := tx.QueryRowContext(ctx, `INSERT INTO compliance_heads (campaign_id, hash) VALUES ($1, '')
		ON CONFLICT (campaign_id) DO UPDATE SET hash = compliance_heads.hash RETURNING hash`, campaignID).Scan(&prev)
	if err != nil {
		return "", fmt.Errorf("compliance record: %w", err)
	}
	return prev, nil
}

// ErrChainBroken is returned by VerifyCompliance when a campaign's
// compliance record was altered.
var ErrChainBroken = errors.New("compliance record altered")

// ComplianceRecords streams a campaign's chain in order.
func (s *Store) ComplianceRecords(ctx context.Context, campaignID string, fn func(ComplianceRecord) error) error {
	if err := s.LinkCompliance(ctx); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, call_id, kind, at, doc, prev, hash FROM compliance WHERE campaign_id = ? ORDER BY seq`), campaignID)
	if err != nil {
		return fmt.Errorf("read compliance record: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := ComplianceRecord{Campaign: campaignID}
		var at int64
		var doc string
		if err := rows.Scan(&r.Seq, &r.CallID, &r.Kind, &at, &doc, &r.Prev, &r.Hash); err != nil {
			return fmt.Errorf("read compliance record: %w", err)
		}
		r.At, r.Doc = fromMS(at), json.RawMessage(doc)
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyCompliance recomputes a campaign's chain and returns how many
// records it holds, or ErrChainBroken naming the first record at fault.
func (s *Store) VerifyCompliance(ctx context.Context, campaignID string) (int, error) {
	if err := s.LinkCompliance(ctx); err != nil {
		return 0, err
	}
	var head string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT hash FROM compliance_heads WHERE campaign_id = ?`), campaignID).Scan(&head)
	if errors.Is(err, sql.ErrNoRows) {
		head = ""
	} else if err != nil {
		return 0, fmt.Errorf("verify compliance record: %w", err)
	}
	prev, n := "", 0
	err = s.ComplianceRecords(ctx, campaignID, func(r ComplianceRecord) error {
		n++
		if r.Prev != prev {
			return fmt.Errorf("campaign %s record %d (%s %s): it does not follow the record before it (a record was removed, inserted or reordered): %w", campaignID, r.Seq, r.Kind, r.CallID, ErrChainBroken)
		}
		if h := chainHash(prev, campaignID, r.CallID, r.Kind, ms(r.At), r.Doc); h != r.Hash {
			return fmt.Errorf("campaign %s record %d (%s %s): its content does not match its hash: %w", campaignID, r.Seq, r.Kind, r.CallID, ErrChainBroken)
		}
		prev = r.Hash
		return nil
	})
	if err != nil {
		return n, err
	}
	if prev != head {
		return n, fmt.Errorf("campaign %s: the chain ends at %.12s but its head is %.12s (records were removed from the end): %w", campaignID, prev, head, ErrChainBroken)
	}
	return n, nil
}

// ExportCompliance writes a campaign's chain as JSON lines.
func (s *Store) ExportCompliance(ctx context.Context, campaignID string, w io.Writer) error {
	enc := json.NewEncoder(w)
	return s.ComplianceRecords(ctx, campaignID, func(r ComplianceRecord) error { return enc.Encode(r) })
}

// ComplianceCampaigns lists the campaigns that have a compliance record.
func (s *Store) ComplianceCampaigns(ctx context.Context) ([]string, error) {
	if err := s.LinkCompliance(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT campaign_id FROM compliance_heads ORDER BY campaign_id`)
	if err != nil {
		return nil, fmt.Errorf("list compliance records: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list compliance records: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
