package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// Ops load a national registry file from the command line: streamed into
// the internal list, recorded with its version, who and why, and logged
// in the audit log beside the API's changes.
func TestDNCImportCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	file := filepath.Join(dir, "212.txt")
	os.WriteFile(file, []byte("212,5550101\n212,5550102\nnot a number\n"), 0o600)
	env := func(string) string { return "" }
	dnc := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"dnc", "-db", db}, args...), &out, io.Discard, env)
		return out.String(), err
	}
	out, err := dnc("import", "-source", "us-ftc", "-version", "2026-12-01", "-reason", "monthly refresh", "-actor", "cli:ann", file)
	if err != nil || !strings.Contains(out, "2 numbers") || !strings.Contains(out, "1 rejected") || !strings.Contains(out, "line 4") && !strings.Contains(out, "line 3") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if _, err := dnc("import", "-source", "us-ftc", "-version", "2026-12-01", file); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("without a reason: %v", err)
	}
	if _, err := dnc("import", "-source", "us-ftc", "-version", "v", "-reason", "r", filepath.Join(dir, "missing.txt")); err == nil {
		t.Fatal("a missing file imported")
	}
	s, err := sqlstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.SearchDNC(context.Background(), sqlstore.InternalDNC, "", "", 10)
	if len(got) != 2 || got[0].Source != "us-ftc" {
		t.Fatalf("list %+v", got)
	}
	imps, _ := s.DNCImports(context.Background(), 10)
	if len(imps) != 1 || imps[0].Version != "2026-12-01" || imps[0].Actor != "cli:ann" || !imps[0].Complete {
		t.Fatalf("imports %+v", imps)
	}
	log, _ := s.Audit(context.Background(), 0, 10)
	if len(log) != 1 || log[0].Actor != "cli:ann" || !strings.Contains(log[0].Path, "dnc import") || !strings.Contains(log[0].Detail, "monthly refresh") {
		t.Fatalf("audit %+v", log)
	}
}
