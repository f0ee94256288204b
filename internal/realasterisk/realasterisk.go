// Package realasterisk runs real Asterisk processes for tests: the node's
// Asterisk on the configuration the image renders at first boot, and a
// second Asterisk that plays the SIP carrier and its callees.
//
// The Asterisk tree comes from scripts/asterisk (built from the sources in
// ../shared/vendor and cached); scripts/test exports its root as
// ELASTIDIAL_ASTERISK. Without it the tests that need Asterisk are skipped,
// or fail where ELASTIDIAL_REQUIRE_DEPS is set (as scripts/test and CI do).
package realasterisk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Root returns the installed Asterisk tree, or skips t (fails it under
// ELASTIDIAL_REQUIRE_DEPS) when there is none.
func Root(t testing.TB) string {
	t.Helper()
	root := os.Getenv("ELASTIDIAL_ASTERISK")
	if root == "" {
		if os.Getenv("ELASTIDIAL_REQUIRE_DEPS") != "" {
			t.Fatal("ELASTIDIAL_ASTERISK is not set: run the tests through scripts/test, which builds Asterisk")
		}
		t.Skip("no real Asterisk: set ELASTIDIAL_ASTERISK to the tree scripts/asterisk prints")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/asterisk")); err != nil {
		t.Fatalf("ELASTIDIAL_ASTERISK=%s: %v", root, err)
	}
	return root
}

// RepoDir is the repository's top folder.
func RepoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../.."))
}

// Options describe one Asterisk process.
type Options struct {
	Name string // for logs: "node", "carrier"
	// Conf is a folder of rendered .conf files. Its asterisk.conf is used
	// for [options]; [directories] is replaced to point into the test's
	// own folders.
	Conf string
	// Sounds are extra entries of the sounds folder: name → target folder
	// (a symlink). "en" is always the Debian core sounds.
	Sounds map[string]string
	// AsRoot keeps Asterisk running as root even when asterisk.conf names
	// a runuser (which the tests honour when they run as root and that
	// user exists, as on a node).
	AsRoot bool
}

