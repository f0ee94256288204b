package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/internal/history"
)

// The dashboard's charts read the controller's recent past from here, so a
// page opened now shows the last day, not only what it saw while open.
const (
	historyEvery = 5 * time.Second
	historyKeep  = 24 * time.Hour
)

// fleetSeries are the ops view's series (GET /api/v1/history).
var fleetSeries = []string{"demand_calls", "wanted_slots", "ready_slots", "coming_slots", "active_calls", "nodes", "cost_per_hour"}

func newHistory() *history.Ring { return history.New(int(historyKeep / historyEvery)) }

// sampleHistory keeps the charts' samples in the store: the scaler leader
// takes one of the fleet and every campaign that is not a draft or
// completed every historyEvery (a follower has no plan of its own to
// sample), and every controller reads new samples from the store into its
// ring, which serves the charts. So every controller behind a load
// balancer shows the same past, and a restart keeps it.
func sampleHistory(ctx context.Context, ring *history.Ring, store *sqlstore.Store, scaler *controller.Controller, log *slog.Logger) error {
	// A second's tick: the leader samples as soon as it leads, then every
	// historyEvery, and every controller shows a stored sample within a
	// second (an indexed read that finds nothing new costs little).
	t := time.NewTicker(time.Second)
	defer t.Stop()
	newest := time.Now().Add(-historyKeep)
	var sampled time.Time
	for {
		if now := time.Now(); scaler.Leading() && now.Sub(sampled) >= historyEvery {
			sampled = now
			if err := store.AddHistory(ctx, now, takeSample(ctx, store, scaler, log), historyKeep); err != nil && ctx.Err() == nil {
				log.Warn("history: sample not stored", "err", err)
			}
		}
		newest = loadHistory(ctx, ring, store, newest, log)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// loadHistory adds to ring the stored samples taken after after and
// returns the newest one's time.
func loadHistory(ctx context.Context, ring *history.Ring, store *sqlstore.Store, after time.Time, log *slog.Logger) time.Time {
	const page = 2000
	for {
		got, err := store.HistorySince(ctx, after, page)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("history: samples not read", "err", err)
			}
			return after
		}
		for _, h := range got {
			ring.Add(h.At, h.Values)
			after = h.At
		}
		if len(got) < page {
			return after
		}
	}
}

func takeSample(ctx context.Context, store *sqlstore.Store, scaler *controller.Controller, log *slog.Logger) map[string]float64 {
	p := scaler.LastPlan()
	v := map[string]float64{"demand_calls": float64(p.DemandCalls), "wanted_slots": float64(p.WantedSlots),
		"ready_slots": float64(p.ReadySlots), "coming_slots": float64(p.ComingSlots), "cost_per_hour": scaler.CostPerHour()}
	active, nodes := 0, 0
	for _, n := range scaler.Observe().Nodes {
		active += n.ActiveCalls
		nodes++
	}
	v["active_calls"], v["nodes"] = float64(active), float64(nodes)
	if err := history.SampleCampaigns(ctx, store, v); err != nil {
		log.Warn("history: some campaigns not sampled", "err", err)
	}
	return v
}

// historyHandlers serve the fleet's history and one campaign's.
func historyHandlers(ring *history.Ring) (fleet, oneCampaign http.Handler) {
	fleet = history.Handler(ring, time.Now, func(*http.Request) (string, []string) { return "", fleetSeries })
	return fleet, history.CampaignHandler(ring, time.Now)
}
