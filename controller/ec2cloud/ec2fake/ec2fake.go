// Package ec2fake is an EC2 Query API server for tests and local demos. It
// speaks the wire protocol the AWS SDK uses (form-encoded POST, Action and
// Version=2016-11-15, XML answers, EC2's <Response><Errors> error format) for
// RunInstances, DescribeInstances, TerminateInstances and
// DescribeSpotPriceHistory, keeps instance
// state under an injected clock, and can be told to misbehave the ways real
// EC2 does: throttling, eventual consistency, insufficient capacity, slow
// boots, one failing call.
//
// Instance states follow EC2:
//
//	RunInstances ──► pending ──(BootDelay)──► running ──StopInstances──► stopping ──(StopDelay, HibernateDelay)──► stopped
//	                    │  ▲                     │                                                               │
//	                    │  └──(StartDelay)───────┼──────────────────────── StartInstances ◄──────────────────────┘
//	     TerminateInstances / Interrupt (spot)   │   (any state but terminated)
//	                    ▼                        ▼
//	              shutting-down ──(ShutdownDelay)──► terminated
//
// A stop may hibernate (Hibernate=true) only an instance launched with
// HibernationOptions.Configured; a one-time spot instance cannot be
// stopped; a start can fail for capacity like a launch (NoCapacity).
package ec2fake

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the only EC2 API version the fake answers.
const Version = "2016-11-15"

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Server is the fake EC2. Set the exported fields before serving; the fault
// fields may be changed at any time through the methods, which lock.
type Server struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// BootDelay is how long an instance stays pending (default 0).
	BootDelay time.Duration
	// ShutdownDelay is how long an instance stays shutting-down (default 0).
	ShutdownDelay time.Duration
	// SubnetZones maps subnet id to availability zone; unknown subnets are
	// rejected with InvalidSubnetID.NotFound. Empty: any subnet, zone
	// "us-east-1a".
	SubnetZones map[string]string
	// Region names the region in private DNS names (default us-east-1).
	Region string
	// StopDelay is how long a stopped instance stays stopping (default
	// 0); HibernateDelay the same for a hibernating one (RAM written to
	// the root volume; default StopDelay). StartDelay is how long a
	// started instance stays pending (default 0).
	StopDelay, HibernateDelay, StartDelay time.Duration

	mu        sync.Mutex
	seq       int
	instances map[string]*instance
	order     []string
	tokens    map[string]string // client token -> reservation id
	resv      map[string][]string
	calls     []Call

	throttleNext int
	throttleAll  bool
	failNext     map[string]Fault
	loseNext     map[string]Fault
	lag          time.Duration
	noCapacity   map[string]bool
	bootOverride map[string]time.Duration // instance type -> boot delay
	spot         []spotPrice
}

// Call records one request the fake answered.
type Call struct {
	Action string
	Params url.Values
	Code   string // error code answered, "" on success
}

// Fault is an EC2 error to answer.
type Fault struct {
	Status  int
	Code    string
	Message string
}

type instance struct {
	id, resvID, imageID, typ, subnet, zone string
	privateIP, publicIP                    string
	spot                                   bool
	token                                  string
	userData                               string
	groups                                 []string
	profile                                string
	tags                                   map[string]string
	launched                               time.Time
	visibleAt                              time.Time
	bootDelay, stopDelay                   time.Duration
	stopAt                                 time.Time // zero: not terminating
	reason                                 string

	hibernation       bool          // launched with HibernationOptions.Configured
	hibernated        bool          // the last stop hibernated
	parkAt, resumeAt  time.Time     // last StopInstances / StartInstances; the later one rules
	parkLag, startLag time.Duration // fixed when asked
	starts            int
}

// New returns a fake with no instances.
func New() *Server { return &Server{} }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) init() {
	if s.instances == nil {
		s.instances = map[string]*instance{}
		s.tokens = map[string]string{}
		s.resv = map[string][]string{}
		s.failNext = map[string]Fault{}
		s.loseNext = map[string]Fault{}
		s.noCapacity = map[string]bool{}
		s.bootOverride = map[string]time.Duration{}
	}
}

// ThrottleNext makes the next n requests (any action) fail with
// RequestLimitExceeded.
func (s *Server) ThrottleNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleNext = n
}

// ThrottleAll makes every request fail with RequestLimitExceeded while on.
func (s *Server) ThrottleAll(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleAll = on
}

// FailNext makes the next call of action fail with f.
func (s *Server) FailNext(action string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.failNext[action] = f
}

