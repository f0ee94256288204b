package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// execer is what a write needs of a transaction: a *sql.Tx, or a batch.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writeTx is a transaction that also reads: a *sql.Tx, or a batch.
type writeTx interface {
	execer
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// batch is a unit of writes sent together. A result made a dozen round
// trips on PostgreSQL, each a statement for the server to run and a
// wake-up for the controller, and at a few hundred results a second
// those were most of the fleet's CPU. On PostgreSQL a batch keeps each
// write and flush sends them all as one statement of data-modifying
// CTEs, run in the order they were given (the statement reads each one's
// RETURNING in turn), so row locks are taken in the order the code says;
// one statement is atomic on its own. On SQLite (one writer, no CTE
// writes) a batch lives in a write transaction and each write runs at
// once.
//
// So a batch is only for writes that no later read of it needs to see,
// that touch distinct rows (one statement may not change a row twice),
// that have no RETURNING of their own, and whose result no one needs: a
// kept write's sql.Result answers only errors.
type batch struct {
	q     writeTx // the transaction (SQLite), the database (PostgreSQL)
	pg    bool
	parts []string
	args  []any
}

// inBatch runs fn with a batch and flushes it: on SQLite in a write
// transaction; on PostgreSQL in none, so fn's reads each see what is
// committed, and its writes land together or not at all, with no BEGIN
// or COMMIT round trip.
func (s *Store) inBatch(ctx context.Context, fn func(b *batch) error) error {
	if s.postgres {
		b := &batch{q: s.db, pg: true}
		if err := fn(b); err != nil {
			return err
		}
		return b.flush(ctx)
	}
	return s.write(ctx, func(tx *sql.Tx) error { return fn(&batch{q: tx}) })
}

// renumber moves query's placeholders $1..$nargs to $base+1..$base+nargs;
// a placeholder past nargs is an error. Every $ followed by digits is a
// placeholder: the batch's statements have no literal that holds one. A
// result's batch renumbers a dozen statements, so this is a scan, not a
// regular expression (a tenth of Record's CPU in the fleet benchmark's
// profile went to it).
func renumber(query string, base, nargs int) (string, error) {
	var out strings.Builder
	out.Grow(len(query) + 16)
	for i := 0; i < len(query); i++ {
		c := query[i]
		j := i + 1
		for c == '$' && j < len(query) && query[j] >= '0' && query[j] <= '9' {
			j++
		}
		if j == i+1 {
			out.WriteByte(c)
			continue
		}
		n, err := strconv.Atoi(query[i+1 : j])
		if err != nil || n < 1 || n > nargs {
			return "", fmt.Errorf("batch: placeholder %s of %d arguments", query[i:j], nargs)
		}
		out.WriteByte('$')
		out.WriteString(strconv.Itoa(base + n))
		i = j - 1
	}
	return out.String(), nil
}

// ExecContext runs query now (SQLite) or keeps it for flush (PostgreSQL;
// query has $n placeholders, numbered from 1 for its own args).
func (b *batch) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if !b.pg {
		return b.q.ExecContext(ctx, query, args...)
	}
	renumbered, err := renumber(query, len(b.args), len(args))
	if err != nil {
		return nil, err
	}
	b.parts = append(b.parts, renumbered)
	b.args = append(b.args, args...)
	return deferred{}, nil
}

// QueryRowContext reads now: on PostgreSQL it does not see the writes
// kept for flush.
func (b *batch) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return b.q.QueryRowContext(ctx, query, args...)
}

// flush sends the writes kept, in one statement that runs them in turn.
func (b *batch) flush(ctx context.Context) error {
	if len(b.parts) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("WITH ")
	for i, p := range b.parts {
		if i > 0 {
			q.WriteString(",\n")
		}
		fmt.Fprintf(&q, "w%d AS (%s RETURNING 1)", i, p)
	}
	// Each column reads one write's rows to the end before the next: the
	// writes run in order, not in one the server picks.
	q.WriteString("\nSELECT ")
	for i := range b.parts {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "(SELECT COUNT(*) FROM w%d)", i)
	}
	_, err := b.q.ExecContext(ctx, q.String(), b.args...)
	b.parts, b.args = b.parts[:0], b.args[:0]
	return err
}

// deferred is the result of a write kept for flush.
type deferred struct{}

var errDeferred = errors.New("sqlstore: a batched write's result is not known before its flush")

func (deferred) LastInsertId() (int64, error) { return 0, errDeferred }
func (deferred) RowsAffected() (int64, error) { return 0, errDeferred }
