package ec2cloud_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"

	"github.com/elastidial/elastidial/controller"
	"github.com/elastidial/elastidial/controller/ec2cloud"
	"github.com/elastidial/elastidial/controller/ec2cloud/ec2fake"
)

// clock is a manual clock shared by the fake EC2 and the cloud; Sleep
// advances it at once and records the wait.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Duration
	for _, d := range c.sleeps {
		t += d
	}
	return t
}

type env struct {
	fake    *ec2fake.Server
	clock   *clock
	cloud   *ec2cloud.Cloud
	cfg     ec2cloud.Config
	url     string
	backoff *backoffRec
}

type backoffRec struct {
	mu    sync.Mutex
	calls []int
}

func (b *backoffRec) BackoffDelay(attempt int, err error) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, attempt)
	return 0, nil
}

func (b *backoffRec) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

func baseConfig() ec2cloud.Config {
	return ec2cloud.Config{
		Region:          "us-east-1",
		ImageID:         "ami-0123456789abcdef0",
		InstanceTypes:   []string{"c6i.large", "c5.large"},
		Subnets:         []string{"subnet-a", "subnet-b"},
		SecurityGroups:  []string{"sg-1", "sg-2"},
		InstanceProfile: "elastidial-node",
		Cluster:         "prod",
		Node: ec2cloud.NodeEnv{ControllerURL: "https://ctl.example:8443", ClusterSecret: "s3cret",
			Capacity: 120, TrunkName: "carrier", TrunkHost: "sip.example", TrunkUser: "u", TrunkPassword: "p"},
	}
}

func newEnvTB(tb testing.TB) *env { return newEnv(tb, nil) }

func newEnv(t testing.TB, mod func(*ec2cloud.Config)) *env {
	t.Helper()
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	fake := ec2fake.New()
	fake.Now = clk.Now
	fake.SubnetZones = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := baseConfig()
	if mod != nil {
		mod(&cfg)
	}
	e := &env{fake: fake, clock: clk, cfg: cfg, url: srv.URL, backoff: &backoffRec{}}
	e.cloud = e.newCloud(t)
	return e
}

// newCloud builds a cloud as a (re)started controller would: fresh memory,
// the real SDK client pointed at the fake.
func (e *env) newCloud(t testing.TB) *ec2cloud.Cloud {
	t.Helper()
	awsCfg := aws.Config{
		Region:       e.cfg.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(e.url),
	}
	api := ec2cloud.NewAPI(awsCfg, ec2cloud.RetryOptions{MaxAttempts: 5, Backoff: e.backoff})
	c, err := ec2cloud.New(e.cfg, api, nil, e.clock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func byID(list []controller.Instance) map[string]controller.Instance {
	m := map[string]controller.Instance{}
	for _, i := range list {
		m[i.ID] = i
	}
	return m
}

func TestLaunchTagsUserDataAndListing(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.BootDelay = 40 * time.Second
	ctx := context.Background()
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 3, Token: "tok-1", Tags: map[string]string{"elastidial:launch": "L1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("launched %d, want 3", len(got))
	}
	if e.fake.CallCount("RunInstances") != 1 {
		t.Errorf("RunInstances calls = %d, want 1 batch", e.fake.CallCount("RunInstances"))
	}
	for _, v := range e.fake.Instances() {
		wantTags := map[string]string{"elastidial:cluster": "prod", "elastidial:role": "node", "Name": "elastidial-node", "elastidial:launch": "L1"}
		for k, w := range wantTags {
			if v.Tags[k] != w {
				t.Errorf("%s tag %s = %q, want %q", v.ID, k, v.Tags[k], w)
			}
		}
		wantUD := "ELASTIDIAL_CONTROLLER_URL=https://ctl.example:8443\nELASTIDIAL_CLUSTER_SECRET=s3cret\nELASTIDIAL_CAPACITY=120\n" +
			"ELASTIDIAL_TRUNK_NAME=carrier\nELASTIDIAL_TRUNK_HOST=sip.example\nELASTIDIAL_TRUNK_USER=u\nELASTIDIAL_TRUNK_PASSWORD=p\n"
		if v.UserData != wantUD {
			t.Errorf("user data = %q, want %q", v.UserData, wantUD)
		}
		if v.Type != "c6i.large" || v.Subnet != "subnet-a" || v.Profile != "elastidial-node" || v.Token != "tok-1" || v.Spot {
			t.Errorf("instance %+v: wrong type/subnet/profile/token/spot", v)
		}
		if strings.Join(v.Groups, ",") != "sg-1,sg-2" {
			t.Errorf("groups = %v", v.Groups)
		}
	}
	// The SDK sends user data base64-encoded, as EC2 requires.
	p := e.fake.Calls()[0].Params
	if _, err := base64.StdEncoding.DecodeString(p.Get("UserData")); err != nil || strings.Contains(p.Get("UserData"), "ELASTIDIAL") {
		t.Errorf("UserData on the wire %q is not base64", p.Get("UserData"))
	}

	list, err := e.cloud.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %d, want 3", len(list))
	}
	for _, i := range list {
		if i.State != controller.InstancePending || i.Zone != "us-east-1a" || i.Type != "c6i.large" ||
			!i.LaunchedAt.Equal(e.clock.Now()) || i.PrivateIP == "" || i.Tags["elastidial:cluster"] != "prod" {
			t.Errorf("pending instance = %+v", i)
		}
	}
	e.clock.Advance(40 * time.Second)
	list, err = e.cloud.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range list {
		if i.State != controller.InstanceRunning || i.PublicIP == "" {
			t.Errorf("booted instance = %+v, want running with public ip", i)
		}
	}
}

func TestInstancesOnlyThisCluster(t *testing.T) {
	e := newEnv(t, nil)
	other := e.cfg
	other.Cluster = "staging"
	e2 := *e
	e2.cfg = other
	oc := e2.newCloud(t)
	ctx := context.Background()
	if _, err := oc.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "o"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "m"}); err != nil {
		t.Fatal(err)
	}
	list, err := e.cloud.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Tags["elastidial:cluster"] != "prod" {
		t.Fatalf("listed %+v, want only the prod instance", list)
	}
}

