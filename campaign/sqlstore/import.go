package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// An import is staged, then published:
//
//	reading the upload ──► rows stored as 'staged' (one short transaction
//	                        per batch; never leased, counted or shown)
//	     │ read error, bad file          │ every row read
//	     ▼                               ▼
//	 discarded (staged rows and      import recorded, then its rows made
//	 rejections deleted)             'pending' (or 'dnc' if the number
//	                                 joined the do-not-call list meanwhile),
//	                                 in short transactions of publishChunk rows
//
// So neither a slow upload nor a million-row file holds the store's write
// lock for longer than one batch: leasing and results go on throughout.
// An import being read holds a lock that dies with its controller
// (holdImport). A crash leaves staged rows; Open finishes the publication
// of a recorded import and discards the rows of one never recorded whose
// lock is free, and so does an import that meets such rows (dedupe): an
// upload tried again after a crash imports its rows at once.

// contactStaged marks a row of an import still being read. Queries name
// it as the literal 'staged' so that its partial index is used.
const contactStaged = "staged"

// publishChunk is how many staged rows one transaction publishes.
const publishChunk = 5000

// lockImport is the advisory lock class (PostgreSQL) of imports being
// read; apart from leasing's classes.
const lockImport = 5

// holdImport marks import id as being read until release. held reports
// whether the mark still holds: on PostgreSQL it is a session lock on a
// connection of its own, which ends with the controller's process and
// with the database server's restart; on SQLite, where one process holds
// the file, it is kept in this Store.
func (s *Store) holdImport(ctx context.Context, id string) (held func(context.Context) error, release func(), err error) {
	if !s.postgres {
		s.imu.Lock()
		if s.reading == nil {
			s.reading = map[string]bool{}
		}
		s.reading[id] = true
		s.imu.Unlock()
		return func(context.Context) error { return nil }, func() {
			s.imu.Lock()
			delete(s.reading, id)
			s.imu.Unlock()
		}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", id, err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, $2)`, lockImport, lockKey(id)); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("import %s: hold: %w", id, err)
	}
	held = func(ctx context.Context) error {
		if err := conn.PingContext(ctx); err != nil {
			return fmt.Errorf("import %s: the database session holding it ended (%w); upload the list again", id, err)
		}
		return nil
	}
	release = func() {
		// A session that ended released the lock with it.
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1, $2)`, lockImport, lockKey(id))
		conn.Close()
	}
	return held, release, nil
}

// importState is what became of an import whose rows are staged.
type importState struct {
	recorded bool // every row read: its publication goes on, or must
	live     bool // a controller holds it (reading or publishing it)
}

// stagedBy tells what became of import id, whose rows are staged.
func (s *Store) stagedBy(ctx context.Context, id string) (importState, error) {
	var st importState
	var one int
	switch err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM imports WHERE id = ?`), id).Scan(&one); {
	case err == nil:
		st.recorded = true
	case !errors.Is(err, sql.ErrNoRows):
		return st, err
	}
	if !s.postgres {
		s.imu.Lock()
		defer s.imu.Unlock()
		st.live = s.reading[id]
		return st, nil
	}
	// Free when the try takes it (released with the transaction).
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return st, err
	}
	defer tx.Rollback()
	var free bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, lockImport, lockKey(id)).Scan(&free); err != nil {
		return st, err
	}
	st.live = !free
	return st, nil
}

// publishImport records the import's report and makes its rows callable.
func (s *Store) publishImport(ctx context.Context, campaignID, importID string, rep importer.Report, now time.Time) error {
	doc, _ := json.Marshal(rep)
	// Idempotent, so that a reply lost with a dropped connection is
	// simply asked again.
	if err := retry(ctx, func() error {
		return s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO imports (id, campaign_id, created_at, report) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`), importID, campaignID, ms(now), string(doc))
			if err != nil {
				return fmt.Errorf("record import: %w", err)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	// Recorded: from here the import stands, and its publication is
	// carried through a dropped connection (or, failing that, by Open).
	return retry(ctx, func() error { return s.publishStaged(ctx, importID) })
}

// retry runs fn up to five times while it fails with anything but ctx's
// end: a dropped database connection is replaced by the pool at once.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for try := range 5 {
		if err = fn(); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// publishStaged turns an import's staged rows pending, chunk by chunk.
// A number added to the do-not-call list while the import was read is
// taken out here, as AddDNC takes out pending ones.
func (s *Store) publishStaged(ctx context.Context, importID string) error {
	for {
		var n int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET next_at = 0,
				state = CASE WHEN EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = contacts.phone) THEN ? ELSE ? END
				WHERE id IN (SELECT id FROM contacts WHERE import_id = ? AND state = 'staged' LIMIT ?)`),
				campaign.ContactDNC, campaign.ContactPending, importID, publishChunk)
			if err != nil {
				return fmt.Errorf("publish import %s: %w", importID, err)
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil || n == 0 {
			return err
		}
	}
}

// discardImport deletes what a failed import staged.
func (s *Store) discardImport(ctx context.Context, importID string) error {
	for {
		var n int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, s.q(`DELETE FROM contacts WHERE id IN (SELECT id FROM contacts WHERE import_id = ? AND state = 'staged' LIMIT ?)`), importID, publishChunk)
			if err != nil {
				return fmt.Errorf("discard import %s: %w", importID, err)
			}
			if n, err = res.RowsAffected(); err != nil || n > 0 {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q(`DELETE FROM import_rejections WHERE import_id = ?`), importID)
			return err
		})
		if err != nil || n == 0 {
			return err
		}
	}
}

// recoverImports finishes what a crash left: recorded imports no
// controller holds are published, unrecorded ones discarded.
func (s *Store) recoverImports(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT import_id FROM contacts WHERE state = 'staged'`)
	if err != nil {
		return fmt.Errorf("staged imports: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("staged imports: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("staged imports: %w", err)
	}
	for _, id := range ids {
		st, err := s.stagedBy(ctx, id)
		switch {
		case err != nil:
			return fmt.Errorf("staged imports: %w", err)
		case st.live: // its controller carries it through
		case st.recorded:
			err = s.publishStaged(ctx, id)
		default:
			err = s.discardImport(ctx, id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
