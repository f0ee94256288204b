package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateCommand(t *testing.T) {
	env := func(string) string { return "" }
	trace := filepath.Join(t.TempDir(), "mine.csv")
	os.WriteFile(trace, []byte("seconds,campaign,calls,announced_seconds\n0,a,0,\n600,a,450,0\n4200,a,0,\n7200,,,\n"), 0o644)
	dir := t.TempDir()
	var out bytes.Buffer
	// Flags after the trace, as the README writes them.
	if err := run(context.Background(), []string{"simulate", trace, "-svg", dir, "-format", "json"}, &out, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	var rs []struct {
		Policy  string
		Cost    float64
		Dropped float64 `json:"dropped_by_scale_in"`
	}
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil || len(rs) != 4 || rs[0].Policy != "oracle" || rs[1].Policy != "elastidial" {
		t.Fatalf("json: %v %s", err, out.String())
	}
	if rs[1].Dropped != 0 || rs[1].Cost < rs[0].Cost {
		t.Fatalf("elastidial %+v vs oracle %+v", rs[1], rs[0])
	}
	svg, err := os.ReadFile(filepath.Join(dir, "mine.csv.svg"))
	if err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Fatalf("svg: %v", err)
	}
	err = run(context.Background(), []string{"simulate", "nowhere.csv"}, io.Discard, io.Discard, env)
	if err == nil || !strings.Contains(err.Error(), "neither a shipped trace") {
		t.Fatalf("missing trace: %v", err)
	}
}
