package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/nodeapi"
)

// The node lifecycle. The registry moves a node along the upper line on
// what the cloud and the node report; the planner's deadlines (package
// planner) send it to terminating; the loop carries that out and sees it
// gone.
//
//	requested ─► pending ─► booting ─► registered ─► syncing ─► ready ◄──► draining ─► terminating ─► gone
//	 (intent     (cloud     (cloud      (node.       (heart-     │  ▲        │ calls 0 and      ▲ (cloud says
//	  stored,     listed     says        register)    beat, not  │  │cancel  │ results sent, or │  terminated
//	  Launch      it)        running)                 ready)     │  │        │ drain deadline   │  or forgot it)
//	  asked)                                            ▲        │  └────────┘                  │
//	                                                    └────────┘ readiness lost                │
//	 pending/booting: no registration within RegisterDeadline ─────────────────────────────────┤
//	 registered/syncing/ready: no heartbeat within HeartbeatDeadline, or not ready in time ─────┘ (replaced)
//	 ready: spot notice ─► draining at once (deadline SpotDrainTimeout)
//
// transition (lifecycle.go) is the one place a state changes: it refuses
// a move this diagram lacks and sets the fields that go with the move.
//
// Ready (invariant 4) = registered, and the last heartbeat says AMI is
// connected, a timing module is loaded and the node's audio version equals
// the current manifest version.

// Sentinel errors of the registry; the XML-RPC tier maps them to faults.
var (
	ErrUnknownInstance = errors.New("instance not launched by this cluster (or not listed by the cloud yet)")
	ErrUnknownNode     = errors.New("unknown node")
	ErrNodeGone        = errors.New("node terminated")
	// ErrStaleEpoch: the node registered again since its token was issued
	// (another process, or the same agent restarted); register again.
	ErrStaleEpoch = errors.New("node token is from an earlier registration")
	// ErrNodeParked: the node is being stopped for the warm pool.
	ErrNodeParked = errors.New("node parked in the warm pool")
)

// node is the registry's cached entry: the record (the database's row
// when there is a store) and what only the leader's loop keeps.
type node struct {
	rec        NodeRecord
	capCmd     int    // capacity command the last plan chose
	inCloud    bool   // listed by the last Instances call
	cloudState string // its state in that list
	missedAt   time.Time
}

// The registry lives in the database when there is a store, so any
// controller serves any node: node.register and node.heartbeat read the
// node's row, apply the move, and write it back only if no one changed
// it meanwhile (its revision), retrying a lost race. Without a store (the
// trace simulator) the same moves apply to the in-memory map.

// maxRaces bounds the retries of a registry write that lost a race.
const maxRaces = 8

