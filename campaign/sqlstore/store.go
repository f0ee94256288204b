// Package sqlstore keeps the campaign tier's state in SQL: SQLite in one
// file for the embedded default, PostgreSQL in production. Both run the same
// queries; leasing is atomic on both (a single writer on SQLite, row locks
// with SKIP LOCKED on PostgreSQL).
package sqlstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // and the PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"           // pure-Go SQLite driver "sqlite"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/internal/sqldialect"
)

// Store is the SQL campaign store. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	// wmu serialises write transactions on SQLite, which has one writer;
	// waiting on a mutex is far cheaper than SQLITE_BUSY retries.
	wmu sync.Mutex

	// LeaseTTL bounds how long a leased contact stays out; after it the
	// contact comes back (a node killed mid-call loses nothing). Default 15m.
	LeaseTTL time.Duration
	// HeldGrace is how long a lease is kept although its node's heartbeat
	// does not list it (RenewNode): the dialer.next answer may still be on
	// its way when the node lists its calls. The agent gives up on a
	// dialer.next and on a heartbeat after 15 s each, so a lease left out
	// that way is under 30 s old when the heartbeat arrives; the default,
	// 1m, doubles that for load and clocks of several controllers, and
	// still frees a lost lease sooner than a dead node's (LeaseTTL).
	HeldGrace time.Duration

	// reading holds the imports this Store is reading (SQLite, where one
	// process holds the file; see holdImport).
	imu     sync.Mutex
	reading map[string]bool

	zmu   sync.RWMutex
	zones map[int64]zoneGroup // zone group id → jurisdiction and zones
	zids  map[string]int64    // group key → id

	// Caps bound how often one number is called across all campaigns.
	// Default campaign.DefaultCaps.
	Caps campaign.Caps

	// Cache, when set, holds campaigns' dialing configuration (memcached
	// in production) between the process and the database.
	Cache   Cache
	configs configCache

	// SpotCallLimit is the longest call a spot node may carry: a
	// campaign whose calls may last longer (Campaign.OffSpot) is leased
	// to on-demand nodes only, and its Demand says so. 0 keeps nothing
	// off spot.
	SpotCallLimit time.Duration

	// The campaigns Demand last found short of their target (report.go):
	// a hint of which count to take first, never a figure.
	shortMu sync.Mutex
	short   map[string]bool

	// The compliance linker (chain.go), PostgreSQL only.
	linkKick chan struct{}
	linkStop context.CancelFunc
	linkDone sync.WaitGroup
}

// Open opens (creating if needed) the store at dsn: a postgres:// URL or
// "host=..." DSN for PostgreSQL, else a SQLite file path (optionally
// prefixed "sqlite:"), and runs the migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{LeaseTTL: 15 * time.Minute, HeldGrace: time.Minute, Caps: campaign.DefaultCaps, zones: map[int64]zoneGroup{}, zids: map[string]int64{}}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"), strings.HasPrefix(dsn, "host="):
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
		if err == nil {
			s.db.SetMaxOpenConns(32)
			s.db.SetMaxIdleConns(32)
		}
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if err := privateFiles(path); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
		if err == nil {
			s.db.SetMaxOpenConns(8)
			s.db.SetMaxIdleConns(8)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.recoverImports(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if s.postgres {
		lctx, stop := context.WithCancel(context.Background())
		s.linkKick, s.linkStop = make(chan struct{}, 1), stop
		s.linkDone.Add(1)
		go s.linker(lctx)
		s.wakeLinker() // records a crashed process left pending
	}
	return s, nil
}

// privateFiles makes the SQLite database and its WAL files readable by
// this user only (they hold contacts' numbers and token hashes): SQLite
// creates the WAL and shared-memory files with the database's mode, so
// the database is created 0600 and an existing one is tightened.
func privateFiles(path string) error {
	if path == "" || strings.HasPrefix(path, ":") || strings.HasPrefix(path, "file:") {
		return nil // in memory, or a URI the caller manages
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.linkStop != nil {
		s.linkStop()
		s.linkDone.Wait()
	}
	return s.db.Close()
}

// DB exposes the database for packages that keep their own tables in it.
func (s *Store) DB() *sql.DB { return s.db }

// Driver is the database/sql driver of DB: "pgx" or "sqlite".
func (s *Store) Driver() string {
	if s.postgres {
		return "pgx"
	}
	return "sqlite"
}

func (s *Store) migrate(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		for i := have; i < len(migrations); i++ {
			q := migrations[i].sqlite
			if s.postgres && migrations[i].postgres != "" {
				q = migrations[i].postgres
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version) VALUES (?)`), i+1); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}

// q rewrites ? placeholders as $n for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	return sqldialect.Dollar(query)
}

// write runs fn in a write transaction.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if !s.postgres {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// --- trunks and campaigns ---------------------------------------------------

// CreateCampaign stores a new campaign (in draft unless told otherwise)
// and returns it with its id.
func (s *Store) CreateCampaign(ctx context.Context, c campaign.Campaign, now time.Time) (campaign.Campaign, error) {
	c.Defaults()
	c.ID = "c_" + randomID(6)
	c.Status = campaign.StatusDraft
	c.FlowVersion, c.Transfers, c.FlowLength = 0, false, nil
	c.CreatedAt, c.UpdatedAt = now.UTC(), now.UTC()
	if err := c.Validate(); err != nil {
		return c, err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.groupExists(ctx, tx, c.Trunks); err != nil {
			return err
		}
		secret, err := s.webhookSecret(ctx, tx, &c)
		if err != nil {
			return err
		}
		doc, _ := json.Marshal(c)
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO campaigns (id, name, status, trunk, doc, flow_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)`),
			c.ID, c.Name, c.Status, c.Trunk, string(doc), ms(now), ms(now))
		if err != nil {
			return fmt.Errorf("create campaign: %w", err)
		}
		return s.storeSecret(ctx, tx, c.ID, secret)
	})
	return c, err
}

