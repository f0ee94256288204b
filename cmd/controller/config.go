package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/controller/cost"
	"github.com/elastidial/elastidial/internal/cli"
)

// Config is the controller's whole configuration. It is built in four
// layers: the defaults below, then an optional KEY=value file (-config),
// then environment variables ELASTIDIAL_<NAME>, then flags; Validate checks
// the result and names the field at fault.
type Config struct {
	Listen    string // HTTP address for the REST API, dashboard, XML-RPC and /metrics. Default ":8080".
	PublicURL string // URL nodes use to reach the controller. Default "http://127.0.0.1" + Listen's port.

	// Data is the folder serve keeps its state in when no other place is
	// given: the SQLite store, the audio library, recordings, the cluster
	// secret and the local cloud's nodes. Default $XDG_DATA_HOME/elastidial,
	// else ~/.local/share/elastidial; never the working folder.
	Data string

	DB string // store: a file path or "sqlite:PATH" for SQLite, or a "postgres://" URL. Default DATA/elastidial.db.

	Memcached string // comma-separated memcached addresses; "" uses an in-process cache. Default "".

	Audio      string // audio library: a folder, or "s3://bucket/prefix". Default DATA/audio.
	Recordings string // calls' recordings: a folder, or "s3://bucket/prefix" apart from the audio. Default DATA/recordings.
	S3Endpoint string // custom S3 endpoint for S3-compatible stores. Default "" (AWS).
	S3Region   string // region of the audio bucket. Default "us-east-1".

	TTS           string        // speech engine for flows' say states: "flite" (local), "polly" or "off". Default "flite".
	Speech        string        // rendered speech: a folder, or "s3://bucket/prefix" apart from the audio. Default: the audio's location + "-speech".
	SpeechKeep    time.Duration // how long a rendering no call asks for is kept (it holds contact fields); 0 for ever. Default 168h.
	PollyEngine   string        // Polly engine: neural, standard, generative or long-form. Default "neural".
	PollyRegion   string        // Polly's region. Default: s3-region.
	PollyEndpoint string        // custom Polly endpoint (a VPC endpoint, or tests). Default "" (AWS).
	// FlowHTTPAllow lists networks (CIDR) flows' http states may reach
	// although not public, e.g. a CRM inside the VPC. Default none.
	FlowHTTPAllow []string

	Cluster string // cluster name, tagged on every instance. Default "elastidial".
	// ClusterSecret is the secret nodes present to register. Never a flag
	// (ps shows command lines to every local user): the environment
	// (ELASTIDIAL_CLUSTER_SECRET), the config file, or SecretFile.
	ClusterSecret string
	SecretFile    string // file holding the cluster secret, generated (0600) when absent and ClusterSecret is empty. Default DATA/elastidial.secret.

	Cloud     string // "local" (node-agent processes here) or "ec2". Default "local".
	AgentPath string // node-agent binary for the local cloud. Default: built from ./cmd/node-agent.
	LocalDir  string // working folder of local nodes (logs, state, sounds). Default DATA/nodes.
	// A real Asterisk on this machine, configured as a node, for the local
	// cloud's one node to drive instead of a simulated Asterisk. Its AMI
	// secret comes from the environment (ELASTIDIAL_LOCAL_AMI_SECRET) only.
	LocalAMI        string // AMI address, e.g. 127.0.0.1:5038. Default "" (simulated Asterisk).
	LocalAMIUser    string // Default "elastidial".
	LocalAGI        string // where that Asterisk's dialplan sends FastAGI. Default "127.0.0.1:4573".
	LocalSounds     string // the folder it reads as sounds/elastidial. Required with local-ami.
	LocalRecordings string // a folder it writes recordings into. Required with local-ami.
	// LocalTrunksConf is the file the node's agent writes the controller's
	// trunks into, which its pjsip.conf includes; "" leaves the node on
	// its first-boot trunk. Only with local-ami.
	LocalTrunksConf string

	EC2Region         string   // Default "us-east-1".
	EC2LaunchTemplate string   // launch template id or name for nodes.
	EC2AMI            string   // AMI id when no launch template is given.
	EC2InstanceTypes  []string // in order of preference. Default c6i.large.
	EC2Subnets        []string // one per AZ, tried in order on insufficient capacity.
	EC2SecurityGroups []string
	EC2Profile        string // instance profile name for nodes.
	EC2Spot           bool   // request spot instances. Default false.
	// EC2Hibernate launches nodes with hibernation configured, so the warm
	// pool parks them hibernated (the root volume must be encrypted and
	// hold the RAM). Default false: a plain stop.
	EC2Hibernate bool
	// SpotCallLimit is the longest call a spot node may carry (with
	// ec2-spot): a campaign whose ring time plus its flow's longest call
	// (flow.Length) may exceed it is dialled from on-demand nodes only,
	// and the scaler keeps enough of those for it. Default 1m45s: EC2's
	// two-minute interruption notice less a 15 s margin. 0: no campaign
	// is kept off spot.
	SpotCallLimit time.Duration

	// The warm pool (ec2 only): surplus nodes that booted and synced once
	// are parked stopped, billing their volume only, and started on the
	// next unannounced rise instead of launching. Its size follows the
	// largest such rise within SpikeMemory, between WarmPoolMin and
	// WarmPoolMax, within WarmPoolBudget $/h (0: no cap but the budget).
	WarmPool       bool          // Default true.
	WarmPoolMin    int           // Default 0.
	WarmPoolMax    int           // Default 20.
	WarmPoolBudget float64       // Default 0.
	SpikeMemory    time.Duration // Default 24h.
	// SpareNodes are running nodes kept above any demand, so a node that
	// fails leaves no call waiting for its replacement's boot. Default 0:
	// one spare costs about 12% on a small fleet (see docs/capacity.md).
	SpareNodes int

	// The carrier trunk every node registers, handed to nodes in their user
	// data (EC2 only; local nodes have a simulated Asterisk).
	TrunkName, TrunkHost, TrunkUser string
	// TrunkPassword comes from the environment (ELASTIDIAL_TRUNK_PASSWORD),
	// the config file or TrunkPasswordFile, never a flag.
	TrunkPassword     string
	TrunkPasswordFile string

	NodeSlots  int           // concurrent calls per node. Default 100.
	MinNodes   int           // Default 0.
	MaxNodes   int           // Default 50.
	BudgetPerH float64       // cap on fleet cost in $/hour; 0 means none. Default 0.
	Tick       time.Duration // scaler reconcile interval. Default 5s.
	// ScaleInWindow is how long a whole node's surplus must last before a
	// drain. Default 5m.
	ScaleInWindow time.Duration
	// MinNodeLifetime: a younger node is never drained, so noisy demand
	// does not launch and terminate nodes minutes apart. Default 10m.
	MinNodeLifetime time.Duration
	PriceRegion     string // price table region: budget cap, planner and cost reports. Default "us-east-1".
	InstanceType    string // type priced for the local cloud (EC2 prices its first ec2-instance-types). Default "c6i.large".
	// Prices overrides on-demand prices, entry by entry, as comma-separated
	// [region/]type=$/h, e.g. "c6i.large=0.09,eu-west-1/c5.large=0.1";
	// a type without a region is in price-region. Default "" (AWS's list).
	Prices string
	// SpotPrices sets spot prices the same way; with cloud=ec2 and
	// ec2-spot the price history of EC2 replaces them for the types it
	// prices, refreshed every SpotPriceEvery. Default "".
	SpotPrices     string
	SpotPriceEvery time.Duration // Default 1h.
	EBSPerGBMonth  float64       // root volume $ per GB-month (parked nodes bill it). Default 0.08 (gp3).
	NodeVolumeGB   float64       // root volume of a node. Default 8.
	IPv4PerHour    float64       // $/h of one public IPv4 address. Default 0.005.
	// NodePublicIPv4 is the public address a node holds: none (behind
	// NAT), auto (billed while running) or elastic (billed running and
	// stopped). Default "none".
	NodePublicIPv4 string

	// CapDay and CapWeek bound the attempts to one number across all
	// campaigns in any 24 hours and 7 days; 0 means no cap. Default 3 and 7.
	CapDay, CapWeek int

	LogLevel string // debug, info, warn or error. Default "info".

	// MaxConns caps open HTTP connections (nodes keep a few each, browsers
	// and API clients a few more); others wait in the backlog. Default 4096.
	MaxConns int
	// RPCBodyTimeout is how long a node's XML-RPC request may take to
	// deliver its body. Default 10s.
	RPCBodyTimeout time.Duration
}

