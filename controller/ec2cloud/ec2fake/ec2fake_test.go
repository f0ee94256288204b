package ec2fake_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/controller/ec2cloud/ec2fake"
)

func post(t *testing.T, srv *httptest.Server, form url.Values, signed bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signed {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHostileRequests(t *testing.T) {
	srv := httptest.NewServer(ec2fake.New())
	defer srv.Close()
	ok := url.Values{"Action": {"DescribeInstances"}, "Version": {ec2fake.Version}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range ok {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	cases := []struct {
		name     string
		form     url.Values
		signed   bool
		status   int
		wantCode string
	}{
		{"unsigned", ok, false, 401, "AuthFailure"},
		{"wrong version", with("Version", "2014-01-01"), true, 400, "InvalidParameterValue"},
		{"unknown action", with("Action", "DeleteVpc"), true, 400, "InvalidAction"},
		{"max results too big", with("MaxResults", "5000"), true, 400, "InvalidParameterValue"},
		{"max results not a number", with("MaxResults", "x"), true, 400, "InvalidParameterValue"},
		{"bad next token", with("NextToken", "next-99999"), true, 400, "InvalidParameterValue"},
		{"unknown filter", with("Filter.1.Name", "owner-id", "Filter.1.Value.1", "x"), true, 400, "InvalidParameterValue"},
		{"unknown id", with("InstanceId.1", "i-0123456789abcdef0"), true, 400, "InvalidInstanceID.NotFound"},
		{"run without image", url.Values{"Action": {"RunInstances"}, "Version": {ec2fake.Version}, "MinCount": {"1"}, "MaxCount": {"1"}}, true, 400, "MissingParameter"},
		{"run bad counts", url.Values{"Action": {"RunInstances"}, "Version": {ec2fake.Version}, "ImageId": {"ami-1"}, "MinCount": {"3"}, "MaxCount": {"1"}}, true, 400, "InvalidParameterValue"},
		{"run bad user data", url.Values{"Action": {"RunInstances"}, "Version": {ec2fake.Version}, "ImageId": {"ami-1"}, "MinCount": {"1"}, "MaxCount": {"1"}, "UserData": {"!!"}}, true, 400, "InvalidParameterValue"},
		{"terminate nothing", url.Values{"Action": {"TerminateInstances"}, "Version": {ec2fake.Version}}, true, 400, "MissingParameter"},
		{"fine", ok, true, 200, ""},
	}
	for _, tc := range cases {
		status, body := post(t, srv, tc.form, tc.signed)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, status, tc.status, body)
		}
		if tc.wantCode != "" && !strings.Contains(body, "<Response><Errors><Error><Code>"+tc.wantCode+"</Code>") {
			t.Errorf("%s: body %s, want EC2 error %s", tc.name, body, tc.wantCode)
		}
		if tc.wantCode == "" && !strings.Contains(body, "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">") {
			t.Errorf("%s: body %s", tc.name, body)
		}
	}
}
