package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Folder keeps audio in a local folder, the embedded default. Each file's
// size and SHA-256 are kept in an index beside them, so listing never
// rehashes. Nodes download through URLs signed with Secret and served by
// Handler at BaseURL.
type Folder struct {
	Dir     string
	BaseURL string // e.g. http://controller:8080/audio/
	Secret  []byte
	Now     func() time.Time // time.Now when nil
	// Unindexed keeps no index: Put and Delete cost the same however many
	// files there are (the index is rewritten whole by each), and List
	// walks the folder, giving each file's size and modification time but
	// no SHA-256. For stores that are written far more than listed, such as
	// rendered speech, one file per sentence.
	Unindexed bool

	mu sync.Mutex
}

var _ Store = (*Folder)(nil)

const indexName = ".index.json"

func (f *Folder) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Folder) path(key string) string { return filepath.Join(f.Dir, filepath.FromSlash(key)) }

func (f *Folder) readIndex() (map[string]Object, error) {
	idx := map[string]Object{}
	b, err := os.ReadFile(filepath.Join(f.Dir, indexName))
	if errors.Is(err, os.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("audio index %s is corrupt: %w", filepath.Join(f.Dir, indexName), err)
	}
	return idx, nil
}

func (f *Folder) writeIndex(idx map[string]Object) error {
	b, _ := json.MarshalIndent(idx, "", " ")
	return writeAtomic(filepath.Join(f.Dir, indexName), b)
}

// writeAtomic writes a temporary file beside path, syncs it and renames it
// over path: a reader sees the old file or the new one, never half of one.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Put stores a file and records it in the index.
func (f *Folder) Put(_ context.Context, key string, data []byte) (Object, error) {
	if err := CheckKey(key); err != nil {
		return Object{}, err
	}
	sum := sha256.Sum256(data)
	o := Object{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if f.Unindexed {
		if err := writeAtomic(f.path(key), data); err != nil {
			return Object{}, fmt.Errorf("store %s: %w", key, err)
		}
		o.Modified = f.now()
		return o, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := writeAtomic(f.path(key), data); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", key, err)
	}
	idx, err := f.readIndex()
	if err != nil {
		return Object{}, err
	}
	idx[key] = o
	return o, f.writeIndex(idx)
}

// Get opens a file.
func (f *Folder) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	fh, err := os.Open(f.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return fh, err
}

// Delete removes a file.
func (f *Folder) Delete(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if f.Unindexed {
		err := os.Remove(f.path(key))
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, err := f.readIndex()
	if err != nil {
		return err
	}
	if _, ok := idx[key]; !ok {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	delete(idx, key)
	if err := f.writeIndex(idx); err != nil {
		return err
	}
	return os.Remove(f.path(key))
}

// List returns the indexed files, or every file of an unindexed folder.
func (f *Folder) List(context.Context) ([]Object, error) {
	if f.Unindexed {
		return f.walk()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, err := f.readIndex()
	if err != nil {
		return nil, err
	}
	out := make([]Object, 0, len(idx))
	for _, o := range idx {
		out = append(out, o)
	}
	return out, nil
}

// URL signs a download link valid for ttl.
func (f *Folder) URL(_ context.Context, key string, ttl time.Duration) (string, error) {
	if f.BaseURL == "" || len(f.Secret) == 0 {
		return "", errors.New("folder store: BaseURL and Secret are required to sign URLs")
	}
	exp := strconv.FormatInt(f.now().Add(ttl).Unix(), 10)
	return strings.TrimSuffix(f.BaseURL, "/") + "/" + key + "?exp=" + exp + "&sig=" + f.sign(key, exp), nil
}

func (f *Folder) sign(key, exp string) string {
	m := hmac.New(sha256.New, f.Secret)
	m.Write([]byte("audio:" + key + ":" + exp))
	return hex.EncodeToString(m.Sum(nil))
}

// Handler serves signed downloads; mount it with the prefix stripped, e.g.
// http.StripPrefix("/audio/", folder.Handler()).
func (f *Folder) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		q := r.URL.Query()
		exp, sig := q.Get("exp"), q.Get("sig")
		if err := CheckKey(key); err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		until, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || subtle.ConstantTimeCompare([]byte(sig), []byte(f.sign(key, exp))) != 1 {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		if f.now().Unix() > until {
			http.Error(w, "link expired; fetch a new manifest", http.StatusForbidden)
			return
		}
		fh, err := os.Open(f.path(key))
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer fh.Close()
		st, err := fh.Stat()
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", st.ModTime(), fh)
	})
}

// URLBase joins a controller URL and the download path.
func URLBase(controller string) string {
	u, err := url.JoinPath(controller, "audio/")
	if err != nil {
		return strings.TrimSuffix(controller, "/") + "/audio/"
	}
	return u
}

// walk lists an unindexed folder's files (not the temporary ones of
// writes in progress), without their SHA-256.
func (f *Folder) walk() ([]Object, error) {
	out := []Object{}
	err := filepath.WalkDir(f.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed meanwhile, or no folder yet
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(f.Dir, path)
		if err != nil {
			return err
		}
		out = append(out, Object{Key: filepath.ToSlash(rel), Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.Dir, err)
	}
	return out, nil
}
