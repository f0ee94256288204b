// Package ec2cloud is the scaler's controller.Cloud on Amazon EC2: it
// launches tagged Asterisk nodes in batches with RunInstances, lists them by
// the cluster tag and terminates them, coping with EC2's request limits,
// eventual consistency and insufficient capacity.
package ec2cloud

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/elastidial/elastidial/controller"
)

// API is the part of the EC2 SDK client this package calls; *ec2.Client
// implements it. Method names are the EC2 operation names, so the IAM actions
// the controller needs are exactly ec2:<method> for each method here.
type API interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeSpotPriceHistory(ctx context.Context, in *ec2.DescribeSpotPriceHistoryInput, opts ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, opts ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	StartInstances(ctx context.Context, in *ec2.StartInstancesInput, opts ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
}

var _ API = (*ec2.Client)(nil)
var (
	_ controller.WarmCloud  = (*Cloud)(nil)
	_ controller.ZonedCloud = (*Cloud)(nil)
)

// Tag keys every node carries (CONVENTIONS.md).
const (
	TagCluster = "elastidial:cluster"
	TagRole    = "elastidial:role"
	TagName    = "Name"
)

// Errors callers may branch on.
var (
	// ErrNoCapacity: every subnet and instance type answered with a
	// capacity error.
	ErrNoCapacity = errors.New("ec2: no capacity in any subnet for any instance type")
	// ErrInvalidRequest: the launch request itself is malformed.
	ErrInvalidRequest = errors.New("ec2: invalid launch request")
)

// NodeEnv is what a node needs at first boot; it travels as user data in
// plain KEY=value lines (CONVENTIONS.md).
type NodeEnv struct {
	ControllerURL string
	ClusterSecret string
	Capacity      int // call slots per node, default 100
	TrunkName     string
	TrunkHost     string
	TrunkUser     string
	TrunkPassword string
}

// Config says what to launch and where.
type Config struct {
	Region string // e.g. us-east-1; required
	// Exactly one of LaunchTemplateID, LaunchTemplateName or ImageID.
	LaunchTemplateID      string
	LaunchTemplateName    string
	LaunchTemplateVersion string // default "$Default"
	ImageID               string
	// InstanceTypes in order of preference; required unless the launch
	// template names one (then leave empty).
	InstanceTypes []string
	// Subnets, ideally one per availability zone; tried in order on
	// insufficient capacity. Required.
	Subnets         []string
	SecurityGroups  []string // security group ids
	InstanceProfile string   // name or ARN; empty: none (or the template's)
	Spot            bool     // spot instead of on-demand
	// SpotRetry is how long launches stay on-demand after spot had no
	// capacity in any subnet for any type; then spot is tried again.
	// Default 10 minutes.
	SpotRetry time.Duration
	// Hibernate launches nodes with hibernation configured, so the warm
	// pool can park them hibernated (their RAM on the root volume, which
	// must be encrypted and large enough; the launch template or AMI sees
	// to that). Spot nodes are never parked.
	Hibernate bool
	Cluster   string  // value of the elastidial:cluster tag; required
	Node      NodeEnv // user data
	// LaunchesPerSecond and LaunchBurst shape the client-side token bucket
	// in front of RunInstances (EC2's own bucket: 2/s refill, burst 5).
	// Defaults 2 and 5.
	LaunchesPerSecond float64
	LaunchBurst       int
	// PendingGrace is how long a launched instance that DescribeInstances
	// does not show yet is still reported as pending (eventual
	// consistency). Default 5 minutes.
	PendingGrace time.Duration
}

var clusterRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate names the first field that is wrong.
func (c *Config) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("ec2 config: region is required")
	case !clusterRE.MatchString(c.Cluster):
		return fmt.Errorf("ec2 config: cluster %q must be 1-63 letters, digits, '.', '_' or '-'", c.Cluster)
	}
	n := 0
	for _, s := range []string{c.LaunchTemplateID, c.LaunchTemplateName, c.ImageID} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("ec2 config: set exactly one of launch_template_id, launch_template_name or image_id")
	}
	if c.ImageID != "" && !strings.HasPrefix(c.ImageID, "ami-") {
		return fmt.Errorf("ec2 config: image_id %q is not an AMI id (ami-...)", c.ImageID)
	}
	if c.ImageID != "" && len(c.InstanceTypes) == 0 {
		return errors.New("ec2 config: instance_types is required with image_id")
	}
	for i, t := range c.InstanceTypes {
		if !strings.Contains(t, ".") || strings.ContainsAny(t, " \t\n") {
			return fmt.Errorf("ec2 config: instance_types[%d] %q is not an instance type (e.g. c6i.large)", i, t)
		}
	}
	if len(c.Subnets) == 0 {
		return errors.New("ec2 config: subnets is required (one per availability zone)")
	}
	for i, s := range c.Subnets {
		if !strings.HasPrefix(s, "subnet-") {
			return fmt.Errorf("ec2 config: subnets[%d] %q is not a subnet id (subnet-...)", i, s)
		}
	}
	for i, s := range c.SecurityGroups {
		if !strings.HasPrefix(s, "sg-") {
			return fmt.Errorf("ec2 config: security_groups[%d] %q is not a security group id (sg-...)", i, s)
		}
	}
	if c.Node.ControllerURL == "" || !(strings.HasPrefix(c.Node.ControllerURL, "http://") || strings.HasPrefix(c.Node.ControllerURL, "https://")) {
		return fmt.Errorf("ec2 config: node.controller_url %q must be an http(s) URL", c.Node.ControllerURL)
	}
	if c.Node.ClusterSecret == "" {
		return errors.New("ec2 config: node.cluster_secret is required")
	}
	if c.Node.Capacity < 0 {
		return fmt.Errorf("ec2 config: node.capacity %d must not be negative", c.Node.Capacity)
	}
	for name, v := range map[string]string{"controller_url": c.Node.ControllerURL, "cluster_secret": c.Node.ClusterSecret,
		"trunk_name": c.Node.TrunkName, "trunk_host": c.Node.TrunkHost, "trunk_user": c.Node.TrunkUser, "trunk_password": c.Node.TrunkPassword} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("ec2 config: node.%s must be a single line", name)
		}
	}
	if c.LaunchesPerSecond < 0 || c.LaunchBurst < 0 || c.PendingGrace < 0 {
		return errors.New("ec2 config: launches_per_second, launch_burst and pending_grace must not be negative")
	}
	if len(c.userData()) > 16*1024 {
		return errors.New("ec2 config: node user data exceeds EC2's 16 KiB limit")
	}
	return nil
}