func TestRetriedLaunchSameTokenDoesNotDoubleLaunch(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// The first response is lost after EC2 launched: the SDK retries with
	// the same ClientToken and EC2 answers the same reservation.
	e.fake.LoseNext("RunInstances", ec2fake.Fault{Status: 500, Code: "InternalError", Message: "lost"})
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 4, Token: "same"})
	if err != nil {
		t.Fatal(err)
	}
	if e.fake.CallCount("RunInstances") != 2 {
		t.Errorf("RunInstances calls = %d, want 2 (one lost, one retried)", e.fake.CallCount("RunInstances"))
	}
	// The controller itself retries the whole Launch, and so does a
	// restarted controller with no memory.
	again, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 4, Token: "same"})
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := e.newCloud(t).Launch(ctx, controller.LaunchRequest{Count: 4, Token: "same"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Instances()); n != 4 {
		t.Fatalf("EC2 has %d instances, want 4", n)
	}
	for _, l := range [][]controller.Instance{again, restarted} {
		if len(l) != 4 || l[0].ID != got[0].ID {
			t.Errorf("retry answered %v, want the first batch %v", l, got)
		}
	}
}

func TestRetryAfterCapacityFallbackDoesNotDoubleLaunch(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.fake.NoCapacity("subnet-a", true)
	first, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "fb"})
	if err != nil {
		t.Fatal(err)
	}
	// Capacity comes back; a restarted controller retries the launch and
	// tries subnet-a first: EC2 reports the token used with other
	// parameters, and the cloud finds the batch by its client token.
	e.fake.NoCapacity("subnet-a", false)
	got, err := e.newCloud(t).Launch(ctx, controller.LaunchRequest{Count: 2, Token: "fb"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Instances()); n != 2 {
		t.Fatalf("EC2 has %d instances, want 2", n)
	}
	if len(got) != 2 || byID(got)[first[0].ID].ID == "" {
		t.Errorf("retry answered %v, want %v", got, first)
	}
}

