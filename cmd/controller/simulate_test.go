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
	env := bareEnv(t)
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
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil || len(rs) != 7 || rs[0].Policy != "floor" || rs[1].Policy != "oracle" || rs[2].Policy != "elastidial" {
		t.Fatalf("json: %v %s", err, out.String())
	}
	if rs[2].Dropped != 0 || rs[2].Cost < rs[0].Cost || rs[0].Cost > rs[1].Cost {
		t.Fatalf("elastidial %+v vs floor %+v and oracle %+v", rs[2], rs[0], rs[1])
	}
	svg, err := os.ReadFile(filepath.Join(dir, "mine.csv.svg"))
	if err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Fatalf("svg: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"simulate", "-warm", "10s,45s", trace}, &out, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "warm start median") || !strings.Contains(out.String(), "reactive-warm") {
		t.Fatalf("warm sweep table:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"simulate", "-warm", "soon", trace}, io.Discard, io.Discard, env); err == nil || !strings.Contains(err.Error(), "-warm") {
		t.Fatalf("bad -warm: %v", err)
	}
	err = run(context.Background(), []string{"simulate", "nowhere.csv"}, io.Discard, io.Discard, env)
	if err == nil || !strings.Contains(err.Error(), "neither a shipped trace") {
		t.Fatalf("missing trace: %v", err)
	}
}
