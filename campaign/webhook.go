package campaign

import (
	"fmt"
	"math"
	"net/url"
	"time"
)

// Webhook is where a campaign's finished attempts are posted. The secret
// signs each delivery; it is written through the API, kept apart from the
// campaign's document (and so from every cache and every response), and
// never shown again.
type Webhook struct {
	URL string `json:"url"`
	// Secret is write-only: set it to change it, leave it empty to keep
	// the current one. 16 to 256 characters.
	Secret string `json:"secret,omitempty"`
	// GiveUpAfterSeconds: a delivery still failing this long after its
	// attempt finished (or after a redelivery was asked for) is dead.
	// Default 86400 (one day); at most 30 days.
	GiveUpAfterSeconds int `json:"give_up_after_seconds"`
}

// DefaultWebhookGiveUp is how long a delivery is retried by default.
const DefaultWebhookGiveUp = 24 * time.Hour

// GiveUp is the age after which a failing delivery is dead.
func (w *Webhook) GiveUp() time.Duration {
	if w == nil || w.GiveUpAfterSeconds == 0 {
		return DefaultWebhookGiveUp
	}
	return time.Duration(w.GiveUpAfterSeconds) * time.Second
}

// Validate checks a webhook; hasSecret says a secret is already kept,
// so an empty Secret keeps it.
func (w *Webhook) Validate(hasSecret bool) error {
	u, err := url.Parse(w.URL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "":
		return &FieldError{"webhook.url", fmt.Sprintf("%q: want an absolute http:// or https:// URL without user info or fragment", w.URL)}
	case len(w.URL) > 2000:
		return &FieldError{"webhook.url", "is over 2000 characters"}
	case w.Secret == "" && !hasSecret:
		return &FieldError{"webhook.secret", "is required: 16 to 256 characters the receiver shares to check signatures"}
	case w.Secret != "" && (len(w.Secret) < 16 || len(w.Secret) > 256):
		return &FieldError{"webhook.secret", fmt.Sprintf("%d characters: want 16 to 256", len(w.Secret))}
	case w.GiveUpAfterSeconds < 0 || w.GiveUpAfterSeconds > 30*24*3600:
		return &FieldError{"webhook.give_up_after_seconds", fmt.Sprintf("%d: want 0 (one day) to %d (30 days)", w.GiveUpAfterSeconds, 30*24*3600)}
	}
	return nil
}

// Delivery states of a webhook's outbox row:
//
//	pending ──2xx──► delivered
//	   │ ▲ non-2xx, network error: retry at now + backoff
//	   └─┘
//	   └──older than give_up_after, or the webhook removed──► dead
//	delivered, dead ──redeliver──► pending (the age clock starts again)
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// Backoff bounds of webhook retries.
const (
	WebhookFirstRetry = 10 * time.Second
	WebhookMaxRetry   = time.Hour
)

// WebhookRetry decides what follows a failed try: the next try's time, or
// dead when the delivery, aged since, is past the webhook's give-up age.
// tries counts the tries made so far (1 after the first); jitter in
// [0, 1) spreads retries so receivers coming back are not hit by every
// controller at once ("equal jitter": half the delay fixed, half random).
func WebhookRetry(w *Webhook, tries int, since, now time.Time, jitter float64) (next time.Time, dead bool) {
	if !now.Before(since.Add(w.GiveUp())) {
		return time.Time{}, true
	}
	d := float64(WebhookFirstRetry) * math.Pow(2, float64(max(tries, 1)-1))
	d = math.Min(d, float64(WebhookMaxRetry))
	d = d/2 + jitter*d/2
	next = now.Add(time.Duration(d))
	return next, false
}

// AttemptEvent is the JSON a webhook receives for each finished attempt.
// ID is unique per attempt: deliveries are at least once, so a receiver
// that must not count an attempt twice keeps the ids it has seen.
type AttemptEvent struct {
	ID           string            `json:"id"`    // the call id
	Event        string            `json:"event"` // "attempt.finished"
	CampaignID   string            `json:"campaign_id"`
	CallID       string            `json:"call_id"`
	Phone        string            `json:"phone"`
	Attempt      int               `json:"attempt"`
	Disposition  string            `json:"disposition"`
	Cause        int               `json:"cause"`
	StartedAt    time.Time         `json:"started_at"`
	AnsweredAt   *time.Time        `json:"answered_at,omitempty"`
	EndedAt      time.Time         `json:"ended_at"`
	Path         []string          `json:"path"`
	Tags         map[string]string `json:"tags"`
	ContactState string            `json:"contact_state"` // what the contact became: pending, done, failed, dnc
	Fields       map[string]string `json:"fields"`        // the contact's columns from the dial list
	Recording    string            `json:"recording,omitempty"`
}