func TestThrottlingBacksOff(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.fake.ThrottleNext(3)
	if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "t"}); err != nil {
		t.Fatalf("launch through 3 throttles: %v", err)
	}
	if e.backoff.count() != 3 {
		t.Errorf("backoffs = %d, want 3", e.backoff.count())
	}
	if len(e.fake.Instances()) != 1 {
		t.Errorf("instances = %d, want 1", len(e.fake.Instances()))
	}
	e.fake.ThrottleAll(true)
	_, err := e.cloud.Instances(ctx)
	if code(err) != "RequestLimitExceeded" {
		t.Fatalf("throttled forever: err = %v, want RequestLimitExceeded", err)
	}
	if n := e.fake.CallCount("DescribeInstances"); n != 5 {
		t.Errorf("DescribeInstances attempts = %d, want MaxAttempts 5", n)
	}
	e.fake.ThrottleAll(false)
	if _, err := e.cloud.Instances(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultBackoffIsCappedAndJittered(t *testing.T) {
	e := newEnv(t, nil)
	api := ec2cloud.NewAPI(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(e.url),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "s", "")},
		ec2cloud.RetryOptions{MaxAttempts: 4, MaxBackoff: 5 * time.Millisecond})
	c, err := ec2cloud.New(e.cfg, api, nil, e.clock)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.ThrottleNext(3)
	start := time.Now()
	if _, err := c.Instances(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("3 retries capped at 5ms took %v", d)
	}
}

func TestLaunchRateLimit(t *testing.T) {
	e := newEnv(t, func(c *ec2cloud.Config) { c.LaunchesPerSecond = 2; c.LaunchBurst = 5 })
	ctx := context.Background()
	for i := range 9 {
		if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "r" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	// 5 at once from the burst, then 4 more at 2/s: 2 seconds of waiting.
	if got := e.clock.slept(); got < 1900*time.Millisecond || got > 2100*time.Millisecond {
		t.Errorf("waited %v for 9 launches, want about 2s", got)
	}
}

func TestEventualConsistency(t *testing.T) {
	e := newEnv(t, func(c *ec2cloud.Config) { c.PendingGrace = 2 * time.Minute })
	ctx := context.Background()
	e.fake.VisibilityLag(30 * time.Second)
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "ec"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.cloud.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].State != controller.InstancePending {
		t.Fatalf("invisible launched instances listed as %+v, want 2 pending", list)
	}
	e.clock.Advance(31 * time.Second)
	list, err = e.cloud.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].State != controller.InstanceRunning || byID(list)[got[1].ID].ID == "" {
		t.Fatalf("visible instances listed as %+v, want 2 running", list)
	}

	// An instance that never shows up is reported pending until the grace
	// period ends, then no more.
	e.fake.VisibilityLag(time.Hour)
	if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "ghost"}); err != nil {
		t.Fatal(err)
	}
	list, _ = e.cloud.Instances(ctx)
	if len(list) != 3 {
		t.Fatalf("listed %d, want 3 with the unseen one", len(list))
	}
	e.clock.Advance(2*time.Minute + time.Second)
	list, _ = e.cloud.Instances(ctx)
	if len(list) != 2 {
		t.Fatalf("listed %d after the grace, want 2", len(list))
	}
}