// userData renders the node's environment as KEY=value lines.
func (c *Config) userData() string {
	capacity := c.Node.Capacity
	if capacity == 0 {
		capacity = 100
	}
	var b strings.Builder
	for _, kv := range [][2]string{
		{"ELASTIDIAL_CONTROLLER_URL", c.Node.ControllerURL},
		{"ELASTIDIAL_CLUSTER_SECRET", c.Node.ClusterSecret},
		{"ELASTIDIAL_CAPACITY", strconv.Itoa(capacity)},
		{"ELASTIDIAL_TRUNK_NAME", c.Node.TrunkName},
		{"ELASTIDIAL_TRUNK_HOST", c.Node.TrunkHost},
		{"ELASTIDIAL_TRUNK_USER", c.Node.TrunkUser},
		{"ELASTIDIAL_TRUNK_PASSWORD", c.Node.TrunkPassword},
	} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return b.String()
}

// Clock is the time source; the zero Cloud uses the real clock.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cloud launches, lists and terminates the cluster's EC2 instances.
type Cloud struct {
	api   API
	cfg   Config
	log   *slog.Logger
	clock Clock

	bucketMu sync.Mutex
	tokens   float64
	refilled time.Time

	mu sync.Mutex
	// unseen: launched instances DescribeInstances has not shown yet.
	unseen map[string]unseenInstance
	// choice: per launch token, the (type, subnet) that succeeded, so a
	// retry repeats the exact same RunInstances and EC2 deduplicates it.
	choice map[string][2]string
	// doomed: ids Terminate could not find because EC2 did not show them
	// yet; terminated as soon as they appear.
	doomed map[string]bool
	// subnetZone: each configured subnet's availability zone, read once
	// with DescribeSubnets.
	subnetZone map[string]string
	// onDemandUntil: spot had no capacity anywhere; launch on-demand
	// until then (capacity-type fallback), spot again after.
	onDemandUntil time.Time
	// market: per launch token, whether it fell back to on-demand, so a
	// retry repeats the same request.
	market map[string]bool
}

