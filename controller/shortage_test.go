package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
)

// shortCloud is the fake cloud with zones and spot, short where told: a
// spot request while spot is short gets on-demand instances (the cloud's
// own fallback, as ec2cloud does), a request for a short zone lands in
// the first zone that is not. It records every request.
type shortCloud struct {
	*fakeCloud
	zones []string

	smu        sync.Mutex
	spotShort  bool
	shortZones map[string]bool
	reqs       []LaunchRequest
}

var _ ZonedCloud = (*shortCloud)(nil)

func (c *shortCloud) Zones(context.Context) ([]string, error) { return c.zones, nil }

func (c *shortCloud) Launch(ctx context.Context, req LaunchRequest) ([]Instance, error) {
	c.smu.Lock()
	c.reqs = append(c.reqs, req)
	spot := !req.OnDemand && !c.spotShort
	zone := req.Zone
	for _, z := range append([]string{req.Zone}, c.zones...) {
		if z != "" && !c.shortZones[z] {
			zone = z
			break
		}
	}
	c.smu.Unlock()
	got, err := c.fakeCloud.Launch(ctx, req)
	c.fakeCloud.mu.Lock()
	defer c.fakeCloud.mu.Unlock()
	for i := range got {
		in := c.fakeCloud.insts[got[i].ID]
		if in.Tags["placed"] == "" { // a retry keeps the first placement
			in.Spot, in.Zone, in.Tags["placed"] = spot, zone, "yes"
		}
		got[i].Spot, got[i].Zone = in.Spot, in.Zone
	}
	return got, err
}

// requests sums the requests since from by market and zone.
func (c *shortCloud) requests(from int) (string, int) {
	c.smu.Lock()
	defer c.smu.Unlock()
	n := map[string]int{}
	for _, r := range c.reqs[from:] {
		k := "spot"
		if r.OnDemand {
			k = "od"
		}
		n[k+" "+r.Zone] += r.Count
	}
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range n {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(out, " "), len(c.reqs)
}

// TestShortageSurvivesLeaderHandover: a leader learns from its launches
// that spot and a zone are short; it dies; the controller that takes
// over reads that from the store and launches on-demand, away from the
// short zone, instead of retrying both at once; once the shortage
// expires, spot and the zone are tried again. On SQLite and PostgreSQL.
func TestShortageSurvivesLeaderHandover(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		clock := testclock.New(t0)
		cloud := &shortCloud{fakeCloud: newFakeCloud(clock), zones: []string{"z-a", "z-b", "z-c"},
			spotShort: true, shortZones: map[string]bool{"z-a": true}}
		d := &fakeDemand{target: 280} // 294 slots with the headroom: 3 nodes
		spot := func(o *Options) { o.Plan.Spot = true }
		a := newTestController(t, cloud, d, open(), clock, spot)
		mustTick(t, a)
		got, seen := cloud.requests(0)
		if got != "spot z-a=1 spot z-b=1 spot z-c=1" {
			t.Fatalf("first launches %q: want spot, one per zone", got)
		}
		short, err := open().Shortage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !short.SpotShort(clock.Now()) || !short.ZoneShort("z-a", clock.Now()) || short.ZoneShort("z-b", clock.Now()) {
			t.Fatalf("stored shortage %+v: want spot and z-a short", short)
		}

		// a dies (it never ticks again); b takes over once its
		// leadership expires, with demand risen.
		clock.Add(a.cfg.LeaderTTL + time.Second)
		d.set(600)
		b := newTestController(t, cloud, d, open(), clock, spot)
		mustTick(t, b)
		if !b.Leading() {
			t.Fatal("b did not take over")
		}
		got, seen2 := cloud.requests(seen)
		if got == "" || strings.Contains(got, "spot") || strings.Contains(got, "z-a") {
			t.Fatalf("new leader's launches %q: want on-demand only, none in z-a", got)
		}

		// The shortage expires (SpotRetry, ZoneRetry: 10m); capacity is
		// back. Spot and z-a are tried again.
		cloud.smu.Lock()
		cloud.spotShort, cloud.shortZones = false, nil
		cloud.smu.Unlock()
		clock.Add(10 * time.Minute)
		d.set(1500)
		mustTick(t, b)
		got, _ = cloud.requests(seen2)
		if strings.Contains(got, "od") || !strings.Contains(got, "spot z-a=") {
			t.Fatalf("launches after the shortage expired %q: want spot, z-a among the zones", got)
		}
		if short, err := open().Shortage(ctx); err != nil || short.SpotShort(clock.Now()) || len(short.Live(clock.Now()).Zones) != 0 {
			t.Fatalf("stored shortage after expiry %+v %v", short, err)
		}
	})
}

// TestShortageFenced: a deposed leader cannot record a shortage.
func TestShortageFenced(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		f, ok, err := s.Lead(ctx, "a", t0, time.Minute)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		want := planner.Shortage{SpotUntil: t0.Add(10 * time.Minute), Zones: map[string]time.Time{"z-a": t0.Add(5 * time.Minute)}}
		if err := s.SaveShortage(ctx, f, want); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Lead(ctx, "b", t0.Add(2*time.Minute), time.Minute); !ok {
			t.Fatal("b did not take over")
		}
		if err := s.SaveShortage(ctx, f, planner.Shortage{}); err == nil || !strings.Contains(err.Error(), ErrFenced.Error()) {
			t.Fatalf("deposed leader saved the shortage: %v", err)
		}
		if got, err := s.Shortage(ctx); err != nil || !got.Equal(want) {
			t.Fatalf("shortage %+v %v, want %+v", got, err, want)
		}
	})
}

// TestIntentKeepsItsMarket: an on-demand launch intent is retried
// on-demand, by this leader or the next.
func TestIntentKeepsItsMarket(t *testing.T) {
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		f, ok, err := s.Lead(ctx, "a", t0, time.Minute)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		for _, in := range []LaunchIntent{{Token: "od", Count: 2, CreatedAt: t0, OnDemand: true}, {Token: "spot", Count: 1, CreatedAt: t0.Add(time.Second)}} {
			if err := s.AddIntent(ctx, f, in); err != nil {
				t.Fatal(err)
			}
		}
		got, err := open().OpenIntents(ctx)
		if err != nil || len(got) != 2 || !got[0].OnDemand || got[1].OnDemand {
			t.Fatalf("open intents %+v %v: want od on-demand, spot not", got, err)
		}
	})
}
