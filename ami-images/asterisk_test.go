package amiimages

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// section is one [name] of an Asterisk .conf file, its options in order.
type section struct {
	name     string
	template bool     // [name](!)
	inherits []string // [name](tmpl,...)
	opts     [][2]string
}

func (s *section) get(key string) []string {
	var out []string
	for _, kv := range s.opts {
		if kv[0] == key {
			out = append(out, kv[1])
		}
	}
	return out
}

// parseConf reads Asterisk's config syntax: ; comments, [section] with
// (!) templates and (a,b) inheritance, key = value and key => value lines,
// #include, and "same =>" continuations. It fails on anything else, as
// Asterisk would refuse it.
func parseConf(path string) ([]*section, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*section
	var cur *section
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, ";"); i >= 0 && !strings.Contains(line[:i], "\\") {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "#tryinclude "):
			// Written at runtime (the agent's trunks): only a relative
			// path inside the configuration folder.
			inc := strings.TrimSpace(strings.TrimPrefix(line, "#tryinclude"))
			if filepath.IsAbs(inc) || strings.Contains(inc, "..") || !strings.HasSuffix(inc, ".conf") {
				return nil, fmt.Errorf("%s:%d: #tryinclude %q: want a relative .conf path", path, n, inc)
			}
		case strings.HasPrefix(line, "#include"):
			inc := strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "#include")), `"`)
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), inc)); err != nil {
				if _, terr := os.Stat(filepath.Join(filepath.Dir(path), inc+".template")); terr != nil {
					return nil, fmt.Errorf("%s:%d: #include %s: no such file or template", path, n, inc)
				}
			}
		case strings.HasPrefix(line, "["):
			end := strings.Index(line, "]")
			if end < 2 {
				return nil, fmt.Errorf("%s:%d: malformed section header %q", path, n, line)
			}
			cur = &section{name: line[1:end]}
			if rest := strings.TrimSpace(line[end+1:]); rest != "" {
				if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
					return nil, fmt.Errorf("%s:%d: junk after section header: %q", path, n, rest)
				}
				for _, t := range strings.Split(rest[1:len(rest)-1], ",") {
					if t == "!" {
						cur.template = true
					} else {
						cur.inherits = append(cur.inherits, t)
					}
				}
			}
			out = append(out, cur)
		default:
			if cur == nil {
				return nil, fmt.Errorf("%s:%d: option outside any section", path, n)
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: want key = value, got %q", path, n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(strings.TrimPrefix(v, ">"))
			if k == "same" && (len(cur.opts) == 0 || cur.opts[len(cur.opts)-1][0] != "exten" && cur.opts[len(cur.opts)-1][0] != "same") {
				return nil, fmt.Errorf("%s:%d: same => with no exten before it", path, n)
			}
			cur.opts = append(cur.opts, [2]string{k, v})
		}
	}
	return out, sc.Err()
}