func TestTerminateBeforeVisible(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.fake.VisibilityLag(30 * time.Second)
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "tb"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cloud.Terminate(ctx, []string{got[0].ID, got[1].ID}); err != nil {
		t.Fatalf("terminate not yet visible: %v", err)
	}
	list, _ := e.cloud.Instances(ctx)
	for _, i := range list {
		if i.State != controller.InstanceShuttingDown {
			t.Errorf("doomed unseen instance listed as %s", i.State)
		}
	}
	e.clock.Advance(31 * time.Second)
	if _, err := e.cloud.Instances(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range e.fake.Instances() {
		if v.State != "terminated" {
			t.Errorf("%s is %s, want terminated once visible (no leak)", v.ID, v.State)
		}
	}
}

func TestInsufficientCapacityFallsBack(t *testing.T) {
	cases := []struct {
		name       string
		noCap      []string
		wantSubnet string
		wantType   string
		calls      int
	}{
		{"first subnet", []string{"subnet-a"}, "subnet-b", "c6i.large", 2},
		{"zone", []string{"us-east-1a"}, "subnet-b", "c6i.large", 2},
		{"whole type", []string{"c6i.large"}, "subnet-a", "c5.large", 3},
		{"type in zone", []string{"c6i.large/us-east-1a", "c6i.large/us-east-1b", "c5.large/us-east-1a"}, "subnet-b", "c5.large", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			for _, k := range tc.noCap {
				e.fake.NoCapacity(k, true)
			}
			got, err := e.cloud.Launch(context.Background(), controller.LaunchRequest{Count: 2, Token: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Type != tc.wantType {
				t.Errorf("launched %+v, want 2 of %s", got, tc.wantType)
			}
			for _, v := range e.fake.Instances() {
				if v.Subnet != tc.wantSubnet {
					t.Errorf("subnet %s, want %s", v.Subnet, tc.wantSubnet)
				}
			}
			// Capacity errors are not retried in place by the SDK.
			if n := e.fake.CallCount("RunInstances"); n != tc.calls {
				t.Errorf("RunInstances calls = %d, want %d", n, tc.calls)
			}
		})
	}
	e := newEnv(t, nil)
	e.fake.NoCapacity("c6i.large", true)
	e.fake.NoCapacity("c5.large", true)
	_, err := e.cloud.Launch(context.Background(), controller.LaunchRequest{Count: 1})
	if !errors.Is(err, ec2cloud.ErrNoCapacity) || code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("err = %v, want ErrNoCapacity wrapping InsufficientInstanceCapacity", err)
	}
	if len(e.fake.Instances()) != 0 {
		t.Error("instances launched despite no capacity")
	}
}

func TestSlowBoot(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SlowBoot("c6i.large", 10*time.Minute)
	ctx := context.Background()
	if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "s"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(9 * time.Minute)
	list, _ := e.cloud.Instances(ctx)
	if list[0].State != controller.InstancePending {
		t.Errorf("after 9m state = %s, want pending", list[0].State)
	}
	e.clock.Advance(time.Minute)
	list, _ = e.cloud.Instances(ctx)
	if list[0].State != controller.InstanceRunning {
		t.Errorf("after 10m state = %s, want running", list[0].State)
	}
}

func TestOneCallFails(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.fake.FailNext("DescribeInstances", ec2fake.Fault{Status: 403, Code: "UnauthorizedOperation", Message: "You are not authorized"})
	_, err := e.cloud.Instances(ctx)
	if code(err) != "UnauthorizedOperation" || !strings.Contains(err.Error(), "describe instances") {
		t.Fatalf("err = %v, want wrapped UnauthorizedOperation", err)
	}
	if _, err := e.cloud.Instances(ctx); err != nil {
		t.Fatalf("next call: %v", err)
	}
	e.fake.FailNext("RunInstances", ec2fake.Fault{Status: 400, Code: "InvalidParameterValue", Message: "bad"})
	if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1}); code(err) != "InvalidParameterValue" {
		t.Fatalf("launch err = %v", err)
	}
	if n := e.fake.CallCount("RunInstances"); n != 1 {
		t.Errorf("a non-capacity error moved on to other placements: %d calls", n)
	}
}