type unseenInstance struct {
	inst     controller.Instance
	deadline time.Time
}

// New validates cfg and returns the cloud. api is normally NewAPI's client;
// log and clock may be nil.
func New(cfg Config, api API, log *slog.Logger, clock Clock) (*Cloud, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, errors.New("ec2cloud: nil API")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = realClock{}
	}
	if cfg.LaunchesPerSecond == 0 {
		cfg.LaunchesPerSecond = 2
	}
	if cfg.LaunchBurst == 0 {
		cfg.LaunchBurst = 5
	}
	if cfg.PendingGrace == 0 {
		cfg.PendingGrace = 5 * time.Minute
	}
	if cfg.SpotRetry == 0 {
		cfg.SpotRetry = 10 * time.Minute
	}
	if cfg.LaunchTemplateVersion == "" {
		cfg.LaunchTemplateVersion = "$Default"
	}
	return &Cloud{api: api, cfg: cfg, log: log, clock: clock, tokens: float64(cfg.LaunchBurst), refilled: clock.Now(),
		unseen: map[string]unseenInstance{}, choice: map[string][2]string{}, doomed: map[string]bool{}, market: map[string]bool{}}, nil
}

// RetryOptions tune the SDK retryer NewAPI installs.
type RetryOptions struct {
	MaxAttempts int           // default 8
	MaxBackoff  time.Duration // default 20s
	// Backoff overrides the delay between attempts (tests); default is
	// the SDK's exponential backoff with full jitter capped at MaxBackoff.
	Backoff retry.BackoffDelayer
}

// capacityCodes are EC2 errors meaning "not here, try elsewhere": the SDK
// must not retry them in place (InsufficientInstanceCapacity answers 500,
// which the default retryer would repeat).
var capacityCodes = map[string]bool{
	"InsufficientInstanceCapacity":      true,
	"InsufficientCapacity":              true,
	"Unsupported":                       true,
	"InstanceLimitExceeded":             false,
	"MaxSpotInstanceCountExceeded":      true,
	"SpotMaxPriceTooLow":                true,
	"InsufficientFreeAddressesInSubnet": true,
}

// NewAPI builds the EC2 client with the retry policy this package relies
// on. Throttling (RequestLimitExceeded, Throttling) is retried by the SDK's
// standard retryer: it sees every attempt, knows EC2's throttle codes, and
// backs off exponentially with full jitter up to MaxBackoff. Its client-side
// retry quota is switched off, because a burst of throttles would otherwise
// exhaust it and turn throttling into hard failures; our own launch token
// bucket keeps the request rate down instead. Capacity errors are never
// retried in place: Launch moves on to the next subnet or type.
func NewAPI(cfg aws.Config, ro RetryOptions) *ec2.Client {
	if ro.MaxAttempts == 0 {
		ro.MaxAttempts = 8
	}
	if ro.MaxBackoff == 0 {
		ro.MaxBackoff = 20 * time.Second
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = ro.MaxAttempts
			so.MaxBackoff = ro.MaxBackoff
			so.RateLimiter = ratelimit.None
			if ro.Backoff != nil {
				so.Backoff = ro.Backoff
			} else {
				so.Backoff = retry.NewExponentialJitterBackoff(ro.MaxBackoff)
			}
			so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				if capacityCodes[errorCode(err)] {
					return aws.FalseTernary
				}
				return aws.UnknownTernary
			})}, so.Retryables...)
		})
	})
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// waitLaunchToken blocks until the client-side bucket allows one more
// RunInstances request.
func (c *Cloud) waitLaunchToken(ctx context.Context) error {
	for {
		c.bucketMu.Lock()
		now := c.clock.Now()
		c.tokens += now.Sub(c.refilled).Seconds() * c.cfg.LaunchesPerSecond
		c.refilled = now
		if max := float64(c.cfg.LaunchBurst); c.tokens > max {
			c.tokens = max
		}
		if c.tokens >= 1 {
			c.tokens--
			c.bucketMu.Unlock()
			return nil
		}
		wait := time.Duration((1 - c.tokens) / c.cfg.LaunchesPerSecond * float64(time.Second))
		c.bucketMu.Unlock()
		if err := c.clock.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("wait for launch rate limit: %w", err)
		}
	}
}

