package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/xmlrpc"
)

// nodeChecker is what the dialer asks the registry before it leases or
// records: whether the node calling is known, current and not gone.
type nodeChecker interface {
	CheckNode(ctx context.Context, nodeID string) (controller.NodeCheck, error)
}

// dialer adapts the campaign store to the XML-RPC tier.
type dialer struct {
	store *sqlstore.Store
	nodes nodeChecker
}

var _ xmlrpc.Dialer = dialer{}

func (d dialer) Lease(ctx context.Context, nodeID string, max int) ([]nodeapi.Call, error) {
	// Calls go only to a serving node of the current registration: a
	// terminated node's token, or one from before the node registered
	// again, leases nothing.
	n, err := d.nodes.CheckNode(ctx, nodeID)
	if err != nil {
		return nil, nodeFault(err)
	}
	switch n.State {
	case planner.StateDraining, planner.StateTerminating:
		return nil, nil
	}
	ls, err := d.store.LeaseFor(ctx, nodeID, n.Spot, max, time.Now())
	if err != nil {
		return nil, rpcError(err)
	}
	calls := make([]nodeapi.Call, len(ls))
	for i, l := range ls {
		calls[i] = nodeapi.Call{
			CallID: l.CallID, Token: l.Token, CampaignID: l.CampaignID, FlowVersion: l.FlowVersion,
			Number: l.Number, CallerID: l.CallerID, Trunk: l.Trunk, TimeoutSeconds: l.TimeoutSeconds,
			LeaseExpires: l.Expires.Unix(), Fields: l.Fields,
		}
	}
	return calls, nil
}

func (d dialer) Record(ctx context.Context, nodeID string, r nodeapi.ResultRequest) (bool, error) {
	unix := func(s int64) time.Time {
		if s == 0 {
			return time.Time{}
		}
		return time.Unix(s, 0).UTC()
	}
	if _, err := d.nodes.CheckNode(ctx, nodeID); err != nil {
		return false, nodeFault(err)
	}
	ok, err := d.store.Record(ctx, nodeID, campaign.Result{
		CallID: r.CallID, Token: r.Token, Disposition: r.Disposition, Cause: r.Cause,
		StartedAt: unix(r.StartedAt), AnsweredAt: unix(r.AnsweredAt), EndedAt: unix(r.EndedAt),
		Path: r.Path, Tags: r.Tags, Recording: r.Recording,
	}, time.Now())
	return ok, rpcError(err)
}

// Failover moves a call the carrier refused as congested to the next
// trunk of its campaign's group.
func (d dialer) Failover(ctx context.Context, nodeID string, r nodeapi.FailoverRequest) (nodeapi.FailoverResponse, error) {
	if _, err := d.nodes.CheckNode(ctx, nodeID); err != nil {
		return nodeapi.FailoverResponse{}, nodeFault(err)
	}
	next, err := d.store.Failover(ctx, nodeID, r.CallID, r.Token, r.Cause, time.Now())
	return nodeapi.FailoverResponse{Trunk: next}, rpcError(err)
}

var _ xmlrpc.Failover = dialer{}

// trunks serves nodes the trunk configuration from the campaign store;
// the credentials in it only to a known node of its current registration.
type trunks struct {
	store *sqlstore.Store
	nodes nodeChecker
}

var _ xmlrpc.Trunks = trunks{}

func (t trunks) Version(ctx context.Context) (string, error) {
	v, _, err := t.store.TrunkConfig(ctx)
	return v, err
}

func (t trunks) Trunks(ctx context.Context) (nodeapi.TrunksResponse, error) {
	if _, err := t.nodes.CheckNode(ctx, xmlrpc.NodeID(ctx)); err != nil {
		return nodeapi.TrunksResponse{}, nodeFault(err)
	}
	v, ts, err := t.store.TrunkConfig(ctx)
	if err != nil {
		return nodeapi.TrunksResponse{}, err
	}
	resp := nodeapi.TrunksResponse{Version: v, Trunks: make([]nodeapi.TrunkConfig, len(ts))}
	for i, x := range ts {
		resp.Trunks[i] = nodeapi.TrunkConfig{Name: x.Name, Host: x.Host, Username: x.Username, Password: x.Password, Register: x.Register}
	}
	return resp, nil
}

// nodes adapts the scaler's registry to the XML-RPC tier; with a store,
// heartbeats also carry each trunk's qualify status in and the trunk
// configuration's version out.
type nodes struct {
	scaler *controller.Controller
	store  *sqlstore.Store // nil: no trunk configuration
}

var _ xmlrpc.Nodes = nodes{}

func (n nodes) Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error) {
	r, err := n.scaler.Register(ctx, req)
	return r, nodeFault(err)
}

func (n nodes) Heartbeat(ctx context.Context, nodeID string, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	r, err := n.scaler.Heartbeat(ctx, nodeID, req)
	if err != nil || n.store == nil {
		return r, nodeFault(err)
	}
	seen := map[string]bool{}
	for _, t := range strings.Split(req.TrunksDown, ",") {
		if t != "" && len(seen) < 64 {
			seen[t] = false
		}
	}
	for _, t := range strings.Split(req.TrunksUp, ",") {
		if t != "" && len(seen) < 64 {
			seen[t] = true
		}
	}
	if err := n.store.ReportQualify(ctx, nodeID, seen, time.Now()); err != nil {
		return r, err
	}
	if r.TrunksVersion, _, err = n.store.TrunkConfig(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// nodeFault turns the registry's errors into faults a node acts on: an
// unknown node, or a token from an earlier registration, registers again;
// a terminated node is told so.
func nodeFault(err error) error {
	code := 0
	switch {
	case err == nil:
		return nil
	case errors.Is(err, controller.ErrNodeGone):
		code = nodeapi.FaultNodeGone
	case errors.Is(err, controller.ErrUnknownNode), errors.Is(err, controller.ErrStaleEpoch), errors.Is(err, controller.ErrUnknownInstance):
		code = nodeapi.FaultUnknownNode
	default:
		return err
	}
	return &xmlrpc.Fault{Code: code, String: err.Error()}
}

// rpcError turns the campaign tier's errors into faults a node acts on.
func rpcError(err error) error {
	code := 0
	switch {
	case err == nil:
		return nil
	case errors.Is(err, campaign.ErrStaleLease):
		code = nodeapi.FaultStaleLease
	case errors.Is(err, campaign.ErrForbidden):
		code = nodeapi.FaultForbidden
	case errors.Is(err, campaign.ErrNotFound):
		code = nodeapi.FaultNotFound
	case errors.Is(err, campaign.ErrInvalid):
		code = nodeapi.FaultInvalidParams
	default:
		return err
	}
	return &xmlrpc.Fault{Code: code, String: err.Error()}
}

// clusterSecret returns the configured secret, or the one kept in the
// secret file, creating it on first start.
func clusterSecret(cfg Config) ([]byte, error) {
	if cfg.ClusterSecret != "" {
		return []byte(cfg.ClusterSecret), nil
	}
	if b, err := os.ReadFile(cfg.SecretFile); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return []byte(s), nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	var b [32]byte
	rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	if err := os.WriteFile(cfg.SecretFile, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	return []byte(s), nil
}