// DefaultConfig returns the embedded default: everything on this machine.
func DefaultConfig() Config {
	return Config{
		Listen:           ":8080",
		TTS:              "flite",
		PollyEngine:      "neural",
		S3Region:         "us-east-1",
		Cluster:          "elastidial",
		Cloud:            "local",
		LocalAMIUser:     "elastidial",
		LocalAGI:         "127.0.0.1:4573",
		EC2Region:        "us-east-1",
		EC2InstanceTypes: []string{"c6i.large"},
		WarmPool:         true,
		WarmPoolMax:      20,
		SpikeMemory:      24 * time.Hour,
		SpotCallLimit:    105 * time.Second,
		NodeSlots:        100,
		MaxNodes:         50,
		Tick:             5 * time.Second,
		ScaleInWindow:    5 * time.Minute,
		MinNodeLifetime:  10 * time.Minute,
		PriceRegion:      "us-east-1",
		InstanceType:     "c6i.large",
		SpotPriceEvery:   time.Hour,
		SpeechKeep:       7 * 24 * time.Hour,
		EBSPerGBMonth:    0.08,
		NodeVolumeGB:     8,
		IPv4PerHour:      0.005,
		NodePublicIPv4:   "none",
		LogLevel:         "info",
		CapDay:           campaign.DefaultCaps.PerDay,
		CapWeek:          campaign.DefaultCaps.PerWeek,
		MaxConns:         4096,
		RPCBodyTimeout:   10 * time.Second,
	}
}

