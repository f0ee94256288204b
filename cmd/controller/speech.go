package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/elastidial/elastidial/flow/flowhttp"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/speech"
	"github.com/elastidial/elastidial/speech/polly"
	"github.com/elastidial/elastidial/storage"
	"github.com/elastidial/elastidial/storage/s3store"
	"github.com/elastidial/elastidial/xmlrpc"
)

// speechPath is where nodes download rendered speech from a folder store.
const speechPath = "/speech-audio/"

// speechRenderer sets up the speech engine and its store, gives them to
// the XML-RPC service, and returns the handler nodes download from.
func flowHTTP(cfg Config) *flowhttp.Client {
	c := &flowhttp.Client{}
	for _, n := range cfg.FlowHTTPAllow {
		if p, err := netip.ParsePrefix(n); err == nil { // Validate refused the rest
			c.Allow = append(c.Allow, p)
		}
	}
	return c
}

func speechRenderer(ctx context.Context, cfg Config, rpc *xmlrpc.Service, publicURL string, secret []byte, log *slog.Logger) (http.Handler, *speech.Renderer, error) {
	rpc.HTTP = flowHTTP(cfg)
	if cfg.TTS == "off" {
		return http.NotFoundHandler(), nil, nil
	}
	var engine speech.Engine = &speech.Flite{}
	if cfg.TTS == "polly" {
		awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(cmp.Or(cfg.PollyRegion, cfg.S3Region)))
		if err != nil {
			return nil, nil, fmt.Errorf("polly: %w", err)
		}
		engine = polly.New(awsCfg, polly.Options{Engine: cfg.PollyEngine, Endpoint: cfg.PollyEndpoint})
	}
	var store speech.Store
	handler := http.NotFoundHandler()
	where := cmp.Or(cfg.Speech, strings.TrimSuffix(cfg.Audio, "/")+"-speech")
	if rest, ok := strings.CutPrefix(where, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.S3Region))
		if err != nil {
			return nil, nil, fmt.Errorf("speech store: %w", err)
		}
		st, err := s3store.New(awsCfg, s3store.Options{Bucket: bucket, Prefix: prefix, Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3Endpoint != "", Unindexed: true})
		if err != nil {
			return nil, nil, err
		}
		store = st
	} else {
		if err := os.MkdirAll(where, 0o755); err != nil {
			return nil, nil, fmt.Errorf("speech folder: %w", err)
		}
		f := &storage.Folder{Dir: where, BaseURL: strings.TrimSuffix(publicURL, "/") + speechPath, Secret: secret, Unindexed: true}
		store, handler = f, http.StripPrefix(speechPath, f.Handler())
	}
	r := &speech.Renderer{Engine: engine, Store: store, Keep: cfg.SpeechKeep}
	rpc.Speech = loggedSpeech{r, log.With("component", "speech", "engine", engine.Name())}
	return handler, r, nil
}

// sweepSpeech deletes renderings past -speech-keep every hour, on the
// scaler leader only (one sweeper for a shared store; any may, safely).
func sweepSpeech(ctx context.Context, r *speech.Renderer, leading func() bool, log *slog.Logger) error {
	if r == nil || r.Keep <= 0 {
		return nil
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !leading() {
			continue
		}
		n, err := r.Sweep(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			log.Warn("speech retention", "err", err)
		}
		if n > 0 {
			log.Info("renderings past their retention deleted", "renderings", n)
		}
	}
}

// loggedSpeech logs what could not be rendered: the call hears the
// flow's failed branch instead, and the operator should know why.
type loggedSpeech struct {
	r   *speech.Renderer
	log *slog.Logger
}

// Prefetch renders ahead of need (xmlrpc.Prefetcher).
func (l loggedSpeech) Prefetch(voice, language, text string) { l.r.Prefetch(voice, language, text) }

func (l loggedSpeech) Render(ctx context.Context, voice, language, text string) (nodeapi.AudioFile, error) {
	f, err := l.r.Render(ctx, voice, language, text)
	if err != nil && ctx.Err() == nil {
		l.log.Warn("speech not rendered; the step fails", "voice", voice, "language", language, "chars", len(text), "err", err)
	}
	return f, err
}
