// Package localcloud is a Cloud made of node-agent processes on this
// machine, each running the agent's simulated Asterisk, so the whole of
// elastidial runs without AWS. An "instance" is one process: pending until
// the process has started, running while it lives, shutting-down after
// SIGTERM, terminated once it has exited (SIGKILL after a grace period).
package localcloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/elastidial/elastidial/controller"
)

// Config configures the local cloud. Zero fields take the default beside them.
type Config struct {
	Binary        string   // node-agent executable; required
	ControllerURL string   // -controller; required
	Secret        string   // the cluster secret, passed in ELASTIDIAL_CLUSTER_SECRET; required
	Cluster       string   // value of the elastidial:cluster tag; "local"
	Capacity      int      // -capacity; 100
	Dir           string   // per-instance folders (log, state, sounds); required
	ExtraArgs     []string // appended to every command line (e.g. -sim-seed 7)
	Env           []string // added to the agent's environment
	// Asterisk, when set, makes the nodes drive this real Asterisk instead
	// of each running a simulated one. One Asterisk is one node: at most one
	// instance then runs at a time.
	Asterisk     *Asterisk
	Grace        time.Duration // SIGTERM to SIGKILL; 10s
	MaxInstances int           // refuses launches beyond this many live processes; 64
	Logger       *slog.Logger  // slog.Default()
}

// Asterisk is a real Asterisk on this machine, configured as a node
// (ami-images/asterisk rendered by render-asterisk-conf.sh).
type Asterisk struct {
	AMIAddr, AMIUser, AMISecret string
	AGIAddr                     string // where its dialplan sends FastAGI (ELASTIDIAL_AGI_ADDR)
	Sounds                      string // the folder it reads as sounds/elastidial
}

// Cloud runs node agents as local processes.
type Cloud struct {
	cfg Config
	wg  sync.WaitGroup

	mu     sync.Mutex
	next   int
	insts  map[string]*proc
	tokens map[string][]string
	closed bool
}

type proc struct {
	inst controller.Instance
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited (or never started)
	kill *time.Timer
}

var _ controller.Cloud = (*Cloud)(nil)

// Errors of the local cloud.
var (
	ErrClosed   = errors.New("local cloud closed")
	ErrCapacity = errors.New("local cloud: instance limit reached")
)

// New checks cfg and creates the instance folder.
func New(cfg Config) (*Cloud, error) {
	switch {
	case cfg.Binary == "":
		return nil, errors.New("local cloud: Binary (node-agent path) is required")
	case cfg.ControllerURL == "":
		return nil, errors.New("local cloud: ControllerURL is required")
	case cfg.Secret == "":
		return nil, errors.New("local cloud: Secret is required")
	case cfg.Dir == "":
		return nil, errors.New("local cloud: Dir is required")
	case cfg.Capacity < 0:
		return nil, fmt.Errorf("local cloud: Capacity %d is negative", cfg.Capacity)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "local"
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 100
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 64
	}
	if cfg.Asterisk != nil {
		cfg.MaxInstances = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("local cloud: %w", err)
	}
	return &Cloud{cfg: cfg, insts: map[string]*proc{}, tokens: map[string][]string{}}, nil
}

