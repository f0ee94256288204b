package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/ec2cloud/ec2fake"
)

// TestServeOnEC2 runs the control center with -cloud ec2 against the EC2
// protocol server: a running campaign makes the scaler launch a node
// through the real SDK, tagged for the cluster, with user data that tells
// the node where the controller is and how to register.
func TestServeOnEC2(t *testing.T) {
	fake := ec2fake.New()
	ec2 := httptest.NewServer(fake)
	defer ec2.Close()
	t.Setenv("AWS_ENDPOINT_URL_EC2", ec2.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	srv := startServe(t, "-cloud", "ec2", "-public-url", "http://controller.example:8080", "-ec2-ami", "ami-0123456789abcdef0",
		"-ec2-subnets", "subnet-aaa,subnet-bbb", "-ec2-instance-types", "c6i.large", "-cluster", "prod", "-trunk-name", "carrier")
	srv.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":120,"max_cps":20}`)
	where := daytime(time.Now()) // calling hours are the law: call where it is daytime
	_, body := srv.call("POST", "/api/v1/campaigns", `{"name":"EC2","trunk":"carrier","caller_id":"`+where.callerID+`","target":50}`)
	id := body[strings.Index(body, `"c_`)+1:]
	id = id[:strings.Index(id, `"`)]
	srv.call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"bye","states":{"bye":{"hangup":true}}}`)
	srv.call("POST", "/api/v1/campaigns/"+id+"/contacts", "phone\n"+where.number(101)+"\n")
	if code, body := srv.call("POST", "/api/v1/campaigns/"+id+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(fake.Instances()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no instance launched; EC2 saw %+v", fake.Calls())
		}
		time.Sleep(100 * time.Millisecond)
	}
	in := fake.Instances()[0]
	ud := in.UserData // the fake shows it decoded
	if in.Tags["elastidial:cluster"] != "prod" || in.Type != "c6i.large" || in.Subnet != "subnet-aaa" ||
		!strings.Contains(string(ud), "ELASTIDIAL_CONTROLLER_URL=http://controller.example:8080") ||
		!strings.Contains(string(ud), "ELASTIDIAL_CLUSTER_SECRET=test-secret") || !strings.Contains(string(ud), "ELASTIDIAL_TRUNK_NAME=carrier") {
		t.Fatalf("instance %+v\nuser data:\n%s", in, ud)
	}
}
