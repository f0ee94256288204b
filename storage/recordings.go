package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Recordings keeps the recordings calls made, in their own Store (a folder
// or an S3 prefix apart from the audio library, so they never reach a
// node's manifest). Nodes put them through the controller before they
// report a call's result; campaign managers download them by key.
type Recordings struct {
	Store Store
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
