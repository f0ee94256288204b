// Package speech renders the text a flow speaks into audio Asterisk
// plays: an Engine synthesises (flite on this machine, Amazon Polly in
// production), and a Renderer keeps each distinct sentence, named by a
// hash of engine, voice, language and text, in an audio store of its own,
// so that it is synthesised once however many calls say it. Nodes fetch
// the rendered file through a signed URL before they play it.
package speech

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/storage"
)

// Engine synthesises speech. The audio it returns is a WAV file of 16-bit
// PCM at any rate and channel count: the Renderer converts it to what
// Asterisk plays (8 kHz mono).
type Engine interface {
	// Name tells engines apart in the cache key ("flite", "polly-neural").
	Name() string
	Synthesize(ctx context.Context, voice, language, text string) ([]byte, error)
}

// Store is where rendered speech is kept: an unindexed storage.Folder or
// S3 store (one file per sentence: an index rewritten by every rendering
// would grow with every contact's name), apart from the campaign audio
// library (whose manifest every node syncs before it takes calls). List
// and Delete serve the retention sweep, which needs each object's
// modification time.
type Store interface {
	Put(ctx context.Context, key string, data []byte) (storage.Object, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	URL(ctx context.Context, key string, ttl time.Duration) (string, error)
	List(ctx context.Context) ([]storage.Object, error)
	Delete(ctx context.Context, key string) error
}

// MaxText bounds the text of one rendering (Polly's limit for one
// request).
const MaxText = 3000

// ErrText is text that cannot be spoken: empty or too long.
var ErrText = errors.New("speech: bad text")

// Renderer renders and caches speech; it implements xmlrpc.Speech.
type Renderer struct {
	Engine Engine
	Store  Store
	// URLTTL is how long a node may fetch a rendering; default 15 minutes.
	URLTTL time.Duration
	// Known bounds the in-memory index of renderings already stored;
	// default 100000 (about 15 MB).
	Known int
	// Limit bounds the syntheses running at once (a local engine runs on
	// the controller's cores); default the number of CPUs. Renderings
	// beyond it wait their turn.
	Limit int
	// Keep is how long a rendering no call has asked for is kept: its
	// text holds contact fields (names, dates, amounts), so it should not
	// outlive its use. Sweep deletes renderings older than Keep; a
	// rendering in use is rewritten every Keep/4, so one handed to a node
	// is never swept from under it. 0 keeps them for ever.
	Keep time.Duration
	// Clock is time.Now when nil (a test sets it).
	Clock func() time.Time

	group   singleflight.Group
	semOnce sync.Once
	sem     chan struct{}
	// Renderings run on a context of their own, so that they outlive a
	// caller that stops waiting; Close ends them.
	bgOnce sync.Once
	bg     context.Context
	stop   context.CancelFunc
	closed bool // guarded by mu
	wg     sync.WaitGroup
	mu     sync.Mutex
	known  map[string]known
	// Syntheses counts calls to the engine (a test reads it).
	syntheses int
}

// Syntheses returns how many times the engine was asked to synthesise.
func (r *Renderer) Syntheses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syntheses
}

// Key names a rendering in the store: a hash of everything that changes
// the audio.
func Key(engine, voice, language, text string) string {
	h := sha256.Sum256([]byte("elastidial-speech/1\x00" + engine + "\x00" + voice + "\x00" + language + "\x00" + text))
	return "tts/" + hex.EncodeToString(h[:]) + ".wav"
}

// Render returns the rendering of text, synthesising and storing it the
// first time it is asked for.
func (r *Renderer) Render(ctx context.Context, voice, language, text string) (nodeapi.AudioFile, error) {
	if text == "" || len(text) > MaxText {
		return nodeapi.AudioFile{}, fmt.Errorf("%w: %d characters; want 1 to %d", ErrText, len(text), MaxText)
	}
	key := Key(r.Engine.Name(), voice, language, text)
	obj, ok := r.lookup(key)
	if !ok {
		// The rendering outlives a caller that stops waiting (a call step
		// has seconds): it lands in the store for the next caller.
		ch := r.group.DoChan(key, func() (any, error) {
			r.bgOnce.Do(func() { r.bg, r.stop = context.WithCancel(context.Background()) })
			r.mu.Lock()
			if r.closed {
				r.mu.Unlock()
				return storage.Object{}, ErrClosed
			}
			r.wg.Add(1)
			r.mu.Unlock()
			defer r.wg.Done()
			lctx, cancel := context.WithTimeout(r.bg, renderTimeout)
			defer cancel()
			return r.load(lctx, key, voice, language, text)
		})
		select {
		case res := <-ch:
			if res.Err != nil {
				return nodeapi.AudioFile{}, res.Err
			}
			obj = res.Val.(storage.Object)
		case <-ctx.Done():
			return nodeapi.AudioFile{}, ctx.Err()
		}
	}
	ttl := r.URLTTL
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	u, err := r.Store.URL(ctx, key, ttl)
	if err != nil {
		return nodeapi.AudioFile{}, fmt.Errorf("speech: sign %s: %w", key, err)
	}
	return nodeapi.AudioFile{Name: key[len("tts/"):], Size: obj.Size, SHA256: obj.SHA256, URL: u}, nil
}

