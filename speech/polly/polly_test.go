package polly_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/elastidial/elastidial/speech"
	"github.com/elastidial/elastidial/speech/polly"
	"github.com/elastidial/elastidial/speech/pollyfake"
	"github.com/elastidial/elastidial/storage"
)

func engine(t *testing.T, o polly.Options) (*polly.Engine, *pollyfake.Server) {
	fake := pollyfake.New()
	t.Cleanup(fake.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")}
	o.Endpoint = fake.URL
	return polly.New(cfg, o), fake
}

// The production path through the real SDK: a signed SynthesizeSpeech
// for 8 kHz PCM in the contact's language's voice, wrapped as WAV,
// rendered once and cached.
func TestPollyThroughTheSDK(t *testing.T) {
	ctx := context.Background()
	e, fake := engine(t, polly.Options{})
	wav, err := e.Synthesize(ctx, "", "fr-FR", "Bonjour Anne")
	if err != nil {
		t.Fatal(err)
	}
	reqs := asked(fake)
	want := pollyfake.Request{Engine: "neural", LanguageCode: "fr-FR", OutputFormat: "pcm", SampleRate: "8000", Text: "Bonjour Anne", TextType: "text", VoiceId: "Lea"}
	if len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("requests %+v\nwant %+v", reqs, want)
	}
	if rate := binary.LittleEndian.Uint32(wav[24:]); rate != 8000 || len(wav) != 44+len("Bonjour Anne")*480*2 {
		t.Fatalf("%d Hz, %d bytes", rate, len(wav))
	}
	// A voice asked for by name, and the bare language's default.
	if _, err := e.Synthesize(ctx, "Matthew", "en", "Hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Synthesize(ctx, "", "en", "Hi"); err != nil {
		t.Fatal(err)
	}
	reqs = asked(fake)
	if reqs[1].VoiceId != "Matthew" || reqs[1].LanguageCode != "" || reqs[2].VoiceId != "Joanna" {
		t.Fatalf("voices: %+v", reqs[1:])
	}

	// Cached in the store: each sentence once.
	r := &speech.Renderer{Engine: e, Store: &storage.Folder{Dir: t.TempDir(), Secret: []byte("s"), BaseURL: "http://127.0.0.1/speech/"}}
	for range 3 {
		f, err := r.Render(ctx, "", "en-US", "Your balance is 12 dollars")
		if err != nil || f.Size != 44+int64(len("Your balance is 12 dollars"))*480*2 {
			t.Fatalf("%+v %v", f, err)
		}
	}
	if got := len(asked(fake)); got != 4 {
		t.Fatalf("%d requests to Polly, want 4 (one for the cached sentence)", got)
	}
}

// asked is the syntheses the fake was asked for: the requests, but a
// request asked again at once (its audio stream broke off, and the
// engine asks again) counts once.
func asked(fake *pollyfake.Server) []pollyfake.Request {
	var out []pollyfake.Request
	for _, r := range fake.Requests() {
		if len(out) == 0 || out[len(out)-1] != r {
			out = append(out, r)
		}
	}
	return out
}

func TestPollyErrors(t *testing.T) {
	ctx := context.Background()
	e, fake := engine(t, polly.Options{})
	// An audio stream cut halfway is asked for again, up to three times.
	fake.Fail(1, pollyfake.StreamCut)
	if wav, err := e.Synthesize(ctx, "", "en", "Hello"); err != nil || len(wav) != 44+len("Hello")*480*2 {
		t.Fatalf("after one cut stream: %d bytes, %v", len(wav), err)
	}
	fake.Fail(3, pollyfake.StreamCut)
	if _, err := e.Synthesize(ctx, "", "en", "Hello"); err == nil || !strings.Contains(err.Error(), "read speech (try 3)") {
		t.Fatalf("after three cut streams: %v", err)
	}
	if n := len(fake.Requests()); n != 5 {
		t.Fatalf("%d requests, want 5 (2 and 3)", n)
	}
	e, fake = engine(t, polly.Options{})
	// Throttling is retried by the SDK.
	fake.Fail(1, "ThrottlingException")
	if _, err := e.Synthesize(ctx, "", "en", "Hello"); err != nil {
		t.Fatalf("after one throttle: %v", err)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Fatalf("%d requests, want 2 (one retry)", n)
	}
	// A voice Polly lacks is Polly's error, named.
	_, err := e.Synthesize(ctx, "Nobody", "en", "Hello")
	if err == nil || !strings.Contains(err.Error(), "voice Nobody") || !strings.Contains(err.Error(), "ValidationException") {
		t.Fatalf("unknown voice: %v", err)
	}
	// A failed synthesis is not cached: the next call tries again.
	r := &speech.Renderer{Engine: e, Store: &storage.Folder{Dir: t.TempDir(), Secret: []byte("s"), BaseURL: "http://127.0.0.1/speech/"}}
	fake.Fail(10, "ServiceFailureException")
	if _, err := r.Render(ctx, "", "en", "Hello again"); err == nil {
		t.Fatal("rendered while Polly fails")
	}
	fake.Fail(0, "")
	if _, err := r.Render(ctx, "", "en", "Hello again"); err != nil {
		t.Fatalf("after Polly recovered: %v", err)
	}
}