// LoseNext makes the next call of action take effect but answer f, as when
// a response is lost on the way back: the client cannot tell it worked.
func (s *Server) LoseNext(action string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.loseNext[action] = f
}

// VisibilityLag hides instances from DescribeInstances for d after launch;
// asking for them by id answers InvalidInstanceID.NotFound meanwhile.
func (s *Server) VisibilityLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = d
}

// NoCapacity makes RunInstances answer InsufficientInstanceCapacity when the
// request targets key: a subnet id, an availability zone, an instance type,
// "type/zone", or "spot" / "spot/zone" for spot requests alone. on=false
// restores capacity.
func (s *Server) NoCapacity(key string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.noCapacity[key] = on
}

// SlowBoot makes instances of the given type stay pending for d.
func (s *Server) SlowBoot(instanceType string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.bootOverride[instanceType] = d
}

// Interrupt terminates an instance as the spot service does: it goes to
// shutting-down with state reason Server.SpotInstanceTermination.
func (s *Server) Interrupt(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	in, ok := s.instances[id]
	if !ok {
		return fmt.Errorf("interrupt %s: no such instance", id)
	}
	if in.stopAt.IsZero() {
		in.stopAt = s.now()
		in.reason = "Server.SpotInstanceTermination: Spot instance termination"
	}
	return nil
}

// Calls returns the requests answered so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallCount counts answered requests of action, successful or not.
func (s *Server) CallCount(action string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Action == action {
			n++
		}
	}
	return n
}

// InstanceView is the fake's own view of an instance, for assertions.
type InstanceView struct {
	ID, State, Type, Subnet, Zone, UserData, Token, Profile string
	Spot, Hibernation, Hibernated                           bool
	Starts                                                  int
	Groups                                                  []string
	Tags                                                    map[string]string
}

// Instances lists every instance ever launched, in launch order, ignoring
// visibility lag.
func (s *Server) Instances() []InstanceView {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]InstanceView, 0, len(s.order))
	for _, id := range s.order {
		in := s.instances[id]
		out = append(out, InstanceView{ID: in.id, State: in.state(now), Type: in.typ, Subnet: in.subnet,
			Zone: in.zone, UserData: in.userData, Token: in.token, Profile: in.profile, Spot: in.spot,
			Hibernation: in.hibernation, Hibernated: in.hibernated, Starts: in.starts,
			Groups: in.groups, Tags: in.tags})
	}
	return out
}

func (in *instance) state(now time.Time) string {
	if !in.stopAt.IsZero() {
		if now.Sub(in.stopAt) >= 0 && now.Sub(in.stopAt) >= in.shutdownDelay() {
			return "terminated"
		}
		return "shutting-down"
	}
	if !in.parkAt.IsZero() && !in.resumeAt.After(in.parkAt) {
		if now.Sub(in.parkAt) >= in.parkLag {
			return "stopped"
		}
		return "stopping"
	}
	if !in.resumeAt.IsZero() {
		if now.Sub(in.resumeAt) >= in.startLag {
			return "running"
		}
		return "pending"
	}
	if now.Sub(in.launched) >= in.bootDelay {
		return "running"
	}
	return "pending"
}

// shutdownDelay is fixed at launch so a later change of
// Server.ShutdownDelay does not move instances already stopping.
func (in *instance) shutdownDelay() time.Duration { return in.stopDelay }

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// ServeHTTP answers one EC2 Query API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, Fault{http.StatusMethodNotAllowed, "InvalidAction", "EC2 Query API requests are POSTs"})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, Fault{http.StatusUnauthorized, "AuthFailure", "request is not signed with Signature Version 4"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeError(w, Fault{http.StatusBadRequest, "InvalidParameterValue", "malformed form body: " + err.Error()})
		return
	}
	p := r.PostForm
	action := p.Get("Action")
	if v := p.Get("Version"); v != Version {
		writeError(w, Fault{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("unsupported Version %q, want %s", v, Version)})
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	var f *Fault
	switch {
	case s.throttleAll || s.throttleNext > 0:
		if s.throttleNext > 0 {
			s.throttleNext--
		}
		f = &Fault{http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."}
	default:
		if ff, ok := s.failNext[action]; ok {
			delete(s.failNext, action)
			f = &ff
		}
	}
	var body any
	if f == nil {
		switch action {
		case "RunInstances":
			body, f = s.runInstances(p)
		case "DescribeInstances":
			body, f = s.describeInstances(p)
		case "TerminateInstances":
			body, f = s.terminateInstances(p)
		case "DescribeSpotPriceHistory":
			body, f = s.describeSpotPriceHistory(p)
		case "DescribeSubnets":
			body, f = s.describeSubnets(p)
		case "StopInstances":
			body, f = s.stopInstances(p)
		case "StartInstances":
			body, f = s.startInstances(p)
		default:
			f = &Fault{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action)}
		}
	}
	if ff, ok := s.loseNext[action]; ok && f == nil {
		delete(s.loseNext, action)
		f = &ff
	}
	c := Call{Action: action, Params: p}
	if f != nil {
		c.Code = f.Code
		s.calls = append(s.calls, c)
		writeError(w, *f)
		return
	}
	s.calls = append(s.calls, c)
	writeXML(w, http.StatusOK, body)
}

