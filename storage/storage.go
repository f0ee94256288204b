// Package storage is the campaign audio library: files Asterisk can play,
// kept in a folder (the embedded default) or S3, listed in a versioned
// manifest that every node must hold before it takes calls, and handed to
// nodes through short-lived signed URLs so they need no credentials.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// Object is one stored audio file.
type Object struct {
	Key    string `json:"key"` // "set/name.ext"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	// Modified is when the object was last written, as an unindexed
	// store's List gives it (a retention sweep's question); zero
	// elsewhere.
	Modified time.Time `json:"-"`
}

// Store keeps the bytes. Keys are already checked by the library.
type Store interface {
	Put(ctx context.Context, key string, data []byte) (Object, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context) ([]Object, error)
	// URL is a link a node can GET the object from until ttl passes.
	URL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Errors callers branch on.
var (
	ErrNotFound = errors.New("audio file not found")
	ErrBadName  = errors.New("bad audio name")
	ErrInUse    = errors.New("audio file in use")
)

var (
	setRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,99}\.(wav|ulaw|alaw|gsm|sln16)$`)
)

// Playable lists the extensions Asterisk plays without a transcoding
// module beyond the node image's.
var Playable = []string{".wav", ".ulaw", ".alaw", ".gsm", ".sln16"}

// CheckKey validates "set/name.ext": lower-case letters, digits, _ and -,
// one folder, a playable extension. No path tricks get through.
func CheckKey(key string) error {
	set, name, ok := strings.Cut(key, "/")
	switch {
	case !ok || !setRE.MatchString(set):
		return fmt.Errorf("%w %q: the set must be 1 to 64 lower-case letters, digits, _ or -", ErrBadName, key)
	case !nameRE.MatchString(name):
		return fmt.Errorf("%w %q: the file name must be lower-case letters, digits, _ or - ending in %s", ErrBadName, key, strings.Join(Playable, ", "))
	}
	return nil
}

// Cache is a shared cache in front of manifests (memcached in
// production). A miss or an error only costs a rebuild.
type Cache interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte, ttl time.Duration) error
}

// Library is the audio library over a Store, with its manifest.
type Library struct {
	Store   Store
	URLTTL  time.Duration // lifetime of signed URLs in manifests; 15m
	ListTTL time.Duration // how long a listing is trusted; 5s (other controllers may change the library)
	Cache   Cache         // optional: manifests by version
	Now     func() time.Time
	// MaxRequestBytes bounds one upload request, all its files together;
	// 0 means MaxRequestBytes.
	MaxRequestBytes int64
	// InUse, when set, names what uses a prompt ("set/name", no
	// extension), e.g. a campaign's current flow, or answers "": a prompt
	// in use cannot lose its last playable file.
	InUse func(ctx context.Context, prompt string) (string, error)

	mu       sync.Mutex
	cached   []Object // nil until listed; reset by every change
	version  string
	listedAt time.Time
}

func (l *Library) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Put validates, converts if needed, and stores an upload.
func (l *Library) Put(ctx context.Context, set, filename string, data []byte) (Object, error) {
	name, data, err := Prepare(filename, data)
	if err != nil {
		return Object{}, err
	}
	key := set + "/" + name
	if err := CheckKey(key); err != nil {
		return Object{}, err
	}
	return l.put(ctx, key, data)
}

// put stores prepared bytes under a checked key.
func (l *Library) put(ctx context.Context, key string, data []byte) (Object, error) {
	o, err := l.Store.Put(ctx, key, data)
	l.invalidate()
	return o, err
}

// Delete removes a file.
func (l *Library) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if l.InUse != nil {
		prompt := strings.TrimSuffix(key, path.Ext(key))
		user, err := l.InUse(ctx, prompt)
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if user != "" {
			objs, _, err := l.List(ctx)
			if err != nil {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			other := slices.ContainsFunc(objs, func(o Object) bool {
				return o.Key != key && strings.TrimSuffix(o.Key, path.Ext(o.Key)) == prompt
			})
			if !other {
				return fmt.Errorf("%w: %s is played by %s; change that flow first", ErrInUse, key, user)
			}
		}
	}
	err := l.Store.Delete(ctx, key)
	l.invalidate()
	return err
}

func (l *Library) invalidate() {
	l.mu.Lock()
	l.cached, l.version = nil, ""
	l.mu.Unlock()
}

// List returns every file with the library version.
func (l *Library) List(ctx context.Context) ([]Object, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ttl := l.ListTTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	if l.cached == nil || l.now().Sub(l.listedAt) > ttl {
		objs, err := l.Store.List(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("list audio: %w", err)
		}
		slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
		h := sha256.New()
		for _, o := range objs {
			fmt.Fprintf(h, "%s %d %s\n", o.Key, o.Size, o.SHA256)
		}
		l.cached, l.version, l.listedAt = objs, hex.EncodeToString(h.Sum(nil))[:16], l.now()
		if l.cached == nil {
			l.cached = []Object{}
		}
	}
	return l.cached, l.version, nil
}

// Version is the manifest version: it changes whenever any file does.
func (l *Library) Version(ctx context.Context) (string, error) {
	_, v, err := l.List(ctx)
	return v, err
}

// Manifest is what audio.manifest serves: every file with a signed URL,
// unless the node already holds the current version.
func (l *Library) Manifest(ctx context.Context, have string) (nodeapi.ManifestResponse, error) {
	objs, v, err := l.List(ctx)
	if err != nil {
		return nodeapi.ManifestResponse{}, err
	}
	if have == v {
		return nodeapi.ManifestResponse{Version: v, Unchanged: true, Files: []nodeapi.AudioFile{}}, nil
	}
	ttl := l.URLTTL
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	// Every node asks for the same version after an upload: signing each
	// URL once per version, not per node, is what the cache is for. The
	// key carries the version, so an update is never served stale, and the
	// entry expires well before its URLs do.
	key := "elastidial:manifest:" + v
	if l.Cache != nil {
		if b, err := l.Cache.Get(key); err == nil {
			var m nodeapi.ManifestResponse
			if json.Unmarshal(b, &m) == nil && m.Version == v {
				return m, nil
			}
		}
	}
	m := nodeapi.ManifestResponse{Version: v, Files: make([]nodeapi.AudioFile, len(objs))}
	for i, o := range objs {
		u, err := l.Store.URL(ctx, o.Key, ttl)
		if err != nil {
			return nodeapi.ManifestResponse{}, fmt.Errorf("sign %s: %w", o.Key, err)
		}
		m.Files[i] = nodeapi.AudioFile{Name: o.Key, Size: o.Size, SHA256: o.SHA256, URL: u}
	}
	if l.Cache != nil {
		if b, err := json.Marshal(m); err == nil {
			_ = l.Cache.Set(key, b, ttl/3)
		}
	}
	return m, nil
}

// Exists reports whether a prompt ("set/name", no extension) is in the
// library in any playable format: the flow validator's question.
func (l *Library) Exists(ctx context.Context, prompt string) (bool, error) {
	objs, _, err := l.List(ctx)
	if err != nil {
		return false, err
	}
	for _, ext := range Playable {
		if _, ok := slices.BinarySearchFunc(objs, prompt+ext, func(o Object, k string) int { return strings.Compare(o.Key, k) }); ok {
			return true, nil
		}
	}
	return false, nil
}
