package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// Do-not-call files (a national registry's download, a complaint list)
// are streamed into a list a batch at a time, each batch in a transaction
// of its own, so a file of millions of numbers never holds up leasing and
// each number is honoured as soon as its batch is in. An import that
// fails part-way keeps what it stored (a number wrongly kept off the
// calls is the safe side of the error) and is recorded as incomplete.
//
// Every import is recorded (dnc_imports) with its list, source, version
// (the registry download's date or release), who ran it and why; each
// attempt's compliance record lists, beside each list checked, the latest
// complete version of every source in it.

// DNCImport is the record of one do-not-call file read into a list.
type DNCImport struct {
	ID         string    `json:"id"`
	List       string    `json:"list"`    // "internal" or a campaign id
	Source     string    `json:"source"`  // e.g. us-ftc, uk-tps, complaints
	Version    string    `json:"version"` // e.g. the registry download's date
	Actor      string    `json:"actor"`   // the API token's name, or cli:<user>
	Reason     string    `json:"reason"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"` // zero while running or when it failed
	Complete   bool      `json:"complete"`
	Error      string    `json:"error,omitempty"`
	Rows       int       `json:"rows"`
	Imported   int       `json:"imported"`
	Rejected   int       `json:"rejected"`
}

// printable checks a short free-text field: 0 to max characters, no
// control characters.
func printable(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return &campaign.FieldError{Field: field, Reason: "is required"}
	case len(v) > max:
		return &campaign.FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes long; at most %d", len(v), max)}
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return &campaign.FieldError{Field: field, Reason: fmt.Sprintf("%q has control characters", v)}
	}
	return nil
}

// Validate checks what a person gives for an import: a source, a reason,
// and for the internal list (where national registries go) a version.
func (d *DNCImport) Validate() error {
	if err := printable("source", d.Source, 100, true); err != nil {
		return err
	}
	if err := printable("version", d.Version, 100, d.List == InternalDNC); err != nil {
		if d.List == InternalDNC && d.Version == "" {
			err.(*campaign.FieldError).Reason = "is required for the internal list: the registry download's date or release, e.g. 2026-12-01"
		}
		return err
	}
	if err := printable("reason", d.Reason, 500, true); err != nil {
		return err
	}
	return printable("actor", d.Actor, 200, false)
}

// CheckReason checks the reason given for a change to a do-not-call list.
func CheckReason(reason string) error { return printable("reason", reason, 500, true) }

// ImportDNCFile streams a do-not-call file into a list (InternalDNC or a
// campaign's id), recording the import. A file refused as a whole (binary,
// no phone column) changes nothing and is not recorded.
func (s *Store) ImportDNCFile(ctx context.Context, d DNCImport, r io.Reader, opt importer.Options, now time.Time) (DNCImport, importer.Report, error) {
	if err := d.Validate(); err != nil {
		return d, importer.Report{}, err
	}
	if d.List != InternalDNC {
		if _, err := s.Campaign(ctx, d.List); err != nil {
			return d, importer.Report{}, err
		}
	}
	d.ID, d.StartedAt, d.FinishedAt, d.Complete = "d_"+randomID(6), now.UTC(), time.Time{}, false
	if err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO dnc_imports (id, list, source, version, actor, reason, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			d.ID, d.List, d.Source, d.Version, d.Actor, d.Reason, ms(now))
		return err
	}); err != nil {
		return d, importer.Report{}, fmt.Errorf("record dnc import: %w", err)
	}
	stored := false
	rep, err := importer.ReadDNC(ctx, r, opt, func(phones []string) error {
		stored = true
		return s.write(ctx, func(tx *sql.Tx) error { return s.addDNCList(ctx, tx, d.List, phones, d.Source, now) })
	})
	d.Rows, d.Imported, d.Rejected = rep.Rows, rep.Imported, rep.Rejected
	wctx := context.WithoutCancel(ctx) // the record must not be lost with the request
	var fe *importer.FileError
	if err != nil && !stored && errors.As(err, &fe) {
		_, derr := s.db.ExecContext(wctx, s.q(`DELETE FROM dnc_imports WHERE id = ?`), d.ID)
		return d, rep, errors.Join(err, derr)
	}
	if err != nil {
		d.Error = err.Error()
	} else {
		d.Complete, d.FinishedAt = true, now.UTC()
	}
	if uerr := s.write(wctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(wctx, s.q(`UPDATE dnc_imports SET finished_at = ?, complete = ?, error = ?, rows_read = ?, imported = ?, rejected = ? WHERE id = ?`),
			ms(d.FinishedAt), d.Complete, d.Error, d.Rows, d.Imported, d.Rejected, d.ID)
		return err
	}); uerr != nil {
		err = errors.Join(err, fmt.Errorf("record dnc import: %w", uerr))
	}
	return d, rep, err
}

// DNCImports lists the imports of every list, newest first, up to limit.
func (s *Store) DNCImports(ctx context.Context, limit int) ([]DNCImport, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, list, source, version, actor, reason, started_at, finished_at, complete, error, rows_read, imported, rejected
		FROM dnc_imports ORDER BY seq DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list dnc imports: %w", err)
	}
	defer rows.Close()
	out := []DNCImport{}
	for rows.Next() {
		var d DNCImport
		var started, finished int64
		if err := rows.Scan(&d.ID, &d.List, &d.Source, &d.Version, &d.Actor, &d.Reason, &started, &finished, &d.Complete, &d.Error, &d.Rows, &d.Imported, &d.Rejected); err != nil {
			return nil, fmt.Errorf("list dnc imports: %w", err)
		}
		d.List = cmp.Or(d.List, "internal")
		d.StartedAt, d.FinishedAt = fromMS(started), fromMS(finished)
		out = append(out, d)
	}
	return out, rows.Err()
}

// dncLists names the lists a lease of the campaign checks, each followed
// by the latest complete version of every source imported into it.
func (s *Store) dncLists(ctx context.Context, tx *sql.Tx, campaignID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT list, source, version FROM dnc_imports WHERE complete = ? AND version <> '' AND list IN ('', ?)
		ORDER BY list, source, seq`), true, campaignID)
	if err != nil {
		return nil, fmt.Errorf("dnc versions: %w", err)
	}
	defer rows.Close()
	latest := map[string]map[string]string{}
	var order = map[string][]string{}
	for rows.Next() {
		var list, source, version string
		if err := rows.Scan(&list, &source, &version); err != nil {
			return nil, fmt.Errorf("dnc versions: %w", err)
		}
		if latest[list] == nil {
			latest[list] = map[string]string{}
		}
		if _, seen := latest[list][source]; !seen {
			order[list] = append(order[list], source)
		}
		latest[list][source] = version
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dnc versions: %w", err)
	}
	out := []string{"internal"}
	for _, src := range order[""] {
		out = append(out, fmt.Sprintf("internal: %s version %s", src, latest[""][src]))
	}
	out = append(out, "campaign "+campaignID)
	for _, src := range order[campaignID] {
		out = append(out, fmt.Sprintf("campaign %s: %s version %s", campaignID, src, latest[campaignID][src]))
	}
	return out, nil
}