// groupExists checks that every trunk of a campaign's group exists.
func (s *Store) groupExists(ctx context.Context, tx *sql.Tx, group []string) error {
	for i, name := range group {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM trunks WHERE name = ?`), name).Scan(&n); err != nil {
			return fmt.Errorf("find trunk: %w", err)
		}
		if n == 0 {
			field := "trunk"
			if i > 0 {
				field = fmt.Sprintf("trunks[%d]", i)
			}
			return &campaign.FieldError{Field: field, Reason: fmt.Sprintf("no trunk named %q; create it first", name)}
		}
	}
	return nil
}

// UpdateCampaign replaces a campaign's settings; the id, status, flow
// version and creation time are kept (ModifyCampaign with the whole
// campaign as the change).
func (s *Store) UpdateCampaign(ctx context.Context, c campaign.Campaign, now time.Time) (campaign.Campaign, error) {
	return s.ModifyCampaign(ctx, c.ID, func(cur *campaign.Campaign) error {
		*cur = c
		return nil
	}, now)
}

// ModifyCampaign applies change to the stored campaign and saves it, in one
// transaction with the row locked, so that two partial updates of one
// campaign never undo each other. The id, status, flow version and
// timestamps stay the store's.
func (s *Store) ModifyCampaign(ctx context.Context, id string, change func(*campaign.Campaign) error, now time.Time) (campaign.Campaign, error) {
	var out campaign.Campaign
	err := s.write(ctx, func(tx *sql.Tx) error {
		if s.postgres { // SQLite writes are serialised by wmu already
			if _, err := tx.ExecContext(ctx, s.q(`SELECT 1 FROM campaigns WHERE id = ? FOR UPDATE`), id); err != nil {
				return fmt.Errorf("lock campaign: %w", err)
			}
		}
		old, err := s.campaignTx(ctx, tx, id)
		if err != nil {
			return err
		}
		c := old
		if err := change(&c); err != nil {
			return err
		}
		c.ID, c.Status, c.FlowVersion, c.CreatedAt, c.UpdatedAt, c.Transfers = old.ID, old.Status, old.FlowVersion, old.CreatedAt, now.UTC(), old.Transfers
		c.FlowLength = old.FlowLength
		c.Defaults()
		if err := c.Validate(); err != nil {
			return err
		}
		if err := s.groupExists(ctx, tx, c.Trunks); err != nil {
			return err
		}
		secret, err := s.webhookSecret(ctx, tx, &c)
		if err != nil {
			return err
		}
		if err := s.storeSecret(ctx, tx, c.ID, secret); err != nil {
			return err
		}
		out = c
		return s.saveCampaign(ctx, tx, c)
	})
	return out, err
}

func (s *Store) saveCampaign(ctx context.Context, tx *sql.Tx, c campaign.Campaign) error {
	doc, _ := json.Marshal(c)
	_, err := tx.ExecContext(ctx, s.q(`UPDATE campaigns SET name = ?, status = ?, trunk = ?, doc = ?, flow_version = ?, updated_at = ?, revision = revision + 1 WHERE id = ?`),
		c.Name, c.Status, c.Trunk, string(doc), c.FlowVersion, ms(c.UpdatedAt), c.ID)
	if err != nil {
		return fmt.Errorf("save campaign: %w", err)
	}
	return nil
}

// SetStatus moves a campaign through its states; a running campaign needs
// a flow and contacts.
func (s *Store) SetStatus(ctx context.Context, id, status string, now time.Time) (campaign.Campaign, error) {
	var out campaign.Campaign
	err := s.write(ctx, func(tx *sql.Tx) error {
		c, err := s.campaignTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if status == campaign.StatusRunning {
			status = campaign.StartStatus(&c, now) // scheduled while start_at is ahead
		}
		if err := campaign.Transition(c.Status, status); err != nil {
			return err
		}
		if (status == campaign.StatusRunning || status == campaign.StatusScheduled) && c.FlowVersion == 0 {
			return fmt.Errorf("%w: campaign %s has no IVR flow yet; PUT one to /campaigns/%s/flow first", campaign.ErrConflict, id, id)
		}
		c.Status, c.UpdatedAt = status, now.UTC()
		out = c
		return s.saveCampaign(ctx, tx, c)
	})
	return out, err
}

// startDue moves scheduled campaigns whose start_at has come to running.
func (s *Store) startDue(ctx context.Context, now time.Time) error {
	due, err := s.campaigns(ctx, `SELECT doc FROM campaigns WHERE status = ?`, campaign.StatusScheduled)
	if err != nil || len(due) == 0 {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, c := range due {
			if campaign.StartStatus(&c, now) != campaign.StatusRunning {
				continue
			}
			cur, err := s.campaignTx(ctx, tx, c.ID)
			if err != nil {
				return err
			}
			if cur.Status != campaign.StatusScheduled || campaign.StartStatus(&cur, now) != campaign.StatusRunning {
				continue // changed meanwhile
			}
			cur.Status, cur.UpdatedAt = campaign.StatusRunning, now.UTC()
			if err := s.saveCampaign(ctx, tx, cur); err != nil {
				return fmt.Errorf("start scheduled campaign %s: %w", c.ID, err)
			}
		}
		return nil
	})
}

// Campaign returns one campaign.
func (s *Store) Campaign(ctx context.Context, id string) (campaign.Campaign, error) {
	return s.campaignQ(ctx, s.db, id)
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *Store) campaignTx(ctx context.Context, tx *sql.Tx, id string) (campaign.Campaign, error) {
	return s.campaignQ(ctx, tx, id)
}

func (s *Store) campaignQ(ctx context.Context, q querier, id string) (campaign.Campaign, error) {
	var doc string
	err := q.QueryRowContext(ctx, s.q(`SELECT doc FROM campaigns WHERE id = ?`), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return campaign.Campaign{}, fmt.Errorf("campaign %q: %w", id, campaign.ErrNotFound)
	}
	if err != nil {
		return campaign.Campaign{}, fmt.Errorf("get campaign: %w", err)
	}
	return decodeCampaign(id, doc)
}

// decodeCampaign is the campaign stored as doc.
func decodeCampaign(id, doc string) (campaign.Campaign, error) {
	var c campaign.Campaign
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return c, fmt.Errorf("campaign %s: corrupt record: %w", id, err)
	}
	return c, nil
}

// Campaigns lists every campaign, newest first.
func (s *Store) Campaigns(ctx context.Context) ([]campaign.Campaign, error) {
	return s.campaigns(ctx, `SELECT doc FROM campaigns ORDER BY created_at DESC, id`)
}

// campaigns decodes the campaign documents a query selects.
func (s *Store) campaigns(ctx context.Context, query string, args ...any) ([]campaign.Campaign, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	defer rows.Close()
	var out []campaign.Campaign
	for rows.Next() {
		var doc string
		var c campaign.Campaign
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list campaigns: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &c); err != nil {
			return nil, fmt.Errorf("list campaigns: corrupt record: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SaveFlow stores a new version of a campaign's flow document (already
// validated by the caller) and makes it current. Old versions are kept:
// calls in flight use the version they were leased with. Its length is
// unknown: on a fleet with spot nodes, the campaign's calls go to
// on-demand nodes only (SaveFlowLength knows better).
func (s *Store) SaveFlow(ctx context.Context, id string, doc []byte, now time.Time) (int, error) {
	return s.SaveFlowLength(ctx, id, doc, nil, now)
}

// SaveFlowLength is SaveFlow with the flow's longest call (flow.Length),
// which decides whether the campaign's calls may go to spot nodes.
func (s *Store) SaveFlowLength(ctx context.Context, id string, doc []byte, length *campaign.FlowLength, now time.Time) (int, error) {
	var version int
	err := s.write(ctx, func(tx *sql.Tx) error {
		c, err := s.campaignTx(ctx, tx, id)
		if err != nil {
			return err
		}
		c.FlowVersion++
		c.UpdatedAt = now.UTC()
		c.Transfers = flowTransfers(doc)
		c.FlowLength = length
		version = c.FlowVersion
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO flows (campaign_id, version, doc, created_at) VALUES (?, ?, ?, ?)`), id, version, string(doc), ms(now)); err != nil {
			return fmt.Errorf("save flow: %w", err)
		}
		return s.saveCampaign(ctx, tx, c)
	})
	return version, err
}

