package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportCost(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	env := bareEnv(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"report", "-db", db, "-format", "json", "cost"}, &out, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"total"`) || !strings.Contains(out.String(), `"per_answered_call"`) {
		t.Fatalf("json report: %s", out.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "-db", db, "money"}, "want 'controller report cost"},
		{[]string{"report", "-db", db, "-from", "yesterday", "cost"}, "-from \"yesterday\""},
		{[]string{"report", "-db", db, "-format", "xml", "cost"}, "-format \"xml\""},
		{[]string{"report", "-db", db, "-from", "2026-11-22T10:00:00Z", "-to", "2026-11-22T09:00:00Z", "cost"}, "not after start"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
