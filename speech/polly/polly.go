// Package polly is the production speech engine: Amazon Polly's
// SynthesizeSpeech through the AWS SDK, asked for 8 kHz signed linear PCM
// (what a phone line carries), wrapped as WAV.
package polly

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/polly"
	"github.com/aws/aws-sdk-go-v2/service/polly/types"

	"github.com/elastidial/elastidial/speech"
	"github.com/elastidial/elastidial/storage"
)

// API is the one Polly call the engine makes (the IAM policy needs
// polly:SynthesizeSpeech only).
type API interface {
	SynthesizeSpeech(ctx context.Context, in *polly.SynthesizeSpeechInput, opts ...func(*polly.Options)) (*polly.SynthesizeSpeechOutput, error)
}

var _ API = (*polly.Client)(nil)

// Options configure the engine.
type Options struct {
	// Engine is Polly's engine: "neural" (default), "standard",
	// "generative" or "long-form".
	Engine string
	// Endpoint overrides Polly's endpoint (tests, VPC endpoints).
	Endpoint string
	// Voices maps a language ("en-US", or "en") to its default voice;
	// DefaultVoices fills in what is missing.
	Voices map[string]string
}

// DefaultVoices are voices Polly's neural engine has for common
// languages.
var DefaultVoices = map[string]string{
	"en": "Joanna", "en-US": "Joanna", "en-GB": "Amy", "en-AU": "Olivia", "fr": "Lea", "fr-FR": "Lea", "fr-CA": "Gabrielle",
	"es": "Lucia", "es-ES": "Lucia", "es-US": "Lupe", "es-MX": "Mia", "de": "Vicki", "de-DE": "Vicki", "it": "Bianca", "it-IT": "Bianca",
	"pt": "Ines", "pt-PT": "Ines", "pt-BR": "Camila", "nl": "Laura", "nl-NL": "Laura", "ja": "Takumi", "ja-JP": "Takumi",
}

// Engine speaks through Polly.
type Engine struct {
	api    API
	engine types.Engine
	voices map[string]string
}

var _ speech.Engine = (*Engine)(nil)

// New builds the engine from an AWS config.
func New(cfg aws.Config, o Options) *Engine {
	client := polly.NewFromConfig(cfg, func(po *polly.Options) {
		if o.Endpoint != "" {
			po.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return NewWithAPI(client, o)
}

// NewWithAPI builds the engine over any implementation of API.
func NewWithAPI(api API, o Options) *Engine {
	e := &Engine{api: api, engine: types.Engine(o.Engine), voices: map[string]string{}}
	if e.engine == "" {
		e.engine = types.EngineNeural
	}
	for k, v := range DefaultVoices {
		e.voices[k] = v
	}
	for k, v := range o.Voices {
		e.voices[k] = v
	}
	return e
}

// Name implements speech.Engine.
func (e *Engine) Name() string { return "polly-" + string(e.engine) }

// Synthesize implements speech.Engine.
func (e *Engine) Synthesize(ctx context.Context, voice, language, text string) ([]byte, error) {
	if voice == "" {
		voice = e.voices[language]
	}
	if voice == "" {
		lang, _, _ := strings.Cut(language, "-")
		voice = e.voices[lang]
	}
	if voice == "" {
		voice = e.voices["en"]
	}
	in := &polly.SynthesizeSpeechInput{
		Engine: e.engine, OutputFormat: types.OutputFormatPcm, SampleRate: aws.String("8000"),
		Text: aws.String(text), TextType: types.TextTypeText, VoiceId: types.VoiceId(voice),
	}
	if strings.Contains(language, "-") { // Polly's codes are xx-YY; a bare "en" lets the voice decide
		in.LanguageCode = types.LanguageCode(language)
	}
	pcm, err := e.synthesize(ctx, in)
	if err != nil {
		return nil, err
	}
	if len(pcm) < 2 {
		return nil, fmt.Errorf("polly returned no audio for voice %s", voice)
	}
	samples := make([]int16, len(pcm)/2)
	for i := range samples {
		samples[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	return storage.EncodeWAV(8000, samples), nil
}

// streamTries is how often a synthesis is asked for when its audio
// stream breaks off: the SDK retries a request that fails, not a stream
// cut while it is read, and asking Polly again is harmless.
const streamTries = 3

// synthesize asks Polly for in and reads its audio.
func (e *Engine) synthesize(ctx context.Context, in *polly.SynthesizeSpeechInput) ([]byte, error) {
	for try := 1; ; try++ {
		out, err := e.api.SynthesizeSpeech(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("synthesize speech (voice %s): %w", in.VoiceId, err)
		}
		pcm, err := io.ReadAll(io.LimitReader(out.AudioStream, storage.MaxAudioBytes))
		out.AudioStream.Close()
		if err == nil {
			return pcm, nil
		}
		if try == streamTries || ctx.Err() != nil {
			return nil, fmt.Errorf("read speech (try %d): %w", try, err)
		}
	}
}
