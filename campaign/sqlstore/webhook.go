package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Result webhooks: every finished attempt of a campaign with a webhook is
// written to webhook_outbox in the transaction that records it, so no
// result is ever without its delivery, whatever happens to the process.
// Any number of controllers deliver from the outbox: each claims due rows
// with a lease (lease_owner, lease_until), so two controllers never try
// the same row at once; a controller that dies mid-try leaves its lease
// to expire and another tries again. Delivery is therefore at least once:
// a receiver may see an event twice (same id) and must not mind.

// webhookSecret takes the secret out of c (documents never hold it),
// checking that one is given or already kept; storeSecret then keeps it,
// once the campaign's row exists.
func (s *Store) webhookSecret(ctx context.Context, tx *sql.Tx, c *campaign.Campaign) (string, error) {
	if c.Webhook == nil {
		return "", nil
	}
	var have string
	err := tx.QueryRowContext(ctx, s.q(`SELECT secret FROM webhook_secrets WHERE campaign_id = ?`), c.ID).Scan(&have)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	w := *c.Webhook
	if err := w.Validate(have != ""); err != nil {
		return "", err
	}
	secret := w.Secret
	if secret == "" {
		secret = have
	}
	w.Secret = ""
	c.Webhook = &w
	return secret, nil
}

// storeSecret keeps a campaign's webhook secret ("" deletes it, with the
// webhook).
func (s *Store) storeSecret(ctx context.Context, tx *sql.Tx, campaignID, secret string) error {
	var err error
	if secret == "" {
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM webhook_secrets WHERE campaign_id = ?`), campaignID)
	} else {
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO webhook_secrets (campaign_id, secret) VALUES (?, ?)
			ON CONFLICT (campaign_id) DO UPDATE SET secret = excluded.secret`), campaignID, secret)
	}
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	return nil
}

// enqueueAttempt writes the delivery of one finished attempt, if its
// campaign has a webhook, within the transaction that records it.
func (s *Store) enqueueAttempt(ctx context.Context, tx execer, c *campaign.Campaign, ev campaign.AttemptEvent, k contactFacts, now time.Time) error {
	if c.Webhook == nil {
		return nil
	}
	ev.Phone = k.phone
	json.Unmarshal([]byte(k.fields), &ev.Fields)
	ev.ID, ev.Event, ev.CampaignID = ev.CallID, "attempt.finished", c.ID
	ev.Path, ev.Tags, ev.Fields = orEmpty(ev.Path), orEmptyMap(ev.Tags), orEmptyMap(ev.Fields)
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("webhook event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO webhook_outbox (campaign_id, event_id, body, state, created_at, since_at, next_at, url) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)`),
		c.ID, ev.ID, string(body), ms(now), ms(now), ms(now), c.Webhook.URL); err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return nil
}

// Delivery is one outbox row claimed for a try, with where to send it.
type Delivery struct {
	ID         int64
	CampaignID string
	EventID    string
	Body       []byte
	Tries      int       // counting this one
	Since      time.Time // when the give-up age started
	Webhook    campaign.Webhook
}

// ClaimDeliveries leases up to n due deliveries to owner until now+lease.
// A row leased by another owner is not due until its lease ends; a row
// whose campaign no longer has a webhook is made dead here.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, n int, lease time.Duration, now time.Time) ([]Delivery, error) {
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var out []Delivery
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE webhook_outbox SET lease_owner = ?, lease_until = ?, tries = tries + 1
			WHERE id IN (SELECT id FROM webhook_outbox WHERE state = 'pending' AND next_at <= ? AND lease_until <= ? ORDER BY next_at, id LIMIT ?`+lock+`)
			RETURNING id, campaign_id, event_id, body, tries, since_at`), owner, ms(now.Add(lease)), ms(now), ms(now), n)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		for rows.Next() {
			var d Delivery
			var body string
			var since int64
			if err := rows.Scan(&d.ID, &d.CampaignID, &d.EventID, &body, &d.Tries, &since); err != nil {
				rows.Close()
				return fmt.Errorf("claim deliveries: %w", err)
			}
			d.Body, d.Since = []byte(body), fromMS(since)
			out = append(out, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		kept := out[:0]
		hooks := map[string]*campaign.Webhook{} // by campaign; nil: none now
		for _, d := range out {
			w, ok := hooks[d.CampaignID]
			if !ok {
				c, err := s.campaignTx(ctx, tx, d.CampaignID)
				if err != nil {
					return err
				}
				var secret string
				err = tx.QueryRowContext(ctx, s.q(`SELECT secret FROM webhook_secrets WHERE campaign_id = ?`), d.CampaignID).Scan(&secret)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("claim deliveries: %w", err)
				}
				if c.Webhook != nil && secret != "" {
					w = c.Webhook
					w.Secret = secret
				}
				hooks[d.CampaignID] = w
			}
			if w == nil {
				if _, err := tx.ExecContext(ctx, s.q(`UPDATE webhook_outbox SET state = 'dead', last_error = ?, done_at = ?, lease_owner = '', lease_until = 0 WHERE id = ?`),
					"the campaign has no webhook any more", ms(now), d.ID); err != nil {
					return fmt.Errorf("claim deliveries: %w", err)
				}
				continue
			}
			d.Webhook = *w
			kept = append(kept, d)
		}
		out = kept
		return nil
	})
	return out, err
}

// Try is the outcome of one try of a delivery.
type Try struct {
	At       time.Time     `json:"at"`
	Owner    string        `json:"controller"`
	Status   int           `json:"status_code"` // 0: no HTTP answer
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"-"`
	MS       int64         `json:"ms"`
}

