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
// A crash leaves staged rows; Open finishes the publication of a recorded
// import and discards the rows of one never recorded once they are
// older than abandonAfter (another controller may still be reading it):
// imports are stamped with the now they are given, which must be the wall
// clock, as Open's is.

// contactStaged marks a row of an import still being read. Queries name
// it as the literal 'staged' so that its partial index is used.
const contactStaged = "staged"

// publishChunk is how many staged rows one transaction publishes.
const publishChunk = 5000

// abandonAfter is how old the staged rows of an unrecorded import must be
// before Open takes the import as abandoned.
const abandonAfter = time.Hour

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

// recoverImports finishes what a crash left: recorded imports are
// published, unrecorded ones older than abandonAfter discarded.
func (s *Store) recoverImports(ctx context.Context, now time.Time) error {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT import_id, MAX(next_at) FROM contacts WHERE state = 'staged' GROUP BY import_id`))
	if err != nil {
		return fmt.Errorf("staged imports: %w", err)
	}
	type staged struct {
		id string
		at int64
	}
	var all []staged
	for rows.Next() {
		var st staged
		if err := rows.Scan(&st.id, &st.at); err != nil {
			rows.Close()
			return fmt.Errorf("staged imports: %w", err)
		}
		all = append(all, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("staged imports: %w", err)
	}
	for _, st := range all {
		var one int
		err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM imports WHERE id = ?`), st.id).Scan(&one)
		switch {
		case err == nil:
			if err := s.publishStaged(ctx, st.id); err != nil {
				return err
			}
		case errors.Is(err, sql.ErrNoRows) && now.Sub(fromMS(st.at)) > abandonAfter:
			if err := s.discardImport(ctx, st.id); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("staged imports: %w", err)
		}
	}
	return nil
}