func TestTerminateIdempotentAndBatched(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.ShutdownDelay = 30 * time.Second
	ctx := context.Background()
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 700, Token: "big"})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(got)+1)
	for _, i := range got {
		ids = append(ids, i.ID)
	}
	if err := e.cloud.Terminate(ctx, ids); err != nil {
		t.Fatal(err)
	}
	// Batches of at most 500 ids cover all 700. (Counted by ids rather
	// than calls: the SDK may repeat a call after a transport error.)
	batched := map[string]bool{}
	for _, c := range e.fake.Calls() {
		if c.Action != "TerminateInstances" {
			continue
		}
		n := 0
		for k, v := range c.Params {
			if strings.HasPrefix(k, "InstanceId.") {
				n++
				batched[v[0]] = true
			}
		}
		if n > 500 {
			t.Errorf("one TerminateInstances call carried %d ids, want <= 500", n)
		}
	}
	if len(batched) != 700 {
		t.Errorf("terminated %d distinct ids, want 700", len(batched))
	}
	list, _ := e.cloud.Instances(ctx)
	if list[0].State != controller.InstanceShuttingDown {
		t.Errorf("state = %s, want shutting-down", list[0].State)
	}
	e.clock.Advance(31 * time.Second)
	// Again, with an id EC2 never heard of: not an error.
	if err := e.cloud.Terminate(ctx, append(ids[:3:3], "i-0000000000000dead")); err != nil {
		t.Fatalf("terminate again with unknown id: %v", err)
	}
	list, _ = e.cloud.Instances(ctx)
	if len(list) != 700 || list[0].State != controller.InstanceTerminated {
		t.Errorf("got %d, state %s; want 700 terminated", len(list), list[0].State)
	}
	if err := e.cloud.Terminate(ctx, nil); err != nil {
		t.Errorf("terminate nothing: %v", err)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for i := range 3 {
		if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 900, Token: "p" + string(rune('0'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	e.cloud = e.newCloud(t) // forget launches: only Describe counts
	list, err := e.cloud.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2700 || len(byID(list)) != 2700 {
		t.Fatalf("listed %d (%d distinct), want 2700", len(list), len(byID(list)))
	}
	// Three pages of at most 1000: the first without a token, then each
	// following the previous page's NextToken.
	tokens := map[string]bool{}
	for _, c := range e.fake.Calls() {
		if c.Action == "DescribeInstances" {
			if c.Params.Get("MaxResults") != "1000" {
				t.Errorf("MaxResults = %q, want 1000", c.Params.Get("MaxResults"))
			}
			tokens[c.Params.Get("NextToken")] = true
		}
	}
	if len(tokens) != 3 || !tokens[""] {
		t.Errorf("DescribeInstances page tokens = %v, want 3 pages: %v", tokens, codes(e.fake.Calls()))
	}
}

func TestSpotInterruption(t *testing.T) {
	e := newEnv(t, func(c *ec2cloud.Config) { c.Spot = true })
	e.fake.ShutdownDelay = 2 * time.Minute
	ctx := context.Background()
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "spot"})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Spot || e.fake.Calls()[0].Params.Get("InstanceMarketOptions.MarketType") != "spot" {
		t.Fatalf("not a spot launch: %+v", got[0])
	}
	if err := e.fake.Interrupt(got[0].ID); err != nil {
		t.Fatal(err)
	}
	list, _ := e.cloud.Instances(ctx)
	m := byID(list)
	if m[got[0].ID].State != controller.InstanceShuttingDown || !m[got[0].ID].Spot || m[got[1].ID].State != controller.InstanceRunning {
		t.Fatalf("after interruption: %+v", list)
	}
	e.clock.Advance(2 * time.Minute)
	list, _ = e.cloud.Instances(ctx)
	if byID(list)[got[0].ID].State != controller.InstanceTerminated {
		t.Fatalf("interrupted instance not terminated: %+v", list)
	}
	// Terminating an instance the spot service already took is fine.
	if err := e.cloud.Terminate(ctx, []string{got[0].ID}); err != nil {
		t.Fatal(err)
	}
}

func TestLaunchTemplate(t *testing.T) {
	e := newEnv(t, func(c *ec2cloud.Config) {
		c.ImageID, c.LaunchTemplateName, c.LaunchTemplateVersion, c.InstanceTypes = "", "elastidial-node", "7", nil
		c.InstanceProfile = "arn:aws:iam::123456789012:instance-profile/node"
	})
	if _, err := e.cloud.Launch(context.Background(), controller.LaunchRequest{Count: 1}); err != nil {
		t.Fatal(err)
	}
	p := e.fake.Calls()[0].Params
	for k, want := range map[string]string{"LaunchTemplate.LaunchTemplateName": "elastidial-node", "LaunchTemplate.Version": "7",
		"IamInstanceProfile.Arn": "arn:aws:iam::123456789012:instance-profile/node", "ImageId": "", "InstanceType": ""} {
		if p.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, p.Get(k), want)
		}
	}
	if p.Get("ClientToken") == "" {
		t.Error("no ClientToken generated for an empty launch token")
	}
}

