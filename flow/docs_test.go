package flow

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"testing"
)

// TestFlowDocsExamples: the examples in docs/flows.md are the shipped
// ones, word for word as JSON, and valid flows.
func TestFlowDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/flows.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	files := []string{"examples/reminder.json", "examples/survey.json"}
	if len(blocks) != len(files) {
		t.Fatalf("docs/flows.md has %d JSON examples, want %d", len(blocks), len(files))
	}
	for i, f := range files {
		shipped, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(blocks[i][1], &a); err != nil {
			t.Fatalf("docs/flows.md example %d: %v", i+1, err)
		}
		json.Unmarshal(shipped, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("docs/flows.md example %d differs from %s", i+1, f)
		}
		if err := Check(blocks[i][1], nil); err != nil {
			t.Errorf("docs/flows.md example %d: %v", i+1, err)
		}
	}
}
