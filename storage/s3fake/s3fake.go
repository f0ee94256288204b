// Package s3fake is an S3 protocol server for tests: path-style PutObject,
// GetObject (with ranges), HeadObject, DeleteObject and ListObjectsV2, and
// presigned GET URLs, over real HTTP, with the XML and error shapes the AWS
// SDK expects. It keeps objects in memory and can fail on demand.
package s3fake

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type object struct {
	data     []byte
	meta     map[string]string
	modified time.Time
	etag     string
}

// Server is an in-memory S3.
type Server struct {
	Now func() time.Time // time.Now when nil

	mu      sync.Mutex
	buckets map[string]map[string]*object
	outage  int  // answer 503 to this many requests
	garble  bool // flip a byte of every GET body
	gets    int
}

// New returns a server with the named buckets.
func New(buckets ...string) *Server {
	s := &Server{buckets: map[string]map[string]*object{}}
	for _, b := range buckets {
		s.buckets[b] = map[string]*object{}
	}
	return s
}

// Outage makes the next n requests fail with 503 SlowDown.
func (s *Server) Outage(n int) { s.mu.Lock(); s.outage = n; s.mu.Unlock() }

// Garble corrupts GET bodies while on.
func (s *Server) Garble(on bool) { s.mu.Lock(); s.garble = on; s.mu.Unlock() }

// Gets counts GET requests served.
func (s *Server) Gets() int { s.mu.Lock(); defer s.mu.Unlock(); return s.gets }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string
	Message   string
	Resource  string
	RequestID string `xml:"RequestId"`
}

func fail(w http.ResponseWriter, status int, code, msg, resource string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	xml.NewEncoder(w).Encode(s3Error{Code: code, Message: msg, Resource: resource, RequestID: "fake"})
}

// ServeHTTP answers path-style requests: /bucket/key.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.outage > 0 {
		s.outage--
		s.mu.Unlock()
		fail(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.", r.URL.Path)
		return
	}
	s.mu.Unlock()
	q := r.URL.Query()
	presigned := q.Get("X-Amz-Signature") != ""
	if !presigned && !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		fail(w, http.StatusForbidden, "AccessDenied", "missing SigV4 authorization", r.URL.Path)
		return
	}
	if presigned {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			fail(w, http.StatusForbidden, "AccessDenied", "presigned URL for another method", r.URL.Path)
			return
		}
		signed, err1 := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
		exp, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err1 != nil || err2 != nil || q.Get("X-Amz-Credential") == "" {
			fail(w, http.StatusForbidden, "AuthorizationQueryParametersError", "malformed presigned URL", r.URL.Path)
			return
		}
		if s.now().After(signed.Add(time.Duration(exp) * time.Second)) {
			fail(w, http.StatusForbidden, "AccessDenied", "Request has expired", r.URL.Path)
			return
		}
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	s.mu.Lock()
	objs, ok := s.buckets[bucket]
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist", "/"+bucket)
		return
	}
	switch {
	case key == "" && r.Method == http.MethodGet && q.Get("list-type") == "2":
		s.list(w, r, bucket, objs)
	case key == "":
		fail(w, http.StatusNotImplemented, "NotImplemented", "only ListObjectsV2 on a bucket", "/"+bucket)
	case r.Method == http.MethodPut:
		if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			fail(w, http.StatusNotImplemented, "NotImplemented", "aws-chunked uploads are not supported by this server", r.URL.Path)
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			fail(w, http.StatusBadRequest, "IncompleteBody", err.Error(), r.URL.Path)
			return
		}
		meta := map[string]string{}
		for k, v := range r.Header {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-amz-meta-") {
				meta[strings.TrimPrefix(lk, "x-amz-meta-")] = v[0]
			}
		}
		sum := md5.Sum(data)
		o := &object{data: data, meta: meta, modified: s.now().UTC().Truncate(time.Second), etag: `"` + hex.EncodeToString(sum[:]) + `"`}
		s.mu.Lock()
		objs[key] = o
		s.mu.Unlock()
		w.Header().Set("ETag", o.etag)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.mu.Lock()
		o := objs[key]
		garble := s.garble
		if r.Method == http.MethodGet {
			s.gets++
		}
		s.mu.Unlock()
		if o == nil {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			fail(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", r.URL.Path)
			return
		}
		for k, v := range o.meta {
			w.Header().Set("x-amz-meta-"+k, v)
		}
		w.Header().Set("ETag", o.etag)
		w.Header().Set("Content-Type", "application/octet-stream")
		data := o.data
		if garble && len(data) > 0 {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0xFF
		}
		http.ServeContent(w, r, "", o.modified, bytes.NewReader(data))
	case r.Method == http.MethodDelete:
		s.mu.Lock()
		delete(objs, key)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		fail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed", r.URL.Path)
	}
}

type listResult struct {
	XMLName               xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string
	Prefix                string
	KeyCount              int
	MaxKeys               int
	IsTruncated           bool
	ContinuationToken     string `xml:",omitempty"`
	NextContinuationToken string `xml:",omitempty"`
	Contents              []listEntry
}

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, bucket string, objs map[string]*object) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	max := 1000
	if v, err := strconv.Atoi(q.Get("max-keys")); err == nil && v > 0 && v < 1000 {
		max = v
	}
	after := q.Get("continuation-token")
	if after == "" {
		after = q.Get("start-after")
	}
	s.mu.Lock()
	var keys []string
	for k := range objs {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	res := listResult{Name: bucket, Prefix: prefix, MaxKeys: max, ContinuationToken: q.Get("continuation-token")}
	for i, k := range keys {
		if i == max {
			res.IsTruncated, res.NextContinuationToken = true, keys[i-1]
			break
		}
		o := objs[k]
		res.Contents = append(res.Contents, listEntry{Key: k, LastModified: o.modified.Format("2006-01-02T15:04:05.000Z"), ETag: o.etag, Size: int64(len(o.data)), StorageClass: "STANDARD"})
	}
	s.mu.Unlock()
	res.KeyCount = len(res.Contents)
	w.Header().Set("Content-Type", "application/xml")
	io.WriteString(w, xml.Header)
	if err := xml.NewEncoder(w).Encode(res); err != nil {
		fmt.Fprintln(w)
	}
}