func TestHostileRequests(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	cases := []struct {
		req  controller.LaunchRequest
		want string
	}{
		{controller.LaunchRequest{Count: 0}, "count must be positive"},
		{controller.LaunchRequest{Count: 1, Token: strings.Repeat("x", 65)}, "token longer"},
		{controller.LaunchRequest{Count: 1, Tags: map[string]string{"elastidial:cluster": "other"}}, "reserved"},
		{controller.LaunchRequest{Count: 1, Tags: map[string]string{"aws:foo": "x"}}, "reserved"},
	}
	for _, tc := range cases {
		_, err := e.cloud.Launch(ctx, tc.req)
		if !errors.Is(err, ec2cloud.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Launch(%+v) err = %v, want %q", tc.req, err, tc.want)
		}
	}
	if err := e.cloud.Terminate(ctx, []string{"i-0123456789abcdef0", "; drop"}); !errors.Is(err, ec2cloud.ErrInvalidRequest) {
		t.Errorf("terminate bad id: %v", err)
	}
	if len(e.fake.Calls()) != 0 {
		t.Errorf("hostile requests reached EC2: %d calls", len(e.fake.Calls()))
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		mod  func(*ec2cloud.Config)
		want string // "" = valid
	}{
		{func(c *ec2cloud.Config) {}, ""},
		{func(c *ec2cloud.Config) { c.Region = "" }, "region"},
		{func(c *ec2cloud.Config) { c.Cluster = "" }, "cluster"},
		{func(c *ec2cloud.Config) { c.Cluster = "a b" }, "cluster"},
		{func(c *ec2cloud.Config) { c.LaunchTemplateID = "lt-1" }, "exactly one"},
		{func(c *ec2cloud.Config) { c.ImageID = "" }, "exactly one"},
		{func(c *ec2cloud.Config) { c.ImageID = "img-1" }, "image_id"},
		{func(c *ec2cloud.Config) { c.InstanceTypes = nil }, "instance_types"},
		{func(c *ec2cloud.Config) { c.InstanceTypes = []string{"c6i.large", "big"} }, "instance_types[1]"},
		{func(c *ec2cloud.Config) { c.Subnets = nil }, "subnets"},
		{func(c *ec2cloud.Config) { c.Subnets = []string{"subnet-a", "vpc-1"} }, "subnets[1]"},
		{func(c *ec2cloud.Config) { c.SecurityGroups = []string{"default"} }, "security_groups[0]"},
		{func(c *ec2cloud.Config) { c.Node.ControllerURL = "ctl:80" }, "node.controller_url"},
		{func(c *ec2cloud.Config) { c.Node.ClusterSecret = "" }, "node.cluster_secret"},
		{func(c *ec2cloud.Config) { c.Node.TrunkPassword = "a\nELASTIDIAL_CONTROLLER_URL=http://evil" }, "node.trunk_password"},
		{func(c *ec2cloud.Config) { c.Node.Capacity = -1 }, "node.capacity"},
		{func(c *ec2cloud.Config) { c.LaunchesPerSecond = -1 }, "launches_per_second"},
		{func(c *ec2cloud.Config) { c.Node.TrunkHost = strings.Repeat("h", 17000) }, "16 KiB"},
		{func(c *ec2cloud.Config) { c.ImageID = ""; c.LaunchTemplateName = "lt"; c.InstanceTypes = nil }, ""},
	}
	for i, tc := range cases {
		c := baseConfig()
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("case %d: unexpected error %v", i, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("case %d: err = %v, want mention of %q", i, err, tc.want)
		}
	}
}

func codes(calls []ec2fake.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Action+":"+c.Code)
	}
	return out
}