func find(t *testing.T, secs []*section, name string) *section {
	t.Helper()
	for _, s := range secs {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no section [%s]", name)
	return nil
}

func TestEveryConfParses(t *testing.T) {
	files, _ := filepath.Glob("asterisk/*")
	if len(files) < 6 {
		t.Fatalf("only %d configuration files", len(files))
	}
	for _, f := range files {
		if _, err := parseConf(f); err != nil {
			t.Error(err)
		}
	}
}

// TestFactsTheAgentRelies on, in the configuration first-boot.sh renders
// with the defaults: the agent originates into elastidial-outbound/s/1 and
// serves FastAGI on 127.0.0.1:4573; it logs in to AMI on 127.0.0.1:5038 as
// elastidial and needs call events. That Asterisk itself accepts all of it
// is checked on a real Asterisk (internal/realasterisk).
func TestFactsTheAgentReliesOn(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "scripts/render-asterisk-conf.sh", "asterisk", dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PUBLIC_IPV4=203.0.113.7", "VPC_CIDR=10.0.0.0/16",
		"ELASTIDIAL_TRUNK_NAME=carrier", "ELASTIDIAL_TRUNK_HOST=sip.example.net", "ELASTIDIAL_TRUNK_USER=u",
		"ELASTIDIAL_TRUNK_PASSWORD=p", "ELASTIDIAL_AMI_SECRET=s"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	ext, err := parseConf(filepath.Join(dir, "extensions.conf"))
	if err != nil {
		t.Fatal(err)
	}
	out := find(t, ext, "elastidial-outbound")
	steps := append(out.get("exten"), out.get("same")...)
	joined := strings.Join(steps, "\n")
	if !strings.HasPrefix(out.get("exten")[0], "s,1,") || !strings.Contains(joined, "AGI(agi://127.0.0.1:4573/ivr?call_id=${ELASTIDIAL_CALL_ID})") {
		t.Errorf("elastidial-outbound does not hand s to the agent's FastAGI:\n%s", joined)
	}
	mgr, err := parseConf(filepath.Join(dir, "manager.conf"))
	if err != nil {
		t.Fatal(err)
	}
	g := find(t, mgr, "general")
	if g.get("bindaddr")[0] != "127.0.0.1" || g.get("port")[0] != "5038" || g.get("enabled")[0] != "yes" {
		t.Errorf("AMI not on 127.0.0.1:5038: %v", g.opts)
	}
	u := find(t, mgr, "elastidial")
	for _, class := range []string{"call", "system"} {
		if !slices.Contains(strings.Split(u.get("read")[0], ","), class) {
			t.Errorf("AMI user cannot read %s events", class)
		}
	}
	if !slices.Contains(strings.Split(u.get("write")[0], ","), "originate") || u.get("secret")[0] != "s" {
		t.Errorf("AMI user: %v", u.opts)
	}
	pj, err := parseConf(filepath.Join(dir, "pjsip.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if tr := find(t, pj, "transport-udp"); tr.get("bind")[0] != "0.0.0.0:5060" || tr.get("external_media_address")[0] != "203.0.113.7" {
		t.Errorf("transport: %v", tr.opts)
	}
	ast, _ := parseConf("asterisk/asterisk.conf")
	if o := find(t, ast, "options"); len(o.get("maxload")) > 0 {
		t.Error("asterisk.conf sets maxload: Asterisk would hang up answered calls under load, unseen by the scaler")
	}
	mods, _ := parseConf("asterisk/modules.conf")
	m := find(t, mods, "modules")
	loads := m.get("load")
	for _, need := range []string{"res_timing_timerfd.so", "res_agi.so", "chan_pjsip.so", "res_rtp_asterisk.so", "pbx_config.so", "app_playback.so", "format_wav.so", "codec_ulaw.so"} {
		if !slices.Contains(loads, need) {
			t.Errorf("modules.conf does not load %s", need)
		}
	}
	if m.get("autoload")[0] != "no" {
		t.Error("modules.conf autoloads everything")
	}
	rtp, _ := parseConf("asterisk/rtp.conf")
	r := find(t, rtp, "general")
	if r.get("rtpstart")[0] != "10000" || r.get("rtpend")[0] != "20000" {
		t.Errorf("RTP range %v", r.opts)
	}
	tmpl := find(t, pj, "trunk-endpoint")
	for k, v := range map[string]string{"direct_media": "no", "rtp_symmetric": "yes", "force_rport": "yes", "rewrite_contact": "yes", "context": "elastidial-outbound"} {
		if got := tmpl.get(k); len(got) == 0 || got[0] != v {
			t.Errorf("trunk template %s = %v, want %s", k, got, v)
		}
	}
	tr := find(t, pj, "transport-udp")
	for _, k := range []string{"local_net", "external_media_address", "external_signaling_address"} {
		if len(tr.get(k)) == 0 {
			t.Errorf("transport lacks %s (EC2 NAT)", k)
		}
	}
}

func TestParserRefusesBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"orphan.conf":  "key = value\n",
		"header.conf":  "[x\n",
		"same.conf":    "[ctx]\nsame => n,Hangup()\n",
		"junk.conf":    "[ctx] junk\n",
		"novalue.conf": "[ctx]\njust words\n",
		"include.conf": "[ctx]\n#include \"missing.conf\"\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := parseConf(p); err == nil {
			t.Errorf("%s parsed", name)
		}
	}
}
