package web

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestVendoredChartLibraryIsTheLockedBuild: static/vendor holds what
// `npm ci && npm run build` makes from package-lock.json, so `go build`
// needs no npm. The version in the bundle's banner must be the locked one;
// where node_modules is installed, the files must be byte for byte the
// build's output.
func TestVendoredChartLibraryIsTheLockedBuild(t *testing.T) {
	var lock struct {
		Packages map[string]struct{ Version, Integrity string } `json:"packages"`
	}
	b, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	locked := lock.Packages["node_modules/uplot"]
	if locked.Version == "" || locked.Integrity == "" {
		t.Fatal("package-lock.json pins no uplot version and integrity")
	}
	bundle, err := static.ReadFile("static/vendor/uplot.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if banner := string(bundle[:bytes.IndexByte(bundle, '\n')]); !strings.Contains(banner, "(v"+locked.Version+")") {
		t.Fatalf("static/vendor/uplot.min.js is %q, package-lock.json locks %s: run cd web && npm ci && npm run build", banner, locked.Version)
	}
	for built, src := range map[string]string{
		"static/vendor/uplot.min.js":  "node_modules/uplot/dist/uPlot.iife.min.js",
		"static/vendor/uplot.min.css": "node_modules/uplot/dist/uPlot.min.css",
	} {
		want, err := os.ReadFile(src)
		if os.IsNotExist(err) {
			t.Logf("%s: not installed (npm ci), only the version checked", src)
			continue
		}
		got, _ := static.ReadFile(built)
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the build of %s: run cd web && npm ci && npm run build", built, src)
		}
	}
}
