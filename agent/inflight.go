package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/elastidial/elastidial/agent/ami"
	"github.com/elastidial/elastidial/nodeapi"
)

// inflight is the durable list of calls the agent has originated and not
// yet settled: one file per call under dir, written and fsync'd before the
// Originate, removed once the call's result is queued. An agent that dies
// leaves its calls ringing in Asterisk; the next agent on the node reads
// what its predecessor left, ends those calls and reports them before it
// takes any new work, so the controller never hands the contact out again
// while the first attempt may still be live.
type inflight struct{ dir string }

// journaled is one call the agent had in flight.
type journaled struct {
	Call    nodeapi.Call `json:"call"`
	Started int64        `json:"started"` // Unix seconds
	// Channel is the Uniqueid of the call's channel: the call id, or
	// another after a failover to the next trunk ("" in older records).
	Channel string `json:"channel,omitempty"`
}

// channel is the Uniqueid of a journaled call's channel.
func (e journaled) channel() string {
	if e.Channel != "" {
		return e.Channel
	}
	return e.Call.CallID
}

func (j inflight) path(callID string) string {
	return filepath.Join(j.dir, strings.NewReplacer("/", "_", "\\", "_").Replace(callID)+".json")
}

func (j inflight) open() error {
	if err := os.MkdirAll(j.dir, 0o750); err != nil {
		return fmt.Errorf("in-flight calls: %w", err)
	}
	return nil
}

// add records c durably; it is on disk when add returns nil.
func (j inflight) add(c nodeapi.Call, channel string, started time.Time) error {
	data, err := json.Marshal(journaled{Call: c, Started: started.Unix(), Channel: channel})
	if err != nil {
		return err
	}
	if err := writeDurable(j.path(c.CallID), data); err != nil {
		return fmt.Errorf("in-flight calls: %w", err)
	}
	return nil
}

// remove forgets a settled call.
func (j inflight) remove(callID string) error {
	if err := os.Remove(j.path(callID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("in-flight calls: %w", err)
	}
	return nil
}

// list returns every call left in flight.
func (j inflight) list() ([]journaled, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []journaled
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("in-flight calls: %w", err)
		}
		var e journaled
		if err := json.Unmarshal(b, &e); err != nil || e.Call.CallID == "" {
			// A torn write never reached Originate (the rename comes first).
			os.Remove(n)
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// settleOrphans ends the calls an earlier agent on this node left in
// flight: each one still live in Asterisk is hung up and waited out, and
// each is reported (cut off when it had been answered, else no answer), so
// its contact goes back to its campaign by the retry policy. Channels of
// our dialplan that no journal names are hung up too. It returns once
// Asterisk holds none of them.
func (a *Agent) settleOrphans(ctx context.Context, channels []ami.Message) error {
	left, err := a.inflight.list()
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	a.mu.Lock()
	for id, cs := range a.calls {
		ours[id], ours[cs.uniqueid()] = true, true
	}
	a.mu.Unlock()
	live := map[string]ami.Message{}
	for _, ch := range channels {
		live[ch.Get("Uniqueid")] = ch
	}
	var hangup []string
	var settled []nodeapi.ResultRequest
	for _, e := range left {
		if ours[e.Call.CallID] {
			continue
		}
		disp := nodeapi.DispNoAnswer
		if ch, ok := live[e.channel()]; ok {
			hangup = append(hangup, ch.Get("Channel"))
			if ch.Get("ChannelState") == "6" { // Up: answered
				disp = nodeapi.DispCutOff
			}
		}
		a.log.Warn("call left in flight by an earlier agent: ending it", "call", e.Call.CallID, "live", live[e.channel()] != nil, "disposition", disp)
		settled = append(settled, nodeapi.ResultRequest{CallID: e.Call.CallID, Token: e.Call.Token, Disposition: disp,
			StartedAt: e.Started, Path: []string{}, Tags: map[string]string{}})
	}
	for uid, ch := range live {
		if ours[uid] || slices.Contains(hangup, ch.Get("Channel")) {
			continue
		}
		if ctxName := ch.Get("Context"); ctxName == "elastidial-outbound" || ctxName == "elastidial-hangup" {
			a.log.Warn("channel of our dialplan that no agent tracks: hanging up", "channel", ch.Get("Channel"))
			hangup = append(hangup, ch.Get("Channel"))
		}
	}
	for _, name := range hangup {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		a.ami.Action(cctx, ami.M("Action", "Hangup", "Channel", name, "Cause", "16"))
		cancel()
	}
	// Wait until Asterisk has let go of every one of them.
	deadline := a.clock.Now().Add(30 * time.Second)
	for len(hangup) > 0 && a.clock.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, list, err := a.ami.List(cctx, ami.M("Action", "CoreShowChannels"))
		cancel()
		if err != nil {
			return fmt.Errorf("orphaned calls: %w", err)
		}
		still := hangup[:0]
		for _, ch := range list {
			if slices.Contains(hangup, ch.Get("Channel")) {
				still = append(still, ch.Get("Channel"))
			}
		}
		hangup = still
		if len(hangup) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-a.clock.After(200 * time.Millisecond):
			}
		}
	}
	if len(hangup) > 0 {
		return fmt.Errorf("orphaned calls: %d channels still up after 30s: %v", len(hangup), hangup)
	}
	// Only now, with Asterisk holding none of them, may their contacts be
	// dialled again: report them.
	for _, r := range settled {
		r.EndedAt = a.clock.Now().Unix()
		if err := a.cfg.Queue.Put(r); err != nil {
			return fmt.Errorf("orphaned call %s: %w", r.CallID, err)
		}
		if err := a.inflight.remove(r.CallID); err != nil {
			return err
		}
	}
	return nil
}
