package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/webhook"
)

const hookSecret = "crm-shared-secret-0123"

// hookReceiver is a campaign's webhook endpoint, checking signatures.
type hookReceiver struct {
	url    string
	events chan campaign.AttemptEvent
}

func startHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{events: make(chan campaign.AttemptEvent, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(hookSecret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.DefaultTolerance); err != nil {
			t.Errorf("webhook: %v", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev campaign.AttemptEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.events <- ev
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hooks/dialer"
	return h
}

// useWebhook gives a campaign the receiver as its webhook, through the API.
func useWebhook(t *testing.T, call func(method, path, body string) (int, string), id, url string) {
	t.Helper()
	_, body := call("GET", "/api/v1/campaigns/"+id, "")
	var c map[string]any
	json.Unmarshal([]byte(body), &c)
	c["webhook"] = map[string]any{"url": url, "secret": hookSecret}
	b, _ := json.Marshal(c)
	if code, body := call("PUT", "/api/v1/campaigns/"+id, string(b)); code != 200 {
		t.Fatalf("webhook: %d %s", code, body)
	}
}

// await waits for the signed event of one call.
func (h *hookReceiver) await(t *testing.T, callID string) campaign.AttemptEvent {
	t.Helper()
	for {
		select {
		case ev := <-h.events:
			if ev.ID == callID {
				return ev
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no webhook for %s", callID)
		}
	}
}

// checkResultsAsData: the delivery log, the recordings list and the
// signed recording links are served by `controller serve`.
func checkResultsAsData(t *testing.T, srv *served, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := srv.call("GET", "/api/v1/campaigns/"+id+"/webhook/deliveries?state=delivered", "")
		var ds []struct {
			State string
			Tries int
		}
		json.Unmarshal([]byte(body), &ds)
		if code == 200 && len(ds) == 1 && ds[0].Tries == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery log: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := srv.call("GET", "/api/v1/campaigns/"+id+"/recordings", ""); code != 200 || body != "[]\n" {
		t.Fatalf("recordings: %d %q", code, body)
	}
	resp, err := http.Get(srv.base + "/recordings/calls/k1-1.wav?expires=4102444800&sig=00")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged recording link: %d", resp.StatusCode)
	}
}
