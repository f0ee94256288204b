package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// fakeCloud is a stateful Cloud for tests: instances with states, launch
// tokens honoured like EC2's ClientToken, and faults injected per call.
type fakeCloud struct {
	mu        sync.Mutex
	clock     Clock
	next      int
	insts     map[string]*Instance
	tokens    map[string][]string
	fail      map[string]error // method → error for its next call
	lostReply map[string]bool  // method → do the work, then fail the next call
	launched  int
	onTerm    func(id string) // called for every running instance terminated
	calls     []string
}

var errInjected = errors.New("injected fault")

// t0 is when the tests' clocks start (the planner's tests use the same).
var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func newFakeCloud(clock Clock) *fakeCloud {
	return &fakeCloud{clock: clock, insts: map[string]*Instance{}, tokens: map[string][]string{}, fail: map[string]error{}, lostReply: map[string]bool{}}
}

var _ WarmCloud = (*fakeCloud)(nil)

func (f *fakeCloud) failNext(method string) {
	f.mu.Lock()
	f.fail[method] = errInjected
	f.mu.Unlock()
}

func (f *fakeCloud) loseNextReply(method string) {
	f.mu.Lock()
	f.lostReply[method] = true
	f.mu.Unlock()
}

func (f *fakeCloud) takeFault(method string) (before error, after bool) {
	if err := f.fail[method]; err != nil {
		delete(f.fail, method)
		return err, false
	}
	if f.lostReply[method] {
		delete(f.lostReply, method)
		return nil, true
	}
	return nil, false
}

func (f *fakeCloud) Launch(ctx context.Context, req LaunchRequest) ([]Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("launch %d %s", req.Count, req.Token))
	if err, _ := f.takeFault("launch"); err != nil {
		return nil, err
	}
	_, lost := f.takeFault("launch")
	ids, ok := f.tokens[req.Token]
	if !ok {
		for i := 0; i < req.Count; i++ {
			f.next++
			id := fmt.Sprintf("i-%04d", f.next)
			tags := map[string]string{TagCluster: "test"}
			for k, v := range req.Tags {
				tags[k] = v
			}
			f.insts[id] = &Instance{ID: id, State: InstancePending, Type: "c6i.large", Zone: "us-east-1a", LaunchedAt: f.clock.Now(), Tags: tags}
			ids = append(ids, id)
			f.launched++
		}
		f.tokens[req.Token] = ids
	}
	if lost {
		return nil, fmt.Errorf("launch: reply lost: %w", errInjected)
	}
	var out []Instance
	for _, id := range ids {
		out = append(out, *f.insts[id])
	}
	return out, nil
}

func (f *fakeCloud) Terminate(ctx context.Context, ids []string) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("terminate %v", ids))
	if err, _ := f.takeFault("terminate"); err != nil {
		f.mu.Unlock()
		return err
	}
	_, lost := f.takeFault("terminate")
	var ended []string
	for _, id := range ids {
		if in := f.insts[id]; in != nil && in.State != InstanceTerminated {
			in.State = InstanceTerminated
			ended = append(ended, id)
		}
	}
	hook := f.onTerm
	f.mu.Unlock()
	if hook != nil {
		for _, id := range ended {
			hook(id)
		}
	}
	if lost {
		return fmt.Errorf("terminate: reply lost: %w", errInjected)
	}
	return nil
}

func (f *fakeCloud) Instances(ctx context.Context) ([]Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.takeFault("instances"); err != nil {
		return nil, err
	}
	var out []Instance
	for _, in := range f.insts {
		c := *in
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Stop stops running instances: they stay stopping until settle.
func (f *fakeCloud) Stop(ctx context.Context, ids []string, hibernate bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("stop %v hibernate=%v", ids, hibernate))
	if err, _ := f.takeFault("stop"); err != nil {
		return err
	}
	for _, id := range ids {
		if in := f.insts[id]; in != nil && (in.State == InstanceRunning || in.State == InstancePending) {
			in.State = InstanceStopping
		}
	}
	return nil
}

// Start starts stopped instances: pending until boot.
func (f *fakeCloud) Start(ctx context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("start %v", ids))
	if err, _ := f.takeFault("start"); err != nil {
		return err
	}
	for _, id := range ids {
		in := f.insts[id]
		if in == nil {
			return fmt.Errorf("start %s: no such instance", id)
		}
		if in.State == InstanceStopped {
			in.State = InstancePending
		}
	}
	return nil
}

// settle moves every stopping instance to stopped.
func (f *fakeCloud) settle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.insts {
		if in.State == InstanceStopping {
			in.State = InstanceStopped
		}
	}
}

// boot moves every pending instance to running.
func (f *fakeCloud) boot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.insts {
		if in.State == InstancePending {
			in.State = InstanceRunning
		}
	}
}

// live lists the ids not terminated.
func (f *fakeCloud) live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, in := range f.insts {
		if in.State != InstanceTerminated {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// addStray starts an instance with our cluster tag that no controller
// launched (a leak from some earlier crash, or an operator's hand).
func (f *fakeCloud) addStray() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	id := fmt.Sprintf("i-%04d", f.next)
	f.insts[id] = &Instance{ID: id, State: InstanceRunning, Type: "c6i.large", LaunchedAt: f.clock.Now(), Tags: map[string]string{TagCluster: "test"}}
	return id
}

// fakeDemand is a DemandSource with a settable target.
type fakeDemand struct {
	mu     sync.Mutex
	target int
	err    error
}

func (d *fakeDemand) set(n int) {
	d.mu.Lock()
	d.target = n
	d.mu.Unlock()
}

func (d *fakeDemand) Demand(ctx context.Context, now time.Time) ([]Demand, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	return []Demand{{CampaignID: "c1", Target: d.target, Callable: 1 << 20}}, nil
}