// FlowDocument returns one version of a campaign's flow.
func (s *Store) FlowDocument(ctx context.Context, id string, version int) ([]byte, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT doc FROM flows WHERE campaign_id = ? AND version = ?`), id, version).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("flow %s v%d: %w", id, version, campaign.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get flow: %w", err)
	}
	return []byte(doc), nil
}

// --- zones ------------------------------------------------------------------

// zoneGroup is the calling-hours jurisdiction and the possible zones
// shared by many contacts; contacts keep the id of theirs.
type zoneGroup struct {
	juris string
	locs  []*time.Location
}

// groupKey names a zone group: "US-FL|America/New_York" or, in the
// federal default, the zones alone.
func groupKey(juris string, zones []string) string {
	if juris == "" {
		return strings.Join(zones, ",")
	}
	return juris + "|" + strings.Join(zones, ",")
}

// zoneGroup returns the id of a group, creating it within tx. The cache
// learns new groups only after commit, through loadZones.
func (s *Store) zoneGroup(ctx context.Context, tx *sql.Tx, key string, pending map[string]int64) (int64, error) {
	id, ok := s.knownZoneGroup(key, pending)
	if ok {
		return id, nil
	}
	err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM zone_groups WHERE zones = ?`), key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, s.q(`INSERT INTO zone_groups (id, zones) SELECT COALESCE(MAX(id), 0) + 1, ? FROM zone_groups RETURNING id`), key).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("zone group: %w", err)
	}
	pending[key] = id
	return id, nil
}