// ErrClosed is returned by a Renderer after Close.
var ErrClosed = errors.New("speech: renderer closed")

// Close ends the renderings in progress (a local engine's processes and
// their temporary files with them) and waits for them; later renderings
// fail with ErrClosed.
func (r *Renderer) Close() {
	r.bgOnce.Do(func() { r.bg, r.stop = context.WithCancel(context.Background()) })
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
}

// renderTimeout bounds one rendering, whoever waits for it.
const renderTimeout = time.Minute

// Prefetch renders text in the background, so that a call reaching it
// later finds it ready; errors are left for that call's Render to meet.
func (r *Renderer) Prefetch(voice, language, text string) {
	if text == "" || len(text) > MaxText {
		return
	}
	if _, ok := r.lookup(Key(r.Engine.Name(), voice, language, text)); !ok {
		go r.Render(context.Background(), voice, language, text)
	}
}

// load finds a rendering in the store (another controller, or this one
// before a restart, may have made it) or synthesises and stores it. One
// found is written again when renderings are swept, so that it counts as
// new: its age in the store is unknown, and it is about to be used.
func (r *Renderer) load(ctx context.Context, key, voice, language, text string) (storage.Object, error) {
	if rc, err := r.Store.Get(ctx, key); err == nil {
		data, rerr := io.ReadAll(io.LimitReader(rc, storage.MaxAudioBytes+1))
		rc.Close()
		if rerr == nil && len(data) > 44 {
			if r.Keep > 0 {
				obj, err := r.Store.Put(ctx, key, data)
				if err != nil {
					return storage.Object{}, fmt.Errorf("speech: keep %s: %w", key, err)
				}
				return r.remember(key, obj), nil
			}
			sum := sha256.Sum256(data)
			return r.remember(key, storage.Object{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}), nil
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storage.Object{}, fmt.Errorf("speech: read %s: %w", key, err)
	}
	r.semOnce.Do(func() { r.sem = make(chan struct{}, cmp.Or(r.Limit, runtime.NumCPU())) })
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return storage.Object{}, ctx.Err()
	}
	defer func() { <-r.sem }()
	r.mu.Lock()
	r.syntheses++
	r.mu.Unlock()
	raw, err := r.Engine.Synthesize(ctx, voice, language, text)
	if err != nil {
		return storage.Object{}, fmt.Errorf("speech: %s: %w", r.Engine.Name(), err)
	}
	_, wav, err := storage.Prepare("speech.wav", raw)
	if err != nil {
		return storage.Object{}, fmt.Errorf("speech: %s returned audio Asterisk cannot play: %w", r.Engine.Name(), err)
	}
	wav = to8k(wav)
	obj, err := r.Store.Put(ctx, key, wav)
	if err != nil {
		return storage.Object{}, fmt.Errorf("speech: store %s: %w", key, err)
	}
	return r.remember(key, obj), nil
}

// known is a rendering this Renderer stored or found, and when.
type known struct {
	obj storage.Object
	at  time.Time
}

func (r *Renderer) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// lookup is the rendering of key this Renderer knows to be in the store:
// with a sweep, only one stored or found less than Keep/4 ago.
func (r *Renderer) lookup(key string) (storage.Object, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.known[key]
	if ok && r.Keep > 0 && r.now().Sub(k.at) >= r.Keep/4 {
		delete(r.known, key)
		return storage.Object{}, false
	}
	return k.obj, ok
}

func (r *Renderer) remember(key string, o storage.Object) storage.Object {
	r.mu.Lock()
	defer r.mu.Unlock()
	limit := r.Known
	if limit <= 0 {
		limit = 100000
	}
	if r.known == nil || len(r.known) >= limit {
		r.known = map[string]known{} // start over; the store still has them
	}
	r.known[key] = known{obj: o, at: r.now()}
	return o
}

// Sweep deletes the renderings stored more than Keep before now, and
// returns how many. Any controller may sweep a shared store: one in use
// was rewritten less than Keep/4 ago (see lookup and load).
func (r *Renderer) Sweep(ctx context.Context, now time.Time) (int, error) {
	if r.Keep <= 0 {
		return 0, nil
	}
	objs, err := r.Store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("speech: sweep: %w", err)
	}
	n := 0
	for _, o := range objs {
		if !strings.HasPrefix(o.Key, "tts/") || o.Modified.IsZero() || !o.Modified.Before(now.Add(-r.Keep)) {
			continue
		}
		if err := r.Store.Delete(ctx, o.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("speech: sweep %s: %w", o.Key, err)
		}
		n++
	}
	return n, nil
}

// to8k turns a 16 kHz mono WAV (which storage.Prepare keeps as it is)
// into 8 kHz: Asterisk's wav format is 8 kHz signed linear.
func to8k(wav []byte) []byte {
	if len(wav) < 44 || !bytes.Equal(wav[0:4], []byte("RIFF")) {
		return wav
	}
	rate := int(wav[24]) | int(wav[25])<<8 | int(wav[26])<<16 | int(wav[27])<<24
	if rate == 8000 {
		return wav
	}
	return storage.ConvertWAV8k(wav)
}