// Finish is the end of one try of a delivery: its log entry and the
// state it moves to (delivered, dead, or pending again at Next).
type Finish struct {
	ID    int64
	URL   string // where it was sent
	Try   Try
	State string
	Next  time.Time
}

// FinishDeliveries logs tries and moves each delivery on, if owner still
// holds its lease, in one transaction; moved[i] says whether fs[i] did. A
// try whose lease was lost is logged only.
func (s *Store) FinishDeliveries(ctx context.Context, owner string, fs []Finish) (moved []bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		moved = make([]bool, len(fs))
		for i, f := range fs {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO webhook_tries (delivery_id, at, owner, status, error, ms) VALUES (?, ?, ?, ?, ?, ?)`),
				f.ID, ms(f.Try.At), owner, f.Try.Status, f.Try.Error, f.Try.Duration.Milliseconds()); err != nil {
				return fmt.Errorf("finish delivery: %w", err)
			}
			done := int64(0)
			if f.State != campaign.DeliveryPending {
				done = ms(f.Try.At)
			}
			res, err := tx.ExecContext(ctx, s.q(`UPDATE webhook_outbox SET state = ?, next_at = ?, last_status = ?, last_error = ?, done_at = ?, url = ?, lease_owner = '', lease_until = 0
				WHERE id = ? AND lease_owner = ? AND state = 'pending'`), f.State, ms(f.Next), f.Try.Status, f.Try.Error, done, f.URL, f.ID, owner)
			if err != nil {
				return fmt.Errorf("finish delivery: %w", err)
			}
			n, _ := res.RowsAffected()
			moved[i] = n == 1
		}
		return nil
	})
	return moved, err
}

// DeliveryInfo is one delivery as the API shows it.
type DeliveryInfo struct {
	ID         int64           `json:"id"`
	EventID    string          `json:"event_id"`
	State      string          `json:"state"`
	Tries      int             `json:"tries"`
	URL        string          `json:"url"`
	CreatedAt  time.Time       `json:"created_at"`
	NextTry    *time.Time      `json:"next_try,omitempty"` // pending only
	LastStatus int             `json:"last_status_code"`
	LastError  string          `json:"last_error,omitempty"`
	DoneAt     *time.Time      `json:"done_at,omitempty"`
	Log        []Try           `json:"log"` // newest first, up to 20
	Body       json.RawMessage `json:"body,omitempty"`
}

const deliveryColumns = `id, event_id, state, tries, url, created_at, next_at, last_status, last_error, done_at`

func scanDelivery(sc interface{ Scan(...any) error }) (DeliveryInfo, error) {
	var d DeliveryInfo
	var created, next, done int64
	if err := sc.Scan(&d.ID, &d.EventID, &d.State, &d.Tries, &d.URL, &created, &next, &d.LastStatus, &d.LastError, &done); err != nil {
		return d, err
	}
	d.CreatedAt = fromMS(created)
	if d.State == campaign.DeliveryPending {
		t := fromMS(next)
		d.NextTry = &t
	}
	if done != 0 {
		t := fromMS(done)
		d.DoneAt = &t
	}
	return d, nil
}

// Deliveries lists a campaign's deliveries, newest first: those with an
// id below before (0: from the newest), in state ("" for any), up to
// limit, each with its latest tries.
func (s *Store) Deliveries(ctx context.Context, campaignID, state string, before int64, limit int) ([]DeliveryInfo, error) {
	if _, err := s.Campaign(ctx, campaignID); err != nil {
		return nil, err
	}
	q, args := `SELECT `+deliveryColumns+` FROM webhook_outbox WHERE campaign_id = ?`, []any{campaignID}
	if state != "" {
		q, args = q+` AND state = ?`, append(args, state)
	}
	if before > 0 {
		q, args = q+` AND id < ?`, append(args, before)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY id DESC LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out := []DeliveryInfo{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	// Each delivery's latest tries, in one query.
	ids := make([]any, len(out))
	at := map[int64]int{}
	for i, d := range out {
		ids[i], at[d.ID] = d.ID, i
		out[i].Log = []Try{}
	}
	rows, err = s.db.QueryContext(ctx, s.q(`SELECT delivery_id, at, owner, status, error, ms FROM (
		SELECT delivery_id, at, owner, status, error, ms, ROW_NUMBER() OVER (PARTITION BY delivery_id ORDER BY at DESC) AS n
		FROM webhook_tries WHERE delivery_id IN (`+placeholders(len(ids))+`)) t WHERE n <= 20 ORDER BY delivery_id, at DESC`), ids...)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t Try
		var id, when int64
		if err := rows.Scan(&id, &when, &t.Owner, &t.Status, &t.Error, &t.MS); err != nil {
			return nil, fmt.Errorf("delivery log: %w", err)
		}
		t.At = fromMS(when)
		out[at[id]].Log = append(out[at[id]].Log, t)
	}
	return out, rows.Err()
}

// DeliveryByID returns one delivery of a campaign, with its body.
func (s *Store) DeliveryByID(ctx context.Context, campaignID string, id int64) (DeliveryInfo, error) {
	var body string
	d, err := scanDelivery(s.db.QueryRowContext(ctx, s.q(`SELECT `+deliveryColumns+` FROM webhook_outbox WHERE campaign_id = ? AND id = ?`), campaignID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("delivery %d of campaign %s: %w", id, campaignID, campaign.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("get delivery: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT body FROM webhook_outbox WHERE id = ?`), id).Scan(&body); err != nil {
		return d, fmt.Errorf("get delivery: %w", err)
	}
	d.Body = json.RawMessage(body)
	d.Log, err = s.tries(ctx, id)
	return d, err
}

