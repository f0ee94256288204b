// Command node-agent runs beside Asterisk on every node: it registers with
// the controller, places leased calls over AMI, runs their IVR over FastAGI
// and reports results. With -simulate it runs a simulated Asterisk
// in-process, still over loopback sockets. 'node-agent -h' describes its
// flags and environment.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/elastidial/elastidial/agent"
	"github.com/elastidial/elastidial/agent/asterisksim"
	"github.com/elastidial/elastidial/internal/cli"
	"github.com/elastidial/elastidial/nodeapi"
	"github.com/elastidial/elastidial/storage"
)

const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		printHelp(os.Stdout)
	default:
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errUsage marks a bad command line.
var errUsage = errors.New("run 'node-agent -h' for its flags")

const description = `node-agent runs beside Asterisk on every elastidial node. It registers with
the controller over XML-RPC, leases calls and places them through Asterisk's
AMI, runs each call's IVR over FastAGI (answering the controller's steps),
keeps results in a durable queue until the controller has them, uploads
recordings, and drains when the controller or a spot notice says so.
With -simulate it runs a simulated Asterisk in-process (loopback sockets),
which is what 'controller demo' and the local cloud use.`

// environment lists what the agent reads from its environment.
const environment = `environment:
  ELASTIDIAL_CLUSTER_SECRET  the secret nodes present to register (or -secret-file)
  ELASTIDIAL_AMI_SECRET      the AMI user's secret (or -ami-secret-file)
  ELASTIDIAL_<FLAG>          any flag, upper case with _ for -: ELASTIDIAL_CONTROLLER,
                             ELASTIDIAL_CAPACITY, ELASTIDIAL_AGI_LISTEN, ...
  Flags win over the environment. Secrets are never flags: ps shows command
  lines to every local user.`

// printHelp is -h: what the agent does, its flags, its environment.
func printHelp(w io.Writer) {
	fs, _ := flagSet(new(options))
	fmt.Fprintf(w, "usage: node-agent [flags]\n\n%s\n\nflags:\n", description)
	cli.PrintFlags(w, fs)
	fmt.Fprintf(w, "\n%s\n", environment)
}

type options struct {
	controller, secret, instanceID       string
	secretFile, amiSecretFile            string
	capacity                             int
	amiAddr, amiUser, amiSecret, agiAddr string
	sounds, state, imds, recordings      string
	trunksConf                           string
	speech                               string
	cps                                  float64
	simulate                             bool
	simSeed                              uint64
	simAnswer, simBusy, simNoAnswer      float64
	simMachine, simHangup                float64
	simPrompt, simRingMax                time.Duration
	verbose                              bool
}

// flagSet declares the agent's flags into o.
func flagSet(o *options) (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // main prints help and errors
	fs.Usage = func() {}
	fs.StringVar(&o.controller, "controller", "", "controller base `URL` (XML-RPC at URL/RPC2); required")
	fs.StringVar(&o.secretFile, "secret-file", "", "`FILE` holding the cluster secret (or env ELASTIDIAL_CLUSTER_SECRET)")
	fs.StringVar(&o.instanceID, "instance-id", "", "instance `ID` (default: from IMDSv2)")
	fs.IntVar(&o.capacity, "capacity", 100, "concurrent call `SLOTS`")
	fs.StringVar(&o.amiAddr, "ami", "127.0.0.1:5038", "Asterisk AMI `ADDR`")
	fs.StringVar(&o.amiUser, "ami-user", "elastidial", "AMI `USER`")
	fs.StringVar(&o.amiSecretFile, "ami-secret-file", "", "`FILE` holding the AMI secret (or env ELASTIDIAL_AMI_SECRET)")
	fs.StringVar(&o.agiAddr, "agi-listen", "127.0.0.1:4573", "FastAGI listen `ADDR`")
	fs.StringVar(&o.sounds, "sounds", "/var/lib/asterisk/sounds/elastidial", "campaign audio `DIR` (Asterisk's sounds/elastidial)")
	fs.StringVar(&o.state, "state", "/var/lib/elastidial", "state `DIR` (the durable result queue)")
	fs.StringVar(&o.speech, "speech", "", "synthesised speech `DIR`, Asterisk's sounds/elastidial-tts (default: elastidial-tts beside -sounds)")
	fs.StringVar(&o.recordings, "recordings", agent.RecordingsDir, "`DIR` Asterisk writes recordings into")
	fs.StringVar(&o.trunksConf, "pjsip-trunks", agent.TrunksConf, "`FILE` the controller's trunks are written into (pjsip.conf includes it); \"\" keeps the first-boot trunk")
	fs.StringVar(&o.imds, "imds", "", "IMDS endpoint `URL` override, or \"off\"")
	fs.Float64Var(&o.cps, "cps", 10, "maximum originations per second, `CPS`")
	fs.BoolVar(&o.simulate, "simulate", false, "run a simulated Asterisk in-process")
	fs.Uint64Var(&o.simSeed, "sim-seed", 1, "simulator: callee model `SEED`")
	fs.Float64Var(&o.simAnswer, "sim-answer", 0.7, "simulator: answer rate, a `SHARE` from 0 to 1")
	fs.Float64Var(&o.simBusy, "sim-busy", 0.1, "simulator: busy rate, a `SHARE`")
	fs.Float64Var(&o.simNoAnswer, "sim-noanswer", 0.15, "simulator: no-answer rate, a `SHARE`")
	fs.Float64Var(&o.simMachine, "sim-machine", 0.1, "simulator: answering-machine `SHARE` of answered calls")
	fs.Float64Var(&o.simHangup, "sim-hangup", 0.1, "simulator: `SHARE` of answered calls hanging up mid-IVR")
	fs.DurationVar(&o.simPrompt, "sim-prompt", 2*time.Second, "simulator: duration of one prompt")
	fs.DurationVar(&o.simRingMax, "sim-ring", 6*time.Second, "simulator: longest ring time")
	fs.BoolVar(&o.verbose, "v", false, "debug logging")
	return fs, o
}