// Asterisk is one running Asterisk.
type Asterisk struct {
	Name    string
	Dir     string // its folders: etc, lib, spool, run, log
	RunUser string // "" when it runs as the test's user
	root    string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// Start runs Asterisk in the foreground and waits until it is fully booted.
// It is stopped when the test ends.
func Start(t testing.TB, root string, o Options) *Asterisk {
	t.Helper()
	dir := OpenDir(t, t.TempDir())
	a := &Asterisk{Name: o.Name, Dir: dir, root: root, done: make(chan struct{}), logPath: filepath.Join(dir, "log", "console.log")}
	runUser := ""
	opts, err := readOptions(filepath.Join(o.Conf, "asterisk.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if u := opts.get("runuser"); u != "" && !o.AsRoot && os.Geteuid() == 0 {
		if _, err := user.Lookup(u); err == nil {
			runUser = u
		}
	}
	a.RunUser = runUser
	for _, d := range []string{"etc", "lib", "lib/sounds", "spool", "run", "log", "agi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(o.Conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") || e.Name() == "asterisk.conf" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(o.Conf, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[directories]\nastetcdir => %s/etc\nastmoddir => %s/usr/lib/asterisk/modules\n", dir, root)
	fmt.Fprintf(&conf, "astvarlibdir => %[1]s/lib\nastdbdir => %[1]s/lib\nastkeydir => %[1]s/lib\nastdatadir => %[1]s/lib\n", dir)
	fmt.Fprintf(&conf, "astagidir => %[1]s/agi\nastspooldir => %[1]s/spool\nastrundir => %[1]s/run\nastlogdir => %[1]s/log\n", dir)
	fmt.Fprintf(&conf, "astsbindir => %s/usr/sbin\n\n[options]\n", root)
	for _, k := range opts.keys {
		if (k == "runuser" || k == "rungroup") && runUser == "" {
			continue
		}
		fmt.Fprintf(&conf, "%s = %s\n", k, opts.get(k))
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "asterisk.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sounds := map[string]string{"en": coreSounds(t)}
	for k, v := range o.Sounds {
		sounds[k] = v
	}
	// The XML documentation: without it Stasis refuses to initialise.
	if err := os.Symlink(filepath.Join(root, "var/lib/asterisk/documentation"), filepath.Join(dir, "lib", "documentation")); err != nil {
		t.Fatal(err)
	}
	for name, target := range sounds {
		if err := os.Symlink(target, filepath.Join(dir, "lib", "sounds", name)); err != nil {
			t.Fatal(err)
		}
	}
	if runUser != "" {
		chownTree(t, dir, runUser, "lib", "spool", "run", "log")
	}

	logf, err := os.Create(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(filepath.Join(root, "usr/sbin/asterisk"), "-f", "-n", "-q", "-C", filepath.Join(dir, "etc", "asterisk.conf"))
	a.cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib"))
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s asterisk: %v", o.Name, err)
	}
	go func() {
		a.cmd.Wait()
		logf.Close()
		close(a.done)
	}()
	t.Cleanup(func() { a.Stop(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		out, err := a.cli(ctx, "core waitfullybooted")
		if err == nil && strings.Contains(out, "fully booted") {
			break
		}
		select {
		case <-a.done:
			t.Fatalf("%s asterisk exited while booting:\n%s", o.Name, a.Log())
		case <-ctx.Done():
			t.Fatalf("%s asterisk not fully booted in 60s (%v):\n%s", o.Name, err, a.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return a
}

// PID is the Asterisk process's id.
func (a *Asterisk) PID() int { return a.cmd.Process.Pid }

// Stop ends Asterisk: SIGTERM to its process group, SIGKILL after 10 s.
func (a *Asterisk) Stop(t testing.TB) {
	select {
	case <-a.done:
		return
	default:
	}
	syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
	if t.Failed() {
		t.Logf("%s asterisk log:\n%s", a.Name, a.Log())
	}
}

// Log returns what Asterisk wrote to its console and messages logs.
func (a *Asterisk) Log() string {
	var b bytes.Buffer
	for _, f := range []string{a.logPath, filepath.Join(a.Dir, "log", "messages")} {
		if c, err := os.ReadFile(f); err == nil {
			b.Write(c)
		}
	}
	return b.String()
}

// CLI runs one CLI command through the control socket and returns its output.
func (a *Asterisk) CLI(t testing.TB, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := a.cli(ctx, command)
	if err != nil {
		t.Fatalf("%s asterisk -rx %q: %v\n%s", a.Name, command, err, out)
	}
	return out
}

func (a *Asterisk) cli(ctx context.Context, command string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(a.root, "usr/sbin/asterisk"), "-C", filepath.Join(a.Dir, "etc", "asterisk.conf"), "-rx", command)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(a.root, "usr/lib"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// options is asterisk.conf's [options], in file order.
type options struct {
	keys []string
	vals map[string]string
}

func (o options) get(k string) string { return o.vals[k] }

func readOptions(path string) (options, error) {
	f, err := os.Open(path)
	if err != nil {
		return options{}, err
	}
	defer f.Close()
	o := options{vals: map[string]string{}}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = strings.HasPrefix(line, "[options]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !in || !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(strings.TrimPrefix(v, ">"))
		o.keys = append(o.keys, k)
		o.vals[k] = v
	}
	return o, sc.Err()
}

// OpenDir makes dir and its parent (t.TempDir's, 0700) traversable, so an
// Asterisk running as its own user reaches its folders (its own, and those
// a test shares with it, such as the sounds folder the agent syncs into).
func OpenDir(t testing.TB, dir string) string {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// coreSounds is the folder of Debian's asterisk-core-sounds-en-wav.
func coreSounds(t testing.TB) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/share/asterisk/sounds/en*")
	for _, d := range m {
		if _, err := os.Stat(filepath.Join(d, "digits", "1.wav")); err == nil {
			return d
		}
	}
	t.Fatal("no core sounds under /usr/share/asterisk/sounds (Debian asterisk-core-sounds-en-wav; scripts/test installs it)")
	return ""
}

// chownTree gives the named subfolders of dir to user u.
func chownTree(t testing.TB, dir, u string, subs ...string) {
	t.Helper()
	usr, err := user.Lookup(u)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(usr.Uid)
	gid, _ := strconv.Atoi(usr.Gid)
	for _, s := range subs {
		err := filepath.Walk(filepath.Join(dir, s), func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// FreePort returns a loopback port free for both TCP and UDP right now.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free loopback port")
	return 0
}