func (s *Store) tries(ctx context.Context, id int64) ([]Try, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, owner, status, error, ms FROM webhook_tries WHERE delivery_id = ? ORDER BY at DESC LIMIT 20`), id)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	defer rows.Close()
	out := []Try{}
	for rows.Next() {
		var t Try
		var at int64
		if err := rows.Scan(&at, &t.Owner, &t.Status, &t.Error, &t.MS); err != nil {
			return nil, fmt.Errorf("delivery log: %w", err)
		}
		t.At = fromMS(at)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Redeliver puts a delivery back in the outbox to be tried at once, with
// its give-up age counted from now. A delivery being tried right now
// keeps its lease, so it is not sent twice at the same moment.
func (s *Store) Redeliver(ctx context.Context, campaignID string, id int64, now time.Time) (DeliveryInfo, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE webhook_outbox SET state = 'pending', next_at = ?, since_at = ?, done_at = 0 WHERE campaign_id = ? AND id = ?`),
			ms(now), ms(now), campaignID, id)
		if err != nil {
			return fmt.Errorf("redeliver: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("delivery %d of campaign %s: %w", id, campaignID, campaign.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return DeliveryInfo{}, err
	}
	return s.DeliveryByID(ctx, campaignID, id)
}

// PruneDeliveries deletes up to limit deliveries that were delivered or
// died before before, with their log; it returns how many.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM webhook_outbox WHERE state <> 'pending' AND done_at < ? ORDER BY id LIMIT ?`), ms(before), limit)
		if err != nil {
			return fmt.Errorf("prune deliveries: %w", err)
		}
		var ids []any
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("prune deliveries: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		in := placeholders(len(ids))
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM webhook_tries WHERE delivery_id IN (`+in+`)`), ids...); err != nil {
			return fmt.Errorf("prune deliveries: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM webhook_outbox WHERE id IN (`+in+`)`), ids...); err != nil {
			return fmt.Errorf("prune deliveries: %w", err)
		}
		n = len(ids)
		return nil
	})
	return n, err
}
