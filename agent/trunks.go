package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/elastidial/elastidial/agent/ami"
	"github.com/elastidial/elastidial/nodeapi"
)

// TrunksConf is where the agent writes the controller's carrier trunks by
// default: a file of its own that pjsip.conf includes (#tryinclude), in a
// folder the agent may write and Asterisk's group may read.
const TrunksConf = "/etc/asterisk/elastidial/pjsip_trunks.conf"

// trunkConfigurer is the controller's node.trunks (optional: without it
// the node keeps the trunk it was given at first boot).
type trunkConfigurer interface {
	Trunks(ctx context.Context, req nodeapi.TrunksRequest) (nodeapi.TrunksResponse, error)
}

// Every value written into pjsip.conf is checked again here, whatever the
// controller sent: none may start a line, a section or a comment.
var (
	confNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	confHostRE = regexp.MustCompile(`^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)
	confUserRE = regexp.MustCompile(`^[A-Za-z0-9_.+!~*'()&=$-]{0,64}$`)
	confPassRE = regexp.MustCompile(`^[\x21-\x3a\x3c-\x7e]{0,128}$`)
)

// renderTrunks writes the PJSIP objects of each trunk: an endpoint on the
// image's trunk-endpoint template, its outbound auth, an aor qualified
// every 30 s (the health the agent reports), an identify matching the
// carrier's host, and a registration when the trunk registers.
func renderTrunks(version string, ts []nodeapi.TrunkConfig) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "; Written by node-agent from the controller's trunks, version %s.\n; Replaced whenever they change: do not edit.\n", version)
	seen := map[string]bool{}
	for i, t := range ts {
		switch {
		case !confNameRE.MatchString(t.Name):
			return "", fmt.Errorf("trunk %d: name %q refused", i, t.Name)
		case seen[t.Name]:
			return "", fmt.Errorf("trunk %q twice", t.Name)
		case !confHostRE.MatchString(t.Host):
			return "", fmt.Errorf("trunk %s: host %q refused", t.Name, t.Host)
		case !confUserRE.MatchString(t.Username) || !confPassRE.MatchString(t.Password):
			return "", fmt.Errorf("trunk %s: username or password refused", t.Name)
		case t.Register && (t.Username == "" || t.Password == ""):
			return "", fmt.Errorf("trunk %s: registration without credentials", t.Name)
		}
		seen[t.Name] = true
		fmt.Fprintf(&b, "\n[%s](trunk-endpoint)\naors = %[1]s\n", t.Name)
		if t.Username != "" {
			fmt.Fprintf(&b, "from_user = %s\n", t.Username)
		}
		if t.Password != "" {
			fmt.Fprintf(&b, "outbound_auth = %s-auth\n\n[%[1]s-auth]\ntype = auth\nauth_type = userpass\nusername = %s\npassword = %s\n", t.Name, t.Username, t.Password)
		}
		fmt.Fprintf(&b, "\n[%s]\ntype = aor\ncontact = sip:%s\nqualify_frequency = 30\nqualify_timeout = 3.0\n", t.Name, t.Host)
		host := t.Host
		if i := strings.LastIndex(host, ":"); i > strings.LastIndex(host, "]") {
			host = host[:i]
		}
		fmt.Fprintf(&b, "\n[%s-identify]\ntype = identify\nendpoint = %[1]s\nmatch = %s\n", t.Name, strings.Trim(host, "[]"))
		if t.Register {
			fmt.Fprintf(&b, "\n[%s-registration]\ntype = registration\noutbound_auth = %[1]s-auth\nserver_uri = sip:%s\nclient_uri = sip:%s@%[2]s\nretry_interval = 30\n", t.Name, t.Host, t.Username)
		}
	}
	return b.String(), nil
}

