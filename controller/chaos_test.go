package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/internal/testclock"
	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/nodeapi"
)

// The chaos test runs three controllers on one PostgreSQL database, with
// simulated nodes that register, heartbeat, lease, call and report
// through whichever controller is up, the way nodes behind a load
// balancer do. Under a virtual clock it kills controllers (leader and
// followers) at random points, inside their cloud calls too, restarts
// them, drops every database connection at once (what a PostgreSQL
// restart does to clients), and imports a large dial list mid-campaign.
// It asserts the fleet's and the dial list's invariants throughout and
// at the end, when demand is gone and the fleet must be back to zero.

// chaosCloud is one controller's view of the shared cloud: it records the
// fencing token of every call, and may kill its controller right before
// or right after the call reaches the cloud.
type chaosCloud struct {
	*fakeCloud
	w    *chaosWorld
	ctl  *chaosCtl
	kill func() bool // decides, per call, whether the controller dies here
}

func (cc *chaosCloud) fenced(method string) {
	tok := cc.ctl.c.fence.Token
	cc.w.mu.Lock()
	defer cc.w.mu.Unlock()
	if tok < cc.w.maxToken {
		cc.w.fail("%s by %s under fencing token %d after token %d acted", method, cc.ctl.name, tok, cc.w.maxToken)
	}
	cc.w.maxToken = max(cc.w.maxToken, tok)
}

func (cc *chaosCloud) Launch(ctx context.Context, req LaunchRequest) ([]Instance, error) {
	if cc.kill() {
		cc.ctl.die()
		return nil, context.Canceled
	}
	cc.fenced("launch")
	out, err := cc.fakeCloud.Launch(ctx, req)
	if cc.kill() {
		cc.ctl.die() // the reply is lost with the process
		return nil, context.Canceled
	}
	return out, err
}

func (cc *chaosCloud) Terminate(ctx context.Context, ids []string) error {
	if cc.kill() {
		cc.ctl.die()
		return context.Canceled
	}
	cc.fenced("terminate")
	err := cc.fakeCloud.Terminate(ctx, ids)
	if cc.kill() {
		cc.ctl.die()
		return context.Canceled
	}
	return err
}

// chaosCtl is one controller process: its own database pools, scaler and
// context, which a kill cancels.
type chaosCtl struct {
	name   string
	store  *sqlstore.Store
	c      *Controller
	ctx    context.Context
	cancel context.CancelFunc
	dead   atomic.Bool
	downAt time.Time
}

func (c *chaosCtl) die() {
	c.dead.Store(true)
	c.cancel()
}

type chaosNode struct {
	id         string
	epoch      int64
	registered bool
	draining   bool
	nextHB     time.Time
	calls      map[string]chaosCall // by call id
	results    []campaign.Result    // ended calls not yet recorded (the agent's queue)
}

type chaosCall struct {
	lease campaign.Lease
	endAt time.Time
}

type chaosWorld struct {
	t     *testing.T
	rng   *rand.Rand
	clock *testclock.Clock
	cloud *fakeCloud
	dsn   string
	camp  string

	mu       sync.Mutex
	maxToken int64
	failures []string

	ctls      []*chaosCtl
	nodes     map[string]*chaosNode
	live      map[int64]string // contact → the call id live on it
	kills     int
	leases    int
	recorded  int
	lostCalls int
}

func (w *chaosWorld) fail(format string, args ...any) {
	w.failures = append(w.failures, fmt.Sprintf(format, args...))
}

// start starts (or restarts) controller i.
func (w *chaosWorld) start(i int) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, w.dsn)
	if err != nil {
		w.t.Fatal(err)
	}
	st.LeaseTTL = 2 * time.Minute
	ns, err := OpenStore(ctx, st.DB(), "pgx")
	if err != nil {
		w.t.Fatal(err)
	}
	ctl := &chaosCtl{name: fmt.Sprintf("c%d", i), store: st, ctx: ctx, cancel: cancel}
	cloud := &chaosCloud{fakeCloud: w.cloud, w: w, ctl: ctl, kill: func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.rng.IntN(8) == 0
	}}
	c, err := New(ctx, cloud, chaosDemand{st}, ns, Options{Clock: w.clock, Logger: quiet, Tick: 5 * time.Second,
		Plan:         planner.Config{SlotsPerNode: 100, MinLifetime: time.Minute, ScaleInWindow: time.Minute},
		AudioVersion: func(context.Context) (string, error) { return "v1", nil },
		RenewLeases:  st.RenewNode,
		ReleaseNode: func(ctx context.Context, id string) error {
			_, err := st.ReleaseNode(ctx, id, w.clock.Now())
			return err
		}})
	if err != nil {
		w.t.Fatalf("restart %s: %v", ctl.name, err)
	}
	ctl.c = c
	if i < len(w.ctls) {
		w.ctls[i].store.Close()
		w.ctls[i] = ctl
	} else {
		w.ctls = append(w.ctls, ctl)
	}
}

