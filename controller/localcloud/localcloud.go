// Package localcloud is a Cloud made of node-agent processes on this
// machine, each running the agent's simulated Asterisk, so the whole of
// elastidial runs without AWS. An "instance" is one process: pending until
// the process has started, running while it lives, shutting-down after
// SIGTERM, terminated once it has exited (SIGKILL after a grace period).
//
// Each instance has a folder under Dir, claimed atomically, so an id is
// never used twice in that folder, whichever process launched it. The
// folder records the process (instance.json); a cloud opened on a folder
// after a controller crash lists the node processes still running there
// again (adopted: same id, tags and state) if they were started for this
// controller URL and secret, and terminates the others, which could never
// reach it. Controllers sharing one database with the local cloud share
// one Dir.
package localcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
	Recordings                  string // a folder it may write recordings into
	TrunksConf                  string // the file its pjsip.conf includes for the controller's trunks; "" none
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
	pid  int           // an adopted process (cmd nil): not our child
	done chan struct{} // closed when the process has exited (or never started)
	kill *time.Timer
}

// record is what instance.json keeps of a started process.
type record struct {
	ID            string            `json:"id"`
	PID           int               `json:"pid"`
	ControllerURL string            `json:"controller_url"`
	SecretHash    string            `json:"secret_hash"`
	Token         string            `json:"launch_token"`
	Tags          map[string]string `json:"tags"`
	LaunchedAt    time.Time         `json:"launched_at"`
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
	c := &Cloud{cfg: cfg, insts: map[string]*proc{}, tokens: map[string][]string{}}
	if err := c.recover(); err != nil {
		return nil, err
	}
	return c, nil
}

// recover lists the instances a previous process left in Dir: running
// ones of this controller are adopted, running ones of another are
// terminated, ended ones are listed as terminated.
func (c *Cloud) recover() error {
	ents, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("local cloud: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range ents {
		n, ok := idNumber(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		c.next = max(c.next, n)
		b, err := os.ReadFile(filepath.Join(c.cfg.Dir, e.Name(), "instance.json"))
		if err != nil {
			continue // claimed, never started
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.ID != e.Name() {
			c.cfg.Logger.Warn("local cloud: unreadable instance record", "instance", e.Name(), "err", err)
			continue
		}
		p := &proc{inst: controller.Instance{ID: r.ID, State: controller.InstanceTerminated, Type: "local", Zone: "local",
			PrivateIP: "127.0.0.1", LaunchedAt: r.LaunchedAt, Tags: r.Tags}, pid: r.PID, done: make(chan struct{})}
		c.insts[r.ID] = p
		if r.Token != "" {
			c.tokens[r.Token] = append(c.tokens[r.Token], r.ID)
		}
		if !running(r.PID, r.ID) {
			close(p.done)
			continue
		}
		p.inst.State = controller.InstanceRunning
		c.wg.Add(1)
		go c.watch(p)
		if r.ControllerURL == c.cfg.ControllerURL && r.SecretHash == secretHash(c.cfg.Secret) {
			c.cfg.Logger.Info("local cloud: adopted node process of an earlier run", "instance", r.ID, "pid", r.PID)
			continue
		}
		c.cfg.Logger.Warn("local cloud: terminating node process started for another controller", "instance", r.ID, "pid", r.PID, "controller", r.ControllerURL)
		c.stop(p)
	}
	for _, ids := range c.tokens {
		sort.Strings(ids)
	}
	return nil
}

// idNumber parses "local-0042".
func idNumber(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "local-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// running reports whether pid is alive and is the agent of instance id
// (not an unrelated process that reused the pid).
func running(pid int, id string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("\x00-instance-id\x00"+id+"\x00"))
}

// watch waits for an adopted process (not our child) to end.
func (c *Cloud) watch(p *proc) {
	defer c.wg.Done()
	defer close(p.done)
	for running(p.pid, p.inst.ID) {
		time.Sleep(100 * time.Millisecond)
	}
	c.ended(p, nil)
}

func secretHash(s string) string {
	return strconv.FormatUint(fnv64(s), 16)
}

// fnv64 is FNV-1a; the record names the secret without holding it.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// claim reserves the next free instance id by creating its folder; the
// caller holds c.mu.
func (c *Cloud) claim() (string, error) {
	for {
		c.next++
		id := fmt.Sprintf("local-%04d", c.next)
		err := os.Mkdir(filepath.Join(c.cfg.Dir, id), 0o755)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("local launch: %w", err)
		}
	}
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
		id, cerr := c.claim()
		if cerr != nil {
			err = cerr
			break
		}
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
		args = append(args, "-ami", a.AMIAddr, "-ami-user", a.AMIUser, "-agi-listen", a.AGIAddr, "-sounds", a.Sounds,
			"-recordings", a.Recordings, "-pjsip-trunks", a.TrunksConf)
		env = append(env, "ELASTIDIAL_AMI_SECRET="+a.AMISecret)
	} else {
		args = append(args, "-simulate", "-ami", "127.0.0.1:0", "-agi-listen", "127.0.0.1:0",
			"-sounds", filepath.Join(dir, "sounds"), "-recordings", filepath.Join(dir, "recordings"), "-pjsip-trunks", "")
	}
	args = append(args, c.cfg.ExtraArgs...)
	for restarts := 0; ; restarts++ {
		cmd := exec.Command(c.cfg.Binary, args...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = env
		want := controller.InstancePending // a first start; a restart finds it running
		if restarts > 0 {
			want = controller.InstanceRunning
		}
		c.mu.Lock()
		if p.inst.State != want {
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
		p.cmd, p.pid = cmd, cmd.Process.Pid
		p.inst.State = controller.InstanceRunning
		c.mu.Unlock()
		c.writeRecord(p, dir)
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

// writeRecord keeps what a later run needs to adopt or reap p.
func (c *Cloud) writeRecord(p *proc, dir string) {
	r := record{ID: p.inst.ID, PID: p.pid, ControllerURL: c.cfg.ControllerURL, SecretHash: secretHash(c.cfg.Secret),
		Token: p.inst.Tags[controller.TagLaunchToken], Tags: p.inst.Tags, LaunchedAt: p.inst.LaunchedAt}
	b, _ := json.Marshal(r)
	tmp := filepath.Join(dir, "instance.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "instance.json"))
		if err == nil {
			return
		}
	}
	c.cfg.Logger.Warn("local cloud: instance record not written; a restart will not adopt it", "instance", p.inst.ID)
}

func (c *Cloud) prepare(dir string) (*os.File, error) {
	for _, d := range []string{dir, filepath.Join(dir, "state"), filepath.Join(dir, "sounds"), filepath.Join(dir, "recordings")} {
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
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			proc := p.cmd.Process
			p.kill = time.AfterFunc(c.cfg.Grace, func() { _ = proc.Kill() })
			return
		}
		pid, id := p.pid, p.inst.ID
		_ = syscall.Kill(pid, syscall.SIGTERM)
		p.kill = time.AfterFunc(c.cfg.Grace, func() {
			if running(pid, id) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
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
			} else if p.cmd == nil && running(p.pid, p.inst.ID) {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		c.mu.Unlock()
		<-done
		return fmt.Errorf("close local cloud: %w", ctx.Err())
	}
}
