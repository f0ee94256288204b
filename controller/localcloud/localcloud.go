// Package localcloud is a Cloud made of node-agent processes on this
// machine, each running the agent's simulated Asterisk, so the whole of
// elastidial runs without AWS. An "instance" is one process: pending until
// the process has started, running while it lives, shutting-down after
// SIGTERM, terminated once it has exited (SIGKILL after a grace period).
//
// Each instance has a folder under Dir, claimed atomically, so an id is
// never used twice in that folder, whichever process launched it. The
// folder records the process (instance.json) once it has started. The
// folder, not a Cloud's memory, is the fleet: Instances, Launch (of a
// token not seen yet) and Terminate (of an id not known yet) first look
// for folders this Cloud does not hold, so a Cloud lists the node
// processes an earlier run left (after a controller crash) and those
// another controller sharing the folder started, as the leader must when
// it takes over. A process found running is adopted (same id, tags and
// state) if it was started for this controller URL and secret; the others
// are terminated, as they could never reach it. A folder claimed but not
// yet recorded (its process is being started) is not listed until it is.
// Controllers sharing one database with the local cloud share one Dir and
// one URL.
//
// Each open Cloud holds a shared lock on Dir/controllers.lock. Close
// terminates the node processes only when it is the last Cloud open on
// the folder (then it terminates every one, started by whichever
// controller); while another is open, the nodes and their calls carry on
// under that one, so restarting one of several controllers cuts no call.
package localcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
	cfg  Config
	wg   sync.WaitGroup
	quit chan struct{} // closed by Close when it leaves the nodes running: watchers stop
	lock *os.File      // holds a shared lock on Dir/controllers.lock until Close

	mu     sync.Mutex
	next   int
	insts  map[string]*proc
	tokens map[string][]string
	bad    map[string]bool // folders with an unreadable record, warned of once
	closed bool
}

type proc struct {
	inst  controller.Instance
	cmd   *exec.Cmd
	pid   int           // an adopted process (cmd nil): not our child
	start uint64        // pid's start time (see procStart); 0 unknown
	done  chan struct{} // closed when the process has exited (or never started)
	kill  *time.Timer
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
	// Start is the process's start time (procStart): with the pid it
	// names the process whatever it execs (a script ending in exec);
	// 0 in records of earlier versions, matched by command line.
	Start uint64 `json:"start,omitempty"`
}

// Names in Dir besides the instance folders.
const (
	lockFile   = "controllers.lock" // shared-locked by every open Cloud
	stopMarker = "terminate"        // in an instance folder: never (re)start its process
)

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
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("local cloud: %w", err)
	}
	// Released when this Cloud closes or its process dies, however.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
		lock.Close()
		return nil, fmt.Errorf("local cloud: lock %s: %w", lockFile, err)
	}
	c := &Cloud{cfg: cfg, quit: make(chan struct{}), lock: lock, insts: map[string]*proc{}, tokens: map[string][]string{}, bad: map[string]bool{}}
	if err := c.scan(); err != nil {
		lock.Close()
		return nil, err
	}
	return c, nil
}

