package asterisksim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastidial/elastidial/agent/ami"
)

// Sim is one simulated Asterisk.
type Sim struct {
	Username, Secret string
	Model            Model
	// AGI is the dialplan's AGI target with ${ELASTIDIAL_CALL_ID} expanded,
	// as in CONVENTIONS.md: agi://127.0.0.1:4573/ivr?call_id=${ELASTIDIAL_CALL_ID}.
	AGI string
	// Sounds is Asterisk's sounds folder (STREAM FILE names are relative to
	// it); "" means every file exists.
	Sounds string
	// Campaign, when set, is where "elastidial/..." names resolve instead
	// of Sounds/elastidial (the agent's -sounds folder).
	Campaign string
	// NoTiming makes "module show like timing" list no timing module.
	NoTiming bool
	// Apps are the dialplan applications loaded, case-insensitive; EXEC of
	// any other answers -2, as pbx_findapp fails. nil means DefaultApps,
	// which lacks AMD: app_amd declines to load without amd.conf.
	Apps []string
	// OtherUser makes file access follow Asterisk running as its own user
	// (runuser), not the agent's: a prompt must be readable by others and a
	// recording folder writable by others, or STREAM FILE answers
	// "result=-1 endpos=0" and RECORD FILE "result=-1 (writefile)".
	OtherUser bool
	// NoPJSIP leaves PJSIP out of "core show channeltypes", as when
	// chan_pjsip declined to load.
	NoPJSIP bool
	// TrunkDown makes "pjsip show registrations" list the trunk as Rejected.
	TrunkDown bool
	Log       *slog.Logger

	mu       sync.Mutex
	sessions map[*amiSession]struct{}
	calls    map[string]*call // by uniqueid
	attempts map[string]int   // by number
	seq      atomic.Int64
	wg       sync.WaitGroup
	ln       net.Listener
	ctx      context.Context

	originates atomic.Int64
	amiStopped atomic.Bool
	loseReply  atomic.Bool
}

// LoseNextOriginateReply makes the next Originate place its call and then
// drop the AMI session instead of replying, as when the network fails
// between Asterisk accepting the action and its reply arriving.
func (s *Sim) LoseNextOriginateReply() { s.loseReply.Store(true) }

// StopAMI closes the manager listener and every session, as when Asterisk
// is down; Run then waits for its context. Calls in progress keep running.
func (s *Sim) StopAMI() {
	s.amiStopped.Store(true)
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.DropAMI()
}

// Stats are counters for tests.
type Stats struct {
	Originates int64
	Active     int
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Originates: s.originates.Load(), Active: len(s.calls)}
}

// Listen binds the AMI listener (e.g. "127.0.0.1:0") and returns its address.
func (s *Sim) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sim ami listen: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln.Addr().String(), nil
}

// Run serves AMI until ctx ends, then waits for its calls to finish.
func (s *Sim) Run(ctx context.Context) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.Model.defaults()
	s.mu.Lock()
	s.ctx = ctx
	if s.sessions == nil {
		s.sessions = map[*amiSession]struct{}{}
		s.calls = map[string]*call{}
		s.attempts = map[string]int{}
	}
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("sim: Listen first")
	}
	defer s.wg.Wait()
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.DropAMI()
	})
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.amiStopped.Load() {
				<-ctx.Done()
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim ami accept: %w", err)
		}
		sess := &amiSession{sim: s, conn: conn}
		s.mu.Lock()
		s.sessions[sess] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sess.serve()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
	}
}

// DropAMI closes every AMI session, as when Asterisk restarts its manager
// or the network drops; calls keep running.
func (s *Sim) DropAMI() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		sess.conn.Close()
	}
}

// amiSession is one manager connection.
type amiSession struct {
	sim     *Sim
	conn    net.Conn
	wmu     sync.Mutex
	authed  bool
	classes map[string]bool // nil = all, empty = none
}

