package webhook_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/webhook"
	"github.com/elastidial/elastidial/internal/testclock"
)

// BenchmarkSenderThroughput: deliveries per second from the SQLite
// outbox (claim with a lease, sign, POST, store the try) to a local
// receiver, against the floor measured in the same run: the same signed
// POSTs of the same bodies, 32 at a time like the sender, with no outbox.
func BenchmarkSenderThroughput(b *testing.B) {
	const n = 1000
	clk := testclock.New(noon.Add(time.Minute))
	var got sync.Map
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get(webhook.DeliveryHeader), true)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	for b.Loop() {
		s := open(b, filepath.Join(b.TempDir(), "bench.db"))
		a := serveAPI(b, s, clk)
		runningCampaign(b, s, a, rcv.URL, n)
		callAll(b, s, n, campaign.Answered)
		// The floor: the bodies the outbox holds, POSTed directly.
		ds, err := s.ClaimDeliveries(context.Background(), "floor", n, time.Nanosecond, clk.Now())
		if err != nil || len(ds) != n {
			b.Fatalf("bodies: %d %v", len(ds), err)
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
		t0 := time.Now()
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for _, d := range ds {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				req, _ := http.NewRequest("POST", rcv.URL, bytes.NewReader(d.Body))
				req.Header.Set(webhook.SignatureHeader, webhook.Sign(secret, clk.Now(), d.Body))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
			}()
		}
		wg.Wait()
		floor := time.Since(t0)
		clk.Add(time.Minute) // the floor's claims lapse
		snd := &webhook.Sender{Outbox: s, Now: clk.Now}
		t0 = time.Now()
		for {
			k, err := snd.Once(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
		took := time.Since(t0)
		var delivered int
		s.DB().QueryRow(`SELECT COUNT(*) FROM webhook_outbox WHERE state = 'delivered'`).Scan(&delivered)
		if delivered != n {
			b.Fatalf("%d of %d delivered", delivered, n)
		}
		b.ReportMetric(n/floor.Seconds(), "posts/s-floor")
		b.ReportMetric(n/took.Seconds(), "deliveries/s")
		b.ReportMetric(took.Seconds()/floor.Seconds(), "cost-ratio")
		s.Close()
	}
}
