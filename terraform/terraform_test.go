package terraform

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// config is every declaration in the .tf files.
type config struct {
	bodies    []*hclsyntax.Body
	variables map[string]bool
	locals    map[string]bool
	resources map[string]*hclsyntax.Block // "type.name"
	data      map[string]*hclsyntax.Block // "type.name"
}

func load(t *testing.T) *config {
	t.Helper()
	files, _ := filepath.Glob("*.tf")
	if len(files) < 5 {
		t.Fatalf("only %d .tf files", len(files))
	}
	c := &config{variables: map[string]bool{}, locals: map[string]bool{}, resources: map[string]*hclsyntax.Block{}, data: map[string]*hclsyntax.Block{}}
	p := hclparse.NewParser()
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		body := file.Body.(*hclsyntax.Body)
		c.bodies = append(c.bodies, body)
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				c.variables[b.Labels[0]] = true
			case "locals":
				for name := range b.Body.Attributes {
					c.locals[name] = true
				}
			case "resource":
				c.resources[b.Labels[0]+"."+b.Labels[1]] = b
			case "data":
				c.data[b.Labels[0]+"."+b.Labels[1]] = b
			}
		}
	}
	return c
}

// walk calls fn on every attribute expression, nested blocks included,
// but for a variable's type constraint, which is not a reference.
func walk(body *hclsyntax.Body, fn func(hclsyntax.Expression)) {
	for _, a := range body.Attributes {
		fn(a.Expr)
	}
	for _, b := range body.Blocks {
		if b.Type == "variable" {
			for name, a := range b.Body.Attributes {
				if name != "type" {
					fn(a.Expr)
				}
			}
			continue
		}
		walk(b.Body, fn)
	}
}

func attrName(tr hcl.Traverser) string {
	if a, ok := tr.(hcl.TraverseAttr); ok {
		return a.Name
	}
	return ""
}

func TestReferencesResolve(t *testing.T) {
	c := load(t)
	refs := 0
	for _, body := range c.bodies {
		walk(body, func(e hclsyntax.Expression) {
			for _, tr := range e.Variables() {
				refs++
				root := tr.RootName()
				rng := tr.SourceRange()
				switch {
				case root == "var":
					if !c.variables[attrName(tr[1])] {
						t.Errorf("%s: var.%s is not declared", rng, attrName(tr[1]))
					}
				case root == "local":
					if !c.locals[attrName(tr[1])] {
						t.Errorf("%s: local.%s is not declared", rng, attrName(tr[1]))
					}
				case root == "data":
					if k := attrName(tr[1]) + "." + attrName(tr[2]); c.data[k] == nil {
						t.Errorf("%s: data.%s is not declared", rng, k)
					}
				case strings.HasPrefix(root, "aws_"):
					if k := root + "." + attrName(tr[1]); c.resources[k] == nil {
						t.Errorf("%s: %s is not declared", rng, k)
					}
				case root == "count", root == "each", root == "self", root == "path", root == "terraform":
				default:
					t.Errorf("%s: unknown reference %s", rng, root)
				}
			}
		})
	}
	if refs < 50 {
		t.Fatalf("only %d references found; is the walk broken?", refs)
	}
	for name := range c.variables {
		used := false
		for _, body := range c.bodies {
			walk(body, func(e hclsyntax.Expression) {
				for _, tr := range e.Variables() {
					used = used || tr.RootName() == "var" && attrName(tr[1]) == name
				}
			})
		}
		if !used {
			t.Errorf("variable %q is declared but never used", name)
		}
	}
}

