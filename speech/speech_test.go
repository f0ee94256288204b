package speech_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/elastidial/elastidial/internal/testenv"
	"github.com/elastidial/elastidial/speech"
	"github.com/elastidial/elastidial/storage"
)

// folder is a speech store served over HTTP as the controller serves it.
func folder(t *testing.T) *storage.Folder {
	f := &storage.Folder{Dir: t.TempDir(), Secret: []byte("speech-secret"), Unindexed: true}
	srv := httptest.NewServer(http.StripPrefix("/speech/", f.Handler()))
	t.Cleanup(srv.Close)
	f.BaseURL = srv.URL + "/speech/"
	return f
}

func needFlite(t *testing.T) {
	if _, err := exec.LookPath("flite"); err != nil {
		testenv.Missing(t, "flite (Debian package flite)")
	}
}

// wavInfo reads a canonical WAV header.
func wavInfo(b []byte) (rate, channels, bits int) {
	if len(b) < 44 || !bytes.Equal(b[:4], []byte("RIFF")) {
		return 0, 0, 0
	}
	return int(binary.LittleEndian.Uint32(b[24:])), int(binary.LittleEndian.Uint16(b[22:])), int(binary.LittleEndian.Uint16(b[34:]))
}

// Each distinct sentence is synthesised once, by however many calls at
// once, and survives a controller restart; the node fetches it through
// its signed URL and gets 8 kHz mono WAV, checked against its hash.
func TestFliteRenderedOnceAndFetched(t *testing.T) {
	needFlite(t)
	ctx := context.Background()
	store := folder(t)
	r := &speech.Renderer{Engine: &speech.Flite{}, Store: store}
	var wg sync.WaitGroup
	files := make([]string, 16)
	for i := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := r.Render(ctx, "", "en", "Hello Ann, this is a reminder of your appointment.")
			if err != nil {
				t.Error(err)
				return
			}
			files[i] = f.Name + f.SHA256
		}()
	}
	wg.Wait()
	if n := r.Syntheses(); n != 1 {
		t.Fatalf("%d syntheses for 16 calls of one sentence, want 1", n)
	}
	for _, f := range files[1:] {
		if f != files[0] {
			t.Fatalf("one sentence, two files: %s %s", files[0], f)
		}
	}
	f, err := r.Render(ctx, "", "en", "Hello Ann, this is a reminder of your appointment.")
	if err != nil {
		t.Fatal(err)
	}
	node := &storage.Syncer{Dir: t.TempDir()}
	if err := node.Fetch(ctx, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(node.Dir, f.Name))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Size {
		t.Fatalf("fetched %d bytes, sha %x; want %d, %s", len(b), sum, f.Size, f.SHA256)
	}
	if rate, ch, bits := wavInfo(b); rate != 8000 || ch != 1 || bits != 16 {
		t.Fatalf("rendered %d Hz, %d channels, %d bits; Asterisk plays 8000 Hz mono 16-bit", rate, ch, bits)
	}
	if secs := float64(len(b)-44) / 16000; secs < 1 || secs > 10 {
		t.Fatalf("%.1f s of speech for one sentence", secs)
	}
	// A restarted controller finds it in the store.
	again := &speech.Renderer{Engine: &speech.Flite{}, Store: store}
	if g, err := again.Render(ctx, "", "en", "Hello Ann, this is a reminder of your appointment."); err != nil || g.SHA256 != f.SHA256 || again.Syntheses() != 0 {
		t.Fatalf("after restart: %+v %v, %d syntheses", g, err, again.Syntheses())
	}
	// Another voice is another rendering.
	if g, err := again.Render(ctx, "awb", "en", "Hello Ann, this is a reminder of your appointment."); err != nil || g.Name == f.Name || again.Syntheses() != 1 {
		t.Fatalf("other voice: %+v %v", g, err)
	}
	// A file the node holds is not fetched again (the URL is dead now).
	f.URL = "http://127.0.0.1:1/gone"
	if err := node.Fetch(ctx, f); err != nil {
		t.Fatalf("held file fetched again: %v", err)
	}
}

func TestRendererRefuses(t *testing.T) {
	needFlite(t)
	ctx := context.Background()
	r := &speech.Renderer{Engine: &speech.Flite{}, Store: folder(t)}
	if _, err := r.Render(ctx, "", "en", ""); err == nil {
		t.Error("empty text rendered")
	}
	if _, err := r.Render(ctx, "", "en", string(bytes.Repeat([]byte("a"), speech.MaxText+1))); err == nil {
		t.Error("text over the limit rendered")
	}
	if _, err := r.Render(ctx, "../../etc/passwd", "en", "hi"); err == nil {
		t.Error("a path as voice was used")
	}
	// Text that looks like an option is only text.
	if f, err := r.Render(ctx, "", "en", "-o /tmp/x --help"); err != nil || f.Size < 1000 {
		t.Errorf("option-like text: %+v %v", f, err)
	}
}

// BenchmarkRender measures a cached rendering against a synthesis, the
// floor and the ceiling, in the same run.
func BenchmarkRender(b *testing.B) {
	if _, err := exec.LookPath("flite"); err != nil {
		b.Skip("no flite")
	}
	ctx := context.Background()
	f := &storage.Folder{Dir: b.TempDir(), Secret: []byte("s"), BaseURL: "http://127.0.0.1/speech/"}
	r := &speech.Renderer{Engine: &speech.Flite{}, Store: f}
	var synth, cached time.Duration
	start := time.Now()
	for i := range 5 {
		if _, err := r.Render(ctx, "", "en", "Your balance is "+string(rune('a'+i))); err != nil {
			b.Fatal(err)
		}
	}
	synth = time.Since(start) / 5
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Render(ctx, "", "en", "Your balance is a"); err != nil {
			b.Fatal(err)
		}
	}
	cached = b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(synth.Microseconds()), "synth-µs")
	b.ReportMetric(float64(synth)/float64(cached), "synth/cached")
}

