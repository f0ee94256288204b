package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Recordings keeps the recordings calls made, in their own Store (a folder
// or an S3 prefix apart from the audio library, so they never reach a
// node's manifest). Nodes put them through the controller before they
// report a call's result; campaign managers download them by key.
type Recordings struct {
	Store Store
	// SignKey signs download URLs (SignedPath, SignedHandler); without it
	// no signed URL is made or accepted.
	SignKey []byte
	Now     func() time.Time // the clock; time.Now when nil
}

func (r *Recordings) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// badRecording is a recording refused for what it is (name, size, format),
// as opposed to a store that failed: its BadRecording method tells the
// controller to answer 400, and the node delivers the result without it.
type badRecording struct{ error }

func (badRecording) BadRecording() {}

func (e badRecording) Error() string { return "bad recording " + e.error.Error() }
func (e badRecording) Unwrap() error { return e.error }

// MaxRecording bounds one recording: 30 minutes of 8 kHz 16-bit audio.
const MaxRecording = 30 * 60 * 16000

// Put stores one recording under key ("calls/<name>.wav"), checked as a
// playable WAV.
func (r *Recordings) Put(ctx context.Context, key string, data []byte) error {
	if !strings.HasPrefix(key, "calls/") {
		return badRecording{fmt.Errorf("%q: recordings live under calls/", key)}
	}
	if err := CheckKey(key); err != nil {
		return badRecording{err}
	}
	if len(data) > MaxRecording+44 {
		return badRecording{fmt.Errorf("%s: %d bytes, over %d", key, len(data), MaxRecording+44)}
	}
	if _, err := checkWAV(data); err != nil {
		return badRecording{fmt.Errorf("%s: %w", key, err)}
	}
	if _, err := r.Store.Put(ctx, key, data); err != nil {
		return fmt.Errorf("recording %s: %w", key, err)
	}
	return nil
}

// Handler serves GET {key} (mount it with the prefix stripped): the
// recording as audio/wav.
func (r *Recordings) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		key := strings.TrimPrefix(req.URL.Path, "/")
		if err := CheckKey(key); err != nil || !strings.HasPrefix(key, "calls/") {
			jsonError(w, http.StatusNotFound, "no such recording")
			return
		}
		rc, err := r.Store.Get(req.Context(), key)
		if errors.Is(err, ErrNotFound) {
			jsonError(w, http.StatusNotFound, "no such recording")
			return
		}
		if err != nil {
			jsonError(w, http.StatusServiceUnavailable, "recording store unavailable")
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "audio/wav")
		io.Copy(w, rc)
	})
}

// SignedPrefix is where signed recording URLs are served.
const SignedPrefix = "/recordings/"

// Signed-URL errors.
var (
	ErrURLExpired   = errors.New("the link has expired; ask the API for a new one")
	ErrURLSignature = errors.New("the link's signature does not match")
)

func (r *Recordings) urlMAC(path string, expires int64) []byte {
	m := hmac.New(sha256.New, r.SignKey)
	fmt.Fprintf(m, "GET\n%s\n%d", path, expires)
	return m.Sum(nil)
}

// SignedPath is a link to a recording that anyone holding it may GET
// until expires, without an API token: SignedPrefix + key +
// "?expires=<unix>&sig=<hex HMAC-SHA256 over method, path and expiry>".
func (r *Recordings) SignedPath(key string, expires time.Time) string {
	path := SignedPrefix + key
	exp := expires.Unix()
	return path + "?expires=" + strconv.FormatInt(exp, 10) + "&sig=" + hex.EncodeToString(r.urlMAC(path, exp))
}

// CheckSigned verifies a signed link's path and query at the clock's now.
func (r *Recordings) CheckSigned(path, expires, sig string) error {
	exp, err1 := strconv.ParseInt(expires, 10, 64)
	got, err2 := hex.DecodeString(sig)
	if len(r.SignKey) == 0 || err1 != nil || err2 != nil || !hmac.Equal(got, r.urlMAC(path, exp)) {
		return ErrURLSignature
	}
	if !r.now().Before(time.Unix(exp, 0)) {
		return ErrURLExpired
	}
	return nil
}

// SignedHandler serves GET SignedPrefix+key?expires=&sig= (mount it at
// SignedPrefix, unstripped): the recording, if the link is genuine and
// unexpired; 403 otherwise, naming which.
func (r *Recordings) SignedHandler() http.Handler {
	inner := r.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		if err := r.CheckSigned(req.URL.Path, q.Get("expires"), q.Get("sig")); err != nil {
			http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "private, no-store")
		http.StripPrefix(strings.TrimSuffix(SignedPrefix, "/"), inner).ServeHTTP(w, req)
	})
}

// RecordingIndex is what the retention sweeper needs of the results
// store: the recordings past their campaign's retention at now, and a
// way to drop an attempt's reference once its file is gone.
type RecordingIndex interface {
	ExpiredRecordings(ctx context.Context, now time.Time, limit int) ([]ExpiredRecording, error)
	ForgetRecording(ctx context.Context, callID, key string) error
}

// ExpiredRecording is one recording past its retention.
type ExpiredRecording struct {
	CallID string
	Key    string
}

// Sweep deletes up to limit recordings past their retention at now:
// first the file (a file already gone is fine), then the attempt's
// reference, so a crash between the two leaves a reference to retry,
// never a file nobody knows of. It returns how many it deleted.
func (r *Recordings) Sweep(ctx context.Context, idx RecordingIndex, now time.Time, limit int) (int, error) {
	ex, err := idx.ExpiredRecordings(ctx, now, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ex {
		if err := r.Store.Delete(ctx, e.Key); err != nil && !errors.Is(err, ErrNotFound) {
			return n, fmt.Errorf("delete recording %s: %w", e.Key, err)
		}
		if err := idx.ForgetRecording(ctx, e.CallID, e.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