// scan takes in the instance folders of Dir this cloud does not hold yet:
// those an earlier run left and those another controller sharing the
// folder started (see found). Records already held are not read again,
// and the folder is read without c.mu, so Launch and the processes'
// goroutines do not wait on the disk.
func (c *Cloud) scan() error {
	ents, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("local cloud: %w", err)
	}
	var unknown []string
	c.mu.Lock()
	for _, e := range ents {
		n, ok := idNumber(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		c.next = max(c.next, n)
		if c.insts[e.Name()] == nil && !c.bad[e.Name()] {
			unknown = append(unknown, e.Name())
		}
	}
	c.mu.Unlock()
	var recs []record
	var bad []string
	for _, id := range unknown {
		r, err := c.readRecord(id)
		if errors.Is(err, fs.ErrNotExist) {
			// Claimed, not started yet (another controller is starting
			// it: it is listed once recorded) or never (its launcher
			// died first): not listed, and left alone.
			continue
		}
		if err != nil || r.ID != id {
			c.cfg.Logger.Warn("local cloud: unreadable instance record", "instance", id, "err", err)
			bad = append(bad, id)
			continue
		}
		recs = append(recs, r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range bad {
		c.bad[id] = true
	}
	for _, r := range recs {
		if c.insts[r.ID] == nil { // not launched or found meanwhile
			c.found(r)
		}
	}
	return nil
}

// found lists the instance of a record in Dir: a running process of this
// controller is adopted, a running one of another is terminated (it could
// never reach this controller), an ended one is listed as terminated. The
// caller holds c.mu.
func (c *Cloud) found(r record) {
	p := &proc{inst: controller.Instance{ID: r.ID, State: controller.InstanceTerminated, Type: "local", Zone: "local",
		PrivateIP: "127.0.0.1", LaunchedAt: r.LaunchedAt, Tags: r.Tags}, pid: r.PID, start: r.Start, done: make(chan struct{})}
	c.insts[r.ID] = p
	if r.Token != "" {
		c.tokens[r.Token] = append(c.tokens[r.Token], r.ID)
		sort.Strings(c.tokens[r.Token])
	}
	if !running(r.PID, r.Start, r.ID) {
		close(p.done)
		return
	}
	p.inst.State = controller.InstanceRunning
	c.wg.Add(1)
	go c.watch(p)
	if r.ControllerURL == c.cfg.ControllerURL && r.SecretHash == secretHash(c.cfg.Secret) {
		c.cfg.Logger.Info("local cloud: adopted a node process another run or controller started", "instance", r.ID, "pid", r.PID)
		return
	}
	c.cfg.Logger.Warn("local cloud: terminating node process started for another controller", "instance", r.ID, "pid", r.PID, "controller", r.ControllerURL)
	c.stop(p)
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

// running reports whether pid is alive (not a zombie) and is the agent
// of instance id, not an unrelated process that reused the pid: the one
// that started at start, or, when start is unknown (0), one whose
// command line names id.
func running(pid int, start uint64, id string) bool {
	if pid <= 0 {
		return false
	}
	st, ok := procStart(pid)
	if !ok {
		return false
	}
	if start != 0 {
		return st == start
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("\x00-instance-id\x00"+id+"\x00"))
}

// procStart is when process pid started, in clock ticks since boot
// (field 22 of /proc/pid/stat); false when there is no such process or it
// has exited (a zombie not yet reaped by its parent).
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:])) // from field 3, the state
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// watch waits for an adopted process (not our child) to end, or for
// Close to leave it running. A leader may watch a whole fleet, and
// reading /proc costs tens of µs here: a bare signal 0 every 100 ms
// sees an exit, the full check every second a reaped pid reused (or a
// zombie whose parent is slow to reap it).
func (c *Cloud) watch(p *proc) {
	defer c.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		c.mu.Lock()
		pid, start, id := p.pid, p.start, p.inst.ID
		c.mu.Unlock()
		if syscall.Kill(pid, 0) != nil || i%10 == 0 && !running(pid, start, id) {
			// Its launcher may have started the agent again (with a real
			// Asterisk the instance is the machine): follow the new one.
			r, err := c.readRecord(id)
			if err != nil || r.PID == pid || !running(r.PID, r.Start, id) {
				break
			}
			c.mu.Lock()
			p.pid, p.start = r.PID, r.Start
			c.mu.Unlock()
			continue
		}
		select {
		case <-c.quit:
			return // left running for the controllers still open
		case <-t.C:
		}
	}
	c.ended(p, nil)
	close(p.done)
}

