package main

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/httpapi"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/campaign/webhook"
	"github.com/elastidial/elastidial/controller"
	scalermetrics "github.com/elastidial/elastidial/controller/metrics"
	"github.com/elastidial/elastidial/controller/planner"
	"github.com/elastidial/elastidial/flow"
	"github.com/elastidial/elastidial/internal/httplimit"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/storage"
	"github.com/elastidial/elastidial/web"
	"github.com/elastidial/elastidial/xmlrpc"
)

func init() {
	commands["serve"] = command{summary: "run the control center: dashboard, REST API, XML-RPC for nodes, scaler", run: serve}
}

// serve runs the control center until ctx ends: the dashboard, the REST
// API, the nodes' XML-RPC tier, the scaler and the lease reaper.
func serve(ctx context.Context, cfg Config, _ *flag.FlagSet, stdout io.Writer, log *slog.Logger) error {
	return runServer(ctx, cfg, stdout, log, nil)
}

// runServer is serve; ready, when set, learns the base URL once the
// control center accepts requests.
func runServer(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger, ready func(base string)) error {
	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	// Leases live with their node: each heartbeat renews them for this
	// long, so a lease ends when its node has been silent as long, or
	// when the node, alive, no longer lists the call (store.HeldGrace).
	store.LeaseTTL = nodeLeaseTTL
	store.Caps = campaign.Caps{PerDay: cfg.CapDay, PerWeek: cfg.CapWeek}
	secret, err := clusterSecret(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = httplimit.Listener(ln, cfg.MaxConns)
	defer ln.Close()

	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + loopback(ln.Addr())
	}
	audioBytes, audioHandler, err := audioStore(ctx, cfg, publicURL, secret)
	if err != nil {
		return err
	}
	audio := &storage.Library{Store: audioBytes, InUse: promptUser(store)}
	recordingBytes, _, err := objectStore(ctx, cfg, cfg.Recordings, publicURL, secret)
	if err != nil {
		return err
	}
	recordings := &storage.Recordings{Store: recordingBytes, SignKey: derivedKey(secret, "elastidial recording links")}

	// The scaler: node registry behind node.register and node.heartbeat,
	// and the reconcile loop acting on the cloud.
	cloud, closeCloud, err := newCloud(ctx, cfg, publicURL, secret, log.With("component", "cloud"))
	if err != nil {
		return err
	}
	defer closeCloud(context.Background())
	nodeStore, err := controller.OpenStore(ctx, store.DB(), store.Driver())
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	cm, err := scalermetrics.New(reg)
	if err != nil {
		return err
	}
	pricing, err := cfg.Pricing()
	if err != nil {
		return err
	}
	scaler, err := controller.New(ctx, cloud, demandSource{store}, nodeStore, controller.Options{
		Plan: planner.Config{SlotsPerNode: cfg.NodeSlots, MinNodes: cfg.MinNodes, MaxNodes: cfg.MaxNodes,
			BudgetPerHour: cfg.BudgetPerH, ScaleInWindow: cfg.ScaleInWindow, MinLifetime: cfg.MinNodeLifetime,
			InstanceType: cfg.PricedType(), Spot: cfg.Cloud == "ec2" && cfg.EC2Spot,
			WarmPool: cfg.WarmPool, WarmPoolMin: cfg.WarmPoolMin, WarmPoolMax: cfg.WarmPoolMax, WarmPoolBudget: cfg.WarmPoolBudget,
			SpikeMemory: cfg.SpikeMemory, Hibernate: cfg.EC2Hibernate, SpareNodes: cfg.SpareNodes},
		Tick:         cfg.Tick,
		AudioVersion: audio.Version, // a node is ready only with the current audio
		Logger:       log.With("component", "scaler"),
		Metrics:      cm,
		Pricing:      pricing,
		RenewLeases:  store.RenewNode,
		ReleaseNode: func(ctx context.Context, nodeID string) error {
			n, err := store.ReleaseNode(ctx, nodeID, time.Now())
			if n > 0 {
				log.Info("calls of an ended node returned to their campaigns", "node", nodeID, "calls", n)
			}
			return err
		},
	})
	if err != nil {
		return err
	}

	flows := &xmlrpc.Flows{Source: store, Local: true, Log: log}
	if cfg.Memcached != "" {
		flows.Memcache = xmlrpc.NewMemcache(strings.Split(cfg.Memcached, ","), 256, 100*time.Millisecond)
		audio.Cache = xmlrpc.MemcacheTTL{Client: flows.Memcache}
		store.Cache = xmlrpc.MemcacheTTL{Client: flows.Memcache}
	}
	if cfg.Cloud == "ec2" && cfg.EC2Spot {
		// Calls that may outlast a spot node's interruption notice go to
		// on-demand nodes only.
		// (dialer.next reads a node's capacity type with its node check.)
		store.SpotCallLimit = cfg.SpotCallLimit
	}
	rpc := &xmlrpc.Service{Secret: secret, Nodes: nodes{scaler, store}, Dialer: dialer{store, scaler}, Flows: flows, Audio: audio, Trunks: trunks{store, scaler}}
	speechHandler, renderer, err := speechRenderer(ctx, cfg, rpc, publicURL, secret, log)
	if err != nil {
		return err
	}
	rpcServer := rpc.Server()
	rpcServer.Log = log

	api := &httpapi.API{Store: store, Log: log, ValidateFlow: func(ctx context.Context, doc []byte) error {
		var listErr error
		err := flow.Check(doc, func(prompt string) bool {
			ok, err := audio.Exists(ctx, prompt)
			listErr = cmp.Or(listErr, err)
			return ok
		})
		return cmp.Or(listErr, err)
	}, FlowLength: func(ctx context.Context, doc []byte) (campaign.FlowLength, error) {
		f, err := flow.Parse(doc)
		if err != nil {
			return campaign.FlowLength{}, err
		}
		var listErr error
		l := f.Length(flow.Timing{Prompt: func(prompt string) (float64, bool) {
			sec, err := audio.Seconds(ctx, prompt)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				listErr = cmp.Or(listErr, err)
			}
			return sec, err == nil
		}})
		return l, listErr
	}, CheckColumns: func(doc []byte, columns []string) error {
		f, err := flow.Parse(doc)
		if err != nil {
			return err
		}
		return f.CheckColumns(columns)
	}, DemandChanged: scaler.Wake, SignRecording: recordings.SignedPath}
	mux := http.NewServeMux()
	hist := newHistory()
	fleetHistory, campaignHistory := historyHandlers(hist)
	apiHandler := api.Handler(controllerRoutes(controllerHandlers{
		cost: scaler.CostHandler(store), fleet: fleetHandler(scaler, cfg), audio: audio.Handler(), audioPlay: audio.PlayHandler(),
		recordings: recordings.Handler(), fleetHistory: fleetHistory, campaignHistory: campaignHistory,
	})...)
	mux.Handle("/api/v1/", apiHandler)
	mux.Handle("/api/v1", apiHandler) // a JSON 404 too, not the dashboard's
	mux.Handle("/audio/", audioHandler)
	mux.Handle(speechPath, speechHandler)
	// A node's request is read before it is authenticated (the method
	// name is in the body), so its body gets a short deadline.
	mux.Handle("/RPC2", httplimit.BodyDeadline(rpcServer, cfg.RPCBodyTimeout))
	mux.Handle("PUT "+nodeapi.RecordingsPath, rpc.RecordingHandler(recordings, storage.MaxRecording+64<<10))
	mux.Handle("GET "+storage.SignedPrefix, recordings.SignedHandler())
	mux.Handle("GET /metrics", metrics(reg, rpcServer, flows, store.ConfigStats()))
	mux.Handle("/", web.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := store.DB().PingContext(r.Context()); err != nil {
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // bounds slow clients; dial lists stream within it
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("controller serving", "addr", ln.Addr().String(), "db", cfg.DB, "cloud", cfg.Cloud, "memcached", cfg.Memcached)
	fmt.Fprintf(stdout, "elastidial controller listening on %s (dashboard at /, REST API at /api/v1/, XML-RPC at /RPC2)\n", publicURL)
	if ready != nil {
		ready(publicURL)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error { return reapLeases(ctx, store, scaler, log) })
	g.Go(func() error { return scaler.Run(ctx) })
	g.Go(func() error { return sampleHistory(ctx, hist, store, scaler, log.With("component", "history")) })
	g.Go(func() error { return sweepRecordings(ctx, recordings, store, log) })
	g.Go(func() error { return sweepSpeech(ctx, renderer, scaler.Leading, log.With("component", "speech")) })
	// Every controller delivers result webhooks; the outbox's leases
	// share the work between them.
	g.Go(func() error { return (&webhook.Sender{Outbox: store, Log: log.With("component", "webhook")}).Run(ctx) })
	if sp, ok := cloud.(spotPricer); ok && cfg.EC2Spot {
		g.Go(func() error { return refreshSpotPrices(ctx, sp, scaler, cfg.SpotPriceEvery, log) })
	}
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdown)
		if renderer != nil {
			renderer.Close() // renderings still running end with their files
		}
		return err
	})
	return g.Wait()
}

