package flow

import (
	"os"
	"strings"
	"testing"
)

// Every JSON example in docs/flows.md is of the flow format: a whole flow
// validates, and a fragment of states parses with no unknown field.
func TestDocsExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/flows.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```json\n")[1:]
	if len(blocks) < 12 {
		t.Fatalf("%d JSON examples in docs/flows.md; want one per step type", len(blocks))
	}
	for _, blk := range blocks {
		ex, _, _ := strings.Cut(blk, "```")
		if strings.HasPrefix(ex, "{") {
			if err := Check([]byte(ex), nil); err != nil {
				t.Errorf("%s\n%v", ex, err)
			}
			continue
		}
		f, err := Parse([]byte(`{"start": "x", "states": {` + ex + `}}`))
		if err != nil {
			t.Errorf("%s\n%v", ex, err)
			continue
		}
		for name, s := range f.States {
			if s.actionCount() != 1 {
				t.Errorf("%s: %d actions", name, s.actionCount())
			}
		}
	}
}
