package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// Queue is the durable local queue of call results: one JSON file per
// result under Dir, written to a temporary name, fsync'd, renamed and the
// folder fsync'd, so a result survives a crash of the agent or the machine
// as soon as Put returns. Deliver sends them with backoff and removes each
// once the controller has it (or says it never will).
type Queue struct {
	Dir string
	Log *slog.Logger

	mu     sync.Mutex
	wake   chan struct{}
	count  int
	held   map[string]int // call id → results of it queued
	inited bool
}

// Open creates the folder and counts what is waiting.
func (q *Queue) Open() error {
	if err := os.MkdirAll(q.Dir, 0o750); err != nil {
		return fmt.Errorf("result queue: %w", err)
	}
	names, err := q.list()
	if err != nil {
		return err
	}
	// The calls the results are of stay the node's until delivered
	// (Held), across a restart too.
	held := map[string]int{}
	for _, n := range names {
		var r nodeapi.ResultRequest
		if data, err := os.ReadFile(filepath.Join(q.Dir, n)); err == nil && json.Unmarshal(data, &r) == nil {
			held[r.CallID]++
		}
	}
	q.mu.Lock()
	q.count = len(names)
	q.held = held
	q.wake = make(chan struct{}, 1)
	q.inited = true
	q.mu.Unlock()
	// Leftover temporaries are results whose Put never returned.
	tmps, _ := filepath.Glob(filepath.Join(q.Dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return nil
}

// Pending returns how many results wait for delivery.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

// Held appends to ids the calls whose results wait for delivery.
func (q *Queue) Held(ids []string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	for id := range q.held {
		ids = append(ids, id)
	}
	return ids
}

func (q *Queue) list() ([]string, error) {
	ents, err := os.ReadDir(q.Dir)
	if err != nil {
		return nil, fmt.Errorf("result queue: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Put stores r durably; it is on disk when Put returns nil.
func (q *Queue) Put(r nodeapi.ResultRequest) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("result queue: encode: %w", err)
	}
	sum := sha256.Sum256([]byte(r.CallID + "\x00" + r.Token))
	name := fmt.Sprintf("%020d-%s.json", time.Now().UnixNano(), hex.EncodeToString(sum[:8]))
	if err := writeDurable(filepath.Join(q.Dir, name), data); err != nil {
		return fmt.Errorf("result queue: %w", err)
	}
	q.mu.Lock()
	q.count++
	if q.held == nil {
		q.held = map[string]int{}
	}
	q.held[r.CallID]++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeDurable writes data to path through a temporary file, fsync'd and
// renamed into place, then fsyncs the folder: the file is whole on disk,
// or absent, when it returns.
func writeDurable(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := firstErr(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// permanent reports faults after which retrying can never help.
func permanent(err error) bool {
	for _, c := range []int{nodeapi.FaultStaleLease, nodeapi.FaultForbidden, nodeapi.FaultNotFound,
		nodeapi.FaultInvalidParams, nodeapi.FaultParse, nodeapi.FaultTooLarge} {
		if IsFault(err, c) {
			return true
		}
	}
	return false
}

// Deliver sends queued results in order until ctx ends, backing off
// (1s doubling to 30s) while the controller is unreachable.
func (q *Queue) Deliver(ctx context.Context, ctl Controller) error {
	backoff := time.Second
	for {
		names, err := q.list()
		if err != nil {
			return err
		}
		failed := false
		for _, n := range names {
			if ctx.Err() != nil {
				return nil
			}
			path := filepath.Join(q.Dir, n)
			data, err := os.ReadFile(path)
			if err != nil {
				q.Log.Error("result queue read", "file", n, "err", err)
				continue
			}
			var r nodeapi.ResultRequest
			if err := json.Unmarshal(data, &r); err != nil {
				// Keep the bytes for a human; never loop on them.
				q.Log.Error("result queue: unreadable result set aside", "file", n, "err", err)
				os.Rename(path, path+".bad")
				q.dec("")
				continue
			}
			local := r.Recording // a path on this node until uploaded
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err = q.uploadRecording(cctx, ctl, &r)
			if err == nil {
				_, err = ctl.Result(cctx, r)
			}
			cancel()
			switch {
			case err == nil:
			case permanent(err):
				q.Log.Warn("result dropped by controller", "call", r.CallID, "disposition", r.Disposition, "err", err)
			default:
				q.Log.Warn("result delivery failed, will retry", "call", r.CallID, "pending", q.Pending(), "retry_in", backoff, "err", err)
				failed = true
			}
			if failed {
				break
			}
			if strings.HasPrefix(local, "/") {
				os.Remove(local) // kept in the controller's store now
			}
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				q.Log.Error("result queue remove", "file", n, "err", err)
			}
			q.dec(r.CallID)
			backoff = time.Second
		}
		wait := 5 * time.Second
		if failed {
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
			if failed {
				// New results do not cut a backoff short.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		case <-time.After(wait):
		}
	}
}

// dec forgets a result of callID taken out of the queue.
func (q *Queue) dec(callID string) {
	q.mu.Lock()
	if q.count > 0 {
		q.count--
	}
	if n := q.held[callID]; n > 1 {
		q.held[callID] = n - 1
	} else {
		delete(q.held, callID) // a no-op on a nil map
	}
	q.mu.Unlock()
}

// uploadRecording puts the recording a result names on this node's disk
// (an absolute path) into the controller's store and names it there by its
// key instead. The result is delivered only once the recording is stored,
// so a node drains (pending results reach zero) only after its recordings
// are safe. A recording Asterisk never wrote is reported as none.
func (q *Queue) uploadRecording(ctx context.Context, ctl Controller, r *nodeapi.ResultRequest) error {
	local := r.Recording
	if !strings.HasPrefix(local, "/") {
		return nil
	}
	f, err := os.Open(local)
	if errors.Is(err, os.ErrNotExist) {
		q.Log.Warn("recording named in a result is not on disk", "call", r.CallID, "path", local)
		r.Recording = ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	key := nodeapi.RecordingKey(r.CallID, r.Token)
	if err := ctl.PutRecording(ctx, key, f, st.Size()); permanent(err) {
		// Refused for good (not a WAV Asterisk wrote, over the size cap):
		// the result itself must still be delivered.
		q.Log.Error("recording refused by the controller: the result goes without it", "call", r.CallID, "err", err)
		r.Recording = ""
		return nil
	} else if err != nil {
		return err
	}
	r.Recording = key
	return nil
}
