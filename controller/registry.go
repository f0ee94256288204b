package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// The node lifecycle. The registry moves a node along the upper line on
// what the cloud and the node report; the planner's deadlines (planner.go)
// send it to terminating; the loop carries that out and sees it gone.
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
// Ready (invariant 4) = registered, and the last heartbeat says AMI is
// connected, a timing module is loaded and the node's audio version equals
// the current manifest version.

// Sentinel errors of the registry; the XML-RPC tier maps them to faults.
var (
	ErrUnknownInstance = errors.New("instance not launched by this cluster (or not listed by the cloud yet)")
	ErrUnknownNode     = errors.New("unknown node")
	ErrNodeGone        = errors.New("node terminated")
)

// node is the registry's entry: the persisted record plus what the last
// heartbeat said, which is not worth a write per heartbeat.
type node struct {
	rec      NodeRecord
	hb       nodeapi.HeartbeatRequest
	lastHB   time.Time
	capCmd   int  // capacity command to send; 0 = unchanged
	seenHB   bool // a heartbeat arrived since this process started
	inCloud  bool // listed by the last Instances call
	missedAt time.Time
}

// Register answers node.register: it matches the instance id the cloud
// reported (an instance of ours we did not start, found by the loop, is
// adopted here) and moves the node to registered.
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
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[req.InstanceID]
	if n == nil {
		return nodeapi.RegisterResponse{}, fmt.Errorf("register %s: %w", req.InstanceID, ErrUnknownInstance)
	}
	switch n.rec.State {
	case StateTerminating, StateGone:
		return nodeapi.RegisterResponse{}, fmt.Errorf("register %s: %w", req.InstanceID, ErrNodeGone)
	case StatePending, StateBooting:
		n.rec.State = StateRegistered
		if n.rec.LaunchToken == "" {
			c.log.Info("adopted instance", "node", n.rec.ID)
		}
	}
	// A re-registration (agent restarted) keeps draining and readiness
	// states; readiness is re-earned by the next heartbeat.
	if n.rec.State == StateReady {
		n.rec.State = StateSyncing
	}
	if req.Capacity > 0 {
		n.rec.Capacity = req.Capacity
	}
	if req.PrivateIP != "" {
		n.rec.PrivateIP = req.PrivateIP
	}
	if req.Zone != "" {
		n.rec.Zone = req.Zone
	}
	n.lastHB, n.seenHB = now, true
	if err := c.persist(ctx, n); err != nil {
		return nodeapi.RegisterResponse{}, fmt.Errorf("register %s: %w", req.InstanceID, err)
	}
	return nodeapi.RegisterResponse{
		NodeID:           n.rec.ID,
		HeartbeatSeconds: int(c.cfg.HeartbeatInterval / time.Second),
		AudioVersion:     audio,
	}, nil
}

// Heartbeat answers node.heartbeat: it records the node's load and
// readiness and answers the commands (drain, capacity, audio version).
func (c *Controller) Heartbeat(ctx context.Context, nodeID string, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	if req.ActiveCalls < 0 || req.PendingResults < 0 || req.Capacity < 0 {
		return nodeapi.HeartbeatResponse{}, fmt.Errorf("heartbeat %s: negative count", nodeID)
	}
	audio := c.audioVersion(ctx)
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[nodeID]
	if n == nil {
		return nodeapi.HeartbeatResponse{}, fmt.Errorf("heartbeat %s: %w", nodeID, ErrUnknownNode)
	}
	n.hb, n.lastHB, n.seenHB = req, now, true
	resp := nodeapi.HeartbeatResponse{AudioVersion: audio, HeartbeatSeconds: int(c.cfg.HeartbeatInterval / time.Second), Capacity: n.capCmd}
	old := n.rec
	switch n.rec.State {
	case StateTerminating, StateGone:
		resp.Drain = true
		return resp, nil
	case StatePending, StateBooting:
		// Heartbeat before register can follow a controller restart that
		// lost nothing but timing; treat it as registration.
		n.rec.State = StateRegistered
	}
	if req.SpotNotice && n.rec.State != StateDraining {
		n.rec.State = StateDraining
		n.rec.DrainDeadline = now.Add(c.cfg.Plan.SpotDrainTimeout)
		n.rec.DrainReason = "spot interruption notice"
		c.log.Warn("spot interruption notice: draining", "node", nodeID)
	}
	switch n.rec.State {
	case StateDraining:
		resp.Drain = true
	case StateRegistered, StateSyncing, StateReady:
		if req.Ready() && req.AudioVersion == audio {
			n.rec.State = StateReady
			if n.rec.ReadyAt.IsZero() {
				n.rec.ReadyAt = now
			}
		} else {
			n.rec.State = StateSyncing
		}
	}
	if n.rec != old {
		if err := c.persist(ctx, n); err != nil {
			n.rec = old
			return nodeapi.HeartbeatResponse{}, fmt.Errorf("heartbeat %s: %w", nodeID, err)
		}
	}
	return resp, nil
}

// persist writes n's record; the caller holds c.mu.
func (c *Controller) persist(ctx context.Context, n *node) error {
	if c.store == nil {
		return nil
	}
	return c.store.PutNode(ctx, n.rec)
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

// view is the planner's picture of n; the caller holds c.mu.
func (n *node) view() NodeView {
	v := NodeView{
		ID: n.rec.ID, State: n.rec.State, Spot: n.rec.Spot, Capacity: n.rec.Capacity,
		LaunchedAt: n.rec.LaunchedAt, ReadyAt: n.rec.ReadyAt, DrainDeadline: n.rec.DrainDeadline,
		LastHeartbeat: n.lastHB,
	}
	if n.seenHB {
		v.ActiveCalls, v.Pending, v.CPU, v.Load1 = n.hb.ActiveCalls, n.hb.PendingResults, n.hb.CPU, n.hb.Load1
		v.NodeDrain, v.SpotNotice = n.hb.Draining, n.hb.SpotNotice
	}
	if !n.seenHB && n.rec.State == StateDraining {
		// Calls unknown since a restart: count as busy until it reports.
		v.ActiveCalls = 1
	}
	return v
}