// writeXML sends v with a Content-Length, as EC2 does, rather than chunked.
func writeXML(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, f Fault) {
	type xErr struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type resp struct {
		XMLName   xml.Name `xml:"Response"`
		Errors    []xErr   `xml:"Errors>Error"`
		RequestID string   `xml:"RequestID"`
	}
	writeXML(w, f.Status, resp{Errors: []xErr{{f.Code, f.Message}}, RequestID: "fake-request"})
}

func badParam(format string, a ...any) *Fault {
	return &Fault{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf(format, a...)}
}

// list reads a query list: prefix.1, prefix.2, ...
func list(p url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func (s *Server) runInstances(p url.Values) (any, *Fault) {
	now := s.now()
	if tok := p.Get("ClientToken"); tok != "" {
		if rid, ok := s.tokens[tok]; ok {
			first := s.instances[s.resv[rid][0]]
			if first.subnet != p.Get("SubnetId") || (p.Get("InstanceType") != "" && first.typ != p.Get("InstanceType")) {
				return nil, &Fault{http.StatusBadRequest, "IdempotentParameterMismatch",
					fmt.Sprintf("The client token '%s' was already used with different parameters", tok)}
			}
			return s.reservationXML("RunInstancesResponse", rid, now), nil
		}
	}
	minC, err1 := strconv.Atoi(p.Get("MinCount"))
	maxC, err2 := strconv.Atoi(p.Get("MaxCount"))
	if err1 != nil || err2 != nil || minC < 1 || maxC < minC {
		return nil, badParam("MinCount %q and MaxCount %q must be integers with 1 <= MinCount <= MaxCount", p.Get("MinCount"), p.Get("MaxCount"))
	}
	image := p.Get("ImageId")
	lt := p.Get("LaunchTemplate.LaunchTemplateId") + p.Get("LaunchTemplate.LaunchTemplateName")
	if image == "" && lt == "" {
		return nil, &Fault{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId or LaunchTemplate"}
	}
	typ := p.Get("InstanceType")
	if typ == "" {
		typ = "m1.small"
	}
	subnet := p.Get("SubnetId")
	zone := "us-east-1a"
	if len(s.SubnetZones) > 0 && subnet != "" {
		z, ok := s.SubnetZones[subnet]
		if !ok {
			return nil, &Fault{http.StatusBadRequest, "InvalidSubnetID.NotFound", fmt.Sprintf("The subnet ID '%s' does not exist", subnet)}
		}
		zone = z
	}
	if az := p.Get("Placement.AvailabilityZone"); az != "" {
		zone = az
	}
	keys := []string{subnet, zone, typ, typ + "/" + zone}
	if p.Get("InstanceMarketOptions.MarketType") == "spot" {
		// "spot", "spot/<zone>": the spot pool alone is short.
		keys = append(keys, "spot", "spot/"+zone)
	}
	for _, k := range keys {
		if k != "" && s.noCapacity[k] {
			return nil, &Fault{http.StatusInternalServerError, "InsufficientInstanceCapacity",
				fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s).", typ, zone)}
		}
	}
	var ud string
	if b64 := p.Get("UserData"); b64 != "" {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, badParam("Invalid BASE64 encoding of user data")
		}
		ud = string(b)
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		pre := "TagSpecification." + strconv.Itoa(i)
		rt, ok := p[pre+".ResourceType"]
		if !ok {
			break
		}
		for j := 1; ; j++ {
			k, ok := p[pre+".Tag."+strconv.Itoa(j)+".Key"]
			if !ok {
				break
			}
			if rt[0] == "instance" {
				tags[k[0]] = p.Get(pre + ".Tag." + strconv.Itoa(j) + ".Value")
			}
		}
	}
	profile := p.Get("IamInstanceProfile.Name") + p.Get("IamInstanceProfile.Arn")
	spot := p.Get("InstanceMarketOptions.MarketType") == "spot"
	boot := s.BootDelay
	if d, ok := s.bootOverride[typ]; ok {
		boot = d
	}
	s.seq++
	rid := fmt.Sprintf("r-%017x", s.seq)
	for i := 0; i < maxC; i++ {
		s.seq++
		id := fmt.Sprintf("i-%017x", s.seq)
		in := &instance{id: id, resvID: rid, imageID: image, typ: typ, subnet: subnet, zone: zone,
			privateIP: fmt.Sprintf("10.0.%d.%d", (s.seq/250)%250, s.seq%250+2),
			publicIP:  fmt.Sprintf("198.51.%d.%d", (s.seq/250)%250, s.seq%250+2),
			spot:      spot, token: p.Get("ClientToken"), userData: ud, groups: list(p, "SecurityGroupId"),
			profile: profile, tags: copyTags(tags), launched: now, visibleAt: now.Add(s.lag), bootDelay: boot,
			hibernation: p.Get("HibernationOptions.Configured") == "true"}
		if image == "" {
			in.imageID = "ami-fromtemplate"
		}
		in.stopDelay = s.ShutdownDelay
		s.instances[id] = in
		s.order = append(s.order, id)
		s.resv[rid] = append(s.resv[rid], id)
	}
	if tok := p.Get("ClientToken"); tok != "" {
		s.tokens[tok] = rid
	}
	return s.reservationXML("RunInstancesResponse", rid, now), nil
}

func copyTags(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xInstance struct {
	InstanceID       string  `xml:"instanceId"`
	ImageID          string  `xml:"imageId"`
	State            xState  `xml:"instanceState"`
	PrivateDNSName   string  `xml:"privateDnsName"`
	Reason           string  `xml:"reason"`
	AmiLaunchIndex   int     `xml:"amiLaunchIndex"`
	InstanceType     string  `xml:"instanceType"`
	LaunchTime       string  `xml:"launchTime"`
	Zone             string  `xml:"placement>availabilityZone"`
	SubnetID         string  `xml:"subnetId,omitempty"`
	PrivateIPAddress string  `xml:"privateIpAddress,omitempty"`
	IPAddress        string  `xml:"ipAddress,omitempty"`
	Groups           []group `xml:"groupSet>item"`
	StateReason      *reason `xml:"stateReason,omitempty"`
	Lifecycle        string  `xml:"instanceLifecycle,omitempty"`
	ClientToken      string  `xml:"clientToken,omitempty"`
	Tags             []xTag  `xml:"tagSet>item"`
	Profile          *struct {
		Arn string `xml:"arn"`
	} `xml:"iamInstanceProfile,omitempty"`
}

type group struct {
	GroupID string `xml:"groupId"`
}

type reason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xReservation struct {
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

type reservationResp struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	xReservation
}

func (s *Server) reservationXML(root, rid string, now time.Time) any {
	r := reservationResp{XMLName: xml.Name{Local: root}, Xmlns: xmlns, RequestID: "fake-request",
		xReservation: xReservation{ReservationID: rid, OwnerID: "123456789012"}}
	for i, id := range s.resv[rid] {
		x := s.instances[id].xml(now, s.region())
		x.AmiLaunchIndex = i
		if x.State.Name == "running" {
			// RunInstances always answers pending, even for a repeated
			// token; instances are only seen running by Describe.
			x.State = xState{0, "pending"}
			x.IPAddress = ""
		}
		r.Instances = append(r.Instances, x)
	}
	return r
}

func (s *Server) region() string {
	if s.Region != "" {
		return s.Region
	}
	return "us-east-1"
}

func (in *instance) xml(now time.Time, region string) xInstance {
	st := in.state(now)
	x := xInstance{InstanceID: in.id, ImageID: in.imageID, State: xState{stateCodes[st], st},
		InstanceType: in.typ, LaunchTime: in.launched.UTC().Format("2006-01-02T15:04:05.000Z"),
		Zone: in.zone, SubnetID: in.subnet, ClientToken: in.token}
	if st != "terminated" {
		x.PrivateIPAddress = in.privateIP
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(in.privateIP, ".", "-") + "." + region + ".compute.internal"
		if st == "running" {
			x.IPAddress = in.publicIP
		}
	}
	for _, g := range in.groups {
		x.Groups = append(x.Groups, group{g})
	}
	if in.spot {
		x.Lifecycle = "spot"
	}
	if in.reason != "" {
		code, msg, _ := strings.Cut(in.reason, ": ")
		x.StateReason = &reason{code, msg}
	} else if !in.stopAt.IsZero() {
		x.StateReason = &reason{"Client.UserInitiatedShutdown", "User initiated shutdown"}
	}
	if in.profile != "" {
		x.Profile = &struct {
			Arn string `xml:"arn"`
		}{in.profile}
	}
	keys := make([]string, 0, len(in.tags))
	for k := range in.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Tags = append(x.Tags, xTag{k, in.tags[k]})
	}
	return x
}

// Terminated instances stay visible to DescribeInstances for this long, as in
// EC2 (about an hour).
const terminatedVisible = time.Hour

func (s *Server) describeInstances(p url.Values) (any, *Fault) {
	now := s.now()
	ids := list(p, "InstanceId")
	maxResults := 0
	if v := p.Get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			return nil, badParam("MaxResults %q must be between 5 and 1000", v)
		}
		if len(ids) > 0 {
			return nil, badParam("The parameter instancesSet cannot be used with the parameter maxResults")
		}
		maxResults = n
	}
	type filter struct {
		name   string
		values []string
	}
	var filters []filter
	for i := 1; ; i++ {
		pre := "Filter." + strconv.Itoa(i)
		n, ok := p[pre+".Name"]
		if !ok {
			break
		}
		switch {
		case strings.HasPrefix(n[0], "tag:"), n[0] == "instance-state-name", n[0] == "instance-id", n[0] == "tag-key", n[0] == "client-token":
		default:
			return nil, badParam("The filter '%s' is invalid", n[0])
		}
		filters = append(filters, filter{n[0], list(p, pre+".Value")})
	}
	start := 0
	if tok := p.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "next-"))
		if err != nil || !strings.HasPrefix(tok, "next-") || n < 0 || n > len(s.order) {
			return nil, badParam("Invalid NextToken %q", tok)
		}
		start = n
	}
	var visible []*instance
	if len(ids) > 0 {
		for _, id := range ids {
			in, ok := s.instances[id]
			if !ok || now.Before(in.visibleAt) {
				return nil, &Fault{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
			}
			visible = append(visible, in)
		}
	} else {
		for _, id := range s.order {
			visible = append(visible, s.instances[id])
		}
	}
	match := func(in *instance) bool {
		if now.Before(in.visibleAt) {
			return false
		}
		st := in.state(now)
		if st == "terminated" && now.Sub(in.stopAt) > terminatedVisible+in.shutdownDelay() {
			return false
		}
		for _, f := range filters {
			var got string
			var has bool
			switch {
			case f.name == "instance-state-name":
				got, has = st, true
			case f.name == "instance-id":
				got, has = in.id, true
			case f.name == "client-token":
				got, has = in.token, in.token != ""
			case f.name == "tag-key":
				ok := false
				for _, v := range f.values {
					if _, ok2 := in.tags[v]; ok2 {
						ok = true
					}
				}
				if !ok {
					return false
				}
				continue
			default:
				got, has = in.tags[strings.TrimPrefix(f.name, "tag:")]
			}
			ok := false
			for _, v := range f.values {
				if has && v == got {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	type resp struct {
		XMLName      xml.Name       `xml:"DescribeInstancesResponse"`
		Xmlns        string         `xml:"xmlns,attr"`
		RequestID    string         `xml:"requestId"`
		Reservations []xReservation `xml:"reservationSet>item"`
		NextToken    string         `xml:"nextToken,omitempty"`
	}
	out := resp{Xmlns: xmlns, RequestID: "fake-request"}
	// Pages count instances by position in launch order, so a token stays
	// valid while instances come and go.
	n := 0
	for pos := start; pos < len(visible); pos++ {
		in := visible[pos]
		if !match(in) {
			continue
		}
		if maxResults > 0 && n == maxResults {
			out.NextToken = "next-" + strconv.Itoa(pos)
			break
		}
		n++
		x := in.xml(now, s.region())
		if k := len(out.Reservations); k > 0 && out.Reservations[k-1].ReservationID == in.resvID {
			out.Reservations[k-1].Instances = append(out.Reservations[k-1].Instances, x)
		} else {
			out.Reservations = append(out.Reservations, xReservation{ReservationID: in.resvID, OwnerID: "123456789012", Instances: []xInstance{x}})
		}
	}
	return out, nil
}

func (s *Server) terminateInstances(p url.Values) (any, *Fault) {
	ids := list(p, "InstanceId")
	if f := s.knownIDs(ids); f != nil {
		return nil, f
	}
	return s.changeStates("TerminateInstancesResponse", ids, func(in *instance, _ string, now time.Time) {
		if in.stopAt.IsZero() {
			in.stopAt = now
		}
	}), nil
}