// field binds one config field to its flag and environment names.
type field struct {
	name  string // flag name; the env name is ELASTIDIAL_ + upper snake case
	arg   string // what the flag takes, for -h: ADDR, FILE, DURATION
	usage string
	ptr   any
}

// secretFields come from the environment or the config file only, never
// from a flag: ps shows command lines to every local user.
var secretFields = map[string]bool{"cluster-secret": true, "trunk-password": true}

func (c *Config) fields() []field {
	return []field{
		{"listen", "ADDR", "HTTP listen address", &c.Listen},
		{"public-url", "URL", "URL nodes use to reach the controller", &c.PublicURL},
		{"data", "DIR", "data folder for what is not placed elsewhere: store, audio, recordings, secret, local nodes (default $XDG_DATA_HOME/elastidial or ~/.local/share/elastidial)", &c.Data},
		{"db", "PATH|URL", "store: SQLite file path or postgres:// URL (default DATA/elastidial.db)", &c.DB},
		{"memcached", "ADDRS", "comma-separated memcached addresses (empty: in-process cache)", &c.Memcached},
		{"audio", "DIR|S3URL", "audio library: folder or s3://bucket/prefix (default DATA/audio)", &c.Audio},
		{"recordings", "DIR|S3URL", "calls' recordings: folder or s3://bucket/prefix, not inside the audio library (default DATA/recordings)", &c.Recordings},
		{"s3-endpoint", "URL", "custom S3 endpoint", &c.S3Endpoint},
		{"s3-region", "REGION", "audio bucket region", &c.S3Region},
		{"tts", "ENGINE", "speech engine for say states: flite, polly or off", &c.TTS},
		{"speech", "DIR|S3URL", "rendered speech: folder or s3://bucket/prefix, not inside the audio library (default: the audio's + \"-speech\")", &c.Speech},
		{"speech-keep", "DURATION", "delete renderings no call asked for in this long (they hold contact fields); 0 keeps them", &c.SpeechKeep},
		{"polly-engine", "ENGINE", "Polly engine: neural, standard, generative or long-form", &c.PollyEngine},
		{"polly-region", "REGION", "Polly region (default: s3-region)", &c.PollyRegion},
		{"polly-endpoint", "URL", "custom Polly endpoint", &c.PollyEndpoint},
		{"flow-http-allow", "CIDRS", "comma-separated networks (CIDR) flows' http states may reach although not public", &c.FlowHTTPAllow},
		{"cluster", "NAME", "cluster name", &c.Cluster},
		{"cluster-secret", "SECRET", "secret nodes present to register", &c.ClusterSecret},
		{"secret-file", "FILE", "file holding the cluster secret, generated when absent (default DATA/elastidial.secret)", &c.SecretFile},
		{"cloud", "local|ec2", "local or ec2", &c.Cloud},
		{"agent-path", "FILE", "node-agent binary for the local cloud", &c.AgentPath},
		{"local-dir", "DIR", "working folder of local nodes (default DATA/nodes)", &c.LocalDir},
		{"local-ami", "ADDR", "AMI address of a real Asterisk for the local node (default: simulated)", &c.LocalAMI},
		{"local-ami-user", "USER", "its AMI user (secret: ELASTIDIAL_LOCAL_AMI_SECRET)", &c.LocalAMIUser},
		{"local-agi", "ADDR", "FastAGI address that Asterisk's dialplan calls", &c.LocalAGI},
		{"local-sounds", "DIR", "folder that Asterisk reads as sounds/elastidial", &c.LocalSounds},
		{"local-recordings", "DIR", "folder that Asterisk writes recordings into", &c.LocalRecordings},
		{"local-trunks-conf", "FILE", "file the node agent writes the trunks into (included by the local Asterisk's pjsip.conf)", &c.LocalTrunksConf},
		{"ec2-region", "REGION", "EC2 region", &c.EC2Region},
		{"ec2-launch-template", "ID|NAME", "launch template id or name", &c.EC2LaunchTemplate},
		{"ec2-ami", "AMI_ID", "AMI id when no launch template is given", &c.EC2AMI},
		{"ec2-instance-types", "TYPES", "comma-separated instance types, preferred first", &c.EC2InstanceTypes},
		{"ec2-subnets", "SUBNET_IDS", "comma-separated subnet ids", &c.EC2Subnets},
		{"ec2-security-groups", "SG_IDS", "comma-separated security group ids", &c.EC2SecurityGroups},
		{"ec2-profile", "NAME", "node instance profile name", &c.EC2Profile},
		{"ec2-spot", "", "launch spot instances", &c.EC2Spot},
		{"spot-call-limit", "DURATION", "longest call a spot node may carry (ring plus the flow's longest path); longer campaigns use on-demand nodes (0: none kept off spot)", &c.SpotCallLimit},
		{"ec2-hibernate", "", "launch nodes with hibernation configured; the warm pool parks them hibernated", &c.EC2Hibernate},
		{"warm-pool", "", "park surplus nodes stopped and start them on the next rise", &c.WarmPool},
		{"warm-pool-min", "NODES", "parked nodes kept whatever the spike risk", &c.WarmPoolMin},
		{"warm-pool-max", "NODES", "parked nodes at most", &c.WarmPoolMax},
		{"warm-pool-budget", "USD_PER_HOUR", "cap on the warm pool's own $/hour (0: none but the budget)", &c.WarmPoolBudget},
		{"spike-memory", "DURATION", "how long an unannounced rise keeps the warm pool sized for it", &c.SpikeMemory},
		{"spare-nodes", "NODES", "running nodes kept above demand to absorb a node failure", &c.SpareNodes},
		{"trunk-name", "ENDPOINT", "PJSIP endpoint name of the carrier trunk on nodes", &c.TrunkName},
		{"trunk-host", "HOST", "carrier SIP host nodes register to", &c.TrunkHost},
		{"trunk-user", "USER", "carrier SIP user", &c.TrunkUser},
		{"trunk-password", "PASSWORD", "carrier SIP password", &c.TrunkPassword},
		{"trunk-password-file", "FILE", "file holding the carrier SIP password", &c.TrunkPasswordFile},
		{"node-slots", "CALLS", "concurrent calls per node", &c.NodeSlots},
		{"min-nodes", "NODES", "minimum nodes", &c.MinNodes},
		{"max-nodes", "NODES", "maximum nodes", &c.MaxNodes},
		{"budget", "USD_PER_HOUR", "fleet cost cap in $/hour (0: none)", &c.BudgetPerH},
		{"tick", "DURATION", "scaler reconcile interval", &c.Tick},
		{"scale-in-window", "DURATION", "how long a node's surplus must last before a drain", &c.ScaleInWindow},
		{"min-node-lifetime", "DURATION", "a younger node is never drained", &c.MinNodeLifetime},
		{"price-region", "REGION", "price table region", &c.PriceRegion},
		{"instance-type", "TYPE", "instance type priced for the local cloud", &c.InstanceType},
		{"prices", "[REGION/]TYPE=USD,...", "on-demand price overrides: [region/]type=$/h,...", &c.Prices},
		{"spot-prices", "[REGION/]TYPE=USD,...", "spot prices: [region/]type=$/h,... (EC2's price history replaces them)", &c.SpotPrices},
		{"spot-price-every", "DURATION", "how often EC2's spot price history is read", &c.SpotPriceEvery},
		{"ebs-gb-month", "USD", "node root volume $ per GB-month", &c.EBSPerGBMonth},
		{"node-volume-gb", "GB", "node root volume size in GB", &c.NodeVolumeGB},
		{"ipv4-hour", "USD", "$/h of one public IPv4 address", &c.IPv4PerHour},
		{"node-public-ipv4", "none|auto|elastic", "public IPv4 of a node: none, auto or elastic", &c.NodePublicIPv4},
		{"cap-day", "ATTEMPTS", "attempts to one number across campaigns per 24 hours (0: no cap)", &c.CapDay},
		{"cap-week", "ATTEMPTS", "attempts to one number across campaigns per 7 days (0: no cap)", &c.CapWeek},
		{"log-level", "LEVEL", "debug, info, warn or error", &c.LogLevel},
		{"max-conns", "CONNS", "open HTTP connections at most", &c.MaxConns},
		{"rpc-body-timeout", "DURATION", "time a node's XML-RPC request has to deliver its body", &c.RPCBodyTimeout},
	}
}