// knownZoneGroup is zoneGroup without the database: the id of a group
// cached or created in this import (pending).
func (s *Store) knownZoneGroup(key string, pending map[string]int64) (int64, bool) {
	s.zmu.RLock()
	id, ok := s.zids[key]
	s.zmu.RUnlock()
	if !ok {
		id, ok = pending[key]
	}
	return id, ok
}

// loadZones refreshes the zone-group cache from the database.
func (s *Store) loadZones(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT id, zones FROM zone_groups`)
	if err != nil {
		return fmt.Errorf("load zones: %w", err)
	}
	defer rows.Close()
	s.zmu.Lock()
	defer s.zmu.Unlock()
	for rows.Next() {
		var id int64
		var key string
		if err := rows.Scan(&id, &key); err != nil {
			return fmt.Errorf("load zones: %w", err)
		}
		if _, ok := s.zones[id]; ok {
			continue
		}
		juris, zones, ok := strings.Cut(key, "|")
		if !ok {
			juris, zones = "", key
		}
		var locs []*time.Location
		for _, z := range strings.Split(zones, ",") {
			loc, err := time.LoadLocation(z)
			if err != nil {
				return fmt.Errorf("zone group %d: %w", id, err)
			}
			locs = append(locs, loc)
		}
		s.zones[id], s.zids[key] = zoneGroup{juris: juris, locs: locs}, id
	}
	return rows.Err()
}

// openGroups returns the zone groups in which the rules engine finds the
// campaign's calling hours open at now.
func (s *Store) openGroups(c *campaign.Campaign, now time.Time) []int64 {
	s.zmu.RLock()
	defer s.zmu.RUnlock()
	var open []int64
	for id, g := range s.zones {
		if campaign.Open(c, g.juris, g.locs, now) {
			open = append(open, id)
		}
	}
	slices.Sort(open)
	return open
}

// --- import -----------------------------------------------------------------

// ImportResult is the answer to an import.
type ImportResult struct {
	ID string `json:"id"`
	importer.Report
	Rejections []importer.Rejection `json:"rejections"` // the first MaxRejectionsShown
}

// MaxRejectionsShown bounds the rejections returned inline; all of them
// stay retrievable with Rejections.
const MaxRejectionsShown = 100

// ImportContacts imports a dial list into a campaign as one unit: either
// every accepted row becomes callable, with every rejection recorded, or
// nothing does. The list is staged while it is read, in short
// transactions of one batch each, so leasing and results never wait for
// an upload (see import.go); it is published at the end.
func (s *Store) ImportContacts(ctx context.Context, campaignID string, r io.Reader, opt importer.Options, now time.Time) (ImportResult, error) {
	res := ImportResult{ID: "i_" + randomID(6)}
	c, err := s.Campaign(ctx, campaignID)
	if err != nil {
		return ImportResult{}, err
	}
	// A campaign calls the countries of its dial lists unless told
	// otherwise: the first list's region (else its caller ID's country)
	// becomes its countries.
	if r := strings.ToUpper(strings.TrimSpace(cmp.Or(opt.DefaultRegion, callerRegion(&c), "US"))); len(c.Countries) == 0 && campaign.KnownRegion(r) {
		err := s.write(ctx, func(tx *sql.Tx) error {
			cur, err := s.campaignTx(ctx, tx, campaignID)
			if err != nil || len(cur.Countries) > 0 {
				c = cur
				return err
			}
			cur.Countries, cur.UpdatedAt = []string{r}, now.UTC()
			c = cur
			return s.saveCampaign(ctx, tx, cur)
		})
		if err != nil {
			return ImportResult{}, err
		}
	}
	held, release, err := s.holdImport(ctx, res.ID)
	if err != nil {
		return ImportResult{}, err
	}
	// Released once the import is recorded, or before its rows are
	// discarded: an upload of the same list meanwhile (the user trying
	// again) then takes them over rather than refusing them.
	release = sync.OnceFunc(release)
	defer release()
	sink := &importSink{s: s, c: &c, campaign: campaignID, importID: res.ID, now: now, res: &res, zones: map[string]int64{}}
	rep, err := importer.Import(ctx, r, opt, sink)
	if err == nil {
		err = sink.flushRejections(ctx)
	}
	if err == nil {
		// An import that lost its hold (the database restarted under a
		// long upload) may have had rows taken over by another upload
		// meanwhile: it is not recorded, and the user uploads it again.
		err = held(ctx)
	}
	if err != nil {
		release()
		dctx := context.WithoutCancel(ctx)
		if derr := retry(dctx, func() error { return s.discardImport(dctx, res.ID) }); derr != nil {
			err = errors.Join(err, derr)
		}
		return ImportResult{}, err
	}
	res.Report = rep
	if err := s.loadZones(ctx); err != nil {
		return ImportResult{}, err
	}
	if err := s.publishImport(ctx, campaignID, res.ID, rep, now); err != nil {
		// Not recorded: discard. Recorded: Open finishes the publication.
		dctx := context.WithoutCancel(ctx)
		var one int
		if s.db.QueryRowContext(dctx, s.q(`SELECT 1 FROM imports WHERE id = ?`), res.ID).Scan(&one) != nil {
			err = errors.Join(err, retry(dctx, func() error { return s.discardImport(dctx, res.ID) }))
		}
		return ImportResult{}, err
	}
	return res, nil
}

// callerRegion is the country of a campaign's caller ID, "" if unknown.
func callerRegion(c *campaign.Campaign) string {
	if rs := c.AllowedCountries(); len(rs) == 1 && len(c.Countries) == 0 {
		return rs[0]
	}
	return ""
}

type importSink struct {
	s        *Store
	c        *campaign.Campaign
	campaign string
	importID string
	now      time.Time
	res      *ImportResult
	zones    map[string]int64
	rejects  []importer.Rejection
}

func (k *importSink) Exclude(ctx context.Context, phones []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range phones {
		if why := campaign.Destination(k.c, p); why != "" {
			out[p] = why
		}
	}
	if err := k.dedupe(ctx, phones, out); err != nil {
		return nil, err
	}
	rows, err := k.s.db.QueryContext(ctx, k.s.q(`SELECT phone FROM dnc WHERE phone IN (`+placeholders(len(phones))+`)
		UNION SELECT phone FROM campaign_dnc WHERE campaign_id = ? AND phone IN (`+placeholders(len(phones))+`)`), dncArgs(k.campaign, phones)...)
	if err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var phone string
		if err := rows.Scan(&phone); err != nil {
			return nil, fmt.Errorf("scrub: %w", err)
		}
		out[phone] = "on the do-not-call list"
	}
	return out, rows.Err()
}

// dedupe names in out the phones already in the campaign or earlier in
// this import. A phone staged by another import that is no longer read
// (its controller died mid-upload) is not in the campaign: that import
// is discarded and the phone imported here, so an upload tried again
// after a crash imports its rows rather than rejecting them all.
func (k *importSink) dedupe(ctx context.Context, phones []string, out map[string]string) error {
	// On PostgreSQL the plan is made for each batch (an unnamed
	// statement): a plan kept from the first batches, made while the
	// table was small, scanned the whole campaign for every batch after,
	// and a million-row list took minutes.
	query, args := `SELECT phone, import_id, line, state FROM contacts WHERE campaign_id = ? AND phone = ANY(CAST(? AS TEXT[]))`, []any{pgx.QueryExecModeExec, k.campaign, phones}
	if !k.s.postgres {
		query, args = `SELECT phone, import_id, line, state FROM contacts WHERE campaign_id = ? AND phone IN (`+placeholders(len(phones))+`)`, []any{k.campaign}
		for _, p := range phones {
			args = append(args, p)
		}
	}
	for try := 0; ; try++ {
		rows, err := k.s.db.QueryContext(ctx, k.s.q(query), args...)
		if err != nil {
			return fmt.Errorf("dedupe: %w", err)
		}
		staged := map[string][]string{} // another import → its phones here, still staged
		for rows.Next() {
			var phone, imp, state string
			var line int
			if err := rows.Scan(&phone, &imp, &line, &state); err != nil {
				rows.Close()
				return fmt.Errorf("dedupe: %w", err)
			}
			switch {
			case imp == k.importID:
				out[phone] = fmt.Sprintf("duplicate of line %d", line)
			case state == contactStaged:
				staged[imp] = append(staged[imp], phone)
			default:
				out[phone] = "already in this campaign"
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("dedupe: %w", err)
		}
		discarded := false
		for imp, ps := range staged {
			st, err := k.s.stagedBy(ctx, imp)
			if err != nil {
				return fmt.Errorf("dedupe: %w", err)
			}
			why := "already in this campaign"
			switch {
			case !st.recorded && !st.live && try == 0:
				if err := k.s.discardImport(ctx, imp); err != nil {
					return fmt.Errorf("dedupe: %w", err)
				}
				discarded = true
				continue
			case !st.recorded:
				why = "being imported by another upload"
			}
			for _, p := range ps {
				out[p] = why
			}
		}
		if !discarded {
			return nil
		}
	}
}

// Contacts stages one batch, in a transaction of its own (on
// PostgreSQL one COPY, a statement of its own).
func (k *importSink) Contacts(ctx context.Context, batch []importer.Contact) error {
	if k.s.postgres {
		return k.copyStage(ctx, batch)
	}
	return k.s.write(ctx, func(tx *sql.Tx) error { return k.stage(ctx, tx, batch) })
}

// stageColumns are the columns a staged row sets.
var stageColumns = []string{"campaign_id", "phone", "zgroup", "fields", "state", "attempts", "next_at", "import_id", "line", "caller_id"}

// copyStage stages a batch with COPY: a million rows took half the time
// of multi-row INSERTs on PostgreSQL (BenchmarkImportStore).
func (k *importSink) copyStage(ctx context.Context, batch []importer.Contact) error {
	groups, keys := make([]int64, len(batch)), make([]string, len(batch))
	var unknown []int // rows whose zone group is seen first: stored before the rows naming it
	for i, c := range batch {
		keys[i] = groupKey(campaign.Jurisdiction(c.Phone), c.Zones)
		id, ok := k.s.knownZoneGroup(keys[i], k.zones)
		if groups[i] = id; !ok {
			unknown = append(unknown, i)
		}
	}
	if len(unknown) > 0 {
		if err := k.s.write(ctx, func(tx *sql.Tx) (err error) {
			for _, i := range unknown {
				if groups[i], err = k.s.zoneGroup(ctx, tx, keys[i], k.zones); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	rows := make([][]any, len(batch))
	for i, c := range batch {
		fields, _ := json.Marshal(c.Fields)
		rows[i] = []any{k.campaign, c.Phone, groups[i], string(fields), contactStaged, 0, ms(k.now), k.importID, c.Line, c.CallerID}
	}
	conn, err := k.s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store contacts: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		_, err := dc.(*stdlib.Conn).Conn().CopyFrom(ctx, pgx.Identifier{"contacts"}, stageColumns, pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("store contacts: %w", err)
	}
	return nil
}

func (k *importSink) stage(ctx context.Context, tx *sql.Tx, batch []importer.Contact) error {
	const perStmt = 200 // keeps the statement under every driver's parameter limit
	for len(batch) > 0 {
		n := min(perStmt, len(batch))
		var b strings.Builder
		b.WriteString(`INSERT INTO contacts (campaign_id, phone, zgroup, fields, state, attempts, next_at, import_id, line, caller_id) VALUES `)
		args := make([]any, 0, n*10)
		for i, c := range batch[:n] {
			zg, err := k.s.zoneGroup(ctx, tx, groupKey(campaign.Jurisdiction(c.Phone), c.Zones), k.zones)
			if err != nil {
				return err
			}
			fields, _ := json.Marshal(c.Fields)
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?, ?, 0, ?, ?, ?, ?)")
			args = append(args, k.campaign, c.Phone, zg, string(fields), contactStaged, ms(k.now), k.importID, c.Line, c.CallerID)
		}
		if _, err := tx.ExecContext(ctx, k.s.q(b.String()), args...); err != nil {
			return fmt.Errorf("store contacts: %w", err)
		}
		batch = batch[n:]
	}
	return nil
}

func (k *importSink) Reject(ctx context.Context, r importer.Rejection) error {
	if len(k.res.Rejections) < MaxRejectionsShown {
		k.res.Rejections = append(k.res.Rejections, r)
	}
	k.rejects = append(k.rejects, r)
	if len(k.rejects) >= 200 {
		return k.flushRejections(ctx)
	}
	return nil
}

func (k *importSink) flushRejections(ctx context.Context) error {
	if len(k.rejects) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO import_rejections (import_id, line, reason) VALUES `)
	args := make([]any, 0, len(k.rejects)*3)
	for i, r := range k.rejects {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?)")
		args = append(args, k.importID, r.Line, r.Reason)
	}
	k.rejects = k.rejects[:0]
	return k.s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, k.s.q(b.String()), args...); err != nil {
			return fmt.Errorf("store rejections: %w", err)
		}
		return nil
	})
}