// policyActions lists the actions a policy document grants.
func policyActions(t *testing.T, c *config, name string) []string {
	t.Helper()
	b := c.data["aws_iam_policy_document."+name]
	if b == nil {
		t.Fatalf("no policy document %q", name)
	}
	var out []string
	for _, st := range b.Body.Blocks {
		if st.Type != "statement" {
			continue
		}
		v, diags := st.Body.Attributes["actions"].Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("%s: actions must be literal: %s", name, diags.Error())
		}
		for _, a := range v.AsValueSlice() {
			out = append(out, a.AsString())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// interfaceMethods returns the methods of the `API` interface in a Go
// package: the narrow list of SDK operations that package calls.
func interfaceMethods(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok || ts.Name.Name != "API" {
					return true
				}
				for _, m := range ts.Type.(*ast.InterfaceType).Methods.List {
					for _, name := range m.Names {
						out = append(out, name.Name)
					}
				}
				return false
			})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no API interface in %s", dir)
	}
	return out
}

// TestPoliciesGrantExactlyWhatTheCodeCalls derives the controller's AWS
// actions from the code and compares them with the policy: a new SDK call
// without its permission, or a permission no code uses, fails here.
func TestPoliciesGrantExactlyWhatTheCodeCalls(t *testing.T) {
	c := load(t)
	want := []string{
		"ec2:CreateTags", // needed by RunInstances' TagSpecifications
		"iam:PassRole",   // needed to launch with the node instance profile
	}
	for _, m := range interfaceMethods(t, "../controller/ec2cloud") {
		want = append(want, "ec2:"+m)
	}
	for _, m := range interfaceMethods(t, "../storage/s3store") {
		want = append(want, map[string]string{"ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject"}[m])
		if want[len(want)-1] == "" {
			want[len(want)-1] = "s3:" + m
		}
	}
	for _, m := range interfaceMethods(t, "../speech/polly") {
		want = append(want, "polly:"+m)
	}
	sort.Strings(want)
	want = slices.Compact(want)
	if got := policyActions(t, c, "controller"); !slices.Equal(got, want) {
		t.Errorf("controller policy grants %v\nthe code calls      %v", got, want)
	}
	if got := policyActions(t, c, "node"); !slices.Equal(got, []string{"s3:GetObject"}) {
		t.Errorf("node policy grants %v; nodes only read audio", got)
	}
}

// TestNodeFirewallMatchesAsterisk: the node security group opens exactly
// SIP and the RTP range rtp.conf gives Asterisk, and only to the carrier.
func TestNodeFirewallMatchesAsterisk(t *testing.T) {
	c := load(t)
	rtp, err := os.ReadFile("../ami-images/asterisk/rtp.conf")
	if err != nil {
		t.Fatal(err)
	}
	start := regexp.MustCompile(`rtpstart\s*=\s*(\d+)`).FindSubmatch(rtp)
	end := regexp.MustCompile(`rtpend\s*=\s*(\d+)`).FindSubmatch(rtp)
	sg := c.resources["aws_security_group.node"]
	var rules []string
	for _, b := range sg.Body.Blocks {
		if b.Type != "ingress" {
			continue
		}
		from, _ := b.Body.Attributes["from_port"].Expr.Value(nil)
		to, _ := b.Body.Attributes["to_port"].Expr.Value(nil)
		proto, _ := b.Body.Attributes["protocol"].Expr.Value(nil)
		src := b.Body.Attributes["cidr_blocks"].Expr.Variables()
		if len(src) != 1 || attrName(src[0][1]) != "carrier_cidrs" {
			t.Errorf("node ingress %s-%s open to something other than var.carrier_cidrs", from.AsBigFloat(), to.AsBigFloat())
		}
		f, _ := from.AsBigFloat().Int64()
		e, _ := to.AsBigFloat().Int64()
		rules = append(rules, proto.AsString()+":"+itoa(f)+"-"+itoa(e))
	}
	sort.Strings(rules)
	want := []string{"udp:" + string(start[1]) + "-" + string(end[1]), "udp:5060-5060"}
	sort.Strings(want)
	if !slices.Equal(rules, want) {
		t.Errorf("node ingress %v, want %v (SIP and rtp.conf's range only; no SSH)", rules, want)
	}
}

func itoa(i int64) string {
	return strconv.FormatInt(i, 10)
}
