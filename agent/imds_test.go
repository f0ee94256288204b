package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIMDSv2(t *testing.T) {
	spot, rebalance := false, false
	tokens := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "", http.StatusBadRequest)
				return
			}
			tokens++
			w.Write([]byte("TOKEN"))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "TOKEN" {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		v := map[string]string{"/latest/meta-data/instance-id": "i-0abc", "/latest/meta-data/local-ipv4": "10.0.1.9",
			"/latest/meta-data/placement/availability-zone": "eu-west-1a"}
		if rebalance {
			v["/latest/meta-data/events/recommendations/rebalance"] = `{"noticeTime":"2026-11-22T10:40:00Z"}`
		}
		if spot {
			v["/latest/meta-data/spot/instance-action"] = `{"action":"terminate","time":"2026-11-22T11:00:00Z"}`
		}
		if s, ok := v[r.URL.Path]; ok {
			w.Write([]byte(s))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	m := &IMDS{Endpoint: srv.URL}
	ctx := context.Background()
	id, err := m.Identity(ctx)
	if err != nil || id != (Identity{InstanceID: "i-0abc", PrivateIP: "10.0.1.9", Zone: "eu-west-1a"}) {
		t.Fatalf("identity: %+v %v", id, err)
	}
	if n, err := m.SpotNotice(ctx); n || err != nil {
		t.Errorf("spot before notice: %v %v", n, err)
	}
	if r, err := m.Rebalance(ctx); r || err != nil {
		t.Errorf("rebalance before the recommendation: %v %v", r, err)
	}
	rebalance = true
	if r, err := m.Rebalance(ctx); !r || err != nil {
		t.Errorf("rebalance recommendation: %v %v", r, err)
	}
	spot = true
	if n, err := m.SpotNotice(ctx); !n || err != nil {
		t.Errorf("spot notice: %v %v", n, err)
	}
	if tokens != 1 {
		t.Errorf("token fetched %d times, want 1", tokens)
	}
	if _, err := (&IMDS{Endpoint: "http://127.0.0.1:1"}).Identity(ctx); err == nil {
		t.Error("unreachable IMDS gave no error")
	}
}