// maxClientToken is EC2's limit on ClientToken length.
const maxClientToken = 64

// Launch starts up to req.Count nodes in one RunInstances call, moving to
// the next subnet and then the next instance type when EC2 has no capacity.
// With Spot, a request that finds no spot capacity anywhere falls back to
// on-demand, and launches stay on-demand for SpotRetry before spot is
// tried again (the scaler drains on-demand nodes first at scale-in, so the
// fleet moves back to spot as it turns over). req.OnDemand launches
// on-demand at once (the scaler asks so for calls that may outlast a spot
// notice, and while it knows spot is short, a fact it keeps in its store
// so that a new leader knows it too).
func (c *Cloud) Launch(ctx context.Context, req controller.LaunchRequest) ([]controller.Instance, error) {
	if !c.cfg.Spot || req.OnDemand {
		return c.launch(ctx, req, false)
	}
	c.mu.Lock()
	onDemand, known := c.market[req.Token]
	if !known {
		onDemand = c.clock.Now().Before(c.onDemandUntil)
	}
	c.mu.Unlock()
	if !onDemand {
		got, err := c.launch(ctx, req, true)
		if !errors.Is(err, ErrNoCapacity) {
			return got, err
		}
		c.log.Warn("no spot capacity in any subnet: falling back to on-demand", "retry_spot_after", c.cfg.SpotRetry)
		c.mu.Lock()
		c.onDemandUntil = c.clock.Now().Add(c.cfg.SpotRetry)
		c.mu.Unlock()
	}
	c.mu.Lock()
	if req.Token != "" {
		c.market[req.Token] = true
	}
	c.mu.Unlock()
	return c.launch(ctx, req, false)
}

func (c *Cloud) launch(ctx context.Context, req controller.LaunchRequest, spot bool) ([]controller.Instance, error) {
	if req.Count < 1 {
		return nil, fmt.Errorf("launch %d instances: %w: count must be positive", req.Count, ErrInvalidRequest)
	}
	if len(req.Token) > maxClientToken {
		return nil, fmt.Errorf("launch: %w: token longer than %d characters", ErrInvalidRequest, maxClientToken)
	}
	for k := range req.Tags {
		if k == TagCluster || strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, fmt.Errorf("launch: %w: tag %q is reserved", ErrInvalidRequest, k)
		}
	}
	token := req.Token
	if token == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		token = hex.EncodeToString(b[:])
	}
	types_ := c.cfg.InstanceTypes
	if len(types_) == 0 {
		types_ = []string{""} // the launch template's type
	}
	type attempt struct{ typ, subnet string }
	var attempts []attempt
	c.mu.Lock()
	if ch, ok := c.choice[token]; ok {
		attempts = append(attempts, attempt{ch[0], ch[1]})
	}
	c.mu.Unlock()
	// The subnets of the zone asked for first, then the others in their
	// configured order (insufficient capacity moves on).
	subnets := c.cfg.Subnets
	if req.Zone != "" {
		c.mu.Lock()
		sz := c.subnetZone
		c.mu.Unlock()
		subnets = slices.Clone(subnets)
		slices.SortStableFunc(subnets, func(a, b string) int {
			ia, ib := sz[a] == req.Zone, sz[b] == req.Zone
			switch {
			case ia && !ib:
				return -1
			case ib && !ia:
				return 1
			}
			return 0
		})
	}
	for _, t := range types_ {
		for _, s := range subnets {
			attempts = append(attempts, attempt{t, s})
		}
	}
	var errs []error
	for _, a := range attempts {
		if err := c.waitLaunchToken(ctx); err != nil {
			return nil, fmt.Errorf("launch: %w", err)
		}
		out, err := c.api.RunInstances(ctx, c.runInput(req, token, a.typ, a.subnet, spot))
		code := errorCode(err)
		switch {
		case err == nil:
			c.mu.Lock()
			c.choice[token] = [2]string{a.typ, a.subnet}
			c.mu.Unlock()
			return c.remember(out.Instances), nil
		case code == "IdempotentParameterMismatch":
			// This token already launched, with other parameters (a
			// previous controller's fallback): report what it started.
			got, derr := c.byToken(ctx, token)
			if derr != nil {
				return nil, fmt.Errorf("launch: find instances of token %s: %w", token, derr)
			}
			return got, nil
		case capacityCodes[code]:
			c.log.Info("ec2 capacity error, trying next placement", "type", a.typ, "subnet", a.subnet, "code", code)
			errs = append(errs, fmt.Errorf("%s in %s: %w", a.typ, a.subnet, err))
			continue
		default:
			return nil, fmt.Errorf("launch %d in %s: %w", req.Count, a.subnet, err)
		}
	}
	return nil, fmt.Errorf("launch %d: %w: %w", req.Count, ErrNoCapacity, errors.Join(errs...))
}