type chaosDemand struct{ s *sqlstore.Store }

func (d chaosDemand) Demand(ctx context.Context, now time.Time) ([]Demand, error) {
	ds, err := d.s.Demand(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]Demand, len(ds))
	for i, c := range ds {
		out[i] = Demand{CampaignID: c.CampaignID, Target: c.Target, Callable: c.Callable, MaxCPS: c.MaxCPS, Trunk: c.Trunk,
			TrunkChannels: c.TrunkChannels, TrunkCPS: c.TrunkCPS, Active: c.Active, AvgAttemptSeconds: c.AvgAttemptSeconds}
	}
	return out, nil
}

// anyUp returns a random controller that is up, as a load balancer would.
func (w *chaosWorld) anyUp() *chaosCtl {
	var up []*chaosCtl
	for _, c := range w.ctls {
		if !c.dead.Load() {
			up = append(up, c)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[w.rng.IntN(len(up))]
}

// stepNodes runs every node for one virtual second.
func (w *chaosWorld) stepNodes() {
	now := w.clock.Now()
	insts, _ := w.cloud.Instances(context.Background())
	ids := make([]string, 0, len(insts))
	for _, in := range insts {
		n := w.nodes[in.ID]
		switch {
		case in.State == InstanceTerminated:
			if n != nil {
				// The node is gone with whatever it had not reported.
				w.lostCalls += len(n.calls) + len(n.results)
				for _, call := range n.calls {
					delete(w.live, contactOf(call.lease.CallID))
				}
				delete(w.nodes, in.ID)
			}
			continue
		case n == nil:
			n = &chaosNode{id: in.ID, calls: map[string]chaosCall{}}
			w.nodes[in.ID] = n
		}
		ids = append(ids, in.ID)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := w.nodes[id]
		via := w.anyUp()
		if via == nil {
			continue
		}
		ctx := nodeapi.WithEpoch(via.ctx, n.epoch)
		if !n.registered {
			r, err := via.c.Register(via.ctx, nodeapi.RegisterRequest{InstanceID: id, Capacity: 100})
			if err == nil {
				n.registered, n.epoch, n.nextHB = true, int64(r.Epoch), now
			}
			continue
		}
		// Calls end; results are delivered (again) until recorded.
		for cid, call := range n.calls {
			if !now.Before(call.endAt) {
				delete(n.calls, cid)
				delete(w.live, contactOf(cid))
				n.results = append(n.results, campaign.Result{CallID: cid, Token: call.lease.Token, Disposition: campaign.Answered,
					StartedAt: call.endAt.Add(-30 * time.Second), AnsweredAt: call.endAt.Add(-25 * time.Second), EndedAt: call.endAt})
			}
		}
		kept := n.results[:0]
		for _, r := range n.results {
			_, err := via.c.CheckNode(ctx, id)
			if err == nil {
				_, err = via.store.Record(via.ctx, id, r, now)
			}
			switch {
			case err == nil:
				w.recorded++
			case errors.Is(err, campaign.ErrStaleLease), errors.Is(err, campaign.ErrForbidden), errors.Is(err, ErrNodeGone):
				w.fail("result of %s on %s refused: %v", r.CallID, id, err)
			default:
				kept = append(kept, r) // controller down or connection dropped: retry
			}
		}
		n.results = kept
		if !now.Before(n.nextHB) {
			hb := readyHB(len(n.calls))
			hb.PendingResults = len(n.results)
			hb.Draining = n.draining
			resp, err := via.c.Heartbeat(ctx, id, hb)
			switch {
			case errors.Is(err, ErrStaleEpoch), errors.Is(err, ErrUnknownNode):
				n.registered = false
			case err == nil:
				n.draining = resp.Drain
				n.nextHB = now.Add(10 * time.Second)
			}
		}
		if free := 100 - len(n.calls); !n.draining && free > 0 {
			st, err := via.c.CheckNode(ctx, id)
			if err != nil || st.State != planner.StateReady {
				continue
			}
			ls, err := via.store.Lease(via.ctx, id, min(free, 20), now)
			if err != nil {
				continue
			}
			for _, l := range ls {
				contact := contactOf(l.CallID)
				if other, ok := w.live[contact]; ok {
					w.fail("contact %d leased as %s while %s is live", contact, l.CallID, other)
				}
				w.live[contact] = l.CallID
				n.calls[l.CallID] = chaosCall{lease: l, endAt: now.Add(time.Duration(20+w.rng.IntN(60)) * time.Second)}
				w.leases++
			}
		}
	}
}

func contactOf(callID string) int64 {
	var c int64
	var n int
	fmt.Sscanf(strings.TrimPrefix(callID, "k"), "%d-%d", &c, &n)
	return c
}

func TestChaosThreeControllersOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test is long")
	}
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	clock := testclock.New(time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
	// ELASTIDIAL_CHAOS_SEED explores other runs; the default is fixed so a
	// failure reproduces.
	seed := uint64(15)
	if v := os.Getenv("ELASTIDIAL_CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d", seed)
	w := &chaosWorld{t: t, rng: rand.New(rand.NewPCG(seed, 3)), clock: clock, cloud: newFakeCloud(clock), dsn: dsn,
		nodes: map[string]*chaosNode{}, live: map[int64]string{}}
	setupStore, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer setupStore.Close()
	setupStore.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 1000, MaxCPS: 1000})
	const contacts = 3000
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range contacts {
		fmt.Fprintf(&csv, "+1212555%04d\n", i)
	}
	camp, err := setupStore.CreateCampaign(ctx, campaign.Campaign{Name: "Chaos", Trunk: "carrier", CallerID: "+14155550100", Target: 200, MaxCPS: 50,
		Window: campaign.Window{Start: 480, End: 1260}}, clock.Now()) // the legal hours; 16:00 UTC is noon in New York
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setupStore.ImportContacts(ctx, camp.ID, strings.NewReader(csv.String()), importer.Options{DefaultRegion: "US"}, clock.Now()); err != nil {
		t.Fatal(err)
	}
	setupStore.SaveFlow(ctx, camp.ID, []byte(`{"start":"bye"}`), clock.Now())
	if _, err := setupStore.SetStatus(ctx, camp.ID, campaign.StatusRunning, clock.Now()); err != nil {
		t.Fatal(err)
	}
	other, err := setupStore.CreateCampaign(ctx, campaign.Campaign{Name: "Next week", Trunk: "carrier", CallerID: "+14155550100", Target: 10}, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.start(i)
	}

	var importing atomic.Bool
	importDone := make(chan error, 1)
	leasesDuringImport, stepsDuringImport, peak := 0, 0, 0
	const steps = 2400 // virtual seconds; bounded
	for step := 0; step < steps; step++ {
		now := clock.Now()
		// Chaos: kill a controller now and then (the leader twice as
		// often), restart the dead after 10 to 40 s.
		if w.rng.IntN(45) == 0 {
			i := w.rng.IntN(len(w.ctls) + 1)
			if i == len(w.ctls) {
				for j, c := range w.ctls {
					if c.c.Leading() {
						i = j
					}
				}
			}
			if i < len(w.ctls) && !w.ctls[i].dead.Load() {
				w.ctls[i].die()
				w.ctls[i].downAt = now
				w.kills++
			}
		}
		for i, c := range w.ctls {
			if c.dead.Load() && c.downAt.IsZero() {
				c.downAt = now // died inside a cloud call
				w.kills++
			}
			if c.dead.Load() && now.Sub(c.downAt) > time.Duration(10+w.rng.IntN(30))*time.Second {
				w.start(i)
			}
		}
		// Every database connection dropped at once, twice.
		if step == 700 || step == 1300 {
			if _, err := setupStore.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
				t.Fatalf("drop connections: %v", err)
			}
		}
		// A large dial list arrives mid-campaign (for a campaign that
		// has not started), in real time beside the dialling.
		if step == 120 {
			importing.Store(true)
			go func() {
				var b strings.Builder
				b.WriteString("phone,account\n")
				for i := range 30000 {
					fmt.Fprintf(&b, "+1646%07d,A%d\n", 2000000+i, i)
				}
				// Stamped with the wall clock, as serve does: a controller
				// (re)starting meanwhile must see this import as live.
				// A dropped connection fails the import as a whole; the
				// user uploads it again.
				var err error
				for try := 0; try < 3; try++ {
					var res sqlstore.ImportResult
					res, err = setupStore.ImportContacts(ctx, other.ID, strings.NewReader(b.String()), importer.Options{DefaultRegion: "US"}, time.Now())
					if err == nil && res.Imported != 30000 {
						err = fmt.Errorf("imported %d of 30000 (%+v)", res.Imported, res.Report)
					}
					if err == nil {
						break
					}
					t.Logf("import try %d: %v", try+1, err)
				}
				importing.Store(false)
				importDone <- err
			}()
		}
		// Demand moves, so the fleet scales out and in under the chaos.
		if target, ok := map[int]int{200: 380, 400: 90, 600: 260}[step]; ok {
			camp.Target = target
			if camp, err = setupStore.UpdateCampaign(ctx, camp, now); err != nil {
				t.Fatal(err)
			}
		}
		before := w.leases
		w.cloud.boot()
		peak = max(peak, len(w.cloud.live()))
		w.stepNodes()
		if importing.Load() {
			leasesDuringImport += w.leases - before
			stepsDuringImport++
		}
		if step%5 == 0 {
			// The controllers tick at once, as separate processes do.
			var wg sync.WaitGroup
			for _, c := range w.ctls {
				if !c.dead.Load() {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c.c.Tick(c.ctx) // errors are the chaos' own
					}()
				}
			}
			wg.Wait()
		}
		if step%10 == 0 {
			for _, c := range w.ctls {
				if lead, since := c.c.LeadingSince(); !c.dead.Load() && lead && now.Sub(since) >= 2*time.Minute {
					c.store.Reap(c.ctx, now)
				}
			}
		}
		clock.Add(time.Second)
		if step > 600 && len(w.cloud.live()) == 0 && len(w.live) == 0 {
			break // every contact called, the fleet back to zero
		}
	}
	if err := <-importDone; err != nil {
		t.Fatalf("import mid-campaign: %v", err)
	}
	for _, c := range w.ctls {
		c.cancel()
		c.store.Close()
	}

	st, err := setupStore.Stats(ctx, camp.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d controller kills, %d instances launched, %d leases, %d results recorded, %d leases in the %d steps the import ran, virtual %s",
		w.kills, w.cloud.launched, w.leases, w.recorded, leasesDuringImport, stepsDuringImport, clock.Now().Sub(time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)))
	for _, f := range w.failures {
		t.Error(f)
	}
	if w.kills < 5 {
		t.Errorf("only %d kills: not much chaos", w.kills)
	}
	if w.lostCalls != 0 {
		t.Errorf("%d calls or results died with a terminated node", w.lostCalls)
	}
	if live := w.cloud.live(); len(live) != 0 {
		t.Errorf("orphaned instances at the end: %v", live)
	}
	if st.Contacts[campaign.ContactDone] != contacts || st.Attempts[campaign.Answered] != contacts || st.Attempts[campaign.CutOff] != 0 {
		t.Errorf("dial list: contacts %v attempts %v; want all %d done, answered once, none cut off", st.Contacts, st.Attempts, contacts)
	}
	if w.recorded != contacts {
		t.Errorf("%d results recorded, want %d", w.recorded, contacts)
	}
	if leasesDuringImport == 0 {
		t.Error("no call was leased while the import ran")
	}
	// No two leaders launched for the same need: the fleet never
	// outgrew what one scaler asks for the highest target (380 calls and
	// 5% headroom: 4 nodes of 100).
	perToken := map[string]int{}
	for _, call := range w.cloud.calls {
		if f := strings.Fields(call); f[0] == "launch" {
			perToken[f[2]]++
		}
	}
	t.Logf("%d launch intents, %d cloud calls, at most %d instances at once", len(perToken), len(w.cloud.calls), peak)
	if peak > 4 {
		t.Errorf("%d instances ran at once; one scaler launches at most 4 here", peak)
	}
}