// loadNode reads a node's current record.
func (c *Controller) loadNode(ctx context.Context, id string) (NodeRecord, error) {
	if c.store != nil {
		return c.store.Node(ctx, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	if n == nil {
		return NodeRecord{}, fmt.Errorf("node %s: %w", id, ErrUnknownNode)
	}
	return n.rec, nil
}

// saveNode writes a node's record if it is still at rec.Rev, unfenced (a
// node's own report), and updates the cache.
func (c *Controller) saveNode(ctx context.Context, rec *NodeRecord) error {
	if c.store != nil {
		if err := c.store.SaveNode(ctx, Fence{}, rec); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[rec.ID]
	if c.store == nil {
		if n == nil || n.rec.Rev != rec.Rev {
			return fmt.Errorf("save node %s: %w", rec.ID, ErrNodeChanged)
		}
		rec.Rev++
	}
	if n == nil {
		c.nodes[rec.ID] = &node{rec: *rec}
	} else if n.rec.Rev <= rec.Rev {
		n.rec = *rec
	}
	return nil
}

// update applies move to node id's record and saves it, again on a lost
// race. move returns false to save nothing.
func (c *Controller) update(ctx context.Context, id string, move func(*NodeRecord) (bool, error)) (NodeRecord, error) {
	for try := 0; ; try++ {
		rec, err := c.loadNode(ctx, id)
		if err != nil {
			return rec, err
		}
		save, err := move(&rec)
		if err != nil || !save {
			return rec, err
		}
		err = c.saveNode(ctx, &rec)
		if errors.Is(err, ErrNodeChanged) && try < maxRaces {
			continue
		}
		return rec, err
	}
}

// checkEpoch refuses a token issued for an earlier registration. Epoch 0
// (a caller without a token: tests, the simulator) is not checked.
func checkEpoch(ctx context.Context, id string, epoch int64) error {
	if e := nodeapi.EpochFrom(ctx); e != 0 && e != epoch {
		return fmt.Errorf("node %s epoch %d, current %d: %w", id, e, epoch, ErrStaleEpoch)
	}
	return nil
}

// Register answers node.register: it matches the instance id the cloud
// reported (an instance of ours we did not start, found by the loop, is
// adopted here) and moves the node to registered. Every registration
// starts a new epoch: tokens of the ones before stop working.
func (c *Controller) Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error) {
	if req.InstanceID == "" {
		return nodeapi.RegisterResponse{}, fmt.Errorf("register: empty instance id: %w", ErrUnknownInstance)
	}
	for _, f := range []struct{ name, v string }{{"instance_id", req.InstanceID}, {"private_ip", req.PrivateIP}, {"public_ip", req.PublicIP}, {"zone", req.Zone}, {"version", req.Version}} {
		if len(f.v) > 255 {
			return nodeapi.RegisterResponse{}, fmt.Errorf("register: %s is %d bytes, over 255", f.name, len(f.v))
		}
	}
	if req.Capacity < 0 || req.Capacity > 10000 {
		return nodeapi.RegisterResponse{}, fmt.Errorf("register %s: capacity %d outside 0..10000", req.InstanceID, req.Capacity)
	}
	audio := c.audioVersion(ctx)
	now := c.clock.Now()
	rec, err := c.update(ctx, req.InstanceID, func(r *NodeRecord) (bool, error) {
		switch r.State {
		case planner.StateTerminating, planner.StateGone:
			return false, ErrNodeGone
		case planner.StateParking, planner.StateParked:
			// Stopping (or stopped) for the warm pool: not serving until
			// the scaler starts it.
			return false, ErrNodeParked
		case planner.StatePending, planner.StateBooting, planner.StateResuming:
			// StateResuming: started from the warm pool, the agent
			// registers again (a new epoch) and re-syncs its audio before
			// it is ready.
			if err := transition(r, planner.StateRegistered, now, Drain{}); err != nil {
				return false, err
			}
			if r.LaunchToken == "" {
				c.log.Info("adopted instance", "node", r.ID)
			}
		}
		// A re-registration (agent restarted) keeps draining and readiness
		// states; readiness is re-earned by the next heartbeat.
		if r.State == planner.StateReady {
			if err := transition(r, planner.StateSyncing, now, Drain{}); err != nil {
				return false, err
			}
		}
		if req.Capacity > 0 {
			r.Capacity = req.Capacity
		}
		if req.PrivateIP != "" {
			r.PrivateIP = req.PrivateIP
		}
		if req.Zone != "" {
			r.Zone = req.Zone
		}
		r.LastHeartbeat, r.Load = now, nodeapi.HeartbeatRequest{}
		r.Epoch++
		return true, nil
	})
	if errors.Is(err, ErrUnknownNode) {
		err = ErrUnknownInstance
	}
	if err != nil {
		return nodeapi.RegisterResponse{}, fmt.Errorf("register %s: %w", req.InstanceID, err)
	}
	return nodeapi.RegisterResponse{
		NodeID:           rec.ID,
		Epoch:            int(rec.Epoch),
		HeartbeatSeconds: int(c.cfg.HeartbeatInterval / time.Second),
		AudioVersion:     audio,
	}, nil
}

// Heartbeat answers node.heartbeat: it records the node's load and
// readiness and answers the commands (drain, capacity, audio version).
// Each heartbeat also renews the call leases the node holds and, when the
// node lists its calls, ends those the list leaves out once past a grace
// (Options.RenewLeases): a lease whose dialer.next answer never reached
// the node would otherwise live as long as the node.
func (c *Controller) Heartbeat(ctx context.Context, nodeID string, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	if req.ActiveCalls < 0 || req.PendingResults < 0 || req.Capacity < 0 {
		return nodeapi.HeartbeatResponse{}, fmt.Errorf("heartbeat %s: negative count", nodeID)
	}
	audio := c.audioVersion(ctx)
	now := c.clock.Now()
	resp := nodeapi.HeartbeatResponse{AudioVersion: audio, HeartbeatSeconds: int(c.cfg.HeartbeatInterval / time.Second)}
	rec, err := c.update(ctx, nodeID, func(r *NodeRecord) (bool, error) {
		if err := checkEpoch(ctx, r.ID, r.Epoch); err != nil {
			return false, err
		}
		switch r.State {
		case planner.StateTerminating, planner.StateGone, planner.StateParking, planner.StateParked:
			// Told to drain; its calls are ending with it (or it is being
			// stopped for the warm pool).
			return false, nil
		case planner.StateResuming:
			// Started from the warm pool: a hibernated agent wakes up and
			// heartbeats on its old token. It registers again (a new
			// epoch), as a rebooted one does, and re-syncs from there.
			return false, fmt.Errorf("started from the warm pool: %w", ErrStaleEpoch)
		case planner.StatePending, planner.StateBooting:
			// Heartbeat before register can follow a controller restart that
			// lost nothing but timing; treat it as registration.
			if err := transition(r, planner.StateRegistered, now, Drain{}); err != nil {
				return false, err
			}
		}
		r.Load, r.LastHeartbeat = req, now
		r.Load.Calls = "" // for RenewLeases below; the registry need not keep it
		if req.SpotNotice && r.State != planner.StateDraining {
			if err := transition(r, planner.StateDraining, now, Drain{planner.DrainSpot, now.Add(c.cfg.Plan.SpotDrainTimeout)}); err != nil {
				return false, err
			}
			c.log.Warn("spot interruption notice: draining", "node", nodeID)
		}
		switch r.State {
		case planner.StateRegistered, planner.StateSyncing, planner.StateReady:
			to := planner.StateSyncing
			if req.Ready() && req.AudioVersion == audio {
				to = planner.StateReady
				if r.ReadyAt.IsZero() {
					r.ReadyAt = now
				}
				if r.State != planner.StateReady && r.Warm.Starts > 0 && !r.Warm.ResumedAt.IsZero() && r.Warm.ResumedAt.After(r.ReadyAt) {
					// How long a start from the warm pool takes to serve:
					// what ops compare with -warm in the simulator.
					c.log.Info("ready after a warm start", "node", nodeID, "seconds", now.Sub(r.Warm.ResumedAt).Seconds())
					r.ReadyAt = now
				}
			}
			if err := transition(r, to, now, Drain{}); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return nodeapi.HeartbeatResponse{}, fmt.Errorf("heartbeat %s: %w", nodeID, err)
	}
	resp.Capacity = rec.CapacityCmd
	switch rec.State {
	case planner.StateDraining, planner.StateTerminating, planner.StateGone, planner.StateParking, planner.StateParked:
		resp.Drain = true
	}
	if c.cfg.RenewLeases != nil && rec.State != planner.StateTerminating && rec.State != planner.StateGone {
		if err := c.cfg.RenewLeases(ctx, nodeID, req.Held(), now); err != nil {
			// The node is alive; its leases last until the next heartbeat
			// renews them, so this one failing loses nothing yet.
			c.log.Warn("renew leases", "node", nodeID, "err", err)
		}
	}
	return resp, nil
}

// CheckNode tells the XML-RPC tier whether the node calling with the
// token in ctx is known, registered under that token's epoch and not gone,
// and returns its state and capacity type: dialer.next hands calls only
// to a serving node, call.result takes results from any node not gone
// (terminating included), so no result that can still be recorded is
// refused. It reads only those columns of the node's row, on every call
// a node makes.
func (c *Controller) CheckNode(ctx context.Context, nodeID string) (NodeCheck, error) {
	var n NodeCheck
	if c.store != nil {
		var err error
		if n, err = c.store.NodeCheck(ctx, nodeID); err != nil {
			return n, err
		}
	} else {
		rec, err := c.loadNode(ctx, nodeID)
		if err != nil {
			return n, err
		}
		n = NodeCheck{State: rec.State, Epoch: rec.Epoch, Spot: rec.Spot}
	}
	if err := checkEpoch(ctx, nodeID, n.Epoch); err != nil {
		return n, err
	}
	if n.State == planner.StateGone {
		return n, fmt.Errorf("node %s: %w", nodeID, ErrNodeGone)
	}
	return n, nil
}

// persist writes n's record under the leader's fence; the caller holds
// c.mu.
func (c *Controller) persist(ctx context.Context, n *node) error {
	if c.store == nil {
		n.rec.Rev++
		return nil
	}
	return c.store.SaveNode(ctx, c.fence, &n.rec)
}

func (c *Controller) audioVersion(ctx context.Context) string {
	if c.cfg.AudioVersion == nil {
		return ""
	}
	c.audioMu.Lock()
	defer c.audioMu.Unlock()
	now := c.clock.Now()
	if c.audioOK && now.Sub(c.audioAt) < c.cfg.AudioVersionTTL {
		return c.audio
	}
	v, err := c.cfg.AudioVersion(ctx)
	if err != nil {
		// Keep the last known version: a storage hiccup must not flip
		// every node to not-ready.
		c.log.Warn("audio version", "err", err)
		return c.audio
	}
	c.audio, c.audioAt, c.audioOK = v, now, true
	return v
}

// view is the planner's picture of n; the caller holds c.mu. A node's
// heartbeat is taken as no older than since (when this controller became
// leader): one that reported to nobody while no controller was up gets one
// deadline from then before it is called silent.
func (n *node) view(since time.Time) planner.NodeView {
	v := planner.NodeView{
		ID: n.rec.ID, State: n.rec.State, Spot: n.rec.Spot, Capacity: n.rec.Capacity,
		LaunchedAt: n.rec.LaunchedAt, ReadyAt: n.rec.ReadyAt, DrainDeadline: n.rec.DrainDeadline,
		LastHeartbeat: n.rec.LastHeartbeat, DrainReason: n.rec.DrainReason, Zone: n.rec.Zone,
		StoppedAt: n.rec.Warm.StoppedAt, ResumedAt: n.rec.Warm.ResumedAt, StartFailed: n.rec.Warm.StartFailed,
	}
	if n.rec.State == planner.StateParked || n.rec.State == planner.StateParking || n.rec.State == planner.StateResuming {
		// The last heartbeat is from before the stop: no silence to judge.
		v.LastHeartbeat = time.Time{}
		return v
	}
	if !v.LastHeartbeat.IsZero() {
		if v.LastHeartbeat.Before(since) {
			v.LastHeartbeat = since
		}
		hb := n.rec.Load
		v.ActiveCalls, v.Pending, v.CPU, v.Load1 = hb.ActiveCalls, hb.PendingResults, hb.CPU, hb.Load1
		v.NodeDrain, v.SpotNotice, v.Rebalance = hb.Draining, hb.SpotNotice, hb.Rebalance
	} else if n.rec.State == planner.StateDraining {
		// Calls unknown: count as busy until it reports.
		v.ActiveCalls = 1
	}
	return v
}