// maybeApplyTrunks fetches and applies the trunk configuration when the
// controller's version differs from the one applied: it writes the file
// (fsync'd, renamed into place) and has Asterisk reload res_pjsip, which
// adds, changes and removes endpoints without a restart and without
// touching calls up. A failure is retried on the next heartbeat.
func (a *Agent) maybeApplyTrunks(ctx context.Context, want string) {
	tc, ok := a.cfg.Controller.(trunkConfigurer)
	if !a.trunksMu.TryLock() {
		return // being applied; the next heartbeat checks again
	}
	defer a.trunksMu.Unlock()
	a.mu.Lock()
	have := a.trunksVersion
	a.mu.Unlock()
	if !ok || want == have {
		return
	}
	if a.cfg.TrunksConf == "" {
		// Told to keep the first-boot trunk (or a simulated Asterisk,
		// which dials any trunk): take calls as they come.
		a.mu.Lock()
		a.trunksVersion = want
		a.mu.Unlock()
		return
	}
	if !a.ami.Connected() {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := tc.Trunks(cctx, nodeapi.TrunksRequest{Have: have})
	if err != nil {
		a.log.Warn("node.trunks", "err", err)
		return
	}
	if _, err := os.Stat(a.cfg.TrunksConf); len(resp.Trunks) == 0 && errors.Is(err, os.ErrNotExist) {
		// Nothing to write, nothing written before: Asterisk has it.
		a.mu.Lock()
		a.trunksVersion = resp.Version
		a.mu.Unlock()
		return
	}
	conf, err := renderTrunks(resp.Version, resp.Trunks)
	if err != nil {
		a.log.Error("trunk configuration refused", "version", resp.Version, "err", err)
		return
	}
	if err := writeConf(a.cfg.TrunksConf, []byte(conf)); err != nil {
		a.log.Error("write trunk configuration", "err", err)
		return
	}
	r, err := a.ami.Action(cctx, ami.M("Action", "Command", "Command", "module reload res_pjsip.so"))
	if err != nil || !strings.EqualFold(r.Get("Response"), "Success") {
		a.log.Warn("reload res_pjsip", "err", err, "message", r.Get("Message"))
		return
	}
	names := make([]string, len(resp.Trunks))
	for i, t := range resp.Trunks {
		names[i] = t.Name
	}
	a.log.Info("trunks configured", "version", resp.Version, "trunks", names, "reload", strings.Join(r.All("Output"), " "))
	a.mu.Lock()
	a.trunksVersion = resp.Version
	a.mu.Unlock()
	a.poke(a.hbNow) // report the new trunks' health soon
}

// writeConf replaces path with data, readable by Asterisk's group: the
// file takes the group of its folder (set-group-id on the image).
func writeConf(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".trunks-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if st, err := os.Stat(dir); err == nil {
		if gid, ok := fileGID(st); ok {
			_ = tmp.Chown(-1, gid) // best effort: only root may give it away
		}
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// trunkHealth reads what Asterisk finds of each trunk: a trunk that
// registers is up when Registered; another is up when its contact
// answers OPTIONS (Avail) and down when it does not (Unavail).
func trunkHealth(registrations, contacts []string) (up, down []string) {
	state := map[string]bool{}
	registers := map[string]bool{}
	for _, l := range registrations {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.Contains(f[0], "/sip:") {
			continue // headers, rulers and the count
		}
		name := strings.TrimSuffix(strings.SplitN(f[0], "/", 2)[0], "-registration")
		registers[name] = true
		state[name] = slices.Contains(f, "Registered")
	}
	for _, l := range contacts {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "Contact:" || !strings.Contains(f[1], "/") {
			continue
		}
		name := strings.SplitN(f[1], "/", 2)[0]
		if registers[name] || !confNameRE.MatchString(name) {
			continue
		}
		switch {
		case slices.Contains(f, "Avail"):
			state[name] = true
		case slices.Contains(f, "Unavail"):
			if _, ok := state[name]; !ok {
				state[name] = false
			}
		}
	}
	for n, ok := range state {
		if ok {
			up = append(up, n)
		} else {
			down = append(down, n)
		}
	}
	slices.Sort(up)
	slices.Sort(down)
	return up, down
}
