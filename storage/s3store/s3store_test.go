package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/elastidial/elastidial/storage"
	"github.com/elastidial/elastidial/storage/s3fake"
)

func awsConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}
}

// newS3 is the S3 store through the real SDK against the S3 protocol
// server on loopback.
func newS3(t testing.TB) (*Store, *s3fake.Server) {
	fake := s3fake.New("audio-bucket")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	st, err := New(awsConfig(), Options{Bucket: "audio-bucket", Prefix: "prod/audio", Endpoint: srv.URL, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return st, fake
}

func newFolder(t testing.TB) *storage.Folder {
	f := &storage.Folder{Dir: t.TempDir(), Secret: []byte("k")}
	srv := httptest.NewServer(http.StripPrefix("/audio/", f.Handler()))
	t.Cleanup(srv.Close)
	f.BaseURL = storage.URLBase(srv.URL)
	return f
}

// TestContract runs one suite against both stores.
func TestContract(t *testing.T) {
	s3st, _ := newS3(t)
	for name, st := range map[string]storage.Store{"folder": newFolder(t), "s3": s3st} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			data := bytes.Repeat([]byte{0xD5}, 8000)
			o, err := st.Put(ctx, "survey/welcome.ulaw", data)
			if err != nil || o.Size != 8000 || len(o.SHA256) != 64 {
				t.Fatalf("put: %+v %v", o, err)
			}
			st.Put(ctx, "survey/thanks.ulaw", []byte{1, 2, 3})
			objs, err := st.List(ctx)
			sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
			if err != nil || len(objs) != 2 || objs[1] != o {
				t.Fatalf("list: %+v %v", objs, err)
			}
			rc, err := st.Get(ctx, "survey/welcome.ulaw")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Fatal("get returned other bytes")
			}
			u, err := st.URL(ctx, "survey/welcome.ulaw", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(u)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("signed URL %s: %v %v", u, resp, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(body, data) {
				t.Fatal("signed URL returned other bytes")
			}
			if _, err := st.Get(ctx, "survey/nope.ulaw"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("missing file: %v", err)
			}
			if _, err := st.Put(ctx, "../escape.ulaw", data); !errors.Is(err, storage.ErrBadName) {
				t.Fatalf("path trick: %v", err)
			}
			if err := st.Delete(ctx, "survey/thanks.ulaw"); err != nil {
				t.Fatal(err)
			}
			if err := st.Delete(ctx, "survey/thanks.ulaw"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if objs, _ := st.List(ctx); len(objs) != 1 {
				t.Fatalf("after delete: %+v", objs)
			}
		})
	}
}

// TestSyncFromS3: a node syncs through presigned URLs, survives an outage,
// refuses corrupted bytes, and an index lost from the bucket is rebuilt.
func TestSyncFromS3(t *testing.T) {
	ctx := context.Background()
	st, fake := newS3(t)
	lib := &storage.Library{Store: st}
	for i := range 5 {
		if _, err := st.Put(ctx, fmt.Sprintf("set/f%d.ulaw", i), bytes.Repeat([]byte{byte(i)}, 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := lib.Manifest(ctx, "")
	if err != nil || len(m.Files) != 5 {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	dir := t.TempDir()
	s := &storage.Syncer{Dir: dir, Backoff: time.Millisecond}
	fake.Outage(3)
	if err := s.Sync(ctx, m); err != nil {
		t.Fatalf("sync through an outage: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "set", "f3.ulaw")); len(b) != 1003 {
		t.Fatalf("f3.ulaw has %d bytes", len(b))
	}
	st.Put(ctx, "set/f0.ulaw", []byte("new"))
	lib2 := &storage.Library{Store: st}
	m2, _ := lib2.Manifest(ctx, m.Version)
	fake.Garble(true)
	if err := s.Sync(ctx, m2); !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("corrupt download: %v", err)
	}
	fake.Garble(false)
	if b, _ := os.ReadFile(filepath.Join(dir, "set", "f0.ulaw")); len(b) != 1000 {
		t.Fatal("corrupt bytes were installed")
	}

	// A bucket whose index is gone: the listing rebuilds it from object
	// metadata.
	st2, err := New(awsConfig(), Options{Bucket: "audio-bucket", Prefix: "prod/audio", Endpoint: st.endpoint(), PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	st2.api.DeleteObject(ctx, deleteIndex(st2))
	objs, err := st2.List(ctx)
	if err != nil || len(objs) != 5 {
		t.Fatalf("rebuilt index: %d objects, %v", len(objs), err)
	}
}

// BenchmarkSyncS3 is a node's first sync of 200 files, 100 MB, from the S3
// protocol server through presigned URLs.
func BenchmarkSyncS3(b *testing.B) {
	ctx := context.Background()
	st, _ := newS3(b)
	const files, size = 200, 500 * 1000
	data := make([]byte, size)
	for i := range files {
		data[0], data[1] = byte(i), byte(i>>8)
		if _, err := st.Put(ctx, fmt.Sprintf("bench/f%03d.ulaw", i), data); err != nil {
			b.Fatal(err)
		}
	}
	m, err := (&storage.Library{Store: st}).Manifest(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(files * size)
	for b.Loop() {
		if err := (&storage.Syncer{Dir: b.TempDir()}).Sync(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnindexedStores: rendered speech is one object per sentence, so its
// stores keep no index. Put, Get, signed URLs and Delete work as in the
// indexed ones; List gives sizes and modification times, which the
// retention sweep needs.
func TestUnindexedStores(t *testing.T) {
	fake := s3fake.New("audio-bucket")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	s3st, err := New(awsConfig(), Options{Bucket: "audio-bucket", Prefix: "prod/speech", Endpoint: srv.URL, PathStyle: true, Unindexed: true})
	if err != nil {
		t.Fatal(err)
	}
	folder := newFolder(t)
	folder.Unindexed = true
	before := time.Now().Add(-time.Minute)
	for name, st := range map[string]storage.Store{"folder": folder, "s3": s3st} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			data := bytes.Repeat([]byte{0xD5}, 8000)
			o, err := st.Put(ctx, "tts/0123abcd.wav", data)
			if err != nil || o.Size != 8000 || len(o.SHA256) != 64 {
				t.Fatalf("put: %+v %v", o, err)
			}
			if _, err := st.Put(ctx, "tts/4567ef01.wav", []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			objs, err := st.List(ctx)
			sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
			if err != nil || len(objs) != 2 || objs[0].Key != "tts/0123abcd.wav" || objs[0].Size != 8000 || objs[0].Modified.Before(before) {
				t.Fatalf("list: %+v %v", objs, err)
			}
			u, err := st.URL(ctx, "tts/0123abcd.wav", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(u)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("signed URL %s: %v %v", u, resp, err)
			}
			resp.Body.Close()
			if _, err := st.Put(ctx, "../escape.wav", data); !errors.Is(err, storage.ErrBadName) {
				t.Fatalf("path trick: %v", err)
			}
			if err := st.Delete(ctx, "tts/4567ef01.wav"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, "tts/4567ef01.wav"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("deleted file: %v", err)
			}
			if objs, _ := st.List(ctx); len(objs) != 1 {
				t.Fatalf("after delete: %+v", objs)
			}
		})
	}
	// Nothing but the renderings was written: no index.
	if entries, _ := os.ReadDir(folder.Dir); len(entries) != 1 || entries[0].Name() != "tts" {
		t.Errorf("folder holds %v", entries)
	}
	if _, err := s3st.Get(context.Background(), ".index.json"); !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrBadName) {
		t.Errorf("an index was written: %v", err)
	}
}

// BenchmarkSpeechPut stores one more rendering in a folder that holds
// 2,000, indexed and unindexed, against the floor measured in the same
// run: the durable write of the file alone (temporary file, sync,
// rename), which any store must do.
func BenchmarkSpeechPut(b *testing.B) {
	const held = 2000
	data := bytes.Repeat([]byte{0xD5}, 16000) // two seconds at 8 kHz
	ctx := context.Background()
	fill := func(f *storage.Folder) {
		for i := range held {
			if _, err := f.Put(ctx, fmt.Sprintf("tts/%08d.wav", i), data[:100]); err != nil {
				b.Fatal(err)
			}
		}
	}
	per := map[string]time.Duration{}
	run := func(name string, put func(i int) error) {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if err := put(held + i); err != nil {
					b.Fatal(err)
				}
				i++
			}
			per[name] = b.Elapsed() / time.Duration(b.N)
		})
	}
	dir := b.TempDir()
	run("floor", func(i int) error {
		tmp, err := os.CreateTemp(dir, ".tmp-*")
		if err != nil {
			return err
		}
		tmp.Write(data)
		tmp.Sync()
		tmp.Close()
		return os.Rename(tmp.Name(), fmt.Sprintf("%s/%08d.wav", dir, i))
	})
	for _, unindexed := range []bool{false, true} {
		f := &storage.Folder{Dir: b.TempDir(), Unindexed: unindexed}
		fill(f)
		name := map[bool]string{false: "indexed", true: "unindexed"}[unindexed]
		run(name, func(i int) error {
			_, err := f.Put(ctx, fmt.Sprintf("tts/%08d.wav", i), data)
			return err
		})
	}
	if per["floor"] > 0 {
		fmt.Printf("speech Put with %d renderings held: indexed %v (%.1f× floor), unindexed %v (%.2f× floor); floor (durable write of the file) %v\n",
			held, per["indexed"], float64(per["indexed"])/float64(per["floor"]), per["unindexed"], float64(per["unindexed"])/float64(per["floor"]), per["floor"])
	}
}
