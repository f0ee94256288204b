package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// A lease lives as long as its node holds the call: it is written with
// LeaseTTL to run, and every heartbeat of the node renews it for LeaseTTL
// more (RenewNode), so a call may last any time while its node is heard
// from. It ends when the node is known dead: the scaler saw its instance
// end (ReleaseNode), or its heartbeats stayed away a whole LeaseTTL
// (Reap). It also ends when the node, alive, no longer holds the call: a
// heartbeat lists the calls the node holds (placing, in progress, or
// their results not yet delivered), and a lease it leaves out is one whose
// dialer.next answer never reached the node, so the call will never be
// dialled nor reported. Such a lease ends as a dead node's does (cut off,
// the contact retried by its campaign's policy), once it is older than
// HeldGrace, which covers an answer still on its way when the node listed
// its calls. These functions touch only a lease's lifetime and owner,
// never whom a contact may be handed to.

// RenewNode extends the live leases of nodeID to now+LeaseTTL; a node's
// heartbeat calls it. Leases already running longer are left alone. held
// lists the calls the node holds; nil means the node did not say (an older
// agent) and renews every lease. Otherwise the node's leases granted
// before now-HeldGrace that held does not name are ended as cut off.
func (s *Store) RenewNode(ctx context.Context, nodeID string, held []string, now time.Time) error {
	until := ms(now.Add(s.LeaseTTL))
	ended := 0
	// One transaction per heartbeat: the leases the node no longer holds
	// end and the others are renewed together.
	err := s.write(ctx, func(tx *sql.Tx) error {
		ended = 0
		if held != nil {
			keep := make(map[string]bool, len(held))
			for _, id := range held {
				keep[id] = true
			}
			n, err := s.endLiveTx(ctx, tx, `lease_node = ? AND leased_at < ?`, []any{nodeID, ms(now.Add(-s.HeldGrace))}, keep, now)
			if err != nil {
				return fmt.Errorf("end leases %s no longer holds: %w", nodeID, err)
			}
			ended = n
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET lease_expires = ?
			WHERE state = 'leased' AND lease_node = ? AND lease_expires < ?`), until, nodeID, until); err != nil {
			return fmt.Errorf("renew leases of %s: %w", nodeID, err)
		}
		return nil
	})
	if ended > 0 && err == nil {
		s.wakeLinker()
	}
	return err
}
