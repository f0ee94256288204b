package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/elastidial/elastidial/nodeapi"
)

// Syncer brings a node's sounds folder in line with a manifest: what is
// missing or changed is downloaded, verified against its SHA-256 and
// renamed into place (Asterisk never sees half a file, and a file being
// played keeps its old bytes until the call closes it); what the manifest
// no longer lists is removed. It implements the agent's AudioSync.
type Syncer struct {
	Dir      string
	Client   *http.Client // a client with timeouts; one is made when nil
	Parallel int          // downloads at once; 4
	Retries  int          // attempts per file; 4
	Backoff  time.Duration
}

// localIndex remembers what each local file hashed to, by size and
// modification time, so a sync does not rehash unchanged files.
type localIndex map[string]localEntry

type localEntry struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
}

const syncIndex = ".elastidial-sync.json"

// ErrChecksum is a download whose bytes do not match the manifest.
var ErrChecksum = errors.New("checksum mismatch")

// Sync applies the manifest. It returns nil only when every file matches.
func (s *Syncer) Sync(ctx context.Context, m nodeapi.ManifestResponse) error {
	if m.Unchanged {
		return nil
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("audio sync: %w", err)
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	idx := s.readIndex()
	want := map[string]bool{}
	var todo []nodeapi.AudioFile
	for _, f := range m.Files {
		if CheckKey(f.Name) != nil {
			return fmt.Errorf("audio sync: manifest names %q, which is not a valid audio name", f.Name)
		}
		want[filepath.FromSlash(f.Name)] = true
		if sum, ok := s.localSum(idx, f.Name); !ok || sum != f.SHA256 {
			todo = append(todo, f)
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	parallel := s.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	g.SetLimit(parallel)
	for _, f := range todo {
		g.Go(func() error {
			st, err := s.fetchWithRetries(gctx, client, f)
			if err != nil {
				return err
			}
			mu.Lock()
			idx[f.Name] = st
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.writeIndex(idx)
		return fmt.Errorf("audio sync: %w", err)
	}
	err := s.prune(want, idx)
	s.writeIndex(idx)
	return err
}

func (s *Syncer) readIndex() localIndex {
	idx := localIndex{}
	b, err := os.ReadFile(filepath.Join(s.Dir, syncIndex))
	if err == nil {
		json.Unmarshal(b, &idx) // a corrupt index only costs a rehash
	}
	return idx
}

func (s *Syncer) writeIndex(idx localIndex) {
	b, _ := json.Marshal(idx)
	_ = writeAtomic(filepath.Join(s.Dir, syncIndex), b)
}

// localSum is the SHA-256 of the local copy, from the index when the file
// is unchanged since it was hashed.
func (s *Syncer) localSum(idx localIndex, name string) (string, bool) {
	st, err := os.Stat(filepath.Join(s.Dir, filepath.FromSlash(name)))
	if err != nil {
		return "", false
	}
	if e, ok := idx[name]; ok && e.Size == st.Size() && e.ModTime.Equal(st.ModTime()) {
		return e.SHA256, true
	}
	fh, err := os.Open(filepath.Join(s.Dir, filepath.FromSlash(name)))
	if err != nil {
		return "", false
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", false
	}
	sum := hex.EncodeToString(h.Sum(nil))
	idx[name] = localEntry{st.Size(), st.ModTime(), sum}
	return sum, true
}

func (s *Syncer) fetchWithRetries(ctx context.Context, client *http.Client, f nodeapi.AudioFile) (e localEntry, err error) {
	tries := s.Retries
	if tries <= 0 {
		tries = 4
	}
	backoff := s.Backoff
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	for i := range tries {
		if i > 0 {
			select {
			case <-ctx.Done():
				return e, ctx.Err()
			case <-time.After(backoff << (i - 1)):
			}
		}
		var st os.FileInfo
		if st, err = s.fetch(ctx, client, f); err == nil {
			e.Size, e.ModTime, e.SHA256 = st.Size(), st.ModTime(), f.SHA256
			return e, nil
		}
	}
	return e, fmt.Errorf("%s: %w", f.Name, err)
}

// fetch downloads one file into a temporary file beside its place,
// verifies it, syncs it and renames it into place.
func (s *Syncer) fetch(ctx context.Context, client *http.Client, f nodeapi.AudioFile) (os.FileInfo, error) {
	dst := filepath.Join(s.Dir, filepath.FromSlash(f.Name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".part-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this is a no-op
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, f.Size+1))
	if err == nil && n != f.Size {
		err = fmt.Errorf("got %d bytes, the manifest says %d", n, f.Size)
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		err = ErrChecksum
	}
	if err == nil {
		// Asterisk runs as its own user and reads what the agent writes;
		// CreateTemp's 0600 would make every prompt unplayable.
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return nil, err
	}
	return os.Stat(dst)
}

// prune removes files the manifest no longer lists, and leftovers of
// interrupted downloads; it never leaves Dir.
func (s *Syncer) prune(want map[string]bool, idx localIndex) error {
	return filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil || rel == syncIndex {
			return nil
		}
		if !want[rel] || strings.HasPrefix(d.Name(), ".part-") {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("audio sync: remove %s: %w", rel, err)
			}
			delete(idx, filepath.ToSlash(rel))
		}
		return nil
	})
}

// Fetch brings one file into Dir unless Dir already holds it at its size:
// synthesised speech is named by a hash of what it says, so a file that
// is there is the file. Its name must be a plain file name.
func (s *Syncer) Fetch(ctx context.Context, f nodeapi.AudioFile) error {
	if !nameRE.MatchString(f.Name) {
		return fmt.Errorf("%w %q: want a plain file name", ErrBadName, f.Name)
	}
	dst := filepath.Join(s.Dir, f.Name)
	if st, err := os.Stat(dst); err == nil && st.Size() == f.Size {
		return nil
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Name, err)
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	_, err := s.fetchWithRetries(ctx, client, f)
	return err
}
