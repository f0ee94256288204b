package storage

import (
	"context"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/xmlrpc"
)

// countingStore counts URL signings.
type countingStore struct {
	Store
	signed int
}

func (c *countingStore) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	c.signed++
	return c.Store.URL(ctx, key, ttl)
}

// TestManifestCachedInMemcached: nodes asking for the same version share
// one signed manifest from a real memcached; an update is a new key, and
// with memcached down manifests are built from the store.
func TestManifestCachedInMemcached(t *testing.T) {
	ctx := context.Background()
	server := testenv.StartMemcached(t)
	client := memcache.New(server.Addr)
	client.Timeout = 200 * time.Millisecond
	fx := newFixture(t)
	st := &countingStore{Store: fx.folder}
	// Two controllers behind a load balancer share memcached.
	a := &Library{Store: st, Cache: xmlrpc.MemcacheTTL{Client: client}}
	b := &Library{Store: st, Cache: xmlrpc.MemcacheTTL{Client: client}}
	a.Put(ctx, "survey", "welcome.wav", wav(8000, 1, 0.1))
	m1, err := a.Manifest(ctx, "")
	if err != nil || st.signed != 1 {
		t.Fatalf("first manifest: %v, %d signings", err, st.signed)
	}
	m2, err := b.Manifest(ctx, "")
	if err != nil || st.signed != 1 || m2.Files[0].URL != m1.Files[0].URL {
		t.Fatalf("second controller signed again (%d) or served another manifest", st.signed)
	}
	a.Put(ctx, "survey", "thanks.wav", wav(8000, 1, 0.1))
	b.ListTTL = time.Nanosecond // b sees the change on its next listing
	m3, _ := b.Manifest(ctx, m2.Version)
	if m3.Version == m2.Version || len(m3.Files) != 2 {
		t.Fatalf("stale manifest after an upload: %+v", m3)
	}
	server.Kill()
	if m4, err := a.Manifest(ctx, ""); err != nil || len(m4.Files) != 2 {
		t.Fatalf("with memcached down: %v", err)
	}
}