// write sends one message with Asterisk's 100 ms write timeout: a client
// that does not read loses its session.
func (a *amiSession) write(m ami.Message) {
	b, err := ami.Encode(m)
	if err != nil {
		a.sim.Log.Error("sim encode", "err", err)
		return
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := a.conn.Write(b); err != nil {
		a.conn.Close()
	}
}

func (a *amiSession) wants(class string) bool {
	if !a.authed {
		return false
	}
	if a.classes == nil {
		return true
	}
	return a.classes[class]
}

func (a *amiSession) serve() {
	defer a.conn.Close()
	a.wmu.Lock()
	a.conn.Write([]byte("Asterisk Call Manager/11.0.0\r\n"))
	a.wmu.Unlock()
	r := bufio.NewReader(a.conn)
	for {
		m, err := ami.Read(r)
		if err != nil {
			return
		}
		if !a.handle(m) {
			return
		}
	}
}

func reply(id string, fields ...string) ami.Message {
	var m ami.Message
	for i := 0; i+1 < len(fields); i += 2 {
		m = m.Add(fields[i], fields[i+1])
		if i == 0 && id != "" {
			m = m.Add("ActionID", id)
		}
	}
	return m
}

func (a *amiSession) handle(m ami.Message) bool {
	id := m.Get("ActionID")
	action := strings.ToLower(m.Get("Action"))
	if action == "" {
		a.write(reply(id, "Response", "Error", "Message", "Missing action in request"))
		return true
	}
	if !a.authed && action != "login" && action != "challenge" {
		a.write(reply(id, "Response", "Error", "Message", "Permission denied"))
		return true
	}
	s := a.sim
	switch action {
	case "login":
		if m.Get("Username") != s.Username || m.Get("Secret") != s.Secret {
			a.write(reply(id, "Response", "Error", "Message", "Authentication failed"))
			return false
		}
		a.classes = parseEvents(m.Get("Events"))
		a.authed = true
		a.write(reply(id, "Response", "Success", "Message", "Authentication accepted"))
		if a.wants("system") {
			a.write(ami.M("Event", "FullyBooted", "Privilege", "system,all", "Uptime", "1", "LastReload", "1", "Status", "Fully Booted"))
		}
	case "ping":
		a.write(reply(id, "Response", "Success", "Ping", "Pong", "Timestamp", fmt.Sprintf("%d.000000", time.Now().Unix())))
	case "logoff":
		a.write(reply(id, "Response", "Goodbye", "Message", "Thanks for all the fish."))
		return false
	case "events":
		a.classes = parseEvents(m.Get("EventMask"))
		a.write(reply(id, "Response", "Success", "Events", m.Get("EventMask")))
	case "command":
		a.command(id, m.Get("Command"))
	case "coreshowchannels":
		a.showChannels(id)
	case "originate":
		s.originate(a, id, m)
	default:
		a.write(reply(id, "Response", "Error", "Message", "Invalid/unknown command"))
	}
	return true
}

func parseEvents(v string) map[string]bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "on", "yes", "true":
		return nil
	case "off", "no", "false":
		return map[string]bool{}
	}
	c := map[string]bool{}
	for _, k := range strings.Split(v, ",") {
		c[strings.ToLower(strings.TrimSpace(k))] = true
	}
	return c
}

func (a *amiSession) command(id, cmd string) {
	var out []string
	switch strings.TrimSpace(cmd) {
	case "module show like timing":
		out = append(out, "Module                         Description                              Use Count  Status      Support Level")
		if a.sim.NoTiming {
			out = append(out, "0 modules loaded")
		} else {
			out = append(out, "res_timing_timerfd.so          Timerfd Timing Interface                 1          Running              core", "1 modules loaded")
		}
	case "core show channeltypes":
		out = append(out, "Type             Description                              Devicestate   Presencestate Indications   Transfer",
			"-------------    -------------                            ------------- ------------- ------------- -------------")
		n := 0
		if !a.sim.NoPJSIP {
			out = append(out, "PJSIP            PJSIP Channel Driver                     yes           yes           yes           yes")
			n++
		}
		out = append(out, "----------", fmt.Sprintf("%d channel drivers registered.", n))
	case "pjsip show registrations":
		status := "Registered        (exp. 3585s)"
		if a.sim.TrunkDown {
			status = "Rejected"
		}
		out = append(out, "",
			" <Registration/ServerURI..............................>  <Auth....................>  <Status.......>",
			"==========================================================================================", "",
			" carrier-registration/sip:carrier.example:5060            carrier-auth                 "+status, "",
			"Objects found: 1")
	case "core show version":
		out = append(out, "Asterisk 22.0.0 (elastidial simulator)")
	default:
		out = append(out, fmt.Sprintf("No such command '%s' (type 'core show help %s' for other possible commands)", cmd, cmd))
	}
	m := reply(id, "Response", "Success", "Message", "Command output follows")
	for _, l := range out {
		m = m.Add("Output", l)
	}
	a.write(m)
}

