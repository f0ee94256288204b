package main

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
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
	env := bareEnv(t)
	dnc := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"dnc", "-db", db}, args...), &out, io.Discard, env)
		return out.String(), err
	}
	out, err := dnc("import", "-source", "us-ftc", "-version", "2026-12-01", "-reason", "monthly refresh", "-actor", "cli:ann", file)
	if err != nil || !strings.Contains(out, "2 numbers") || !strings.Contains(out, "1 rejected") || !strings.Contains(out, "line 4") && !strings.Contains(out, "line 3") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// -db after the verb is the store used too.
	os.WriteFile(file+".2", []byte("2125550103\n"), 0o600)
	if err := run(context.Background(), []string{"dnc", "import", "-db", db, "-source", "us-ftc", "-version", "2026-12-01", "-reason", "late file", "-actor", "cli:ann", file + ".2"}, io.Discard, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	// The FTC's download: a .zip of one file per area code; and a .gz.
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, f := range []struct{ name, body string }{{"312.txt", "312,5550101\n312,5550102"}, {"415.txt", "415,5550101\n"}} {
		w, _ := zw.Create(f.name)
		w.Write([]byte(f.body))
	}
	zw.Close()
	os.WriteFile(filepath.Join(dir, "ftc.zip"), zb.Bytes(), 0o600)
	var gb bytes.Buffer
	gw := gzip.NewWriter(&gb)
	gw.Write([]byte("6175550101\n"))
	gw.Close()
	os.WriteFile(filepath.Join(dir, "617.txt.gz"), gb.Bytes(), 0o600)
	if out, err := dnc("import", "-source", "us-ftc", "-version", "2026-12-02", "-reason", "refresh", filepath.Join(dir, "ftc.zip"), filepath.Join(dir, "617.txt.gz")); err != nil || !strings.Contains(out, "4 numbers") {
		t.Fatalf("zip and gz: %v\n%s", err, out)
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
	if len(got) != 7 || got[0].Source != "us-ftc" {
		t.Fatalf("list %+v", got)
	}
	imps, _ := s.DNCImports(context.Background(), 10)
	if len(imps) != 3 || imps[2].Version != "2026-12-01" || imps[1].Actor != "cli:ann" || !imps[2].Complete {
		t.Fatalf("imports %+v", imps)
	}
	log, _ := s.Audit(context.Background(), 0, 10)
	if len(log) != 3 || log[0].Actor != "cli:ann" || !strings.Contains(log[0].Path, "dnc import") || !strings.Contains(log[0].Detail, "monthly refresh") {
		t.Fatalf("audit %+v", log)
	}
}