func (c *Cloud) runInput(req controller.LaunchRequest, token, typ, subnet string, spot bool) *ec2.RunInstancesInput {
	tags := []types.Tag{
		{Key: aws.String(TagCluster), Value: aws.String(c.cfg.Cluster)},
		{Key: aws.String(TagRole), Value: aws.String("node")},
		{Key: aws.String(TagName), Value: aws.String("elastidial-node")},
	}
	keys := make([]string, 0, len(req.Tags))
	for k := range req.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == TagRole || k == TagName {
			for i := range tags {
				if *tags[i].Key == k {
					tags[i].Value = aws.String(req.Tags[k])
				}
			}
			continue
		}
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(req.Tags[k])})
	}
	in := &ec2.RunInstancesInput{
		MinCount:    aws.Int32(1),
		MaxCount:    aws.Int32(int32(req.Count)),
		ClientToken: aws.String(token),
		SubnetId:    aws.String(subnet),
		UserData:    aws.String(base64.StdEncoding.EncodeToString([]byte(c.cfg.userData()))),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags[:1]},
		},
	}
	if len(c.cfg.SecurityGroups) > 0 {
		in.SecurityGroupIds = c.cfg.SecurityGroups
	}
	if typ != "" {
		in.InstanceType = types.InstanceType(typ)
	}
	switch {
	case c.cfg.ImageID != "":
		in.ImageId = aws.String(c.cfg.ImageID)
	case c.cfg.LaunchTemplateID != "":
		in.LaunchTemplate = &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(c.cfg.LaunchTemplateID), Version: aws.String(c.cfg.LaunchTemplateVersion)}
	default:
		in.LaunchTemplate = &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String(c.cfg.LaunchTemplateName), Version: aws.String(c.cfg.LaunchTemplateVersion)}
	}
	if p := c.cfg.InstanceProfile; p != "" {
		if strings.HasPrefix(p, "arn:") {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(p)}
		} else {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(p)}
		}
	}
	if c.cfg.Hibernate && !spot {
		in.HibernationOptions = &types.HibernationOptionsRequest{Configured: aws.Bool(true)}
	}
	if spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{
			MarketType:  types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime, InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate},
		}
	}
	return in
}

// remember records launched instances so Instances reports them as pending
// until DescribeInstances catches up.
func (c *Cloud) remember(list []types.Instance) []controller.Instance {
	now := c.clock.Now()
	out := make([]controller.Instance, 0, len(list))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range list {
		inst := convert(i)
		out = append(out, inst)
		c.unseen[inst.ID] = unseenInstance{inst: inst, deadline: now.Add(c.cfg.PendingGrace)}
	}
	return out
}

func (c *Cloud) byToken(ctx context.Context, token string) ([]controller.Instance, error) {
	in := &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("client-token"), Values: []string{token}},
		{Name: aws.String("tag:" + TagCluster), Values: []string{c.cfg.Cluster}},
	}}
	all, err := c.describe(ctx, in)
	if err != nil {
		return nil, err
	}
	return c.remember(all), nil
}