// TestSpotPricesFromHistory: the price in effect now, per type, at its
// dearest zone, through the real SDK and the fake's paginated history.
func TestSpotPricesFromHistory(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetSpotPrice("c6i.large", "us-east-1a", 0.05)
	e.fake.SetSpotPrice("c6i.large", "us-east-1b", 0.04)
	e.fake.SetSpotPrice("c5.large", "us-east-1a", 0.031)
	e.fake.SetSpotPrice("m6i.large", "us-east-1a", 0.9) // not configured: not asked for
	e.clock.Advance(time.Hour)
	e.fake.SetSpotPrice("c6i.large", "us-east-1a", 0.032) // the old 0.05 is history now
	for i := range 12 {                                   // later changes of c5.large in us-east-1b: the newest counts
		e.clock.Advance(time.Minute)
		e.fake.SetSpotPrice("c5.large", "us-east-1b", 0.03+float64(i)/1000)
	}
	got, err := e.cloud.SpotPrices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"c6i.large": 0.04, "c5.large": 0.041}
	if len(got) != len(want) || got["c6i.large"] != want["c6i.large"] || got["c5.large"] != want["c5.large"] {
		t.Fatalf("spot prices %v, want %v", got, want)
	}
	e.fake.FailNext("DescribeSpotPriceHistory", ec2fake.Fault{Status: 403, Code: "UnauthorizedOperation", Message: "not allowed"})
	if _, err := e.cloud.SpotPrices(context.Background()); code(err) != "UnauthorizedOperation" {
		t.Fatalf("a refused history: %v", err)
	}
}

// TestWarmPoolStopStart: the real SDK against the fake: a hibernating stop
// of a node launched with hibernation configured, each state with its own
// lag, a plain stop when hibernation is not configured, a start that
// fails for capacity, a start, and one-time spot refused.
func TestWarmPoolStopStart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *ec2cloud.Config) { c.Hibernate = true })
	e.fake.StopDelay, e.fake.HibernateDelay, e.fake.StartDelay = 20*time.Second, 90*time.Second, 15*time.Second
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "warm"})
	if err != nil || len(got) != 2 {
		t.Fatalf("launch: %v %v", got, err)
	}
	a, b := got[0].ID, got[1].ID
	if err := e.cloud.Stop(ctx, []string{a, b}, true); err != nil {
		t.Fatal(err)
	}
	state := func(id string) string {
		t.Helper()
		list, err := e.cloud.Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return byID(list)[id].State
	}
	e.clock.Advance(30 * time.Second)
	if s := state(a); s != controller.InstanceStopping {
		t.Fatalf("hibernating for 30 s: %s, want stopping (hibernation takes 90 s)", s)
	}
	if err := e.cloud.Start(ctx, []string{a}); code(err) != "IncorrectInstanceState" {
		t.Fatalf("start while stopping: %v", err)
	}
	e.clock.Advance(time.Minute)
	if s := state(a); s != controller.InstanceStopped {
		t.Fatalf("after 90 s: %s", s)
	}
	if v := e.fake.Instances(); !v[0].Hibernation || !v[0].Hibernated {
		t.Fatalf("fake: %+v", v[0])
	}
	if err := e.cloud.Stop(ctx, []string{a}, true); err != nil {
		t.Fatalf("stop again is not an error: %v", err)
	}
	e.fake.NoCapacity("us-east-1a", true)
	if err := e.cloud.Start(ctx, []string{a}); !errors.Is(err, ec2cloud.ErrNoCapacity) || code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("start without capacity: %v", err)
	}
	e.fake.NoCapacity("us-east-1a", false)
	if err := e.cloud.Start(ctx, []string{a, b}); err != nil {
		t.Fatal(err)
	}
	if s := state(a); s != controller.InstancePending {
		t.Fatalf("just started: %s", s)
	}
	e.clock.Advance(15 * time.Second)
	if s := state(a); s != controller.InstanceRunning {
		t.Fatalf("15 s after start: %s", s)
	}
	if v := e.fake.Instances(); v[0].Starts != 1 {
		t.Fatalf("starts %d", v[0].Starts)
	}
	if n := e.fake.CallCount("StopInstances") + e.fake.CallCount("StartInstances"); n != 5 {
		t.Fatalf("%d stop/start calls, want 5", n)
	}

	// Launched without hibernation: the stop falls back to a plain one.
	plain := newEnv(t, nil)
	got, _ = plain.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "plain"})
	if err := plain.cloud.Stop(ctx, []string{got[0].ID}, true); err != nil {
		t.Fatal(err)
	}
	if v := plain.fake.Instances(); v[0].Hibernated || v[0].State != "stopped" || plain.fake.CallCount("StopInstances") != 2 {
		t.Fatalf("plain stop: %+v after %d calls", v[0], plain.fake.CallCount("StopInstances"))
	}
	// One-time spot instances cannot be stopped.
	spot := newEnv(t, func(c *ec2cloud.Config) { c.Spot = true })
	got, _ = spot.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "spot"})
	if err := spot.cloud.Stop(ctx, []string{got[0].ID}, false); code(err) != "UnsupportedOperation" {
		t.Fatalf("stop spot: %v", err)
	}
	if err := e.cloud.Stop(ctx, []string{"not-an-id"}, false); !errors.Is(err, ec2cloud.ErrInvalidRequest) {
		t.Fatalf("bad id: %v", err)
	}
}