func envName(flagName string) string {
	return "ELASTIDIAL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// set parses s into the field behind ptr.
func set(ptr any, s string) error {
	switch p := ptr.(type) {
	case *string:
		*p = s
	case *[]string:
		*p = nil
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*p = append(*p, v)
			}
		}
	case *bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		*p = v
	case *int:
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		*p = v
	case *float64:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 5s or 1m", s)
		}
		*p = v
	default:
		return fmt.Errorf("unsupported field type %T", ptr)
	}
	return nil
}

// flagValue adapts a config field to flag.Value.
type flagValue struct {
	ptr any
	arg string // the placeholder -h shows
}

// Placeholder is what -h shows as the flag's argument.
func (v flagValue) Placeholder() string { return v.arg }

func (v flagValue) String() string {
	switch p := v.ptr.(type) {
	case nil:
		return ""
	case *string:
		return *p
	case *[]string:
		return strings.Join(*p, ",")
	case *bool:
		return strconv.FormatBool(*p)
	default:
		return fmt.Sprint(derefAny(p))
	}
}

func derefAny(p any) any {
	switch p := p.(type) {
	case *int:
		return *p
	case *float64:
		return *p
	case *time.Duration:
		return *p
	}
	return p
}

func (v flagValue) Set(s string) error { return set(v.ptr, s) }

