// Package flowhttp makes a flow's http states' requests: GET or POST with
// contact fields, a deadline, fields of the JSON answer read by path.
//
// The requests leave the controller, which sits next to things a flow
// author must not reach: the cloud's metadata service (169.254.169.254,
// and through it the controller's credentials), the database, memcached,
// the nodes. So the client refuses, at connect time (after DNS, so a
// name that resolves to an inner address is refused too, rebinding
// included), every address that is not public: loopback, private
// (RFC 1918, fc00::/7), link-local, CGNAT (100.64.0.0/10), unspecified
// and multicast. An operator whose CRM sits inside the network lists its
// addresses in Allow. No proxy from the environment is used (it would
// hide the address), redirects are followed at most three times, each
// through the same check, and answers are read up to MaxBody.
package flowhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/elastidial/elastidial/flow"
)

// Client implements flow.Fetcher.
type Client struct {
	// Allow lists addresses reachable although not public (a CRM inside
	// the VPC; loopback in tests).
	Allow []netip.Prefix
	// MaxBody bounds an answer; default 64 KiB.
	MaxBody int64

	once sync.Once
	hc   *http.Client
}

var _ flow.Fetcher = (*Client)(nil)

// ErrRefused is a request to an address the client never reaches.
var ErrRefused = errors.New("address refused")

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Permitted reports whether the client may connect to a.
func (c *Client) Permitted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a) && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrRefused, address, err)
			}
			if !c.Permitted(ap.Addr()) {
				return fmt.Errorf("%w: %s is not a public address (allow it with -flow-http-allow if it is yours)", ErrRefused, ap.Addr())
			}
			return nil
		}}
		c.hc = &http.Client{
			Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, MaxIdleConnsPerHost: 16,
				IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 4 * time.Second, ResponseHeaderTimeout: flow.MaxHTTPTimeoutMS * time.Millisecond},
			CheckRedirect: func(_ *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("more than 3 redirects")
				}
				return nil
			},
		}
	})
	return c.hc
}

// Fetch implements flow.Fetcher.
func (c *Client) Fetch(ctx context.Context, req flow.Request, paths []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("url %q: want http or https", req.URL)
	}
	var body io.Reader
	if req.Method == http.MethodPost {
		b, _ := json.Marshal(req.Params)
		body = bytes.NewReader(b)
	} else if len(req.Params) > 0 {
		q := u.Query()
		for k, v := range req.Params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "elastidial-flow/1")
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client().Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // it names the URL again
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s%s: %w", req.Method, u.Host, u.Path, err)
	}
	defer resp.Body.Close()
	max := c.MaxBody
	if max <= 0 {
		max = 64 << 10
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read: %w", req.Method, u.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s %s: %s", req.Method, u.Redacted(), resp.Status)
	}
	out := map[string]string{}
	if len(paths) == 0 {
		return out, nil
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s %s: answer over %d bytes", req.Method, u.Redacted(), max)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s %s: answer is not JSON: %w", req.Method, u.Redacted(), err)
	}
	for _, p := range paths {
		out[p] = value(doc, p)
	}
	return out, nil
}

// value reads a dotted path; a missing field is "", a string itself, any
// other value its JSON.
func value(doc any, path string) string {
	cur := doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		if cur, ok = m[k]; !ok {
			return ""
		}
	}
	switch v := cur.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