// readRecord reads instance id's instance.json.
func (c *Cloud) readRecord(id string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(c.cfg.Dir, id, "instance.json"))
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	return r, err
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
	_, seen := c.tokens[req.Token]
	c.mu.Unlock()
	if !seen && req.Token != "" {
		// A new leader retrying its predecessor's launch: that one may
		// have started it, in the shared folder.
		if err := c.scan(); err != nil {
			return nil, fmt.Errorf("local launch: %w", err)
		}
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
		byOther := stopped(dir)
		c.mu.Lock()
		if byOther && p.inst.State == want {
			p.inst.State = controller.InstanceShuttingDown // by another controller sharing the folder
		}
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
		start, _ := procStart(cmd.Process.Pid)
		c.writeRecord(p, start, dir)
		err = cmd.Wait()
		byOther = stopped(dir)
		c.mu.Lock()
		if byOther && p.inst.State == controller.InstanceRunning {
			// Terminated by another controller sharing the folder.
			p.inst.State = controller.InstanceShuttingDown
		}
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

// writeRecord keeps what a later run, or another controller sharing the
// folder, needs to adopt or reap p, whose process started at start.
func (c *Cloud) writeRecord(p *proc, start uint64, dir string) {
	c.mu.Lock()
	p.start = start
	r := record{ID: p.inst.ID, PID: p.pid, Start: p.start, ControllerURL: c.cfg.ControllerURL, SecretHash: secretHash(c.cfg.Secret),
		Token: p.inst.Tags[controller.TagLaunchToken], Tags: p.inst.Tags, LaunchedAt: p.inst.LaunchedAt}
	c.mu.Unlock()
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

// Terminate sends SIGTERM to each process and SIGKILL after the grace,
// whichever controller sharing the folder started it. Unknown or ended
// ids are not an error.
func (c *Cloud) Terminate(ctx context.Context, ids []string) error {
	c.mu.Lock()
	known := true
	for _, id := range ids {
		known = known && c.insts[id] != nil
	}
	c.mu.Unlock()
	if !known {
		if err := c.scan(); err != nil {
			return fmt.Errorf("local terminate: %w", err)
		}
	}
	var mark []string
	c.mu.Lock()
	for _, id := range ids {
		p := c.insts[id]
		if p != nil {
			c.stop(p)
		}
		// Started by another controller, or about to be: the marker
		// keeps its launcher from starting it (or, with a real Asterisk,
		// from starting its agent again) and tells it who ended it.
		if _, ok := idNumber(id); ok && (p == nil || p.cmd == nil && p.inst.State != controller.InstanceTerminated) {
			mark = append(mark, id)
		}
	}
	c.mu.Unlock()
	for _, id := range mark {
		if f, err := os.OpenFile(filepath.Join(c.cfg.Dir, id, stopMarker), os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	return nil
}

// stopped reports whether a Terminate marked the instance folder dir.
func stopped(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, stopMarker))
	return err == nil
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
		pid, start, id := p.pid, p.start, p.inst.ID
		_ = syscall.Kill(pid, syscall.SIGTERM)
		p.kill = time.AfterFunc(c.cfg.Grace, func() {
			if running(pid, start, id) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
}

// Instances lists every instance in the folder, whichever controller
// started it, terminated ones too. It fails rather than list only some:
// the scaler takes a node missing from the list for gone.
func (c *Cloud) Instances(ctx context.Context) ([]controller.Instance, error) {
	if err := c.scan(); err != nil {
		return nil, err
	}
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

// Close ends this cloud. When no other Cloud (in this process or
// another) has the folder open, it terminates every node process in the
// folder, whichever controller started it, and waits for them, or for
// ctx. While another is open, it leaves them running for that one to
// list and terminate: one controller of several stopping (a deploy, a
// restart) cuts no call. Launches not started yet never start. Closing
// again does nothing.
func (c *Cloud) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.lock.Close() // releases our shared lock
	if !c.alone() {
		c.mu.Lock()
		for _, p := range c.insts {
			if p.inst.State == controller.InstancePending {
				c.stop(p)
			}
		}
		c.mu.Unlock()
		close(c.quit)
		c.cfg.Logger.Info("local cloud: another controller has the folder open; node processes left running for it")
		return nil
	}
	if err := c.scan(); err != nil {
		c.cfg.Logger.Warn("local cloud: closing without the folder's node processes this cloud did not list", "err", err)
	}
	c.mu.Lock()
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
			} else if p.cmd == nil && running(p.pid, p.start, p.inst.ID) {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		c.mu.Unlock()
		<-done
		return fmt.Errorf("close local cloud: %w", ctx.Err())
	}
}

// alone reports whether no other open Cloud holds the folder's lock; the
// caller has released its own. Of several closing at once, at least one
// finds itself alone, as each releases its lock before it looks.
func (c *Cloud) alone() bool {
	f, err := os.OpenFile(filepath.Join(c.cfg.Dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return true // the folder is unusable: end what we can
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