func (c *Cloud) describe(ctx context.Context, in *ec2.DescribeInstancesInput) ([]types.Instance, error) {
	in.MaxResults = aws.Int32(1000)
	var all []types.Instance
	for pages := 0; ; pages++ {
		if pages > 10000 {
			return nil, errors.New("describe instances: pagination does not end")
		}
		out, err := c.api.DescribeInstances(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range out.Reservations {
			all = append(all, r.Instances...)
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return all, nil
		}
		in.NextToken = out.NextToken
	}
}

// Instances lists the cluster's instances by tag, plus instances launched
// moments ago that EC2 does not show yet, reported as pending.
func (c *Cloud) Instances(ctx context.Context) ([]controller.Instance, error) {
	raw, err := c.describe(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + TagCluster), Values: []string{c.cfg.Cluster}},
	}})
	if err != nil {
		return nil, err
	}
	now := c.clock.Now()
	out := make([]controller.Instance, 0, len(raw))
	seen := make(map[string]bool, len(raw))
	for _, i := range raw {
		inst := convert(i)
		seen[inst.ID] = true
		out = append(out, inst)
	}
	var doomed []string
	c.mu.Lock()
	for id, u := range c.unseen {
		switch {
		case seen[id]:
			delete(c.unseen, id)
		case now.After(u.deadline):
			c.log.Warn("launched instance never appeared in DescribeInstances", "instance", id)
			delete(c.unseen, id)
			delete(c.doomed, id)
		default:
			out = append(out, u.inst)
		}
	}
	for id := range c.doomed {
		if seen[id] {
			doomed = append(doomed, id)
		}
	}
	c.mu.Unlock()
	if len(doomed) > 0 {
		if err := c.Terminate(ctx, doomed); err != nil {
			c.log.Warn("terminate instances that appeared late", "err", err)
		}
	}
	slices.SortFunc(out, func(a, b controller.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func convert(i types.Instance) controller.Instance {
	inst := controller.Instance{
		ID:        aws.ToString(i.InstanceId),
		Type:      string(i.InstanceType),
		PrivateIP: aws.ToString(i.PrivateIpAddress),
		PublicIP:  aws.ToString(i.PublicIpAddress),
		Spot:      i.InstanceLifecycle == types.InstanceLifecycleTypeSpot,
		Tags:      map[string]string{},
	}
	if i.State != nil {
		inst.State = string(i.State.Name)
	}
	if inst.State == "" {
		inst.State = controller.InstancePending
	}
	if i.Placement != nil {
		inst.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	if i.LaunchTime != nil {
		inst.LaunchedAt = *i.LaunchTime
	}
	for _, t := range i.Tags {
		inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return inst
}

// terminateBatch is how many ids go in one TerminateInstances call (EC2
// accepts up to 1000; smaller batches keep one bad id from stalling many).
const terminateBatch = 500

var instanceIDRE = regexp.MustCompile(`i-[0-9a-f]{8,17}`)

// Terminate terminates ids in batches. Ids EC2 does not know are skipped:
// those already gone are done; those launched moments ago and not yet
// visible are terminated as soon as Instances sees them.
func (c *Cloud) Terminate(ctx context.Context, ids []string) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for i, id := range ids {
		if !instanceIDRE.MatchString(id) || len(id) > 19 {
			return fmt.Errorf("terminate: %w: ids[%d] %q is not an instance id", ErrInvalidRequest, i, id)
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), terminateBatch)
		if err := c.terminateBatch(ctx, ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func (c *Cloud) terminateBatch(ctx context.Context, ids []string) error {
	for len(ids) > 0 {
		_, err := c.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
		if err == nil {
			c.mu.Lock()
			for _, id := range ids {
				delete(c.doomed, id)
			}
			c.mu.Unlock()
			return nil
		}
		if errorCode(err) != "InvalidInstanceID.NotFound" && errorCode(err) != "InvalidInstanceID.Malformed" {
			return fmt.Errorf("terminate %d instances: %w", len(ids), err)
		}
		// EC2 rejects the whole call and names the unknown ids: drop
		// them and try again with the rest.
		var ae smithy.APIError
		errors.As(err, &ae)
		missing := map[string]bool{}
		for _, id := range instanceIDRE.FindAllString(ae.ErrorMessage(), -1) {
			missing[id] = true
		}
		rest := ids[:0:0]
		for _, id := range ids {
			if !missing[id] {
				rest = append(rest, id)
			}
		}
		if len(rest) == len(ids) {
			return fmt.Errorf("terminate %d instances: unknown ids not named: %w", len(ids), err)
		}
		c.mu.Lock()
		for id := range missing {
			if u, ok := c.unseen[id]; ok {
				c.doomed[id] = true
				u.inst.State = controller.InstanceShuttingDown
				c.unseen[id] = u
			}
		}
		c.mu.Unlock()
		ids = rest
	}
	return nil
}
