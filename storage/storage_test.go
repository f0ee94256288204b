package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// wav builds a 16-bit PCM WAV of a 440 Hz tone.
func wav(rate, channels int, seconds float64) []byte {
	frames := int(float64(rate) * seconds)
	b := make([]byte, 44+2*frames*channels)
	for i := range frames {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		for c := range channels {
			binary.LittleEndian.PutUint16(b[44+2*(i*channels+c):], uint16(v))
		}
	}
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], uint16(channels))
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2*channels))
	binary.LittleEndian.PutUint16(b[32:], uint16(2*channels))
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*frames*channels))
	return b
}

func TestPrepare(t *testing.T) {
	ok8k := wav(8000, 1, 0.5)
	name, out, err := Prepare("Welcome.WAV", ok8k)
	if err != nil || name != "welcome.wav" || !bytes.Equal(out, ok8k) {
		t.Fatalf("8 kHz mono: %q %v", name, err)
	}
	// 44.1 kHz stereo becomes 8 kHz mono of the same length.
	name, out, err = Prepare("cd.wav", wav(44100, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if rate := binary.LittleEndian.Uint32(out[24:]); rate != 8000 || binary.LittleEndian.Uint16(out[22:]) != 1 || len(out) != 44+2*8000 {
		t.Fatalf("converted: rate %d, channels %d, %d bytes", rate, binary.LittleEndian.Uint16(out[22:]), len(out))
	}
	// The tone survives: its peak is close to the original's.
	peak := 0
	for i := 44; i < len(out); i += 2 {
		peak = max(peak, int(int16(binary.LittleEndian.Uint16(out[i:]))))
	}
	if peak < 7000 || peak > 8500 {
		t.Fatalf("converted tone peak %d, want about 8000", peak)
	}
	hugeChunk := append([]byte(nil), ok8k...)
	binary.LittleEndian.PutUint32(hugeChunk[16:], 0xFFFFFFF0)
	eightBit := wav(8000, 1, 0.1)
	binary.LittleEndian.PutUint16(eightBit[34:], 8)
	for _, tc := range []struct {
		file string
		data []byte
		want string
	}{
		{"song.wav", append([]byte("ID3\x04\x00"), make([]byte, 100)...), "it is MP3, not WAV"},
		{"x.wav", []byte("RIFF\x00\x00"), "not a RIFF WAVE file"},
		{"x.wav", hugeChunk, "claims"},
		{"x.wav", eightBit, "8-bit"},
		{"x.mp3", []byte("ID3"), `extension ".mp3" is not playable`},
		{"x.wav", nil, "is empty"},
		{"x.gsm", []byte("not gsm"), "not GSM"},
		{"x.ulaw", ok8k, "holds a WAV container"},
		{".wav", ok8k, "give the file a name"},
	} {
		_, _, err := Prepare(tc.file, tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.file, err, tc.want)
		}
	}
}

func TestCheckKeyRefusesPathTricks(t *testing.T) {
	for _, k := range []string{"../etc/passwd.wav", "a/../b.wav", "/abs.wav", "a/b/c.wav", "a\\b.wav", "A/b.wav", "a/.hidden.wav", "a/b.wav\x00", "a/b.txt", "a/" + strings.Repeat("x", 200) + ".wav", "a/b c.wav"} {
		if err := CheckKey(k); !errors.Is(err, ErrBadName) {
			t.Errorf("%q accepted", k)
		}
	}
	if err := CheckKey("survey/welcome.wav"); err != nil {
		t.Error(err)
	}
}

type fixture struct {
	lib    *Library
	folder *Folder
	srv    *httptest.Server
	gets   atomic.Int64
	fail   atomic.Int64 // answer 503 to this many downloads
	garble atomic.Bool  // flip a byte in every download
}

func newFixture(t *testing.T) *fixture {
	fx := &fixture{}
	fx.folder = &Folder{Dir: t.TempDir(), Secret: []byte("k")}
	fx.lib = &Library{Store: fx.folder}
	h := http.StripPrefix("/audio/", fx.folder.Handler())
	fx.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fx.gets.Add(1)
		if fx.fail.Add(-1) >= 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if fx.garble.Load() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 50 {
				b[50] ^= 0xFF
			}
			w.Write(b)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(fx.srv.Close)
	fx.folder.BaseURL = URLBase(fx.srv.URL)
	return fx
}

func TestLibraryManifestAndSignedURLs(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	v0, _ := fx.lib.Version(ctx)
	if _, err := fx.lib.Put(ctx, "survey", "welcome.wav", wav(8000, 1, 0.2)); err != nil {
		t.Fatal(err)
	}
	fx.lib.Put(ctx, "survey", "thanks.wav", wav(8000, 1, 0.1))
	m, err := fx.lib.Manifest(ctx, "")
	if err != nil || len(m.Files) != 2 || m.Version == v0 || m.Files[0].Name != "survey/thanks.wav" {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	if again, _ := fx.lib.Manifest(ctx, m.Version); !again.Unchanged || len(again.Files) != 0 {
		t.Fatalf("current version not unchanged: %+v", again)
	}
	if ok, _ := fx.lib.Exists(ctx, "survey/welcome"); !ok {
		t.Error("survey/welcome not found")
	}
	if ok, _ := fx.lib.Exists(ctx, "survey/nope"); ok {
		t.Error("survey/nope found")
	}
	// The signed URL works; tampering, expiry and traversal do not.
	u := m.Files[1].URL
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(u); code != 200 {
		t.Fatalf("signed URL: %d", code)
	}
	if code := get(strings.Replace(u, "welcome", "thanks", 1)); code != 403 {
		t.Fatalf("URL for another file with this signature: %d", code)
	}
	if code := get(fx.srv.URL + "/audio/../../etc/passwd"); code == 200 {
		t.Fatal("path traversal served a file")
	}
	fx.folder.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if code := get(u); code != 403 {
		t.Fatalf("expired URL: %d", code)
	}
	fx.folder.Now = nil
	if err := fx.lib.Delete(ctx, "survey/thanks.wav"); err != nil {
		t.Fatal(err)
	}
	if v, _ := fx.lib.Version(ctx); v == m.Version {
		t.Fatal("version unchanged after a delete")
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	fx.lib.Put(ctx, "survey", "welcome.wav", wav(8000, 1, 0.3))
	fx.lib.Put(ctx, "survey", "thanks.wav", wav(8000, 1, 0.1))
	dir := t.TempDir()
	s := &Syncer{Dir: dir, Backoff: time.Millisecond}
	m, _ := fx.lib.Manifest(ctx, "")
	if err := s.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "survey", "welcome.wav"))
	if len(got) != 44+2*2400 {
		t.Fatalf("welcome.wav has %d bytes", len(got))
	}
	// Asterisk runs as its own user: every prompt must be readable by it.
	if st, _ := os.Stat(filepath.Join(dir, "survey", "welcome.wav")); st.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("welcome.wav is %v: Asterisk's user cannot read it", st.Mode().Perm())
	}
	// Nothing changed: nothing is downloaded.
	before := fx.gets.Load()
	if err := s.Sync(ctx, m); err != nil || fx.gets.Load() != before {
		t.Fatalf("resync downloaded %d files (%v)", fx.gets.Load()-before, err)
	}

	// An update while a call plays the old file: the reader keeps the old
	// bytes, new readers get the new ones.
	playing, _ := os.Open(filepath.Join(dir, "survey", "welcome.wav"))
	defer playing.Close()
	fx.lib.Put(ctx, "survey", "welcome.wav", wav(16000, 1, 0.1))
	fx.lib.Delete(ctx, "survey/thanks.wav")
	m2, _ := fx.lib.Manifest(ctx, m.Version)
	if err := s.Sync(ctx, m2); err != nil {
		t.Fatal(err)
	}
	old, _ := io.ReadAll(playing)
	if len(old) != 44+2*2400 {
		t.Fatalf("the playing file changed under its reader: %d bytes", len(old))
	}
	if st, _ := os.Stat(filepath.Join(dir, "survey", "welcome.wav")); st.Size() != 44+2*1600 {
		t.Fatalf("new welcome.wav has %d bytes", st.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, "survey", "thanks.wav")); !os.IsNotExist(err) {
		t.Fatal("thanks.wav was not removed")
	}

	// A store outage: the sync retries and gets through.
	fx.lib.Put(ctx, "survey", "bye.wav", wav(8000, 1, 0.1))
	m3, _ := fx.lib.Manifest(ctx, m2.Version)
	fx.fail.Store(2)
	if err := s.Sync(ctx, m3); err != nil {
		t.Fatalf("after a short outage: %v", err)
	}

	// Corrupted downloads: refused, nothing installed, the old file kept.
	fx.lib.Put(ctx, "survey", "bye.wav", wav(8000, 1, 0.2))
	m4, _ := fx.lib.Manifest(ctx, m3.Version)
	fx.garble.Store(true)
	err := s.Sync(ctx, m4)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt download: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "survey", "bye.wav")); st.Size() != 44+2*800 {
		t.Fatalf("corrupt bytes were installed: %d", st.Size())
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "survey"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".part-") {
			t.Fatalf("leftover %s", e.Name())
		}
	}
	fx.garble.Store(false)
	if err := s.Sync(ctx, m4); err != nil {
		t.Fatal(err)
	}
	// A manifest naming a path outside the folder is refused.
	bad := nodeapi.ManifestResponse{Version: "x", Files: []nodeapi.AudioFile{{Name: "../../evil.wav", SHA256: "00", URL: fx.srv.URL}}}
	if err := s.Sync(ctx, bad); err == nil || !strings.Contains(err.Error(), "not a valid audio name") {
		t.Fatalf("hostile manifest: %v", err)
	}
}