// controllerHandlers are the handlers of the controller's own API routes.
type controllerHandlers struct {
	cost, fleet, audio, audioPlay, recordings, fleetHistory, campaignHistory http.Handler
}

// controllerRoutes are the REST routes the controller adds to the campaign
// API: the fleet, its cost and history for ops, the audio library (reading
// needs PermRead, changing it PermWrite; its handler routes the methods
// itself), and the calls' recordings.
func controllerRoutes(h controllerHandlers) []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /api/v1/cost", Perm: campaign.PermFleet, Handler: h.cost},
		{Pattern: "GET /api/v1/fleet", Perm: campaign.PermFleet, Handler: h.fleet},
		{Pattern: "GET /api/v1/history", Perm: campaign.PermFleet, Handler: h.fleetHistory},
		{Pattern: "GET /api/v1/campaigns/{id}/history", Perm: campaign.PermRead, Handler: h.campaignHistory},
		{Pattern: "GET /api/v1/audio", Perm: campaign.PermRead, Handler: h.audio},
		{Pattern: "GET /api/v1/audio/{set}/{name}", Perm: campaign.PermRead, Handler: h.audioPlay},
		{Pattern: "POST /api/v1/audio/{set}", Perm: campaign.PermWrite, Handler: h.audio},
		{Pattern: "DELETE /api/v1/audio/{set}/{name}", Perm: campaign.PermWrite, Handler: h.audio},
		{Pattern: "GET /api/v1/recordings/{key...}", Perm: campaign.PermResults, Handler: http.StripPrefix("/api/v1/recordings", h.recordings)},
	}
}

