package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// IMDS reads EC2 instance metadata with IMDSv2 (a session token from
// PUT /latest/api/token, sent back in X-aws-ec2-metadata-token).
type IMDS struct {
	Endpoint string // default http://169.254.169.254
	HTTP     *http.Client
	Clock    Clock // default the real clock; the token is renewed by it

	token   string
	expires time.Time
}

// Identity is what the agent registers with.
type Identity struct {
	InstanceID, PrivateIP, PublicIP, Zone string
}

func (m *IMDS) now() time.Time {
	if m.Clock == nil {
		return time.Now()
	}
	return m.Clock.Now()
}

func (m *IMDS) client() *http.Client {
	if m.HTTP != nil {
		return m.HTTP
	}
	return &http.Client{Timeout: 2 * time.Second}
}

func (m *IMDS) endpoint() string {
	if m.Endpoint == "" {
		return "http://169.254.169.254"
	}
	return strings.TrimRight(m.Endpoint, "/")
}

func (m *IMDS) refresh(ctx context.Context) error {
	if m.token != "" && m.now().Before(m.expires) {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.endpoint()+"/latest/api/token", nil)
	if err != nil {
		return fmt.Errorf("imds token: %w", err)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	res, err := m.client().Do(req)
	if err != nil {
		return fmt.Errorf("imds token: %w", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("imds token: http %s", res.Status)
	}
	m.token = strings.TrimSpace(string(b))
	m.expires = m.now().Add(6*time.Hour - time.Minute)
	return nil
}

// get returns a metadata value; found is false on 404.
func (m *IMDS) get(ctx context.Context, path string) (value string, found bool, err error) {
	if err := m.refresh(ctx); err != nil {
		return "", false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.endpoint()+"/latest/meta-data/"+path, nil)
	if err != nil {
		return "", false, err
	}
	req.Header.Set("X-aws-ec2-metadata-token", m.token)
	res, err := m.client().Do(req)
	if err != nil {
		return "", false, fmt.Errorf("imds %s: %w", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	switch res.StatusCode {
	case http.StatusOK:
		return strings.TrimSpace(string(b)), true, nil
	case http.StatusNotFound:
		return "", false, nil
	case http.StatusUnauthorized:
		m.token = ""
	}
	return "", false, fmt.Errorf("imds %s: http %s", path, res.Status)
}

// Identity reads instance id, addresses and zone. The public address is
// absent on instances without one.
func (m *IMDS) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	for _, f := range []struct {
		path     string
		dst      *string
		required bool
	}{
		{"instance-id", &id.InstanceID, true},
		{"local-ipv4", &id.PrivateIP, true},
		{"public-ipv4", &id.PublicIP, false},
		{"placement/availability-zone", &id.Zone, false},
	} {
		v, ok, err := m.get(ctx, f.path)
		if err != nil {
			return id, err
		}
		if !ok && f.required {
			return id, fmt.Errorf("imds: %s not found", f.path)
		}
		*f.dst = v
	}
	return id, nil
}

// Rebalance reports whether EC2 recommends rebalancing this spot
// instance (events/recommendations/rebalance exists): it is at elevated
// risk of interruption, usually well before the two-minute notice.
func (m *IMDS) Rebalance(ctx context.Context) (bool, error) {
	_, ok, err := m.get(ctx, "events/recommendations/rebalance")
	return ok, err
}

// SpotNotice reports whether EC2 has scheduled this spot instance's
// interruption (spot/instance-action exists).
func (m *IMDS) SpotNotice(ctx context.Context) (bool, error) {
	_, ok, err := m.get(ctx, "spot/instance-action")
	return ok, err
}