func TestUploadAPI(t *testing.T) {
	fx := newFixture(t)
	srv := httptest.NewServer(fx.lib.Handler())
	defer srv.Close()
	upload := func(set, file string, data []byte) (int, string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", file)
		fw.Write(data)
		mw.Close()
		resp, err := http.Post(srv.URL+"/api/v1/audio/"+set, mw.FormDataContentType(), &body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := upload("survey", "welcome.wav", wav(8000, 1, 0.1)); code != 201 || !strings.Contains(body, "survey/welcome.wav") {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, body := upload("survey", "song.mp3", []byte("ID3...")); code != 422 || !strings.Contains(body, "WAV PCM 16-bit mono") {
		t.Fatalf("mp3: %d %s", code, body)
	}
	if code, body := upload("../etc", "x.wav", wav(8000, 1, 0.1)); code != 404 && code != 400 {
		t.Fatalf("bad set: %d %s", code, body)
	}
	req, _ := http.NewRequest("DELETE", srv.URL+"/api/v1/audio/survey/welcome.wav", nil)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
}

// BenchmarkSync measures a node's first sync of a 200-file, 100 MB audio
// set over signed URLs on loopback: time to ready and MB/s.
func BenchmarkSync(b *testing.B) {
	ctx := context.Background()
	folder := &Folder{Dir: b.TempDir(), Secret: []byte("k")}
	lib := &Library{Store: folder}
	srv := httptest.NewServer(http.StripPrefix("/audio/", folder.Handler()))
	defer srv.Close()
	folder.BaseURL = URLBase(srv.URL)
	const files, size = 200, 500 * 1000
	data := make([]byte, size)
	for i := range files {
		binary.LittleEndian.PutUint32(data, uint32(i)) // every file different
		if _, err := folder.Put(ctx, "bench/f"+strings.Repeat("0", 3-len(itoa(i)))+itoa(i)+".ulaw", data); err != nil {
			b.Fatal(err)
		}
	}
	m, _ := lib.Manifest(ctx, "")
	b.SetBytes(files * size)
	for b.Loop() {
		s := &Syncer{Dir: b.TempDir()}
		if err := s.Sync(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestPrepareBoundsSizes: a header cannot make the library store more than
// MaxAudioBytes, before or after conversion.
func TestPrepareBoundsSizes(t *testing.T) {
	claimsGB := wav(8000, 1, 0.1)
	binary.LittleEndian.PutUint32(claimsGB[40:], 1<<30)
	binary.LittleEndian.PutUint32(claimsGB[4:], 1<<30+36)
	if _, _, err := Prepare("big.wav", claimsGB); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "claims 1073741824 bytes") {
		t.Fatalf("a WAV claiming 1 GB: err = %v", err)
	}
	// A truncated file within the cap is stored with sizes that match it.
	short := wav(8000, 1, 0.1)
	binary.LittleEndian.PutUint32(short[40:], uint32(len(short)-44+1000))
	binary.LittleEndian.PutUint32(short[4:], uint32(len(short)-8+1000))
	_, out, err := Prepare("short.wav", short)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(out[40:]); int(got) != len(out)-44 {
		t.Fatalf("stored data size %d, file holds %d", got, len(out)-44)
	}
	if got := binary.LittleEndian.Uint32(out[4:]); int(got) != len(out)-8 {
		t.Fatalf("stored RIFF size %d, file holds %d", got, len(out)-8)
	}
	// 4 kHz just under the cap doubles when converted to 8 kHz.
	frames := (MaxAudioBytes - 1000) / 2
	slow := wav(4000, 1, float64(frames)/4000)
	if len(slow) > MaxAudioBytes {
		t.Fatalf("fixture %d bytes is over the cap", len(slow))
	}
	if _, _, err := Prepare("slow.wav", slow); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "after conversion") {
		t.Fatalf("4 kHz WAV that doubles: err = %v", err)
	}
}

// TestUploadRequestCap: a whole upload request is bounded, not only each
// file, and a request refused part-way stores none of its files.
func TestUploadRequestCap(t *testing.T) {
	fx := newFixture(t)
	fx.lib.MaxRequestBytes = 64 << 10
	srv := httptest.NewServer(fx.lib.Handler())
	defer srv.Close()
	post := func(files ...[]byte) (int, string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for i, f := range files {
			fw, _ := mw.CreateFormFile("file", "p"+itoa(i)+".wav")
			fw.Write(f)
		}
		mw.Close()
		resp, err := http.Post(srv.URL+"/api/v1/audio/set", mw.FormDataContentType(), &body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	small := wav(8000, 1, 1) // 16 KB
	if code, body := post(small, small, small, small, small); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "65536 bytes") {
		t.Fatalf("five files over the request cap: %d %s", code, body)
	}
	if code, body := post(small, []byte("not audio")); code != 422 {
		t.Fatalf("a bad second file: %d %s", code, body)
	}
	if objs, _, _ := fx.lib.List(context.Background()); len(objs) != 0 {
		t.Fatalf("a refused request stored %d files", len(objs))
	}
	if code, body := post(small, small); code != 201 {
		t.Fatalf("two files under the cap: %d %s", code, body)
	}
}

// TestPromptInUseCannotBeDeleted: a prompt a current flow plays keeps a
// playable file; another format of it may go.
func TestPromptInUseCannotBeDeleted(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.lib.InUse = func(_ context.Context, prompt string) (string, error) {
		if prompt == "survey/welcome" {
			return "campaign c_1 (flow version 2)", nil
		}
		return "", nil
	}
	srv := httptest.NewServer(fx.lib.Handler())
	defer srv.Close()
	fx.lib.Put(ctx, "survey", "welcome.wav", wav(8000, 1, 0.1))
	fx.lib.Put(ctx, "survey", "welcome.ulaw", make([]byte, 800))
	fx.lib.Put(ctx, "survey", "spare.wav", wav(8000, 1, 0.1))
	del := func(key string) (int, string) {
		req, _ := http.NewRequest("DELETE", srv.URL+"/api/v1/audio/"+key, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := del("survey/welcome.ulaw"); code != 204 {
		t.Fatalf("another format of a prompt in use: %d %s", code, body)
	}
	if code, body := del("survey/welcome.wav"); code != 409 || !strings.Contains(body, "campaign c_1") {
		t.Fatalf("the last file of a prompt in use: %d %s", code, body)
	}
	if code, body := del("survey/spare.wav"); code != 204 {
		t.Fatalf("an unused prompt: %d %s", code, body)
	}
}