// promptUser answers which campaign's current flow plays a prompt, if any
// campaign that has not completed does: such a prompt keeps its file.
func promptUser(store *sqlstore.Store) func(ctx context.Context, prompt string) (string, error) {
	return func(ctx context.Context, prompt string) (string, error) {
		cs, err := store.Campaigns(ctx)
		if err != nil {
			return "", err
		}
		for _, c := range cs {
			if c.FlowVersion == 0 || c.Status == campaign.StatusCompleted {
				continue
			}
			doc, err := store.FlowDocument(ctx, c.ID, c.FlowVersion)
			if err != nil {
				return "", err
			}
			plays := false
			flow.Check(doc, func(name string) bool { plays = plays || name == prompt; return true })
			if plays {
				return fmt.Sprintf("campaign %s %q (flow version %d)", c.ID, c.Name, c.FlowVersion), nil
			}
		}
		return "", nil
	}
}

// nodeLeaseTTL is how long a node's leases outlive its last heartbeat.
const nodeLeaseTTL = 2 * time.Minute

// reapLeases returns the contacts of expired leases to their campaigns, so
// that a node killed mid-call loses nothing. A lease expires once its node
// has not been heard from for nodeLeaseTTL. Only the scaler leader reaps,
// and only once it has led that long itself: after an outage of every
// controller, nodes get one lease lifetime to be heard from again before
// their calls are taken as cut off.
func reapLeases(ctx context.Context, store *sqlstore.Store, scaler *controller.Controller, log *slog.Logger) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if leading, since := scaler.LeadingSince(); !leading || now.Sub(since) < nodeLeaseTTL {
				continue
			}
			if n, err := store.Reap(ctx, now); err != nil {
				log.Warn("reap expired leases", "err", err)
			} else if n > 0 {
				log.Info("expired leases returned", "count", n)
			}
		}
	}
}

// derivedKey is a key for one purpose made from the cluster secret, so a
// link signature can never be replayed as anything else.
func derivedKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// sweepRecordings deletes recordings past their campaign's retention,
// every few minutes; any controller may, deleting twice is harmless.
func sweepRecordings(ctx context.Context, rec *storage.Recordings, store *sqlstore.Store, log *slog.Logger) error {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		for {
			n, err := rec.Sweep(ctx, store, time.Now(), 500)
			if err != nil && ctx.Err() == nil {
				log.Warn("recording retention", "err", err)
			}
			if n > 0 {
				log.Info("recordings past their retention deleted", "recordings", n)
			}
			if n < 500 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
