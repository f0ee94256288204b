package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Stats returns a campaign's live progress.
func (s *Store) Stats(ctx context.Context, id string) (campaign.Stats, error) {
	st := campaign.Stats{Contacts: map[string]int{}, Attempts: map[string]int{}}
	if _, err := s.Campaign(ctx, id); err != nil {
		return st, err
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT state, COUNT(*) FROM contacts WHERE campaign_id = ? AND state <> 'staged' GROUP BY state`), id)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			rows.Close()
			return st, fmt.Errorf("stats: %w", err)
		}
		st.Contacts[k] = n
	}
	rows.Close()
	st.InProgress = st.Contacts[campaign.ContactLeased]
	rows, err = s.db.QueryContext(ctx, s.q(`SELECT state, disposition, COUNT(*), COALESCE(SUM(CASE WHEN answered_at > 0 AND ended_at > answered_at THEN ended_at - answered_at ELSE 0 END), 0) FROM attempts WHERE campaign_id = ? GROUP BY state, disposition`), id)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state, disp string
		var n int
		var talkMS int64
		if err := rows.Scan(&state, &disp, &n, &talkMS); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		st.Attempts[disp] += n
		if disp == campaign.Answered {
			st.AnsweredCalls += n
		}
		st.TalkSeconds += float64(talkMS) / 1000
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	rows.Close()
	st.Failovers, err = s.Failovers(ctx, id)
	return st, err
}

// Demand reports, for every running campaign and every campaign scheduled
// to start within the hour, what it asks of the fleet now and soon.
func (s *Store) Demand(ctx context.Context, now time.Time) ([]campaign.Demand, error) {
	if err := s.loadZones(ctx); err != nil {
		return nil, err
	}
	if err := s.startDue(ctx, now); err != nil {
		return nil, err
	}
	all, err := s.Campaigns(ctx)
	if err != nil {
		return nil, err
	}
	trunks, err := s.Trunks(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]campaign.Trunk{}
	for _, t := range trunks {
		byName[t.Name] = t
	}
	var out []campaign.Demand
	for _, c := range all {
		if c.Status != campaign.StatusRunning && c.Status != campaign.StatusScheduled {
			continue // a draft or paused campaign dials nothing, start_at or not
		}
		if c.Transfers {
			// Paced: the forecast asks for what leasing will dial.
			pace, _, err := s.paceState(ctx, s.db, c.ID)
			if err != nil {
				return nil, err
			}
			if pace <= 0 {
				pace = campaign.StartPace
			}
			c.Target = min(c.Target, max(1, int(pace)))
		}
		d := campaign.Demand{CampaignID: c.ID, Priority: c.Priority, Target: c.Target, MaxCPS: c.MaxCPS, Trunk: c.Trunk, AvgAttemptSeconds: 30,
			OnDemand: c.OffSpot(s.SpotCallLimit)}
		// The group's room is that of all its trunks: one out of rotation
		// for a while is no reason to scale the fleet in.
		for _, name := range c.Group() {
			if t, ok := byName[name]; ok {
				d.TrunkChannels += t.MaxChannels
				d.TrunkCPS += t.MaxCPS
			}
		}
		if v := campaign.Dialling(&c, now); v.Reason == campaign.ReasonNotStarted && v.Until.Sub(now) > dueMinutes*time.Minute {
			// Starts beyond the forecast's horizon: announce it at its start.
			d.Upcoming = append(d.Upcoming, campaign.Upcoming{At: v.Until, Target: c.Target})
			out = append(out, d)
			continue
		}
		// A campaign with its target callable now needs no forecast: its
		// demand is its target (planner.CampaignDemand caps what is
		// callable by it), and counting that far reads as many contacts
		// as the target, where counting every one due within the hour by
		// zone group and minute read the whole dial list, each tick (a
		// fifth of PostgreSQL's CPU at the fleet benchmark's top rung).
		// So Callable is exact below the target, and the target at or
		// above it. A campaign found short counts in full until it is
		// found with its target again, so it is not counted twice a tick.
		var due map[int64]*[dueMinutes + 1]int
		full := true
		if c.Target > 0 && !s.demandShort(c.ID) {
			n, err := s.callableNow(ctx, &c, now, c.Target)
			if err != nil {
				return nil, err
			}
			if full = n < c.Target; full {
				s.setDemandShort(c.ID, true)
			} else {
				d.Callable = n
			}
		}
		if full {
			var err error
			if due, err = s.dueByGroup(ctx, c.ID, now); err != nil {
				return nil, err
			}
		}
		// callableAt counts the contacts callable m minutes from now, as
		// the rules engine sees them then: the campaign dialling (started),
		// due by then, in a zone group whose calling hours are open.
		callableAt := func(m int) int {
			at := now.Add(time.Duration(m) * time.Minute)
			if !campaign.Dialling(&c, at).OK() {
				return 0
			}
			n := 0
			for _, g := range s.openGroups(&c, at) {
				if byMinute := due[g]; byMinute != nil {
					for _, k := range byMinute[:m+1] {
						n += k
					}
				}
			}
			return n
		}
		if full {
			d.Callable = callableAt(0)
			if d.Callable >= c.Target {
				s.setDemandShort(c.ID, false)
			}
		}
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM contacts WHERE campaign_id = ? AND state = 'leased'`), c.ID).Scan(&d.Active); err != nil {
			return nil, fmt.Errorf("demand: %w", err)
		}
		var avg float64
		var n int
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(AVG(ended_at - started_at), 0) FROM attempts WHERE campaign_id = ? AND state = 'done' AND ended_at > ?`), c.ID, ms(now.Add(-time.Hour))).Scan(&n, &avg); err != nil {
			return nil, fmt.Errorf("demand: %w", err)
		}
		if n >= 10 {
			d.AvgAttemptSeconds = avg / 1000
		}
		// The first minute within the hour that more contacts become
		// callable: a calling window opens, or retries fall due.
		if d.Callable < c.Target {
			for m := 1; m <= dueMinutes; m++ {
				if k := callableAt(m); k > d.Callable {
					d.Upcoming = append(d.Upcoming, campaign.Upcoming{At: now.Add(time.Duration(m) * time.Minute), Target: min(c.Target, k)})
					break
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// dueMinutes is how far ahead Demand looks for contacts falling due.
const dueMinutes = 60

// callableNow counts c's contacts callable now, as the rules engine sees
// them (the campaign dialling, due, in a zone group whose calling hours
// are open), up to max.
func (s *Store) callableNow(ctx context.Context, c *campaign.Campaign, now time.Time, max int) (int, error) {
	if !campaign.Dialling(c, now).OK() {
		return 0, nil
	}
	open := s.openGroups(c, now)
	if len(open) == 0 {
		return 0, nil
	}
	args := []any{c.ID, ms(now)}
	for _, g := range open {
		args = append(args, g)
	}
	args = append(args, max)
	var n int
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM (SELECT 1 FROM contacts
		WHERE campaign_id = ? AND state = 'pending' AND next_at <= ? AND zgroup IN (`+placeholders(len(open))+`) LIMIT ?) k`), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("demand: %w", err)
	}
	return n, nil
}

