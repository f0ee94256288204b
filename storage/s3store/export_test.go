package s3store

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func (s *Store) endpoint() string {
	return aws.ToString(s.api.(*s3.Client).Options().BaseEndpoint)
}

func deleteIndex(s *Store) *s3.DeleteObjectInput {
	return &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(indexKey))}
}
