package main

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/storage/s3fake"
)

// TestServeWithS3Audio keeps the audio library in S3 (the protocol server,
// through the real SDK): uploads land in the bucket, and flows are checked
// against what is there.
func TestServeWithS3Audio(t *testing.T) {
	fake := s3fake.New("audio-bucket")
	s3 := httptest.NewServer(fake)
	defer s3.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv := startServe(t, "-audio", "s3://audio-bucket/prod/audio", "-s3-endpoint", s3.URL)

	if code, body := srv.upload("survey", "welcome.wav", silence(8000, 0.3)); code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, body := srv.call("GET", "/api/v1/audio", ""); code != 200 || !strings.Contains(body, "survey/welcome.wav") {
		t.Fatalf("library: %d %s", code, body)
	}
	srv.call("PUT", "/api/v1/trunks/carrier", `{"max_channels":10,"max_cps":1}`)
	_, body := srv.call("POST", "/api/v1/campaigns", `{"name":"S3","trunk":"carrier","caller_id":"+14155550100","target":5}`)
	id := body[strings.Index(body, `"c_`)+1:]
	id = id[:strings.Index(id, `"`)]
	if code, body := srv.call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"w","states":{"w":{"play":["survey/welcome"],"next":"bye"},"bye":{"hangup":true}}}`); code != 200 {
		t.Fatalf("flow with a prompt in S3: %d %s", code, body)
	}
	if code, _ := srv.call("PUT", "/api/v1/campaigns/"+id+"/flow", `{"start":"w","states":{"w":{"play":["survey/missing"],"next":"bye"},"bye":{"hangup":true}}}`); code != 422 {
		t.Fatalf("flow with a missing prompt: %d", code)
	}
}
