package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/internal/sqldialect"
)

// A batch's writes land together at its end on PostgreSQL (at once, in
// a transaction, on SQLite), each with its own arguments however the
// placeholders repeat, in the order given; a write naming an argument it
// was not given is refused before anything is sent, and a failing write
// takes the others with it.
func TestBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.db.ExecContext(ctx, `CREATE TABLE batch_t (k TEXT PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			var n int
			if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM batch_t`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		err := s.inBatch(ctx, func(b *batch) error {
			// $1 twice, then a second write whose $1 and $2 are its own.
			if _, err := b.ExecContext(ctx, s.q(`INSERT INTO batch_t (k, a, b) VALUES (?, ?, ?)`), "x", "1", "2"); err != nil {
				return err
			}
			if _, err := b.ExecContext(ctx, `INSERT INTO batch_t (k, a, b) VALUES ($1, $2, $2)`, "y", "3"); err != nil {
				return err
			}
			if res, err := b.ExecContext(ctx, s.q(`UPDATE batch_t SET a = ? WHERE k = ?`), "0", "none"); err != nil {
				return err
			} else if _, err := res.RowsAffected(); s.postgres && !errors.Is(err, errDeferred) {
				t.Errorf("a deferred write's result answered %v", err)
			}
			if s.postgres && count() != 0 {
				t.Error("the writes were sent before the flush")
			}
			if _, err := b.ExecContext(ctx, `SELECT $3`, "only one"); err == nil || (s.postgres && !strings.Contains(err.Error(), "$3")) {
				t.Errorf("a placeholder past the arguments: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var a, b string
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT a, b FROM batch_t WHERE k = ?`), "y").Scan(&a, &b); err != nil || a != "3" || b != "3" {
			t.Fatalf("y = %q %q (%v), want 3 3", a, b, err)
		}
		if n := count(); n != 2 {
			t.Fatalf("%d rows after the flush, want 2", n)
		}
		// A write that fails (a duplicate key) fails the flush, and the
		// transaction writes nothing.
		err = s.inBatch(ctx, func(b *batch) error {
			if _, err := b.ExecContext(ctx, s.q(`INSERT INTO batch_t (k, a, b) VALUES (?, ?, ?)`), "z", "1", "1"); err != nil {
				return err
			}
			_, err := b.ExecContext(ctx, s.q(`INSERT INTO batch_t (k, a, b) VALUES (?, ?, ?)`), "x", "1", "1")
			return err
		})
		if err == nil {
			t.Fatal("a duplicate key in a batch went through")
		}
		if n := count(); n != 2 {
			t.Fatalf("%d rows after a failed batch, want 2", n)
		}

		// In the order given: rows numbered as they are written.
		seq := "seq INTEGER PRIMARY KEY"
		if s.postgres {
			seq = "seq BIGSERIAL PRIMARY KEY"
		}
		if _, err := s.db.ExecContext(ctx, `CREATE TABLE batch_seq (`+seq+`, name TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		names := []string{"a", "b", "c", "d"}
		if err := s.inBatch(ctx, func(b *batch) error {
			for _, n := range names {
				if _, err := b.ExecContext(ctx, s.q(`INSERT INTO batch_seq (name) VALUES (?)`), n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var got []string
		rows, err := s.db.QueryContext(ctx, `SELECT name FROM batch_seq ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var n string
			rows.Scan(&n)
			got = append(got, n)
		}
		rows.Close()
		if strings.Join(got, "") != "abcd" {
			t.Fatalf("written in the order %v, want %v", got, names)
		}
	})
}

// dollarN is the regular expression renumber replaced, kept as its
// reference and floor.
var dollarN = regexp.MustCompile(`\$[0-9]+`)

func renumberRE(query string, base, nargs int) (string, error) {
	var bad error
	out := dollarN.ReplaceAllStringFunc(query, func(p string) string {
		n, err := strconv.Atoi(p[1:])
		if err != nil || n < 1 || n > nargs {
			bad = fmt.Errorf("batch: placeholder %s of %d arguments", p, nargs)
			return p
		}
		return "$" + strconv.Itoa(base+n)
	})
	return out, bad
}

// renumber gives what the regular expression it replaced gave.
func TestRenumber(t *testing.T) {
	for _, q := range []string{"", "$", "$$", "$1", "$0", "$3", "a$1b$2$2", "x = $12", "$ 1", "$1$", "'$2'", "$007", "$99999999999999999999"} {
		for _, nargs := range []int{0, 2, 12} {
			got, err := renumber(q, 5, nargs)
			want, werr := renumberRE(q, 5, nargs)
			if (err == nil) != (werr == nil) || (err == nil && got != want) {
				t.Errorf("renumber(%q, 5, %d) = %q, %v; want %q, %v", q, nargs, got, err, want, werr)
			}
		}
	}
}

// BenchmarkRenumber renumbers the statements of a result's batch (as
// Record writes them) by scanning, against the regular expression it
// replaced, in the same run.
func BenchmarkRenumber(b *testing.B) {
	qs := []string{
		sqldialect.Dollar(`INSERT INTO attempts (call_id, contact_id, campaign_id, trunk, node_id, token, attempt, state, started_at, expires_at, answered_at, ended_at, disposition, cause, path, tags, recording)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?, 0, ?, ?, ?, ?, ?, ?, ?)`),
		sqldialect.Dollar(`UPDATE contacts SET state = ?, next_at = ?, lease_token = NULL WHERE id = ? AND lease_token = ?`),
		`INSERT INTO compliance_pending (campaign_id, kind, at, call_id, doc) VALUES ($1, $2, $3, $4, $5)`,
		`INSERT INTO abandon_log (campaign_id, hour, abandoned) VALUES ($1, $2, $3)`,
		`INSERT INTO live_shards (key, shard, n) VALUES ($1, $2, $3),($4, $5, $6)
		ON CONFLICT (key, shard) DO UPDATE SET n = live_shards.n + excluded.n`,
	}
	for _, impl := range []struct {
		name string
		f    func(string, int, int) (string, error)
	}{{"scan", renumber}, {"regexp-floor", renumberRE}} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				base := 0
				for _, q := range qs {
					if _, err := impl.f(q, base, 17); err != nil {
						b.Fatal(err)
					}
					base += 17
				}
			}
		})
	}
}