// dncArgs are the arguments of a query for phones on the internal list
// (first placeholders) or a campaign's (campaign id, then the phones).
func dncArgs(campaignID string, phones []string) []any {
	args := make([]any, 0, 2*len(phones)+1)
	for _, p := range phones {
		args = append(args, p)
	}
	args = append(args, campaignID)
	for _, p := range phones {
		args = append(args, p)
	}
	return args
}

// onDNC returns, of phones, those on the internal do-not-call list or the
// campaign's own, with the list's name.
func (s *Store) onDNC(ctx context.Context, tx *sql.Tx, campaignID string, phones []string) (map[string]string, error) {
	out := map[string]string{}
	if len(phones) == 0 {
		return out, nil
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT phone, 'internal' FROM dnc WHERE phone IN (`+placeholders(len(phones))+`)
		UNION ALL SELECT phone, 'campaign' FROM campaign_dnc WHERE campaign_id = ? AND phone IN (`+placeholders(len(phones))+`)`), dncArgs(campaignID, phones)...)
	if err != nil {
		return nil, fmt.Errorf("check dnc: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var phone, list string
		if err := rows.Scan(&phone, &list); err != nil {
			return nil, fmt.Errorf("check dnc: %w", err)
		}
		out[phone] = list
	}
	return out, rows.Err()
}

// Rejections streams every rejection of an import, in line order.
func (s *Store) Rejections(ctx context.Context, importID string, fn func(importer.Rejection) error) error {
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM imports WHERE id = ?`), importID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("import %q: %w", importID, campaign.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("list rejections: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT line, reason FROM import_rejections WHERE import_id = ? ORDER BY line`), importID)
	if err != nil {
		return fmt.Errorf("list rejections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r importer.Rejection
		if err := rows.Scan(&r.Line, &r.Reason); err != nil {
			return fmt.Errorf("list rejections: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// InternalDNC names the internal do-not-call list every campaign honours;
// any other list is a campaign's own, named by the campaign's id.
const InternalDNC = ""

// AddDNC adds numbers (E.164) to the internal do-not-call list and takes
// pending contacts with those numbers out of every campaign.
func (s *Store) AddDNC(ctx context.Context, phones []string, source string, now time.Time) error {
	return s.AddToDNC(ctx, InternalDNC, phones, source, now)
}

// AddToDNC adds numbers to a do-not-call list: InternalDNC, or a
// campaign's own (by its id), which takes them out of that campaign only.
func (s *Store) AddToDNC(ctx context.Context, list string, phones []string, source string, now time.Time) error {
	if len(phones) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if list != InternalDNC {
			if _, err := s.campaignTx(ctx, tx, list); err != nil {
				return err
			}
		}
		return s.addDNCList(ctx, tx, list, phones, source, now)
	})
}

func (s *Store) addDNC(ctx context.Context, tx execer, phones []string, source string, now time.Time) error {
	return s.addDNCList(ctx, tx, InternalDNC, phones, source, now)
}

func (s *Store) addDNCList(ctx context.Context, tx execer, list string, phones []string, source string, now time.Time) error {
	const perStmt = 200 // keeps the statement under every driver's parameter limit
	for rest := phones; len(rest) > 0; {
		n := min(perStmt, len(rest))
		var b strings.Builder
		args := make([]any, 0, 4*n)
		if list == InternalDNC {
			b.WriteString(`INSERT INTO dnc (phone, source, added_at) VALUES `)
		} else {
			b.WriteString(`INSERT INTO campaign_dnc (campaign_id, phone, source, added_at) VALUES `)
		}
		for i, p := range rest[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			if list == InternalDNC {
				b.WriteString("(?, ?, ?)")
				args = append(args, p, source, ms(now))
			} else {
				b.WriteString("(?, ?, ?, ?)")
				args = append(args, list, p, source, ms(now))
			}
		}
		if list == InternalDNC {
			b.WriteString(` ON CONFLICT (phone) DO NOTHING`)
		} else {
			b.WriteString(` ON CONFLICT (campaign_id, phone) DO NOTHING`)
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return fmt.Errorf("add dnc: %w", err)
		}
		rest = rest[n:]
	}
	// Pending contacts leave at once; live ones are caught when their
	// result is settled, and leasing checks the lists again regardless.
	args := make([]any, 0, len(phones)+3)
	args = append(args, campaign.ContactDNC, campaign.ContactPending)
	for _, p := range phones {
		args = append(args, p)
	}
	only := ""
	if list != InternalDNC {
		only = " AND campaign_id = ?"
		args = append(args, list)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET state = ? WHERE state = ? AND phone IN (`+placeholders(len(phones))+`)`+only), args...); err != nil {
		return fmt.Errorf("scrub contacts: %w", err)
	}
	return nil
}

// DNCEntry is one number on a do-not-call list.
type DNCEntry struct {
	Phone   string    `json:"phone"`
	List    string    `json:"list"` // "internal" or a campaign id
	Source  string    `json:"source"`
	AddedAt time.Time `json:"added_at"`
}

// SearchDNC lists up to limit numbers of a list starting with prefix, in
// number order after the number after.
func (s *Store) SearchDNC(ctx context.Context, list, prefix, after string, limit int) ([]DNCEntry, error) {
	q, args := `SELECT phone, source, added_at FROM dnc WHERE phone LIKE ? AND phone > ? ORDER BY phone LIMIT ?`, []any{likePrefix(prefix), after, limit}
	if list != InternalDNC {
		q, args = `SELECT phone, source, added_at FROM campaign_dnc WHERE campaign_id = ? AND phone LIKE ? AND phone > ? ORDER BY phone LIMIT ?`, append([]any{list}, args...)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("search dnc: %w", err)
	}
	defer rows.Close()
	out := []DNCEntry{}
	name := cmp.Or(list, "internal")
	for rows.Next() {
		e := DNCEntry{List: name}
		var at int64
		if err := rows.Scan(&e.Phone, &e.Source, &at); err != nil {
			return nil, fmt.Errorf("search dnc: %w", err)
		}
		e.AddedAt = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeleteDNC takes a number off a list. Contacts already taken out of a
// campaign stay out: the number can be imported again.
func (s *Store) DeleteDNC(ctx context.Context, list, phone string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if list == InternalDNC {
			res, err = tx.ExecContext(ctx, s.q(`DELETE FROM dnc WHERE phone = ?`), phone)
		} else {
			res, err = tx.ExecContext(ctx, s.q(`DELETE FROM campaign_dnc WHERE campaign_id = ? AND phone = ?`), list, phone)
		}
		if err != nil {
			return fmt.Errorf("delete dnc: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s on do-not-call list %q: %w", phone, cmp.Or(list, "internal"), campaign.ErrNotFound)
		}
		return nil
	})
}

// likePrefix is a LIKE pattern matching strings that start with p.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, ``, `%`, ``, `_`, ``).Replace(p) + "%"
}

// --- API tokens ----------------------------------------------------------------

// CreateToken makes a new admin API token and returns it; only its hash
// is kept.
func (s *Store) CreateToken(ctx context.Context, name string, now time.Time) (string, error) {
	tok, _, err := s.CreateAPIToken(ctx, campaign.Token{Name: name, Role: campaign.RoleAdmin}, now)
	return tok, err
}

// tokenIDLen is how much of a token's hash names it: public, enough to
// tell tokens apart, useless to forge one.
const tokenIDLen = 12

// CreateAPIToken makes a new API token with t's name, role, campaign scope
// and expiry, and returns it (shown once; only its hash is kept) with its
// description.
func (s *Store) CreateAPIToken(ctx context.Context, t campaign.Token, now time.Time) (string, campaign.Token, error) {
	if err := t.Validate(); err != nil {
		return "", campaign.Token{}, err
	}
	tok := "edt_" + randomID(20)
	hash := hashToken(tok)
	t.ID, t.CreatedAt, t.RevokedAt = hash[:tokenIDLen], now, time.Time{}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO api_tokens (hash, name, created_at, role, campaigns, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
			hash, t.Name, ms(now), string(t.Role), strings.Join(t.Campaigns, ","), ms(t.ExpiresAt))
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		return nil
	})
	return tok, t, err
}

const tokenColumns = `hash, name, created_at, role, campaigns, expires_at, revoked_at`

func scanToken(sc interface{ Scan(...any) error }) (campaign.Token, error) {
	var t campaign.Token
	var hash, role, camps string
	var created, expires, revoked int64
	if err := sc.Scan(&hash, &t.Name, &created, &role, &camps, &expires, &revoked); err != nil {
		return t, err
	}
	t.ID, t.Role, t.CreatedAt, t.ExpiresAt, t.RevokedAt = hash[:min(len(hash), tokenIDLen)], campaign.Role(role), fromMS(created), fromMS(expires), fromMS(revoked)
	if camps != "" {
		t.Campaigns = strings.Split(camps, ",")
	}
	return t, nil
}

// Authenticate returns the token's description if it is known, unexpired
// and not revoked at now; otherwise ErrUnauthorized.
func (s *Store) Authenticate(ctx context.Context, tok string, now time.Time) (campaign.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+` FROM api_tokens WHERE hash = ?`), hashToken(tok)))
	if errors.Is(err, sql.ErrNoRows) {
		return campaign.Token{}, campaign.ErrUnauthorized
	}
	if err != nil {
		return campaign.Token{}, fmt.Errorf("check token: %w", err)
	}
	if !t.Live(now) {
		return campaign.Token{}, fmt.Errorf("token %s expired or revoked: %w", t.ID, campaign.ErrUnauthorized)
	}
	return t, nil
}

// CheckToken returns the name of a live token, or ErrUnauthorized.
func (s *Store) CheckToken(ctx context.Context, tok string) (string, error) {
	t, err := s.Authenticate(ctx, tok, time.Now())
	return t.Name, err
}

// Tokens lists every token, revoked and expired ones included, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]campaign.Token, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, hash`))
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []campaign.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken ends the token with this id at now; every later request
// with it is refused. Revoking a revoked token changes nothing.
func (s *Store) RevokeToken(ctx context.Context, id string, now time.Time) (campaign.Token, error) {
	if len(id) != tokenIDLen || strings.Trim(id, "0123456789abcdef") != "" {
		return campaign.Token{}, &campaign.FieldError{Field: "id", Reason: fmt.Sprintf("%q: a token id is %d hex digits (see 'controller token list')", id, tokenIDLen)}
	}
	var t campaign.Token
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+` FROM api_tokens WHERE hash LIKE ?`), id+"%"))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token %s: %w", id, campaign.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if !t.RevokedAt.IsZero() {
			return nil
		}
		t.RevokedAt = now
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE api_tokens SET revoked_at = ? WHERE hash LIKE ?`), ms(now), id+"%"); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		return nil
	})
	return t, err
}

// ImportCampaign returns the campaign an import belongs to.
func (s *Store) ImportCampaign(ctx context.Context, importID string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT campaign_id FROM imports WHERE id = ?`), importID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("import %q: %w", importID, campaign.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	return id, nil
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}