func (a *amiSession) showChannels(id string) {
	s := a.sim
	a.write(reply(id, "Response", "Success", "EventList", "start", "Message", "Channels will follow"))
	s.mu.Lock()
	var list []*call
	for _, c := range s.calls {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		state, desc := c.state()
		a.write(ami.M("Event", "CoreShowChannel", "ActionID", id, "Channel", c.channel, "ChannelState", strconv.Itoa(state), "ChannelStateDesc", desc, "CallerIDNum", c.callerID, "Context", "elastidial-outbound", "Exten", "s", "Priority", "1", "Uniqueid", c.uniqueid, "Linkedid", c.uniqueid, "Application", c.app(), "Duration", c.duration()))
	}
	a.write(ami.M("Event", "CoreShowChannelsComplete", "ActionID", id, "EventList", "Complete", "ListItems", strconv.Itoa(len(list))))
}

// broadcast sends an event to every session that asked for its class.
func (s *Sim) broadcast(class string, m ami.Message) {
	m = append(ami.M("Event", m[0].Value, "Privilege", class+",all"), m[1:]...)
	s.mu.Lock()
	var to []*amiSession
	for sess := range s.sessions {
		if sess.wants(class) {
			to = append(to, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range to {
		sess.write(m)
	}
}

// soundExists checks the sounds folder as Asterisk's file layer does:
// any format of the name.
func (s *Sim) soundExists(name string) bool {
	if strings.Contains(name, "..") {
		return false
	}
	base, root := filepath.Join(s.Sounds, name), s.Sounds
	if rest, ok := strings.CutPrefix(name, "elastidial/"); ok && s.Campaign != "" {
		base, root = filepath.Join(s.Campaign, rest), s.Campaign
	} else if s.Sounds == "" {
		return true
	}
	matches, _ := filepath.Glob(base + ".*")
	for _, m := range matches {
		st, err := os.Stat(m)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if s.OtherUser && !otherCanRead(root, m, st) {
			continue
		}
		return true
	}
	return false
}

// DefaultApps are the applications a node's Asterisk loads without
// amd.conf: app_dial, app_playback, app_waitforsilence and the built-ins.
var DefaultApps = []string{"Dial", "Playback", "WaitForSilence", "Wait", "NoOp", "Set", "Answer", "Hangup"}

// loaded reports whether app (lower case) is a loaded application.
func (s *Sim) loaded(app string) bool {
	apps := s.Apps
	if apps == nil {
		apps = DefaultApps
	}
	for _, a := range apps {
		if strings.EqualFold(a, app) {
			return true
		}
	}
	return false
}

// recordPath is where RECORD FILE name writes format, as ast_writefile
// builds it: relative names under the sounds folder. ok is false when the
// file cannot be created (no folder, or not writable by Asterisk's user);
// path is "" when no Sounds folder is set and every write succeeds.
func (s *Sim) recordPath(name, format string) (path string, ok bool) {
	if strings.Contains(name, "..") {
		return "", false
	}
	if s.Sounds == "" && !filepath.IsAbs(name) {
		return "", true
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Sounds, name)
	}
	st, err := os.Stat(filepath.Dir(p))
	if err != nil || !st.IsDir() {
		return "", false
	}
	if s.OtherUser && st.Mode().Perm()&0o003 != 0o003 {
		return "", false
	}
	return p + "." + format, true
}

// otherCanRead reports whether a user other than the file's owner (and not
// in its group) may read the file at p: read on it, search on every folder
// from root (the sounds folder, assumed reachable) down to it.
func otherCanRead(root, p string, st os.FileInfo) bool {
	if st.Mode().Perm()&0o004 == 0 {
		return false
	}
	root = filepath.Clean(root)
	for d := filepath.Dir(p); len(d) > len(root) && strings.HasPrefix(d, root); d = filepath.Dir(d) {
		if ds, err := os.Stat(d); err != nil || ds.Mode().Perm()&0o001 == 0 {
			return false
		}
	}
	return true
}