func (v flagValue) IsBoolFlag() bool { _, ok := v.ptr.(*bool); return ok }

// LoadConfig builds the configuration for one subcommand from its arguments
// and the environment, with every setting a flag. fs may carry subcommand
// flags of its own.
func LoadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	return loadConfig(fs, args, getenv, nil)
}

// loadConfig is LoadConfig with only the settings named in flags offered
// as flags ("config" for -config; nil: all). The environment and the
// configuration file still set any setting.
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string, flags []string) (Config, error) {
	c := DefaultConfig()
	offered := func(name string) bool { return flags == nil || slices.Contains(flags, name) }
	configFile := new(string)
	*configFile = getenv("ELASTIDIAL_CONFIG")
	if offered("config") {
		fs.StringVar(configFile, "config", *configFile, "optional KEY=value configuration `FILE` (env ELASTIDIAL_CONFIG)")
	}
	for _, f := range c.fields() {
		if !secretFields[f.name] && offered(f.name) {
			fs.Var(flagValue{f.ptr, f.arg}, f.name, f.usage+" (env "+envName(f.name)+")")
		}
	}
	// Flags are parsed first to find -config, then the layers are applied in
	// order: file, environment, and the flags again so that they win.
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })
	c = DefaultConfig()
	if *configFile != "" {
		if err := c.loadFile(*configFile); err != nil {
			return c, err
		}
	}
	for _, f := range c.fields() {
		if v := getenv(envName(f.name)); v != "" {
			if err := set(f.ptr, v); err != nil {
				return c, fmt.Errorf("environment %s: %w", envName(f.name), err)
			}
		}
		if v, ok := explicit[f.name]; ok {
			if err := set(f.ptr, v); err != nil {
				return c, fmt.Errorf("flag -%s: %w", f.name, err)
			}
		}
	}
	// The flag set must see the final values too, for its own String().
	for _, f := range c.fields() {
		if fl := fs.Lookup(f.name); fl != nil {
			fl.Value = flagValue{f.ptr, f.arg}
		}
	}
	c.placeInData(getenv)
	if c.TrunkPasswordFile != "" {
		b, err := os.ReadFile(c.TrunkPasswordFile)
		if err != nil {
			return c, fmt.Errorf("trunk-password-file: %w", err)
		}
		c.TrunkPassword = strings.TrimSpace(string(b))
	}
	return c, c.Validate()
}

