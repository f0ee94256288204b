package sqlstore

import (
	"context"
	"fmt"
	"strings"
)

// TrunkCalls returns the calls in progress on each trunk (leases held),
// from the same counts leasing checks the trunk's limit against.
func (s *Store) TrunkCalls(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, COALESCE(SUM(n), 0) FROM live_shards WHERE key LIKE 't:%' GROUP BY key`)
	if err != nil {
		return nil, fmt.Errorf("trunk calls: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("trunk calls: %w", err)
		}
		out[strings.TrimPrefix(k, "t:")] = n
	}
	return out, rows.Err()
}
