package sqlstore

import (
	"context"
	"fmt"
)

// TrunkCalls returns the calls in progress on each trunk (leases held),
// counted as leasing counts them against the trunk's limit: the contacts
// leased on it.
func (s *Store) TrunkCalls(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT lease_trunk, count(*) FROM contacts WHERE state = 'leased' AND lease_trunk IS NOT NULL GROUP BY lease_trunk`)
	if err != nil {
		return nil, fmt.Errorf("trunk calls: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("trunk calls: %w", err)
		}
		out[t] = n
	}
	return out, rows.Err()
}