// placeInData fills the paths left unset with places in the data folder,
// itself defaulting to the user's data folder ($XDG_DATA_HOME/elastidial,
// else ~/.local/share/elastidial).
func (c *Config) placeInData(getenv func(string) string) {
	if c.Data == "" {
		if x := getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
			c.Data = filepath.Join(x, "elastidial")
		} else if h := getenv("HOME"); h != "" {
			c.Data = filepath.Join(h, ".local", "share", "elastidial")
		} else if h, err := os.UserHomeDir(); err == nil {
			c.Data = filepath.Join(h, ".local", "share", "elastidial")
		}
	}
	if c.Data == "" {
		return // Validate names it
	}
	for _, p := range []struct {
		dst  *string
		name string
	}{{&c.DB, "elastidial.db"}, {&c.Audio, "audio"}, {&c.Recordings, "recordings"}, {&c.SecretFile, "elastidial.secret"}, {&c.LocalDir, "nodes"}} {
		if *p.dst == "" {
			*p.dst = filepath.Join(c.Data, p.name)
		}
	}
}

// MakeDataDir creates the data folder (0700: it holds the cluster secret
// and contact data) when one of paths, those a command uses, lies in it.
func (c *Config) MakeDataDir(paths ...string) error {
	if c.Data == "" {
		return nil
	}
	for _, p := range paths {
		if strings.HasPrefix(p, c.Data+string(filepath.Separator)) {
			if err := os.MkdirAll(c.Data, 0o700); err != nil {
				return fmt.Errorf("data folder: %w", err)
			}
			return nil
		}
	}
	return nil
}

