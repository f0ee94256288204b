package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/controller/ec2cloud"
	"github.com/elastidial/elastidial/controller/localcloud"
	"github.com/elastidial/elastidial/storage"
	"github.com/elastidial/elastidial/storage/s3store"
)

// demandSource adapts the campaign store to the scaler.
type demandSource struct{ store *sqlstore.Store }

var _ controller.DemandSource = demandSource{}

func (d demandSource) Demand(ctx context.Context, now time.Time) ([]controller.Demand, error) {
	return d.store.Demand(ctx, now)
}

// newCloud builds the configured cloud. The local cloud runs node-agent
// processes with the simulated Asterisk; without -agent-path it builds the
// agent from this source tree once.
func newCloud(ctx context.Context, cfg Config, publicURL string, secret []byte, log *slog.Logger) (controller.Cloud, func(context.Context) error, error) {
	switch cfg.Cloud {
	case "local":
		bin := cfg.AgentPath
		if bin == "" {
			var err error
			if bin, err = buildAgent(ctx, cfg.LocalDir); err != nil {
				return nil, nil, err
			}
		}
		lc := localcloud.Config{Binary: bin, ControllerURL: publicURL, Secret: string(secret), Cluster: cfg.Cluster,
			Capacity: cfg.NodeSlots, Dir: cfg.LocalDir, Logger: log, MaxInstances: cfg.MaxNodes}
		if cfg.LocalAMI != "" {
			lc.Asterisk = &localcloud.Asterisk{AMIAddr: cfg.LocalAMI, AMIUser: cfg.LocalAMIUser,
				AMISecret: os.Getenv("ELASTIDIAL_LOCAL_AMI_SECRET"), AGIAddr: cfg.LocalAGI, Sounds: cfg.LocalSounds, Recordings: cfg.LocalRecordings, TrunksConf: cfg.LocalTrunksConf}
		}
		c, err := localcloud.New(lc)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	}
	// EC2: credentials and endpoints come the SDK's usual way (environment,
	// shared config, the instance role).
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.EC2Region))
	if err != nil {
		return nil, nil, fmt.Errorf("ec2: %w", err)
	}
	ec := ec2cloud.Config{Region: cfg.EC2Region, ImageID: cfg.EC2AMI, InstanceTypes: cfg.EC2InstanceTypes, Subnets: cfg.EC2Subnets,
		SecurityGroups: cfg.EC2SecurityGroups, InstanceProfile: cfg.EC2Profile, Spot: cfg.EC2Spot, Hibernate: cfg.EC2Hibernate, Cluster: cfg.Cluster,
		Node: ec2cloud.NodeEnv{ControllerURL: publicURL, ClusterSecret: string(secret), Capacity: cfg.NodeSlots,
			TrunkName: cfg.TrunkName, TrunkHost: cfg.TrunkHost, TrunkUser: cfg.TrunkUser, TrunkPassword: cfg.TrunkPassword}}
	if t := cfg.EC2LaunchTemplate; strings.HasPrefix(t, "lt-") {
		ec.LaunchTemplateID = t
	} else if t != "" {
		ec.LaunchTemplateName = t
	}
	if ec.LaunchTemplateID != "" || ec.LaunchTemplateName != "" {
		ec.ImageID = ""
	}
	c, err := ec2cloud.New(ec, ec2cloud.NewAPI(awsCfg, ec2cloud.RetryOptions{}), log, nil)
	if err != nil {
		return nil, nil, err
	}
	return c, func(context.Context) error { return nil }, nil
}

// loopback turns a listen address like [::]:8080 into one nodes on this
// machine can dial.
func loopback(addr net.Addr) string {
	_, port, _ := net.SplitHostPort(addr.String())
	return "127.0.0.1:" + port
}

// buildAgent compiles ./cmd/node-agent into dir, for the local cloud.
func buildAgent(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("local cloud: %w", err)
	}
	bin, err := filepath.Abs(filepath.Join(dir, "node-agent"))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/elastidial/elastidial/cmd/node-agent")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("local cloud: build node-agent (or pass -agent-path): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// audioStore is the audio library's store: a local folder whose files
// nodes download through URLs signed with the cluster secret (served by
// the returned handler at /audio/), or S3 with presigned URLs.
func audioStore(ctx context.Context, cfg Config, publicURL string, secret []byte) (storage.Store, http.Handler, error) {
	return objectStore(ctx, cfg, cfg.Audio, publicURL, secret)
}

// objectStore opens a folder or s3://bucket/prefix store at where.
func objectStore(ctx context.Context, cfg Config, where, publicURL string, secret []byte) (storage.Store, http.Handler, error) {
	if rest, ok := strings.CutPrefix(where, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.S3Region))
		if err != nil {
			return nil, nil, fmt.Errorf("audio: %w", err)
		}
		st, err := s3store.New(awsCfg, s3store.Options{Bucket: bucket, Prefix: prefix, Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3Endpoint != ""})
		return st, http.NotFoundHandler(), err
	}
	if err := os.MkdirAll(where, 0o755); err != nil {
		return nil, nil, fmt.Errorf("store folder: %w", err)
	}
	f := &storage.Folder{Dir: where, BaseURL: storage.URLBase(publicURL), Secret: secret}
	return f, http.StripPrefix("/audio/", f.Handler()), nil
}

// spotPricer is a cloud that reports spot prices (ec2cloud).
type spotPricer interface {
	SpotPrices(ctx context.Context, types ...string) (map[string]float64, error)
}

// refreshSpotPrices feeds the scaler's price table with the cloud's spot
// prices at once and every interval until ctx ends. A failed read keeps
// the last prices (or the configured ones) and is logged.
func refreshSpotPrices(ctx context.Context, sp spotPricer, scaler *controller.Controller, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if prices, err := sp.SpotPrices(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("read spot prices; keeping the last known", "err", err)
			}
		} else {
			scaler.SetSpotPrices(prices)
			log.Info("spot prices", "prices", prices)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