// gated is flite held until the test opens the gate, counting syntheses
// running at once: a controller whose cores are busy.
type gated struct {
	speech.Flite
	gate          chan struct{}
	mu            sync.Mutex
	running, most int
}

func (g *gated) Synthesize(ctx context.Context, voice, language, text string) ([]byte, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.running--; g.mu.Unlock() }()
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Flite.Synthesize(ctx, voice, language, text)
}

// A caller that cannot wait (a call step has seconds) gets its deadline
// back, while the rendering goes on into the store for the next caller;
// renderings prefetched for many calls run at most Limit at a time.
func TestRenderOutlivesAnImpatientCaller(t *testing.T) {
	needFlite(t)
	g := &gated{gate: make(chan struct{})}
	r := &speech.Renderer{Engine: g, Store: folder(t), Limit: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Render(ctx, "", "en", "Hello Ada."); err == nil {
		t.Fatal("rendered although the engine is held")
	}
	for _, name := range []string{"Ben", "Cy", "Dee", "Eve"} {
		r.Prefetch("", "en", "Hello "+name+".")
	}
	time.Sleep(200 * time.Millisecond)
	close(g.gate)
	f, err := r.Render(context.Background(), "", "en", "Hello Ada.")
	if err != nil || f.Size < 1000 {
		t.Fatalf("after the gate opened: %+v %v", f, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.Syntheses() < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := r.Render(context.Background(), "", "en", "Hello Eve."); err != nil {
		t.Fatal(err)
	}
	if n := r.Syntheses(); n != 5 {
		t.Errorf("%d syntheses for 5 sentences", n)
	}
	g.mu.Lock()
	if g.most > 2 {
		t.Errorf("%d syntheses at once, limit 2", g.most)
	}
	g.mu.Unlock()
	// The first renderer's last writes may still be landing in its folder;
	// Close waits for them, so the folder can be removed.
	r.Close()
	// Close ends what is left (a controller shutting down): nothing new
	// starts, and a held synthesis is stopped with its temporary files.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r = &speech.Renderer{Engine: &gated{gate: make(chan struct{})}, Store: folder(t)}
	r.Prefetch("", "en", "Goodbye Ada.")
	time.Sleep(100 * time.Millisecond)
	r.Close()
	if _, err := r.Render(context.Background(), "", "en", "Hello Fay."); !errors.Is(err, speech.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("Close left %s behind", left[0].Name())
	}
}

// Renderings hold contact fields, so they are deleted once no call has
// asked for them in Keep; one in use is rewritten, so the sweep never
// takes a file a node was just handed, and one swept is synthesised again
// when a call asks for it.
func TestRenderingsSweptAfterKeep(t *testing.T) {
	needFlite(t)
	ctx := context.Background()
	store := folder(t)
	now := time.Now()
	r := &speech.Renderer{Engine: &speech.Flite{}, Store: store, Keep: 4 * time.Hour, Clock: func() time.Time { return now }}
	defer r.Close()
	for _, text := range []string{"Hello Ann.", "Hello Ben."} {
		if _, err := r.Render(ctx, "", "en", text); err != nil {
			t.Fatal(err)
		}
	}
	// Five hours on: both files are older than Keep.
	now = now.Add(5 * time.Hour)
	old := time.Now().Add(-5 * time.Hour)
	age := func(key string) {
		if err := os.Chtimes(filepath.Join(store.Dir, filepath.FromSlash(key)), old, old); err != nil {
			t.Fatal(err)
		}
	}
	age(speech.Key("flite", "", "en", "Hello Ann."))
	age(speech.Key("flite", "", "en", "Hello Ben."))
	// Not a rendering: the sweep leaves it alone.
	if err := os.WriteFile(filepath.Join(store.Dir, "notes.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(store.Dir, "notes.txt"), old, old)

	// A call asks for Ann's again: found in the store and rewritten.
	if _, err := r.Render(ctx, "", "en", "Hello Ann."); err != nil {
		t.Fatal(err)
	}
	if n := r.Syntheses(); n != 2 {
		t.Fatalf("%d syntheses, want 2 (Ann's was in the store)", n)
	}
	n, err := r.Sweep(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("sweep deleted %d, %v; want Ben's alone", n, err)
	}
	if _, err := store.Get(ctx, speech.Key("flite", "", "en", "Hello Ann.")); err != nil {
		t.Fatalf("Ann's rendering, in use, was swept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store.Dir, "notes.txt")); err != nil {
		t.Fatalf("the sweep deleted a file that is not a rendering: %v", err)
	}
	// Ben's is asked for again: synthesised anew, and fetchable.
	f, err := r.Render(ctx, "", "en", "Hello Ben.")
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Syntheses(); n != 3 {
		t.Fatalf("%d syntheses, want 3", n)
	}
	resp, err := http.Get(f.URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("rendering swept and made again: %v %v", resp, err)
	}
	resp.Body.Close()

	// Keep 0 keeps everything.
	forever := &speech.Renderer{Engine: &speech.Flite{}, Store: store}
	age(speech.Key("flite", "", "en", "Hello Ben."))
	if n, err := forever.Sweep(ctx, time.Now()); n != 0 || err != nil {
		t.Fatalf("with Keep 0 the sweep deleted %d, %v", n, err)
	}
}
