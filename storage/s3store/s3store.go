// Package s3store keeps the audio library in S3 (or an S3-compatible
// store): objects under a prefix with their SHA-256 in metadata, an index
// object so listing costs one request, and presigned GET URLs so nodes
// need no credentials.
package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/elastidial/elastidial/storage"
)

// API is the part of the S3 client the store uses; *s3.Client has it.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

var _ API = (*s3.Client)(nil)

// Store is an audio store in one bucket under a prefix.
type Store struct {
	api     API
	presign *s3.PresignClient
	bucket  string
	prefix  string // "" or ending in "/"
	plain   bool   // Options.Unindexed

	mu sync.Mutex
}

var _ storage.Store = (*Store)(nil)

// Options name the bucket and how to reach it.
type Options struct {
	Bucket    string
	Prefix    string // e.g. "audio/"
	Endpoint  string // custom endpoint for S3-compatible stores; "" for AWS
	PathStyle bool   // path-style addressing (most S3-compatible stores)
	// Unindexed keeps no index object: Put and Delete are one request
	// each however many objects there are (the index is rewritten whole
	// by each, and two controllers writing it at once lose entries), and
	// List pages through the bucket, giving each object's size and
	// LastModified but no SHA-256. For rendered speech, one object per
	// sentence.
	Unindexed bool
}

// New builds the store from an AWS config.
func New(cfg aws.Config, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3 audio store: bucket is required")
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Checksums only where S3 requires them: S3-compatible stores do
		// not all accept the trailing checksums newer SDKs send by default.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := strings.Trim(o.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{api: client, presign: s3.NewPresignClient(client), bucket: o.Bucket, prefix: prefix, plain: o.Unindexed}, nil
}

const indexKey = ".index.json"

func (s *Store) key(k string) string { return s.prefix + k }

// index reads the index object; when there is none it is rebuilt from a
// listing (objects put there by other tools included).
func (s *Store) index(ctx context.Context) (map[string]storage.Object, error) {
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(indexKey))})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return s.rebuild(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("read audio index: %w", err)
	}
	defer out.Body.Close()
	idx := map[string]storage.Object{}
	if err := json.NewDecoder(out.Body).Decode(&idx); err != nil {
		return nil, fmt.Errorf("audio index in s3://%s/%s%s is corrupt: %w", s.bucket, s.prefix, indexKey, err)
	}
	return idx, nil
}

func (s *Store) rebuild(ctx context.Context) (map[string]storage.Object, error) {
	idx := map[string]storage.Object{}
	p := s3.NewListObjectsV2Paginator(s.api, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list audio: %w", err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if storage.CheckKey(k) != nil {
				continue
			}
			head, err := s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("head %s: %w", k, err)
			}
			sum := head.Metadata["sha256"]
			if sum == "" { // not uploaded by us: hash it once
				rc, err := s.Get(ctx, k)
				if err != nil {
					return nil, err
				}
				h := sha256.New()
				_, err = io.Copy(h, rc)
				rc.Close()
				if err != nil {
					return nil, fmt.Errorf("hash %s: %w", k, err)
				}
				sum = hex.EncodeToString(h.Sum(nil))
			}
			idx[k] = storage.Object{Key: k, Size: aws.ToInt64(o.Size), SHA256: sum}
		}
	}
	return idx, nil
}

func (s *Store) writeIndex(ctx context.Context, idx map[string]storage.Object) error {
	b, _ := json.Marshal(idx)
	_, err := s.api.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(indexKey)), Body: bytes.NewReader(b), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("write audio index: %w", err)
	}
	return nil
}

// Put stores a file with its SHA-256 in metadata and records it.
func (s *Store) Put(ctx context.Context, key string, data []byte) (storage.Object, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.Object{}, err
	}
	sum := sha256.Sum256(data)
	o := storage.Object{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	put := func() error {
		_, err := s.api.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key)), Body: bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))), ContentType: aws.String("application/octet-stream"), Metadata: map[string]string{"sha256": o.SHA256}})
		if err != nil {
			return fmt.Errorf("store %s: %w", key, err)
		}
		return nil
	}
	if s.plain {
		o.Modified = time.Now()
		return o, put()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := put(); err != nil {
		return storage.Object{}, err
	}
	idx, err := s.index(ctx)
	if err != nil {
		return storage.Object{}, err
	}
	idx[key] = o
	return o, s.writeIndex(ctx, idx)
}

// Get opens a file.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key))})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return out.Body, nil
}

// Delete removes a file.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	if s.plain {
		// S3 answers a delete of a missing key with success, as here.
		if _, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key))}); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.index(ctx)
	if err != nil {
		return err
	}
	if _, ok := idx[key]; !ok {
		return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	if _, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key))}); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	delete(idx, key)
	return s.writeIndex(ctx, idx)
}

// List returns the indexed files, or every object of an unindexed store.
func (s *Store) List(ctx context.Context) ([]storage.Object, error) {
	if s.plain {
		return s.walk(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Object, 0, len(idx))
	for _, o := range idx {
		out = append(out, o)
	}
	return out, nil
}

// URL presigns a GET of the object, valid for ttl.
func (s *Store) URL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key))}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return req.URL, nil
}

// walk pages through an unindexed store's objects.
func (s *Store) walk(ctx context.Context) ([]storage.Object, error) {
	out := []storage.Object{}
	p := s3.NewListObjectsV2Paginator(s.api, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", s.bucket, s.prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if storage.CheckKey(k) != nil {
				continue
			}
			out = append(out, storage.Object{Key: k, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}