// demandShort reports whether Demand last found campaign id with fewer
// contacts callable than its target (setDemandShort).
func (s *Store) demandShort(id string) bool {
	s.shortMu.Lock()
	defer s.shortMu.Unlock()
	return s.short[id]
}

func (s *Store) setDemandShort(id string, short bool) {
	s.shortMu.Lock()
	defer s.shortMu.Unlock()
	if !short {
		delete(s.short, id)
		return
	}
	if s.short == nil {
		s.short = map[string]bool{}
	}
	s.short[id] = true
}

// dueByGroup counts a campaign's pending contacts by zone group and by the
// minute they fall due: [0] is due now, [m] within m minutes, up to an
// hour ahead.
func (s *Store) dueByGroup(ctx context.Context, id string, now time.Time) (map[int64]*[dueMinutes + 1]int, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT zgroup, CASE WHEN next_at <= ? THEN 0 ELSE (next_at - ? + 59999) / 60000 END AS m, COUNT(*)
		FROM contacts WHERE campaign_id = ? AND state = 'pending' AND next_at <= ? GROUP BY zgroup, m`),
		ms(now), ms(now), id, ms(now.Add(dueMinutes*time.Minute)))
	if err != nil {
		return nil, fmt.Errorf("demand: %w", err)
	}
	defer rows.Close()
	out := map[int64]*[dueMinutes + 1]int{}
	for rows.Next() {
		var g, m int64
		var n int
		if err := rows.Scan(&g, &m, &n); err != nil {
			return nil, fmt.Errorf("demand: %w", err)
		}
		if out[g] == nil {
			out[g] = new([dueMinutes + 1]int)
		}
		out[g][min(max(m, 0), dueMinutes)] += n
	}
	return out, rows.Err()
}

// CallSeconds sums, per campaign, the channel time of attempts that ended
// in [from, to): the basis for attributing node cost to campaigns.
func (s *Store) CallSeconds(ctx context.Context, from, to time.Time) (map[string]float64, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT campaign_id, COALESCE(SUM(ended_at - started_at), 0) FROM attempts WHERE ended_at >= ? AND ended_at < ? GROUP BY campaign_id`), ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("call seconds: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var id string
		var msSum int64
		if err := rows.Scan(&id, &msSum); err != nil {
			return nil, fmt.Errorf("call seconds: %w", err)
		}
		out[id] = float64(msSum) / 1000
	}
	return out, rows.Err()
}

