package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// Info describes one prompt for people: its format, rate and length.
type Info struct {
	Key        string  `json:"key"`
	Format     string  `json:"format"`
	SampleRate int     `json:"sample_rate"`
	Seconds    float64 `json:"seconds"`
	Playable   bool    `json:"playable"` // a browser can play it (as WAV)
}

// Describe reads a stored prompt's format and length from its bytes.
func Describe(key string, data []byte) (Info, error) {
	in := Info{Key: key, Playable: true}
	switch path.Ext(key) {
	case ".wav":
		f, pcm, err := wavPCM(data)
		if err != nil {
			return in, fmt.Errorf("%s: %w", key, err)
		}
		in.Format = fmt.Sprintf("WAV PCM %d-bit, %d channels", f.bits, f.channels)
		if f.channels == 1 {
			in.Format = fmt.Sprintf("WAV PCM %d-bit mono", f.bits)
		}
		in.SampleRate = f.rate
		if frame := f.channels * f.bits / 8; frame > 0 && f.rate > 0 {
			in.Seconds = float64(len(pcm)/frame) / float64(f.rate)
		}
	case ".ulaw":
		in.Format, in.SampleRate, in.Seconds = "G.711 µ-law", 8000, float64(len(data))/8000
	case ".alaw":
		in.Format, in.SampleRate, in.Seconds = "G.711 A-law", 8000, float64(len(data))/8000
	case ".sln16":
		in.Format, in.SampleRate, in.Seconds = "signed linear 16-bit", 16000, float64(len(data)/2)/16000
	case ".gsm":
		// 33-byte frames of 20 ms; no browser decodes GSM 06.10.
		in.Format, in.SampleRate, in.Seconds, in.Playable = "GSM 06.10", 8000, float64(len(data)/33)*0.02, false
	default:
		return in, fmt.Errorf("%s: %w: unknown extension", key, ErrFormat)
	}
	return in, nil
}

type promptFormat struct{ tag, channels, rate, bits int }

// wavPCM finds a WAV file's format and its data chunk.
func wavPCM(b []byte) (promptFormat, []byte, error) {
	var f promptFormat
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return f, nil, errors.New("not a RIFF WAVE file")
	}
	for i := 12; i+8 <= len(b); {
		id, size := string(b[i:i+4]), int(binary.LittleEndian.Uint32(b[i+4:]))
		body := b[i+8:]
		if size > len(body) {
			size = len(body)
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return f, nil, errors.New("fmt chunk too short")
			}
			f = promptFormat{int(binary.LittleEndian.Uint16(body)), int(binary.LittleEndian.Uint16(body[2:])), int(binary.LittleEndian.Uint32(body[4:])), int(binary.LittleEndian.Uint16(body[14:]))}
		case "data":
			if f.rate == 0 {
				return f, nil, errors.New("data before the fmt chunk")
			}
			return f, body[:size], nil
		}
		i += 8 + size + size%2
	}
	return f, nil, errors.New("no data chunk")
}

// BrowserWAV returns a prompt as a WAV file a browser can play.
func BrowserWAV(key string, data []byte) ([]byte, error) {
	var samples []int16
	rate := 8000
	switch path.Ext(key) {
	case ".wav":
		return data, nil
	case ".ulaw", ".alaw":
		dec := ulaw
		if path.Ext(key) == ".alaw" {
			dec = alaw
		}
		samples = make([]int16, len(data))
		for i, c := range data {
			samples[i] = dec(c)
		}
	case ".sln16":
		rate = 16000
		samples = make([]int16, len(data)/2)
		for i := range samples {
			samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
		}
	default:
		return nil, fmt.Errorf("%w: %s cannot be played in a browser (Asterisk plays it)", ErrFormat, key)
	}
	return EncodeWAV(rate, samples), nil
}

// ulaw decodes one G.711 µ-law byte.
func ulaw(c byte) int16 {
	c = ^c
	t := (int(c&0x0f) << 3) + 0x84
	t <<= (c & 0x70) >> 4
	if c&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

// alaw decodes one G.711 A-law byte.
func alaw(c byte) int16 {
	c ^= 0x55
	t := int(c&0x0f) << 4
	seg := (c & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if c&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// PlayHandler serves GET /api/v1/audio/{set}/{name}: the prompt as WAV a
// browser can play, or with ?info=1 its Info as JSON.
func (l *Library) PlayHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("set") + "/" + r.PathValue("name")
		if err := CheckKey(key); err != nil {
			jsonError(w, http.StatusBadRequest, err.Error())
			return
		}
		rc, err := l.Store.Get(r.Context(), key)
		if errors.Is(err, ErrNotFound) {
			jsonError(w, http.StatusNotFound, fmt.Sprintf("audio %s: not found", key))
			return
		}
		if err != nil {
			jsonError(w, http.StatusInternalServerError, err.Error())
			return
		}
		data, err := io.ReadAll(io.LimitReader(rc, MaxAudioBytes+1))
		rc.Close()
		if err != nil {
			jsonError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if r.URL.Query().Get("info") != "" {
			in, err := Describe(key, data)
			if err != nil {
				jsonError(w, http.StatusUnprocessableEntity, err.Error())
				return
			}
			jsonhttp.Write(w, http.StatusOK, in)
			return
		}
		wav, err := BrowserWAV(key, data)
		if err != nil {
			jsonError(w, http.StatusUnsupportedMediaType, err.Error())
			return
		}
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", strings.TrimSuffix(path.Base(key), path.Ext(key))+".wav"))
		w.Write(wav)
	})
}

// Seconds is a prompt's ("set/name", no extension) length: the longest of
// its playable formats in the library (a node may play any of them). The
// scaler bounds a flow's calls with it (flow.Length).
func (l *Library) Seconds(ctx context.Context, prompt string) (float64, error) {
	objs, _, err := l.List(ctx)
	if err != nil {
		return 0, err
	}
	longest, found := 0.0, false
	for _, ext := range Playable {
		key := prompt + ext
		if _, ok := slices.BinarySearchFunc(objs, key, func(o Object, k string) int { return strings.Compare(o.Key, k) }); !ok {
			continue
		}
		rc, err := l.Store.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("length of %s: %w", key, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, MaxAudioBytes+1))
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("length of %s: %w", key, err)
		}
		in, err := Describe(key, data)
		if err != nil {
			return 0, fmt.Errorf("length of %s: %w", key, err)
		}
		longest, found = max(longest, in.Seconds), true
	}
	if !found {
		return 0, fmt.Errorf("length of prompt %s: %w", prompt, ErrNotFound)
	}
	return longest, nil
}
