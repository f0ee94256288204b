package planner

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPlannerIsPure guards invariant 5 where it lives: the planner's
// code imports nothing that reaches the network, the disk, a database or
// a cloud, and reads no clock (now is Plan's argument), so the live loop
// and the trace simulator run the very same decision.
func TestPlannerIsPure(t *testing.T) {
	allowed := map[string]bool{
		"cmp": true, "fmt": true, "maps": true, "math": true, "slices": true, "sort": true, "time": true,
		"github.com/elastidial/elastidial/campaign":        true, // domain types, no I/O
		"github.com/elastidial/elastidial/controller/cost": true, // the price table
	}
	clock := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %q: the planner does no I/O (allow it here only if it does none either)", fset.Position(im.Pos()), path)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && clock[sel.Sel.Name] {
					t.Errorf("%s calls time.%s: the planner takes now as an argument", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	if files == 0 {
		t.Fatal("no planner source files found")
	}
}
