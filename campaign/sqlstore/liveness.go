package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// A lease lives as long as its node: it is written with LeaseTTL to run,
// and every heartbeat of the node renews it for LeaseTTL more (RenewNode),
// so a call may last any time while its node is heard from. It ends only
// when the node is known dead: the scaler saw its instance end
// (ReleaseNode), or its heartbeats stayed away a whole LeaseTTL (Reap).
// These functions touch only a lease's lifetime and owner, never whom a
// contact may be handed to.

// RenewNode extends every live lease of nodeID to now+LeaseTTL; a node's
// heartbeat calls it. Leases already running longer are left alone.
func (s *Store) RenewNode(ctx context.Context, nodeID string, now time.Time) error {
	until := ms(now.Add(s.LeaseTTL))
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET lease_expires = ?
			WHERE state = 'leased' AND lease_node = ? AND lease_expires < ?`), until, nodeID, until); err != nil {
			return fmt.Errorf("renew leases of %s: %w", nodeID, err)
		}
		return nil
	})
}
