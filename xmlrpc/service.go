package xmlrpc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/nodeapi"
)

// Nodes is the controller's node registry.
type Nodes interface {
	Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error)
	Heartbeat(ctx context.Context, nodeID string, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error)
}

// Dialer leases calls and records results (the campaign store). Errors
// that callers should see as faults are *Fault.
type Dialer interface {
	Lease(ctx context.Context, nodeID string, max int) ([]nodeapi.Call, error)
	Record(ctx context.Context, nodeID string, r nodeapi.ResultRequest) (recorded bool, err error)
}

// Failover moves a live call refused as congested to the next trunk of
// its group (the campaign store); optional beside Dialer.
type Failover interface {
	Failover(ctx context.Context, nodeID string, r nodeapi.FailoverRequest) (nodeapi.FailoverResponse, error)
}

// Trunks serves the trunk configuration nodes write into PJSIP.
type Trunks interface {
	Trunks(ctx context.Context) (nodeapi.TrunksResponse, error)
	Version(ctx context.Context) (string, error) // "" when nodes configure no trunk
}

// Audio serves the audio manifest.
type Audio interface {
	Version(ctx context.Context) (string, error)
	Manifest(ctx context.Context, have string) (nodeapi.ManifestResponse, error)
}

// MaxLeasePerCall bounds dialer.next.
const MaxLeasePerCall = 500

// Service is the node-facing API. Any dependency left nil leaves its
// methods out (they answer "unknown method").
type Service struct {
	Secret []byte // cluster secret nodes present to register
	Nodes  Nodes
	Dialer Dialer
	Flows  *Flows
	Audio  Audio
	Trunks Trunks // nil: node.trunks is not served
	Speech Speech // nil: speech in flows is never rendered (the step fails)
	// HTTP makes flows' http requests (flowhttp.Client); nil sends every
	// http state to its failed branch.
	HTTP flow.Fetcher
}

type nodeCtxKey struct{}

// NodeID returns the authenticated node of a call.
func NodeID(ctx context.Context) string {
	id, _ := ctx.Value(nodeCtxKey{}).(string)
	return id
}

// Token returns the credential of a node: its id and an HMAC of it, so
// that any controller with the secret can check it without state.
func (s *Service) Token(nodeID string) string { return s.TokenFor(nodeID, 0) }

// TokenFor returns the credential of a node's registration number epoch:
// the id, the epoch and an HMAC of both. The registry refuses it once the
// node has registered again (nodeapi.EpochFrom); epoch 0 is never checked.
func (s *Service) TokenFor(nodeID string, epoch int64) string {
	if epoch == 0 {
		return nodeID + "." + s.mac(nodeID)
	}
	e := strconv.FormatInt(epoch, 10)
	return nodeID + "." + e + "." + s.mac(nodeID+"#"+e)
}