// Launch starts req.Count agents. A token seen before returns that launch's
// instances and starts nothing.
func (c *Cloud) Launch(ctx context.Context, req controller.LaunchRequest) ([]controller.Instance, error) {
	if req.Count <= 0 {
		return nil, fmt.Errorf("local launch: count %d", req.Count)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if ids, ok := c.tokens[req.Token]; ok && req.Token != "" {
		return c.list(ids), nil
	}
	live := 0
	for _, p := range c.insts {
		if p.inst.State != controller.InstanceTerminated {
			live++
		}
	}
	var ids []string
	var err error
	for i := 0; i < req.Count; i++ {
		if live >= c.cfg.MaxInstances {
			err = fmt.Errorf("local launch: %d of %d started: %w", i, req.Count, ErrCapacity)
			break
		}
		c.next++
		id := fmt.Sprintf("local-%04d", c.next)
		tags := map[string]string{controller.TagCluster: c.cfg.Cluster, controller.TagRole: "node", "Name": "elastidial-node"}
		for k, v := range req.Tags {
			tags[k] = v
		}
		p := &proc{inst: controller.Instance{ID: id, State: controller.InstancePending, Type: "local", Zone: "local",
			PrivateIP: "127.0.0.1", LaunchedAt: time.Now(), Tags: tags}, done: make(chan struct{})}
		c.insts[id] = p
		ids = append(ids, id)
		live++
		c.wg.Add(1)
		go c.run(p)
	}
	if req.Token != "" && len(ids) > 0 {
		c.tokens[req.Token] = ids
	}
	return c.list(ids), err
}

// run starts p's process, waits for it and records its end.
func (c *Cloud) run(p *proc) {
	defer c.wg.Done()
	defer close(p.done)
	id := p.inst.ID
	dir := filepath.Join(c.cfg.Dir, id)
	log, err := c.prepare(dir)
	if err != nil {
		c.ended(p, err)
		return
	}
	defer log.Close()
	args := []string{"-controller", c.cfg.ControllerURL, "-instance-id", id,
		"-capacity", strconv.Itoa(c.cfg.Capacity), "-imds", "off", "-state", filepath.Join(dir, "state")}
	// Secrets go in the environment, never on the command line.
	env := append(os.Environ(), append(c.cfg.Env, "ELASTIDIAL_CLUSTER_SECRET="+c.cfg.Secret)...)
	if a := c.cfg.Asterisk; a != nil {
		args = append(args, "-ami", a.AMIAddr, "-ami-user", a.AMIUser, "-agi-listen", a.AGIAddr, "-sounds", a.Sounds)
		env = append(env, "ELASTIDIAL_AMI_SECRET="+a.AMISecret)
	} else {
		args = append(args, "-simulate", "-ami", "127.0.0.1:0", "-agi-listen", "127.0.0.1:0",
			"-sounds", filepath.Join(dir, "sounds"))
	}
	args = append(args, c.cfg.ExtraArgs...)
	for restarts := 0; ; restarts++ {
		cmd := exec.Command(c.cfg.Binary, args...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = env
		c.mu.Lock()
		if p.inst.State != controller.InstancePending && (restarts == 0 || p.inst.State != controller.InstanceRunning) {
			// Terminated before it (re)started.
			c.mu.Unlock()
			c.ended(p, nil)
			return
		}
		if err := cmd.Start(); err != nil {
			c.mu.Unlock()
			c.ended(p, err)
			return
		}
		p.cmd = cmd
		p.inst.State = controller.InstanceRunning
		c.mu.Unlock()
		err = cmd.Wait()
		c.mu.Lock()
		again := c.cfg.Asterisk != nil && p.inst.State == controller.InstanceRunning && !c.closed
		c.mu.Unlock()
		if !again {
			c.ended(p, err)
			return
		}
		// With a real Asterisk the instance is the machine, not the agent:
		// like systemd's Restart=always on a node, start the agent again.
		// Its calls still ring in Asterisk; the new agent settles them.
		c.cfg.Logger.Warn("local node agent died: restarting it", "instance", id, "err", err)
		time.Sleep(time.Second)
	}
}

func (c *Cloud) prepare(dir string) (*os.File, error) {
	for _, d := range []string{dir, filepath.Join(dir, "state"), filepath.Join(dir, "sounds")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local instance folder: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("local instance log: %w", err)
	}
	return f, nil
}

func (c *Cloud) ended(p *proc, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.kill != nil {
		p.kill.Stop()
	}
	if p.inst.State != controller.InstanceShuttingDown && p.inst.State != controller.InstanceTerminated {
		c.cfg.Logger.Warn("local instance ended by itself", "instance", p.inst.ID, "err", err)
	}
	p.inst.State = controller.InstanceTerminated
}

// Terminate sends SIGTERM to each process and SIGKILL after the grace.
// Unknown or ended ids are not an error.
func (c *Cloud) Terminate(ctx context.Context, ids []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		p := c.insts[id]
		if p == nil {
			continue
		}
		c.stop(p)
	}
	return nil
}

// stop signals p; the caller holds c.mu.
func (c *Cloud) stop(p *proc) {
	switch p.inst.State {
	case controller.InstancePending:
		p.inst.State = controller.InstanceShuttingDown // run sees it and does not start
	case controller.InstanceRunning:
		p.inst.State = controller.InstanceShuttingDown
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		proc := p.cmd.Process
		p.kill = time.AfterFunc(c.cfg.Grace, func() { _ = proc.Kill() })
	}
}

// Instances lists every instance this cloud started, terminated ones too.
func (c *Cloud) Instances(ctx context.Context) ([]controller.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.insts))
	for id := range c.insts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return c.list(ids), nil
}

func (c *Cloud) list(ids []string) []controller.Instance {
	out := make([]controller.Instance, 0, len(ids))
	for _, id := range ids {
		in := c.insts[id].inst
		tags := make(map[string]string, len(in.Tags))
		for k, v := range in.Tags {
			tags[k] = v
		}
		in.Tags = tags
		out = append(out, in)
	}
	return out
}

// LogPath is where instance id's agent writes its output.
func (c *Cloud) LogPath(id string) string { return filepath.Join(c.cfg.Dir, id, "agent.log") }

// Close terminates every process and waits for them, or for ctx.
func (c *Cloud) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	for _, p := range c.insts {
		c.stop(p)
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		for _, p := range c.insts {
			if p.cmd != nil && p.cmd.Process != nil {
				_ = p.cmd.Process.Kill()
			}
		}
		c.mu.Unlock()
		<-done
		return fmt.Errorf("close local cloud: %w", ctx.Err())
	}
}
