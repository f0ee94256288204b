package xmlrpc

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	kolo "github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/flow/examples"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
)

// BenchmarkStepHTTP measures call.step over real HTTP on loopback with
// keep-alive and 32 concurrent clients, in three modes: every step reads
// the flow from the SQLite store; memcached in front of the store; and the
// fastest path, compiled flows kept in process (memcached behind them).
func BenchmarkStepHTTP(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchStep(b, filepath.Join(b.TempDir(), "bench.db")) })
	b.Run("postgres", func(b *testing.B) { benchStep(b, testenv.PostgresDSN(b)) })
}

func benchStep(b *testing.B, dsn string) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	store.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 1})
	c, err := store.CreateCampaign(ctx, campaign.Campaign{Name: "bench", Trunk: "carrier", CallerID: "+14155550100", Target: 10}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	version, _ := store.SaveFlow(ctx, c.ID, examples.Reminder, time.Now())
	mc := testenv.StartMemcached(b)

	for _, mode := range []struct {
		name  string
		flows *Flows
	}{
		{"store", &Flows{Source: store}},
		{"memcached", &Flows{Source: store, Memcache: NewMemcache([]string{mc.Addr}, 64, time.Second)}},
		{"local", &Flows{Source: store, Local: true, Memcache: NewMemcache([]string{mc.Addr}, 64, time.Second)}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			svc := &Service{Secret: []byte("s"), Flows: mode.flows}
			srv := httptest.NewServer(svc.Server())
			defer srv.Close()
			lease := svc.LeaseToken("bench", nodeapi.Call{CallID: "k1", Token: "t", CampaignID: c.ID, FlowVersion: version})
			body, _ := kolo.EncodeMethodCall(nodeapi.MethodStep, nodeapi.StepRequest{CallID: "k1", Token: lease, CampaignID: c.ID, FlowVersion: version, State: "menu", Input: nodeapi.InputDigits, Digits: "1", Fields: map[string]string{"appointment_date": "0314"}})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			token := "Bearer " + svc.Token("bench")
			const clients = 32
			var mu sync.Mutex
			var lat []time.Duration
			work := make(chan struct{})
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for range work {
						start := time.Now()
						req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(body))
						req.Header.Set("Authorization", token)
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						out, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if kolo.Response(out).Err() != nil {
							b.Errorf("fault: %s", out)
							return
						}
						mine = append(mine, time.Since(start))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			reads := mode.flows.StoreReads.Load()
			b.ResetTimer()
			for b.Loop() {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "steps/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			// What the database tier sees: the part that does not scale
			// out with more XML-RPC servers.
			b.ReportMetric(float64(mode.flows.StoreReads.Load()-reads)/float64(len(lat)), "db-reads/step")
		})
	}
}

// BenchmarkMemcachedGet is the floor under memcached mode: one gomemcache
// Get of a compiled flow from 32 goroutines, nothing else. ns/op times the
// two cores is the CPU a round trip costs (client and server together).
func BenchmarkMemcachedGet(b *testing.B) {
	mc := testenv.StartMemcached(b)
	c := NewMemcache([]string{mc.Addr}, 64, time.Second)
	fl, _ := flow.Parse(examples.Reminder)
	v, _ := fl.MarshalBinary()
	if err := c.Set(&memcache.Item{Key: "k", Value: v}); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get("k"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCheckLease is what node authority adds to every call.step: one
// HMAC-SHA256 over the lease, no database read.
func BenchmarkCheckLease(b *testing.B) {
	svc := &Service{Secret: []byte("0123456789abcdef0123456789abcdef")}
	c := nodeapi.Call{CallID: "k1234567-1", Token: "0123456789abcdef0123456789abcdef-1234567", CampaignID: "c_abcdef", FlowVersion: 3}
	tok := svc.LeaseToken("n-i-0123456789", c)
	ctx := context.WithValue(context.Background(), nodeCtxKey{}, "n-i-0123456789")
	for b.Loop() {
		if err := svc.checkLease(ctx, c.CallID, tok, c.CampaignID, c.FlowVersion); err != nil {
			b.Fatal(err)
		}
	}
}