func (s *Service) mac(nodeID string) string {
	m := hmac.New(sha256.New, s.Secret)
	m.Write([]byte("elastidial-node:" + nodeID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// LeaseToken is the lease token a node receives for call c: the store's
// token and an HMAC binding it to the node, the call, its campaign and flow
// version. call.step checks it without a database read, so only the node
// that leased a call can run its flow (and read its prompts and transfer
// targets); call.result hands the store's part to the store, which checks
// it against the lease and its node.
func (s *Service) LeaseToken(nodeID string, c nodeapi.Call) string {
	return c.Token + "." + s.leaseMAC(nodeID, c.CallID, c.CampaignID, c.FlowVersion, c.Token)
}

func (s *Service) leaseMAC(nodeID, callID, campaignID string, version int, token string) string {
	m := hmac.New(sha256.New, s.Secret)
	m.Write([]byte("elastidial-lease:" + nodeID + "\n" + callID + "\n" + campaignID + "\n" + strconv.Itoa(version) + "\n" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// storeToken is the store's part of a lease token (all of an unsigned one).
func storeToken(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[:i]
	}
	return token
}

// checkLease answers a fault unless token is the lease token minted for
// this node's call in this campaign and flow version.
func (s *Service) checkLease(ctx context.Context, callID, token, campaignID string, version int) error {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || subtle.ConstantTimeCompare([]byte(token[i+1:]), []byte(s.leaseMAC(NodeID(ctx), callID, campaignID, version, token[:i]))) != 1 {
		return faultf(nodeapi.FaultForbidden, "call %q was not leased to this node in campaign %q, flow version %d", clip(callID), clip(campaignID), version)
	}
	return nil
}

// parseToken checks a node token and returns the node and epoch it names.
func (s *Service) parseToken(cred string) (id string, epoch int64, ok bool) {
	i := strings.LastIndexByte(cred, '.')
	if i <= 0 {
		return "", 0, false
	}
	body, mac := cred[:i], cred[i+1:]
	if j := strings.LastIndexByte(body, '.'); j > 0 {
		if e, err := strconv.ParseInt(body[j+1:], 10, 64); err == nil && e > 0 &&
			subtle.ConstantTimeCompare([]byte(mac), []byte(s.mac(body[:j]+"#"+body[j+1:]))) == 1 {
			return body[:j], e, true
		}
	}
	if subtle.ConstantTimeCompare([]byte(mac), []byte(s.mac(body))) == 1 {
		return body, 0, true
	}
	return "", 0, false
}

// authorize checks the Bearer credential: the cluster secret for
// node.register, a node token for everything else.
func (s *Service) authorize(r *http.Request, method string) (context.Context, error) {
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || cred == "" {
		return nil, faultf(nodeapi.FaultUnauthorized, "send 'Authorization: Bearer <credential>'")
	}
	if method == nodeapi.MethodRegister {
		if len(s.Secret) == 0 || subtle.ConstantTimeCompare([]byte(cred), s.Secret) != 1 {
			return nil, faultf(nodeapi.FaultUnauthorized, "wrong cluster secret")
		}
		return r.Context(), nil
	}
	id, epoch, ok := s.parseToken(cred)
	if !ok {
		return nil, faultf(nodeapi.FaultUnauthorized, "not a valid node token; register again")
	}
	return nodeapi.WithEpoch(context.WithValue(r.Context(), nodeCtxKey{}, id), epoch), nil
}

// Server returns the XML-RPC server with the service's methods.
func (s *Service) Server() *Server {
	srv := NewServer()
	srv.Authorize = s.authorize
	if s.Nodes != nil {
		srv.Register(nodeapi.MethodRegister, "Registers a node: instance id, addresses, capacity, version → node id, token, heartbeat interval, audio version.", []string{"struct", "struct"}, s.register)
		srv.Register(nodeapi.MethodHeartbeat, "Reports a node's load and readiness; answers its commands (drain, capacity, audio version).", []string{"struct", "struct"}, s.heartbeat)
	}
	if s.Dialer != nil {
		srv.Register(nodeapi.MethodNext, "Leases up to free calls to place now.", []string{"struct", "struct"}, s.next)
		srv.Register(nodeapi.MethodResult, "Records the result of one call; a stale lease token is refused.", []string{"struct", "struct"}, s.result)
	}
	if f, ok := s.Dialer.(Failover); ok && s.Dialer != nil {
		srv.Register(nodeapi.MethodFailover, "Moves a call the carrier refused as congested to the next trunk of its group: → the trunk to dial now, or \"\".", []string{"struct", "struct"},
			func(ctx context.Context, params []any) (any, error) {
				var req nodeapi.FailoverRequest
				if err := Params(params, &req); err != nil {
					return nil, err
				}
				if req.CallID == "" || req.Token == "" {
					return nil, faultf(nodeapi.FaultInvalidParams, "call_id and token are required")
				}
				req.Token = storeToken(req.Token)
				return f.Failover(ctx, NodeID(ctx), req)
			})
	}
	if s.Trunks != nil {
		srv.Register(nodeapi.MethodTrunks, "Returns the carrier trunks nodes configure in PJSIP, and their version.", []string{"struct", "struct"},
			func(ctx context.Context, params []any) (any, error) {
				var req nodeapi.TrunksRequest
				if err := Params(params, &req); err != nil {
					return nil, err
				}
				resp, err := s.Trunks.Trunks(ctx)
				if err != nil {
					return nil, err
				}
				if resp.Trunks == nil {
					resp.Trunks = []nodeapi.TrunkConfig{}
				}
				return resp, nil
			})
	}
	if s.Flows != nil {
		srv.Register(nodeapi.MethodStep, "Runs one step of a call's IVR flow: state and input → next state and its action.", []string{"struct", "struct"}, s.step)
	}
	if s.Audio != nil {
		srv.Register(nodeapi.MethodManifest, "Returns the audio manifest unless the node's version is current.", []string{"struct", "struct"}, s.manifest)
	}
	return srv
}

func (s *Service) register(ctx context.Context, params []any) (any, error) {
	var req nodeapi.RegisterRequest
	if err := Params(params, &req); err != nil {
		return nil, err
	}
	if req.InstanceID == "" {
		return nil, faultf(nodeapi.FaultInvalidParams, "instance_id is required")
	}
	if req.Capacity < 0 || req.Capacity > 10000 {
		return nil, faultf(nodeapi.FaultInvalidParams, "capacity %d: want 0 to 10000", req.Capacity)
	}
	res, err := s.Nodes.Register(ctx, req)
	if err != nil {
		return nil, err
	}
	res.Token = s.TokenFor(res.NodeID, int64(res.Epoch))
	return res, nil
}

func (s *Service) heartbeat(ctx context.Context, params []any) (any, error) {
	var req nodeapi.HeartbeatRequest
	if err := Params(params, &req); err != nil {
		return nil, err
	}
	if req.ActiveCalls < 0 || req.Capacity < 0 {
		return nil, faultf(nodeapi.FaultInvalidParams, "active_calls and capacity must not be negative")
	}
	return s.Nodes.Heartbeat(ctx, NodeID(ctx), req)
}

func (s *Service) next(ctx context.Context, params []any) (any, error) {
	var req nodeapi.NextRequest
	if err := Params(params, &req); err != nil {
		return nil, err
	}
	if req.Free < 0 {
		return nil, faultf(nodeapi.FaultInvalidParams, "free %d must not be negative", req.Free)
	}
	resp := nodeapi.NextResponse{Calls: []nodeapi.Call{}}
	if s.Audio != nil {
		v, err := s.Audio.Version(ctx)
		if err != nil {
			return nil, fmt.Errorf("audio version: %w", err)
		}
		resp.AudioVersion = v
		if req.AudioVersion != v {
			return resp, nil // sync first: a call could reach a prompt the node lacks
		}
	}
	if s.Trunks != nil {
		v, err := s.Trunks.Version(ctx)
		if err != nil {
			return nil, fmt.Errorf("trunks version: %w", err)
		}
		resp.TrunksVersion = v
		if req.TrunksVersion != v {
			return resp, nil // configure first: a call could name a trunk the node lacks
		}
	}
	calls, err := s.Dialer.Lease(ctx, NodeID(ctx), min(req.Free, MaxLeasePerCall))
	if err != nil {
		return nil, err
	}
	if calls != nil {
		resp.Calls = calls
	}
	for i := range resp.Calls {
		resp.Calls[i].Token = s.LeaseToken(NodeID(ctx), resp.Calls[i])
	}
	return resp, nil
}

func (s *Service) result(ctx context.Context, params []any) (any, error) {
	var req nodeapi.ResultRequest
	if err := Params(params, &req); err != nil {
		return nil, err
	}
	req.Token = storeToken(req.Token) // the store checks it against the lease and its node
	ok, err := s.Dialer.Record(ctx, NodeID(ctx), req)
	if err != nil {
		return nil, err
	}
	return nodeapi.ResultResponse{Recorded: ok}, nil
}

func (s *Service) step(ctx context.Context, params []any) (any, error) {
	began := time.Now()
	var req nodeapi.StepRequest
	if err := Params(params, &req); err != nil {
		return nil, err
	}
	if err := s.checkLease(ctx, req.CallID, req.Token, req.CampaignID, req.FlowVersion); err != nil {
		return nil, err
	}
	fl, err := s.Flows.Get(ctx, req.CampaignID, req.FlowVersion)
	if err != nil {
		var f *Fault
		if errors.As(err, &f) {
			return nil, f
		}
		return nil, faultf(nodeapi.FaultNotFound, "flow of campaign %q version %d: %v", clip(req.CampaignID), req.FlowVersion, err)
	}
	if len(req.Vars) > flow.MaxVars {
		return nil, faultf(nodeapi.FaultInvalidParams, "call %q carries %d variables; at most %d", clip(req.CallID), len(req.Vars), flow.MaxVars)
	}
	o, err := flow.RunHTTP(ctx, s.HTTP, fl, req.State, flow.Input{Kind: req.Input, Digits: req.Digits}, req.Fields, req.Vars)
	if err != nil {
		return nil, faultf(nodeapi.FaultInvalidParams, "%v", err)
	}
	if p, ok := s.Speech.(Prefetcher); ok && req.Input == nodeapi.InputStart {
		// Render what the call may say while it plays its first states.
		for _, a := range fl.Spoken(req.Fields) {
			p.Prefetch(a.Voice, a.Language, a.Text)
		}
	}
	action := o.Action
	if err := s.speak(ctx, &action, began); err != nil {
		return nil, err
	}
	if o.Tags == nil {
		o.Tags = map[string]string{}
	}
	if action.Prompts == nil {
		action.Prompts = []string{}
	}
	if action.Files == nil {
		action.Files = []nodeapi.AudioFile{}
	}
	return nodeapi.StepResponse{State: o.State, Action: action, Tags: o.Tags, Vars: o.Vars}, nil
}

// Speech renders text to audio a node can fetch and play (package
// speech): the same voice and text always name the same file.
type Speech interface {
	Render(ctx context.Context, voice, language, text string) (nodeapi.AudioFile, error)
}

// Prefetcher is a Speech that can render ahead of need, in the
// background (speech.Renderer).
type Prefetcher interface {
	Prefetch(voice, language, text string)
}

// SpeechWait bounds how long a step waits for a rendering, and
// StepBudget what a whole step may take of the node's 5-second wait.
const (
	SpeechWait = 2500 * time.Millisecond
	StepBudget = 4500 * time.Millisecond
)

// speak turns an action's text to speak into audio for the node: a
// speak action, or a gather prompt given as text. Text the engine
// cannot render in time (none configured, it failed, or it is still
// being made: began is when the step began) leaves the action with no
// audio, which the node reports as a failed step: the flow's failed
// branch runs, and the call never hears silence in place of a sentence,
// nor is it cut off waiting.
func (s *Service) speak(ctx context.Context, a *nodeapi.Action, began time.Time) error {
	if a.Kind != nodeapi.ActionSpeak && !(a.Kind == nodeapi.ActionGather && a.Text != "") {
		return nil
	}
	if a.Text == "" || s.Speech == nil {
		return nil
	}
	deadline := time.Now().Add(SpeechWait)
	if end := began.Add(StepBudget); end.Before(deadline) {
		deadline = end
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	f, err := s.Speech.Render(rctx, a.Voice, a.Language, a.Text)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	a.Files = []nodeapi.AudioFile{f}
	a.Prompts = []string{nodeapi.SpeechPrefix + strings.TrimSuffix(f.Name, ".wav")}
	return nil
}

func (s *Service) manifest(ctx context.Context, params []any) (any, error) {
	var req nodeapi.ManifestRequest
	if err := Params(params, &req); err != nil {
		return nil, err
	}
	return s.Audio.Manifest(ctx, req.Have)
}

// RecordingStore keeps calls' recordings (storage.Recordings). An error
// with a BadRecording method is the recording's own fault.
type RecordingStore interface {
	Put(ctx context.Context, key string, wav []byte) error
}

// RecordingHandler serves nodes' PUT nodeapi.RecordingsPath+key with their
// node token. The key carries a digest of the call's lease token
// (nodeapi.RecordingKey), which only the node holding the lease knows.
func (s *Service) RecordingHandler(rec RecordingStore, maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.authorize(r, ""); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		key := strings.TrimPrefix(r.URL.Path, nodeapi.RecordingsPath)
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
		if err != nil {
			http.Error(w, fmt.Sprintf("recording over %d bytes or cut short: %v", maxBytes, err), http.StatusRequestEntityTooLarge)
			return
		}
		var bad interface{ BadRecording() }
		if err := rec.Put(r.Context(), key, data); errors.As(err, &bad) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "recording store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
}