// loadFile reads KEY=value lines; keys are flag names or their env names.
func (c *Config) loadFile(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer fh.Close()
	byName := map[string]any{}
	for _, f := range c.fields() {
		byName[f.name] = f.ptr
		byName[envName(f.name)] = f.ptr
	}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want KEY=value, got %q", path, n, line)
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		ptr, ok := byName[k]
		if !ok {
			return fmt.Errorf("%s:%d: unknown setting %q", path, n, k)
		}
		if err := set(ptr, v); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, n, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate checks every field and names the ones at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, a...)...))
	}
	if c.Listen == "" {
		bad("listen", "must not be empty")
	}
	if c.Data == "" {
		bad("data", "no data folder: set -data or ELASTIDIAL_DATA (neither HOME nor XDG_DATA_HOME is set)")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public-url", "%q is not an http(s) URL", c.PublicURL)
		}
	}
	if c.DB == "" {
		bad("db", "must not be empty")
	}
	if c.CapDay < 0 {
		bad("cap-day", "%d: want 0 (no cap) or more attempts per number per 24 hours", c.CapDay)
	}
	if c.CapWeek < 0 {
		bad("cap-week", "%d: want 0 (no cap) or more attempts per number per 7 days", c.CapWeek)
	}
	if strings.HasPrefix(c.Audio, "s3://") {
		if u, err := url.Parse(c.Audio); err != nil || u.Host == "" {
			bad("audio", "%q: want s3://bucket/prefix", c.Audio)
		}
	} else if c.Audio == "" {
		bad("audio", "must not be empty")
	}
	if c.Recordings == "" {
		bad("recordings", "must not be empty")
	} else if c.Recordings == c.Audio || strings.HasPrefix(c.Recordings, strings.TrimSuffix(c.Audio, "/")+"/") {
		bad("recordings", "%q lies inside the audio library %q: every node would download the recordings", c.Recordings, c.Audio)
	}
	for _, n := range c.FlowHTTPAllow {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad("flow-http-allow", "%q: want a network such as 10.0.5.0/24", n)
		}
	}
	switch c.TTS {
	case "flite", "polly", "off":
	default:
		bad("tts", "%q: want flite, polly or off", c.TTS)
	}
	if c.TTS != "off" && c.Speech != "" && (c.Speech == c.Audio || strings.HasPrefix(c.Speech, strings.TrimSuffix(c.Audio, "/")+"/")) {
		bad("speech", "%q: want a folder or s3://bucket/prefix outside the audio library %q (every node would sync every sentence)", c.Speech, c.Audio)
	}
	if c.SpeechKeep != 0 && c.SpeechKeep < time.Hour {
		bad("speech-keep", "%s: want 0 (keep) or at least 1h (a rendering handed to a node must outlive its 15-minute link)", c.SpeechKeep)
	}
	switch c.Cloud {
	case "local":
		if c.LocalAMI != "" && c.LocalSounds == "" {
			bad("local-sounds", "is required with local-ami: the agent syncs audio where Asterisk reads it")
		}
		if c.LocalAMI != "" && c.LocalRecordings == "" {
			bad("local-recordings", "is required with local-ami: Asterisk writes recordings there for the agent")
		}
	case "ec2":
		if c.EC2LaunchTemplate == "" && c.EC2AMI == "" {
			bad("ec2-launch-template", "or ec2-ami is required with cloud=ec2")
		}
		if len(c.EC2InstanceTypes) == 0 && c.EC2LaunchTemplate == "" {
			bad("ec2-instance-types", "at least one type is required without a launch template")
		}
		if len(c.EC2Subnets) == 0 {
			bad("ec2-subnets", "at least one subnet is required with cloud=ec2")
		}
		if c.PublicURL == "" {
			bad("public-url", "is required with cloud=ec2: nodes must reach the controller")
		}
	default:
		bad("cloud", "%q: want local or ec2", c.Cloud)
	}
	if c.NodeSlots < 1 || c.NodeSlots > 1000 {
		bad("node-slots", "%d: want 1 to 1000", c.NodeSlots)
	}
	if c.MinNodes < 0 {
		bad("min-nodes", "%d: must not be negative", c.MinNodes)
	}
	if c.MaxNodes < c.MinNodes || c.MaxNodes < 1 {
		bad("max-nodes", "%d: must be at least 1 and at least min-nodes (%d)", c.MaxNodes, c.MinNodes)
	}
	if c.BudgetPerH < 0 {
		bad("budget", "%g: must not be negative", c.BudgetPerH)
	}
	if c.Tick < 100*time.Millisecond {
		bad("tick", "%s: must be at least 100ms", c.Tick)
	}
	if c.ScaleInWindow < c.Tick {
		bad("scale-in-window", "%s: must be at least one tick (%s)", c.ScaleInWindow, c.Tick)
	}
	if c.MaxConns < 16 {
		bad("max-conns", "%d: want at least 16", c.MaxConns)
	}
	if c.RPCBodyTimeout < 100*time.Millisecond {
		bad("rpc-body-timeout", "%s: must be at least 100ms", c.RPCBodyTimeout)
	}
	if _, err := c.Pricing(); err != nil {
		errs = append(errs, err)
	}
	if c.SpareNodes < 0 {
		bad("spare-nodes", "%d: must not be negative", c.SpareNodes)
	}
	if c.WarmPoolMin < 0 || c.WarmPoolMax < c.WarmPoolMin {
		bad("warm-pool-max", "%d: must be at least warm-pool-min (%d), which must not be negative", c.WarmPoolMax, c.WarmPoolMin)
	}
	if c.WarmPoolBudget < 0 {
		bad("warm-pool-budget", "%g: must not be negative", c.WarmPoolBudget)
	}
	if c.SpikeMemory < time.Minute {
		bad("spike-memory", "%s: must be at least 1m", c.SpikeMemory)
	}
	if c.SpotCallLimit < 0 || c.SpotCallLimit > 2*time.Minute {
		bad("spot-call-limit", "%s: want 0 to 2m (EC2's interruption notice)", c.SpotCallLimit)
	}
	if c.SpotPriceEvery < time.Minute {
		bad("spot-price-every", "%s: must be at least 1m", c.SpotPriceEvery)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// Pricing is the one price table built from the configuration; errors
// name the field.
func (c *Config) Pricing() (cost.Pricing, error) {
	p := cost.Pricing{Region: c.PriceRegion, DefaultType: c.PricedType(), EBSPerGBMonth: c.EBSPerGBMonth,
		VolumeGB: c.NodeVolumeGB, IPv4PerHour: c.IPv4PerHour, PublicIPv4: c.NodePublicIPv4}
	var err error
	if p.OnDemand, err = cost.ParseTable(c.Prices, c.PriceRegion); err != nil {
		return p, fmt.Errorf("prices: %w", err)
	}
	if p.Spot, err = cost.ParseTable(c.SpotPrices, c.PriceRegion); err != nil {
		return p, fmt.Errorf("spot-prices: %w", err)
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// PricedType is the instance type nodes are priced as: EC2's preferred
// type, or instance-type for the local cloud.
func (c *Config) PricedType() string {
	if c.Cloud == "ec2" && len(c.EC2InstanceTypes) > 0 {
		return c.EC2InstanceTypes[0]
	}
	return c.InstanceType
}
