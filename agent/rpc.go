package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kolo/xmlrpc"

	"github.com/elastidial/elastidial/nodeapi"
)

// Controller is what the agent needs from the controller's XML-RPC tier.
// RPC implements it over HTTP; tests use an in-memory fake.
type Controller interface {
	Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error)
	Heartbeat(ctx context.Context, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error)
	Next(ctx context.Context, req nodeapi.NextRequest) (nodeapi.NextResponse, error)
	Step(ctx context.Context, req nodeapi.StepRequest) (nodeapi.StepResponse, error)
	Result(ctx context.Context, req nodeapi.ResultRequest) (nodeapi.ResultResponse, error)
	Manifest(ctx context.Context, req nodeapi.ManifestRequest) (nodeapi.ManifestResponse, error)
	// PutRecording stores a call's recording under key (nodeapi.RecordingKey).
	PutRecording(ctx context.Context, key string, wav io.Reader, size int64) error
}

// Fault is an XML-RPC fault answered by the controller.
type Fault struct {
	Code    int
	Message string
}

func (f *Fault) Error() string { return fmt.Sprintf("xmlrpc fault %d: %s", f.Code, f.Message) }

// IsFault reports whether err is a fault with the given code.
func IsFault(err error, code int) bool {
	var f *Fault
	return errors.As(err, &f) && f.Code == code
}

var _ Controller = (*RPC)(nil)

// RPC is the XML-RPC client of the controller: kolo/xmlrpc's encoder and
// decoder over our own http.Client, because kolo's Client runs one call at a
// time and has no timeout. Calls run concurrently over keep-alive
// connections.
type RPC struct {
	URL    string // e.g. https://controller.example/RPC2
	Secret string // cluster secret, for node.register
	HTTP   *http.Client

	mu    sync.RWMutex
	token string
}

// NewRPC returns a client for url (the /RPC2 endpoint) with sane timeouts.
func NewRPC(url, secret string) *RPC {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
	}
	return &RPC{URL: url, Secret: secret, HTTP: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// SetToken sets the node token used for every call but node.register.
func (c *RPC) SetToken(t string) {
	c.mu.Lock()
	c.token = t
	c.mu.Unlock()
}

// maxResponse bounds a controller answer.
const maxResponse = 8 << 20

func (c *RPC) call(ctx context.Context, method, credential string, req, resp any) error {
	body, err := xmlrpc.EncodeMethodCall(method, req)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", method, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	hr.Header.Set("Content-Type", "text/xml")
	hr.Header.Set("Authorization", "Bearer "+credential)
	res, err := c.HTTP.Do(hr)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", method, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("%s: answer over %d bytes", method, maxResponse)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: http %s", method, res.Status)
	}
	r := xmlrpc.Response(data)
	if err := r.Err(); err != nil {
		var fe xmlrpc.FaultError
		if errors.As(err, &fe) {
			return fmt.Errorf("%s: %w", method, &Fault{Code: fe.Code, Message: fe.String})
		}
		return fmt.Errorf("%s: decode fault: %w", method, err)
	}
	if err := r.Unmarshal(resp); err != nil {
		return fmt.Errorf("%s: decode answer: %w", method, err)
	}
	return nil
}

func (c *RPC) tok() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// Register calls node.register with the cluster secret and keeps the token.
func (c *RPC) Register(ctx context.Context, req nodeapi.RegisterRequest) (nodeapi.RegisterResponse, error) {
	var resp nodeapi.RegisterResponse
	if err := c.call(ctx, nodeapi.MethodRegister, c.Secret, req, &resp); err != nil {
		return resp, err
	}
	if strings.TrimSpace(resp.Token) == "" {
		return resp, fmt.Errorf("%s: answer has no token", nodeapi.MethodRegister)
	}
	c.SetToken(resp.Token)
	return resp, nil
}

// Heartbeat calls node.heartbeat.
func (c *RPC) Heartbeat(ctx context.Context, req nodeapi.HeartbeatRequest) (nodeapi.HeartbeatResponse, error) {
	var resp nodeapi.HeartbeatResponse
	return resp, c.call(ctx, nodeapi.MethodHeartbeat, c.tok(), req, &resp)
}

// Next calls dialer.next.
func (c *RPC) Next(ctx context.Context, req nodeapi.NextRequest) (nodeapi.NextResponse, error) {
	var resp nodeapi.NextResponse
	return resp, c.call(ctx, nodeapi.MethodNext, c.tok(), req, &resp)
}

// Step calls call.step.
func (c *RPC) Step(ctx context.Context, req nodeapi.StepRequest) (nodeapi.StepResponse, error) {
	var resp nodeapi.StepResponse
	return resp, c.call(ctx, nodeapi.MethodStep, c.tok(), req, &resp)
}

// Failover calls call.failover.
func (c *RPC) Failover(ctx context.Context, req nodeapi.FailoverRequest) (nodeapi.FailoverResponse, error) {
	var resp nodeapi.FailoverResponse
	return resp, c.call(ctx, nodeapi.MethodFailover, c.tok(), req, &resp)
}

// Trunks calls node.trunks.
func (c *RPC) Trunks(ctx context.Context, req nodeapi.TrunksRequest) (nodeapi.TrunksResponse, error) {
	var resp nodeapi.TrunksResponse
	return resp, c.call(ctx, nodeapi.MethodTrunks, c.tok(), req, &resp)
}

// Result calls call.result.
func (c *RPC) Result(ctx context.Context, req nodeapi.ResultRequest) (nodeapi.ResultResponse, error) {
	var resp nodeapi.ResultResponse
	return resp, c.call(ctx, nodeapi.MethodResult, c.tok(), req, &resp)
}

// Manifest calls audio.manifest.
func (c *RPC) Manifest(ctx context.Context, req nodeapi.ManifestRequest) (nodeapi.ManifestResponse, error) {
	var resp nodeapi.ManifestResponse
	return resp, c.call(ctx, nodeapi.MethodManifest, c.tok(), req, &resp)
}

// PutRecording uploads a recording to the controller (nodeapi.RecordingsPath
// beside the XML-RPC endpoint) with the node token.
func (c *RPC) PutRecording(ctx context.Context, key string, wav io.Reader, size int64) error {
	u := strings.TrimSuffix(strings.TrimSuffix(c.URL, "/"), "/RPC2") + nodeapi.RecordingsPath + key
	hr, err := http.NewRequestWithContext(ctx, http.MethodPut, u, wav)
	if err != nil {
		return fmt.Errorf("put recording: %w", err)
	}
	hr.ContentLength = size
	hr.Header.Set("Content-Type", "audio/wav")
	hr.Header.Set("Authorization", "Bearer "+c.tok())
	res, err := c.HTTP.Do(hr)
	if err != nil {
		return fmt.Errorf("put recording: %w", err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	switch {
	case res.StatusCode/100 == 2:
		return nil
	case res.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("put recording: %w", &Fault{Code: nodeapi.FaultUnauthorized, Message: strings.TrimSpace(string(msg))})
	case res.StatusCode/100 == 4:
		return fmt.Errorf("put recording: %w", &Fault{Code: nodeapi.FaultInvalidParams, Message: strings.TrimSpace(string(msg))})
	}
	return fmt.Errorf("put recording: http %s: %s", res.Status, strings.TrimSpace(string(msg)))
}