// parse reads flags, each with an ELASTIDIAL_<FLAG> environment fallback.
func parse(args []string, getenv func(string) string) (options, error) {
	var o options
	fs, _ := flagSet(&o)
	if err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w; %w", err, errUsage)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: node-agent takes flags only; %w", fs.Arg(0), errUsage)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := "ELASTIDIAL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	// Secrets never come from flags (ps shows command lines to every
	// local user): a file of their own, or the environment.
	o.secret = getenv("ELASTIDIAL_CLUSTER_SECRET")
	o.amiSecret = getenv("ELASTIDIAL_AMI_SECRET")
	for _, f := range []struct {
		flag, path string
		dst        *string
	}{{"secret-file", o.secretFile, &o.secret}, {"ami-secret-file", o.amiSecretFile, &o.amiSecret}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s: %w", f.flag, err))
			continue
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	if o.controller == "" {
		errs = append(errs, errors.New("-controller (ELASTIDIAL_CONTROLLER) is required"))
	}
	if o.secret == "" {
		errs = append(errs, errors.New("the cluster secret is required: ELASTIDIAL_CLUSTER_SECRET or -secret-file"))
	}
	if o.capacity < 1 {
		errs = append(errs, fmt.Errorf("-capacity %d: must be at least 1", o.capacity))
	}
	if o.cps <= 0 {
		errs = append(errs, fmt.Errorf("-cps %g: must be positive", o.cps))
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	o, err := parse(args, getenv)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	id := agent.Identity{InstanceID: o.instanceID}
	var spot agent.SpotWatcher
	if o.imds != "off" {
		m := &agent.IMDS{Endpoint: o.imds}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := m.Identity(ictx)
		cancel()
		switch {
		case err == nil:
			if id.InstanceID == "" {
				id.InstanceID = got.InstanceID
			}
			id.PrivateIP, id.PublicIP, id.Zone = got.PrivateIP, got.PublicIP, got.Zone
			spot = m
		case id.InstanceID == "":
			return fmt.Errorf("no -instance-id and IMDS unavailable: %w", err)
		default:
			log.Warn("IMDS unavailable; running without instance metadata", "err", err)
		}
	}
	if id.InstanceID == "" {
		return errors.New("-instance-id is required with -imds off")
	}

	agiLn, err := net.Listen("tcp", o.agiAddr)
	if err != nil {
		return fmt.Errorf("agi listen: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	amiAddr := o.amiAddr
	if o.simulate {
		// The node image ships amd.conf, so its Asterisk loads app_amd.
		sim := &asterisksim.Sim{Username: o.amiUser, Secret: o.amiSecret, Campaign: o.sounds,
			Apps: append(slices.Clone(asterisksim.DefaultApps), "AMD"),
			AGI:  "agi://" + agiLn.Addr().String() + "/ivr?call_id=${ELASTIDIAL_CALL_ID}", Log: log.With("component", "asterisksim"),
			Model: asterisksim.Model{Seed: o.simSeed, Answer: o.simAnswer, Busy: o.simBusy, NoAnswer: o.simNoAnswer,
				Congestion: max(0, 1-o.simAnswer-o.simBusy-o.simNoAnswer) / 2, Machine: o.simMachine,
				HangupMidIVR: o.simHangup, RingMin: o.simRingMax / 6, RingMax: o.simRingMax, PromptTime: o.simPrompt}}
		if _, err := os.Stat(o.sounds); err != nil {
			sim.Campaign = "" // no audio folder: every prompt exists
		}
		addr := o.amiAddr
		if addr == "127.0.0.1:5038" {
			addr = "127.0.0.1:0" // several simulated nodes on one machine
		}
		amiAddr, err = sim.Listen(addr)
		if err != nil {
			return err
		}
		g.Go(func() error { return sim.Run(gctx) })
		log.Info("simulated Asterisk", "ami", amiAddr, "agi", agiLn.Addr().String())
	}
	trunksConf := o.trunksConf
	if o.simulate {
		trunksConf = "" // the simulator has no PJSIP configuration
	}
	a, err := agent.New(agent.Config{
		Controller: agent.NewRPC(strings.TrimRight(o.controller, "/")+"/RPC2", o.secret),
		AMIAddr:    amiAddr, AMIUser: o.amiUser, AMISecret: o.amiSecret, AGIListener: agiLn,
		Queue: &agent.Queue{Dir: filepath.Join(o.state, "results")}, Identity: id,
		Capacity: o.capacity, Version: version, CPS: o.cps, Spot: spot, Log: log,
		AudioSync: &storage.Syncer{Dir: o.sounds}, Recordings: o.recordings, TrunksConf: trunksConf,
		Speech: &storage.Syncer{Dir: cmp.Or(o.speech, filepath.Join(filepath.Dir(o.sounds), strings.TrimSuffix(nodeapi.SpeechPrefix, "/")))},
	})
	if err != nil {
		return err
	}
	g.Go(func() error { return a.Run(gctx) })
	log.Info("node-agent running", "instance", id.InstanceID, "controller", o.controller, "capacity", o.capacity, "version", version, "pid", os.Getpid())
	return g.Wait()
}
