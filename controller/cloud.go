// Package controller is the scaler: it observes campaign demand and node
// load, plans with a pure function of that state and the time, and acts on
// the cloud by launching, draining and terminating fixed-size Asterisk nodes.
package controller

import (
	"context"
	"time"
)

// Cloud is the narrow part of a compute provider the scaler needs. EC2 and
// the local cloud (node-agent processes on this machine) implement it.
//
// Every instance the scaler starts carries the cluster tag; Instances lists
// exactly those, whatever their state, so that a restarted controller finds
// everything a previous one started.
type Cloud interface {
	// Launch starts up to req.Count instances in one batch. It may start fewer
	// (capacity limits); it returns those it started along with any error.
	// Calls with the same req.Token start instances at most once.
	Launch(ctx context.Context, req LaunchRequest) ([]Instance, error)
	// Terminate stops the instances; ids already gone are not an error.
	Terminate(ctx context.Context, ids []string) error
	// Instances lists the cluster's instances in any state but terminated
	// ones that the provider no longer reports.
	Instances(ctx context.Context) ([]Instance, error)
}

// WarmCloud is a Cloud that can park instances stopped and start them
// again: the warm pool. EC2 and the trace simulator implement it; a cloud
// that does not (the local cloud) gets no pool and the planner launches.
type WarmCloud interface {
	Cloud
	// Stop stops running instances, hibernating them when hibernate is
	// set and the instance allows it (else a plain stop). Ids already
	// stopping or stopped are not an error.
	Stop(ctx context.Context, ids []string, hibernate bool) error
	// Start starts stopped instances. It may fail for capacity as a
	// launch can; ids already pending or running are not an error.
	Start(ctx context.Context, ids []string) error
}

// LaunchRequest asks for Count identical nodes.
type LaunchRequest struct {
	Count int
	// Token makes the launch idempotent: a retry with the same token does not
	// start a second batch (EC2's ClientToken).
	Token string
	// Tags are added to the cluster tag on every instance.
	Tags map[string]string
	// Zone is the availability zone to place them in when it has
	// capacity; "" lets the cloud choose.
	Zone string
	// OnDemand launches on-demand instances from a cloud that launches
	// spot: for calls that may outlast a spot interruption notice, or
	// while spot is short.
	OnDemand bool
}

// ZonedCloud is a Cloud that places launches in zones: the planner
// spreads nodes across them.
type ZonedCloud interface {
	Cloud
	// Zones lists the zones launches may use, in preference order.
	Zones(ctx context.Context) ([]string, error)
}

// Instance states, as EC2 names them.
const (
	InstancePending      = "pending"
	InstanceRunning      = "running"
	InstanceShuttingDown = "shutting-down"
	InstanceTerminated   = "terminated"
	InstanceStopping     = "stopping"
	InstanceStopped      = "stopped"
)

// Instance is one compute instance as the cloud reports it.
type Instance struct {
	ID         string
	State      string // one of the Instance* states
	Type       string // e.g. c6i.large
	Zone       string
	PrivateIP  string
	PublicIP   string
	Spot       bool
	LaunchedAt time.Time
	Tags       map[string]string
}