// TestZonePlacement: the zones of the configured subnets, read once; a
// launch for a zone goes to its subnet first and elsewhere when the zone
// has no capacity.
func TestZonePlacement(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	zones, err := e.cloud.Zones(ctx)
	if err != nil || len(zones) != 2 || zones[0] != "us-east-1a" || zones[1] != "us-east-1b" {
		t.Fatalf("zones %v %v", zones, err)
	}
	e.cloud.Zones(ctx)
	if n := e.fake.CallCount("DescribeSubnets"); n != 1 {
		t.Fatalf("%d DescribeSubnets calls, want 1 (cached)", n)
	}
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "zb", Zone: "us-east-1b"})
	if err != nil || len(got) != 2 || got[0].Zone != "us-east-1b" {
		t.Fatalf("launch for us-east-1b: %+v %v", got, err)
	}
	e.fake.NoCapacity("us-east-1b", true)
	got, err = e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "zb2", Zone: "us-east-1b"})
	if err != nil || len(got) != 1 || got[0].Zone != "us-east-1a" {
		t.Fatalf("us-east-1b short of capacity: %+v %v", got, err)
	}
	bad := newEnv(t, func(c *ec2cloud.Config) { c.Subnets = []string{"subnet-a", "subnet-zzz"} })
	if _, err := bad.cloud.Zones(ctx); code(err) != "InvalidSubnetID.NotFound" {
		t.Fatalf("unknown subnet: %v", err)
	}
}

// TestSpotFallback: no spot capacity in any subnet falls back to
// on-demand, launches stay on-demand for SpotRetry, then spot again.
func TestSpotFallback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *ec2cloud.Config) { c.Spot, c.InstanceTypes = true, []string{"c6i.large"} })
	e.fake.NoCapacity("spot", true)
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "s1"})
	if err != nil || len(got) != 2 || got[0].Spot {
		t.Fatalf("fallback launch: %+v %v", got, err)
	}
	if n := e.fake.CallCount("RunInstances"); n != 3 {
		t.Fatalf("%d RunInstances calls, want 2 spot (one per subnet) and 1 on-demand", n)
	}
	// A retry of the same launch repeats the on-demand request: no
	// second batch.
	if again, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "s1"}); err != nil || again[0].ID != got[0].ID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	e.fake.NoCapacity("spot", false)
	e.clock.Advance(5 * time.Minute)
	if got, _ := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "s2"}); got[0].Spot {
		t.Fatal("spot tried again before SpotRetry")
	}
	e.clock.Advance(6 * time.Minute)
	if got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "s3"}); err != nil || !got[0].Spot {
		t.Fatalf("back to spot after SpotRetry: %+v %v", got, err)
	}
	if v := e.fake.Instances(); len(v) != 4 || v[0].Spot || !v[3].Spot {
		t.Fatalf("fake: %+v", v)
	}
}

// TestOnDemandRequest: a request the scaler marks OnDemand (calls that
// may outlast a spot notice, or spot known short) launches on-demand at
// once from a spot cloud, in one call; others stay spot.
func TestOnDemandRequest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *ec2cloud.Config) { c.Spot, c.InstanceTypes = true, []string{"c6i.large"} })
	got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 2, Token: "od1", OnDemand: true})
	if err != nil || len(got) != 2 || got[0].Spot || got[1].Spot {
		t.Fatalf("on-demand launch: %+v %v", got, err)
	}
	if n := e.fake.CallCount("RunInstances"); n != 1 {
		t.Fatalf("%d RunInstances calls, want 1 on-demand", n)
	}
	if got, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1, Token: "s1"}); err != nil || !got[0].Spot {
		t.Fatalf("spot launch: %+v %v", got, err)
	}
}
