// Package webhook delivers campaigns' finished attempts to their webhook
// receivers from the store's durable outbox, signed with HMAC-SHA256, and
// lets receivers (and tests) check those signatures.
//
// Each request is a POST of one campaign.AttemptEvent as JSON with
//
//	Content-Type: application/json
//	Elastidial-Event: attempt.finished
//	Elastidial-Delivery: <delivery id>       (the same across retries)
//	Elastidial-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//
// where v1 is HMAC-SHA256 keyed with the campaign's webhook secret over
// "<t>.<body>". A receiver recomputes it over the raw body, compares in
// constant time, and refuses a t further than a few minutes from its
// clock (Verify does all three), so a captured request cannot be replayed
// later. Delivery is at least once: the same event (same "id") may come
// twice, e.g. when a controller dies after the receiver answered but
// before the answer was stored; receivers deduplicate on "id".
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// Header names.
const (
	SignatureHeader = "Elastidial-Signature"
	DeliveryHeader  = "Elastidial-Delivery"
	EventHeader     = "Elastidial-Event"
)

// DefaultTolerance is how far a signature's time may be from the
// receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Sign returns the Elastidial-Signature value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook signature time is outside the tolerance (replayed or clock skew)")
	ErrMalformed    = errors.New("webhook signature header is malformed")
)

// Verify checks a received request's signature header against its raw
// body, at the receiver's time now.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMalformed
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = ok || hmac.Equal(s, want)
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}

// Outbox is what the sender needs of the store.
type Outbox interface {
	ClaimDeliveries(ctx context.Context, owner string, n int, lease time.Duration, now time.Time) ([]sqlstore.Delivery, error)
	FinishDeliveries(ctx context.Context, owner string, fs []sqlstore.Finish) ([]bool, error)
	PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
}

var _ Outbox = (*sqlstore.Store)(nil)

// Sender delivers the outbox. Run one in every controller; they share
// the work through the outbox's leases.
type Sender struct {
	Outbox Outbox
	Client *http.Client // default: one with Timeout
	Log    *slog.Logger
	// Owner names this sender in leases and the delivery log; default a
	// random id. Two senders must never share one.
	Owner string
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration
	// Lease is how long a claimed delivery is this sender's; it must be
	// well over Timeout. Default 1m.
	Lease time.Duration
	// Poll is how often the outbox is looked at. Default 1s.
	Poll time.Duration
	// Batch is how many deliveries one sender tries at once. Default 32.
	Batch int
	// KeepFor is how long delivered and dead deliveries stay in the log.
	// Default 30 days.
	KeepFor time.Duration
	Now     func() time.Time // default time.Now
	Jitter  func() float64   // in [0, 1); default crypto-random
}

