package ec2cloud_test

import (
	"context"
	"testing"

	"github.com/elastidial/elastidial/controller"
)

// BenchmarkInstances1000 lists 1,000 instances through the real SDK and the
// fake EC2 on loopback (one DescribeInstances page).
func BenchmarkInstances1000(b *testing.B) {
	e := newEnvTB(b)
	ctx := context.Background()
	if _, err := e.cloud.Launch(ctx, controller.LaunchRequest{Count: 1000, Token: "bench"}); err != nil {
		b.Fatal(err)
	}
	e.cloud = e.newCloud(b)
	b.ResetTimer()
	for b.Loop() {
		list, err := e.cloud.Instances(ctx)
		if err != nil || len(list) != 1000 {
			b.Fatalf("listed %d: %v", len(list), err)
		}
	}
}
