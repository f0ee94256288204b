package testenv

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// WatchTree notes every file and folder under dir (a test binary runs in
// its package's source folder, so "." is that folder) and returns a check
// that names those that appeared since. Tests write under t.TempDir(),
// never into the tree: a TestMain calls the check after m.Run and fails
// the package when it reports anything. A new folder is named, not what
// it holds.
// The check leaves alone the paths it is given (relative to dir), such as
// the profiles 'go test -cpuprofile' asks for.
func WatchTree(dir string) (check func(allow ...string) error) {
	before, err := listTree(dir)
	if err != nil {
		return func(...string) error { return fmt.Errorf("watch %s: %w", dir, err) }
	}
	return func(allow ...string) error {
		after, err := listTree(dir)
		if err != nil {
			return fmt.Errorf("watch %s: %w", dir, err)
		}
		var added []string
		for p := range after {
			if !before[p] && !before[filepath.Dir(p)] && filepath.Dir(p) != "." {
				continue // inside a new folder, which is named instead
			}
			if !before[p] && !slices.Contains(allow, p) {
				added = append(added, p)
			}
		}
		if len(added) == 0 {
			return nil
		}
		sort.Strings(added)
		abs, _ := filepath.Abs(dir)
		return fmt.Errorf("tests wrote into the source folder %s (use t.TempDir()): %s", abs, strings.Join(added, ", "))
	}
}

// listTree lists the paths under dir, relative to it.
func listTree(dir string) (map[string]bool, error) {
	paths := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			paths[rel] = true
		}
		return nil
	})
	return paths, err
}

// RunInTree runs a package's tests (m.Run) and fails them when they left a
// new file or folder in the package's source folder.
func RunInTree(m *testing.M) int {
	check := WatchTree(".")
	code := m.Run()
	var profiles []string // what -cpuprofile and the like write, by request
	for _, name := range []string{"cpuprofile", "memprofile", "blockprofile", "mutexprofile", "trace", "coverprofile"} {
		f := flag.Lookup("test." + name)
		if f == nil || f.Value.String() == "" {
			continue
		}
		p := f.Value.String()
		if !filepath.IsAbs(p) {
			if dir := flag.Lookup("test.outputdir"); dir != nil && dir.Value.String() != "" {
				p = filepath.Join(dir.Value.String(), p)
			}
		}
		if abs, err := filepath.Abs(p); err == nil {
			if rel, err := filepath.Rel(mustAbs("."), abs); err == nil {
				profiles = append(profiles, rel)
			}
		}
	}
	if err := check(profiles...); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func mustAbs(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return abs
}