// ResultRow is one attempt in a results export.
type ResultRow struct {
	Phone       string
	Attempt     int
	CallID      string
	State       string
	Disposition string
	Cause       int
	StartedAt   time.Time
	AnsweredAt  time.Time
	EndedAt     time.Time
	Path        string // JSON array
	Tags        string // JSON object
	Fields      string // JSON object of the contact's columns
	Recording   string // key in the recording store, "" for none
}

// Results streams every attempt of a campaign in order.
func (s *Store) Results(ctx context.Context, id string, fn func(ResultRow) error) error {
	if _, err := s.Campaign(ctx, id); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT c.phone, a.attempt, a.call_id, a.state, a.disposition, a.cause, a.started_at, a.answered_at, a.ended_at, a.path, a.tags, c.fields, a.recording
		FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.campaign_id = ? ORDER BY a.started_at, a.call_id`), id)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ResultRow
		var st, an, en int64
		if err := rows.Scan(&r.Phone, &r.Attempt, &r.CallID, &r.State, &r.Disposition, &r.Cause, &st, &an, &en, &r.Path, &r.Tags, &r.Fields, &r.Recording); err != nil {
			return fmt.Errorf("results: %w", err)
		}
		r.StartedAt, r.AnsweredAt, r.EndedAt = fromMS(st), fromMS(an), fromMS(en)
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Answered counts the attempts answered by a person that ended in
// [from, to), and their connected seconds: the basis for cost per answered
// call and per connected minute.
func (s *Store) Answered(ctx context.Context, from, to time.Time) (calls int, connectedSeconds float64, err error) {
	var connectedMS int64
	err = s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN answered_at > 0 AND ended_at > answered_at THEN ended_at - answered_at ELSE 0 END), 0)
		FROM attempts WHERE disposition = ? AND ended_at >= ? AND ended_at < ?`), campaign.Answered, ms(from), ms(to)).Scan(&calls, &connectedMS)
	if err != nil {
		return 0, 0, fmt.Errorf("answered calls: %w", err)
	}
	return calls, float64(connectedMS) / 1000, nil
}
