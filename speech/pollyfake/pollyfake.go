// Package pollyfake is an httptest server speaking Amazon Polly's
// SynthesizeSpeech REST protocol (POST /v1/speech, JSON in, audio out,
// errors as x-amzn-ErrorType), so the production engine is tested through
// the real SDK: its signing, serialisation and error decoding.
package pollyfake

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// Request is one SynthesizeSpeech request as received.
type Request struct {
	Engine, LanguageCode, OutputFormat, SampleRate, Text, TextType, VoiceId string
}

// Server is the fake.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
	fail     int    // the next fail requests are refused
	failCode string // with this error type
}

// Voices the fake knows, as Polly's do.
var Voices = map[string]bool{"Joanna": true, "Amy": true, "Lea": true, "Lucia": true, "Vicki": true, "Matthew": true}

// New starts the fake; Close it when done.
func New() *Server {
	s := &Server{}
	s.Server = httptest.NewServer(s)
	return s
}

// Fail makes the next n requests fail with error type code
// ("ThrottlingException", "ServiceFailureException"), or, with
// StreamCut, answer 200 and break off the audio halfway.
func (s *Server) Fail(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failCode = n, code
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// ServeHTTP implements the protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/speech" {
		fail(w, http.StatusNotFound, "UnknownOperationException", "no such operation "+r.Method+" "+r.URL.Path)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") || r.Header.Get("X-Amz-Date") == "" {
		fail(w, http.StatusForbidden, "MissingAuthenticationTokenException", "request is not signed with SigV4")
		return
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	injected, code := s.fail > 0, s.failCode
	if injected {
		s.fail--
	}
	s.mu.Unlock()
	cut := injected && code == StreamCut
	switch {
	case cut:
	case injected && code == "ServiceFailureException":
		fail(w, http.StatusInternalServerError, code, "injected failure")
		return
	case injected:
		fail(w, http.StatusBadRequest, code, "injected failure")
		return
	case req.Text == "":
		fail(w, http.StatusBadRequest, "ValidationException", "Text must not be empty")
		return
	case len([]rune(req.Text)) > 3000:
		fail(w, http.StatusBadRequest, "TextLengthExceededException", "Maximum text length has been exceeded")
		return
	case !Voices[req.VoiceId]:
		fail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("1 validation error detected: Value '%s' at 'voiceId' failed to satisfy constraint", req.VoiceId))
		return
	case req.OutputFormat != "pcm" && req.OutputFormat != "mp3" && req.OutputFormat != "ogg_vorbis" && req.OutputFormat != "json":
		fail(w, http.StatusBadRequest, "ValidationException", "bad OutputFormat "+req.OutputFormat)
		return
	case req.OutputFormat == "pcm" && req.SampleRate != "" && req.SampleRate != "8000" && req.SampleRate != "16000":
		fail(w, http.StatusBadRequest, "InvalidSampleRateException", "pcm supports 8000 and 16000 Hz")
		return
	case req.OutputFormat != "pcm":
		fail(w, http.StatusBadRequest, "ValidationException", "the fake speaks pcm only")
		return
	}
	rate := 16000
	if req.SampleRate == "8000" {
		rate = 8000
	}
	// A tone per character, 60 ms each: distinct text, distinct audio.
	var pcm []byte
	for i, c := range req.Text {
		hz := 300 + float64(c%64)*10
		for j := range rate * 60 / 1000 {
			v := int16(4000 * math.Sin(2*math.Pi*hz*float64(j+i)/float64(rate)))
			pcm = binary.LittleEndian.AppendUint16(pcm, uint16(v))
		}
	}
	w.Header().Set("Content-Type", "audio/pcm")
	w.Header().Set("x-amzn-RequestCharacters", strconv.Itoa(len([]rune(req.Text))))
	if cut {
		w.Header().Set("Content-Length", strconv.Itoa(len(pcm)))
		w.Write(pcm[:len(pcm)/2])
		panic(http.ErrAbortHandler) // the connection closes mid-body
	}
	w.Write(pcm)
}

// StreamCut is the Fail code that breaks off a response's audio.
const StreamCut = "StreamCut"
