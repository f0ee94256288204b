package xmlrpc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/elastidial/elastidial/flow"
)

// FlowSource is where flow documents live (the campaign store).
type FlowSource interface {
	FlowDocument(ctx context.Context, campaignID string, version int) ([]byte, error)
}

// Flows serves compiled flows by campaign and version. A flow version never
// changes once saved, so every layer may keep it forever: the key carries
// the version, and a new version is a new key. Layers, fastest first: an
// in-process map of compiled flows (optional), memcached (optional), the
// store. memcached failing or flushed only costs speed.
type Flows struct {
	Source   FlowSource
	Memcache *memcache.Client // nil: no memcached layer
	Local    bool             // keep compiled flows in process
	MaxLocal int              // compiled flows kept; default 10,000
	Log      *slog.Logger

	mu    sync.RWMutex
	local map[flowKey]*flow.Flow

	// Counters for metrics.
	LocalHits, MemcacheHits, MemcacheMisses, MemcacheErrors, StoreReads atomic.Int64
}

type flowKey struct {
	campaign string
	version  int
}

// NewMemcache returns a memcached client sized for real concurrency: the
// library's default keeps 2 idle connections and churns sockets under load.
func NewMemcache(addrs []string, maxIdle int, timeout time.Duration) *memcache.Client {
	mc := memcache.New(addrs...)
	mc.MaxIdleConns = maxIdle
	mc.Timeout = timeout
	return mc
}

// Get returns the compiled flow.
func (f *Flows) Get(ctx context.Context, campaignID string, version int) (*flow.Flow, error) {
	k := flowKey{campaignID, version}
	if f.Local {
		f.mu.RLock()
		fl := f.local[k]
		f.mu.RUnlock()
		if fl != nil {
			f.LocalHits.Add(1)
			return fl, nil
		}
	}
	fl, err := f.load(ctx, k)
	if err != nil {
		return nil, err
	}
	if f.Local {
		f.mu.Lock()
		limit := f.MaxLocal
		if limit <= 0 {
			limit = 10_000
		}
		if f.local == nil || len(f.local) >= limit {
			f.local = map[flowKey]*flow.Flow{} // crude, but flows are few and immutable
		}
		f.local[k] = fl
		f.mu.Unlock()
	}
	return fl, nil
}

// load reads the compiled flow from memcached, else parses the store's
// document and fills memcached.
func (f *Flows) load(ctx context.Context, k flowKey) (*flow.Flow, error) {
	key := fmt.Sprintf("elastidial:flow:%s:%d", k.campaign, k.version)
	if f.Memcache != nil {
		it, err := f.Memcache.Get(key)
		switch err {
		case nil:
			var fl flow.Flow
			if fl.UnmarshalBinary(it.Value) == nil {
				f.MemcacheHits.Add(1)
				return &fl, nil
			}
			f.MemcacheMisses.Add(1) // another release's format: refill
		case memcache.ErrCacheMiss:
			f.MemcacheMisses.Add(1)
		default:
			f.MemcacheErrors.Add(1)
			if f.Log != nil {
				f.Log.Debug("memcached get failed; reading the store", "err", err)
			}
		}
	}
	f.StoreReads.Add(1)
	doc, err := f.Source.FlowDocument(ctx, k.campaign, k.version)
	if err != nil {
		return nil, err
	}
	fl, err := flow.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("flow %s v%d: %w", k.campaign, k.version, err)
	}
	if f.Memcache != nil {
		compiled, _ := fl.MarshalBinary()
		if err := f.Memcache.Set(&memcache.Item{Key: key, Value: compiled}); err != nil {
			f.MemcacheErrors.Add(1)
		}
	}
	return fl, nil
}

// MemcacheTTL adapts a memcached client to caches that take a TTL (such
// as the audio library's manifests).
type MemcacheTTL struct{ Client *memcache.Client }

// Get returns the value under key.
func (m MemcacheTTL) Get(key string) ([]byte, error) {
	it, err := m.Client.Get(key)
	if err != nil {
		return nil, err
	}
	return it.Value, nil
}

// Set stores value under key for ttl (whole seconds, at least one).
func (m MemcacheTTL) Set(key string, value []byte, ttl time.Duration) error {
	return m.Client.Set(&memcache.Item{Key: key, Value: value, Expiration: int32(max(1, int(ttl/time.Second)))})
}