func (s *Sender) defaults() {
	if s.Owner == "" {
		var b [6]byte
		rand.Read(b[:])
		s.Owner = "ctl-" + hex.EncodeToString(b[:])
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	if s.Lease == 0 {
		s.Lease = time.Minute
	}
	if s.Poll == 0 {
		s.Poll = time.Second
	}
	if s.Batch == 0 {
		s.Batch = 32
	}
	if s.KeepFor == 0 {
		s.KeepFor = 30 * 24 * time.Hour
	}
	if s.Client == nil {
		s.Client = &http.Client{
			Timeout: s.Timeout,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: s.Timeout, Control: refuseLinkLocal}).DialContext,
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: s.Batch, // a batch to one receiver reuses its connections
				IdleConnTimeout:     time.Minute,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Jitter == nil {
		s.Jitter = func() float64 {
			var b [8]byte
			rand.Read(b[:])
			return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
		}
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
}

// refuseLinkLocal keeps webhooks off link-local addresses, where the
// cloud's instance metadata lives (169.254.169.254): a campaign's URL
// must not reach the controller's own credentials. Private and loopback
// addresses stay allowed: a CRM is often inside the network.
func refuseLinkLocal(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	ip = ip.Unmap()
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.MustParseAddr("fd00:ec2::254") {
		return fmt.Errorf("webhook address %s refused: link-local, multicast or unspecified", ip)
	}
	return nil
}

// Run delivers until ctx ends. Tries in flight are abandoned then; their
// leases expire and they are tried again (at least once).
func (s *Sender) Run(ctx context.Context) error {
	s.defaults()
	t := time.NewTicker(s.Poll)
	defer t.Stop()
	var pruned time.Time
	for {
		if now := s.Now(); now.Sub(pruned) > time.Hour {
			pruned = now
			if _, err := s.Outbox.PruneDeliveries(ctx, now.Add(-s.KeepFor), 10000); err != nil && ctx.Err() == nil {
				s.Log.Warn("webhook log prune", "err", err)
			}
		}
		for {
			n, err := s.Once(ctx)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("webhook outbox", "err", err)
			}
			if n < s.Batch || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once claims the due deliveries (up to Batch), tries them in parallel
// and stores how each went in one transaction; it returns how many it
// tried.
func (s *Sender) Once(ctx context.Context) (int, error) {
	s.defaults()
	ds, err := s.Outbox.ClaimDeliveries(ctx, s.Owner, s.Batch, s.Lease, s.Now())
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	fs := make([]*sqlstore.Finish, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fs[i] = s.try(ctx, d)
		}()
	}
	wg.Wait()
	var done []sqlstore.Finish
	var of []sqlstore.Delivery
	for i, f := range fs {
		if f != nil {
			done, of = append(done, *f), append(of, ds[i])
		}
	}
	if len(done) == 0 {
		return len(ds), nil
	}
	moved, err := s.Outbox.FinishDeliveries(context.WithoutCancel(ctx), s.Owner, done)
	if err != nil {
		return len(ds), fmt.Errorf("store webhook tries: %w", err)
	}
	for i, f := range done {
		d := of[i]
		log := s.Log.With("campaign", d.CampaignID, "delivery", d.ID, "event", d.EventID, "try", d.Tries)
		switch {
		case !moved[i]:
			log.Warn("webhook lease lost before the try ended; the delivery may be repeated")
		case f.State == campaign.DeliveryDead:
			log.Error("webhook delivery dead", "status", f.Try.Status, "err", f.Try.Error)
		case f.State == campaign.DeliveryPending:
			log.Info("webhook delivery failed; will retry", "status", f.Try.Status, "err", f.Try.Error, "next", f.Next)
		}
	}
	return len(ds), nil
}

// try sends one delivery and decides what follows; nil when the sender
// shut down mid-try (the lease runs out and another tries).
func (s *Sender) try(ctx context.Context, d sqlstore.Delivery) *sqlstore.Finish {
	start := s.Now()
	status, errText := s.post(ctx, d, start)
	if ctx.Err() != nil && errText != "" {
		return nil
	}
	end := s.Now()
	f := &sqlstore.Finish{ID: d.ID, URL: d.Webhook.URL, Try: sqlstore.Try{At: end, Status: status, Error: errText, Duration: end.Sub(start)}, State: campaign.DeliveryDelivered}
	if errText != "" {
		var dead bool
		f.Next, dead = campaign.WebhookRetry(&d.Webhook, d.Tries, d.Since, end, s.Jitter())
		f.State = campaign.DeliveryPending
		if dead {
			f.State, f.Next = campaign.DeliveryDead, time.Time{}
			f.Try.Error += fmt.Sprintf("; gave up after %s", d.Webhook.GiveUp())
		}
	}
	return f
}

// MaxErrorBody is how much of a refusing receiver's answer is logged.
const MaxErrorBody = 512

// post sends one delivery; errText is "" when the receiver answered 2xx.
func (s *Sender) post(ctx context.Context, d sqlstore.Delivery, now time.Time) (status int, errText string) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Webhook.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, "bad webhook URL: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "elastidial-webhook/1")
	req.Header.Set(EventHeader, "attempt.finished")
	req.Header.Set(DeliveryHeader, strconv.FormatInt(d.ID, 10))
	req.Header.Set(SignatureHeader, Sign(d.Webhook.Secret, now, d.Body))
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	return resp.StatusCode, strings.TrimSpace(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.ToValidUTF8(string(b), "?")))
}
