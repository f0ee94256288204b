package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/elastidial/elastidial/campaign"
)

// Cache is a shared byte cache such as memcached. A miss is
// memcache.ErrCacheMiss; on a miss or any failure the store reads the
// database instead.
type Cache interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte, ttl time.Duration) error
}

// configTTL bounds how long memcached keeps an unused configuration; the
// revision in the key, not the TTL, keeps what is served current.
const configTTL = time.Hour

// configCache holds the dialing configuration of running campaigns, the
// one thing every lease reads besides contacts. Each lease still reads
// the ids and revisions of the running campaigns from the database (a
// covering scan), so a change made through any controller is seen at
// once; only the documents come from the process or the Cache.
type configCache struct {
	mu    sync.Mutex
	byID  map[string]revConfig
	stats ConfigStats
}

// ConfigStats counts where campaign configurations were read from, for
// metrics: Cache trouble shows as errors and store reads, never as
// failed leases.
type ConfigStats struct {
	LocalHits, CacheHits, CacheMisses, CacheErrors, StoreReads atomic.Int64
}

type revConfig struct {
	rev int64
	c   campaign.Campaign
}

// ConfigStats reports where campaign configurations were read from.
func (s *Store) ConfigStats() *ConfigStats { return &s.configs.stats }

func configKey(id string, rev int64) string {
	return "elastidial:campaign:" + id + ":" + strconv.FormatInt(rev, 10)
}

// running returns the running campaigns, ordered by id. A scheduled
// campaign whose start has come is started first (startDue); one not yet
// due costs only its row in the same scan.
func (s *Store) running(ctx context.Context, now time.Time) ([]campaign.Campaign, error) {
	for started := false; ; started = true {
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, revision FROM campaigns WHERE status IN (?, ?) ORDER BY id`), campaign.StatusRunning, campaign.StatusScheduled)
		if err != nil {
			return nil, fmt.Errorf("running campaigns: %w", err)
		}
		type idRev struct {
			id  string
			rev int64
		}
		var want []idRev
		for rows.Next() {
			var r idRev
			if err := rows.Scan(&r.id, &r.rev); err != nil {
				rows.Close()
				return nil, fmt.Errorf("running campaigns: %w", err)
			}
			want = append(want, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("running campaigns: %w", err)
		}
		out := make([]campaign.Campaign, 0, len(want))
		due := false
		for _, w := range want {
			c, ok := s.cached(w.id, w.rev)
			if !ok {
				var rev int64
				if c, rev, err = s.config(ctx, w.id, w.rev); err != nil {
					return nil, err
				}
				s.keep(w.id, rev, c)
			}
			// The status is the one of the revision read: a campaign
			// stopped or started since is seen by the next lease.
			switch {
			case c.Status == campaign.StatusRunning:
				out = append(out, c)
			case c.Status == campaign.StatusScheduled && campaign.StartStatus(&c, now) == campaign.StatusRunning:
				due = true
			}
		}
		if !due || started {
			return out, nil
		}
		if err := s.startDue(ctx, now); err != nil {
			return nil, err
		}
	}
}

// cached is campaign id at revision rev, if decoded before.
func (s *Store) cached(id string, rev int64) (campaign.Campaign, bool) {
	cc := &s.configs
	cc.mu.Lock()
	hit, ok := cc.byID[id]
	cc.mu.Unlock()
	if !ok || hit.rev != rev {
		return campaign.Campaign{}, false
	}
	cc.stats.LocalHits.Add(1)
	return hit.c, true
}

// keep files c as campaign id at revision rev, unless a later revision
// is kept already.
func (s *Store) keep(id string, rev int64, c campaign.Campaign) {
	cc := &s.configs
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.byID == nil {
		cc.byID = map[string]revConfig{}
	}
	if cur, ok := cc.byID[id]; !ok || cur.rev < rev {
		cc.byID[id] = revConfig{rev, c}
	}
}

// config reads one campaign's configuration at revision rev from the
// Cache, else from the database (whose revision may have moved on since:
// what it returns is filed under the revision read with it).
func (s *Store) config(ctx context.Context, id string, rev int64) (campaign.Campaign, int64, error) {
	cc := &s.configs
	var c campaign.Campaign
	if s.Cache != nil {
		doc, err := s.Cache.Get(configKey(id, rev))
		switch {
		case err == nil && json.Unmarshal(doc, &c) == nil && c.ID == id:
			cc.stats.CacheHits.Add(1)
			return c, rev, nil
		case err == nil || errors.Is(err, memcache.ErrCacheMiss):
			cc.stats.CacheMisses.Add(1)
		default:
			cc.stats.CacheErrors.Add(1)
		}
	}
	cc.stats.StoreReads.Add(1)
	var doc string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT doc, revision FROM campaigns WHERE id = ?`), id).Scan(&doc, &rev)
	if err != nil {
		return c, 0, fmt.Errorf("campaign %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return c, 0, fmt.Errorf("campaign %s: corrupt record: %w", id, err)
	}
	if s.Cache != nil {
		if err := s.Cache.Set(configKey(id, rev), []byte(doc), configTTL); err != nil {
			cc.stats.CacheErrors.Add(1)
		}
	}
	return c, rev, nil
}

// decoded is campaign id's document doc, read at revision rev, decoded
// once per revision: a result reads its campaign's document with its
// contact, and every revision of a campaign has one document (every
// save moves the revision), so the one decoded before serves as long as
// the revision holds.
func (s *Store) decoded(id string, rev int64, doc string) (campaign.Campaign, error) {
	if c, ok := s.cached(id, rev); ok {
		return c, nil
	}
	c, err := decodeCampaign(id, doc)
	if err != nil {
		return c, err
	}
	s.keep(id, rev, c)
	return c, nil
}
