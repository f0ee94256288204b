package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/elastidial/elastidial/campaign/importer"
)

// Columns returns every column of the dial lists imported into a
// campaign (the union of their headers), sorted; none when nothing was
// imported yet.
func (s *Store) Columns(ctx context.Context, campaignID string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT report FROM imports WHERE campaign_id = ?`), campaignID)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list columns: %w", err)
		}
		var rep importer.Report
		if err := json.Unmarshal([]byte(doc), &rep); err != nil {
			return nil, fmt.Errorf("list columns: import report: %w", err)
		}
		for _, c := range rep.Columns {
			have[c] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	out := make([]string, 0, len(have))
	for c := range have {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}
