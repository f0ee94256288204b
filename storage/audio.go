package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
)

// MaxAudioBytes bounds one upload: ten minutes of 16 kHz 16-bit mono.
const MaxAudioBytes = 20 << 20

// MaxRequestBytes bounds one upload request: a few files at the limit.
const MaxRequestBytes = 64 << 20

// ErrFormat is an upload Asterisk cannot play; its message says what is
// needed.
var ErrFormat = errors.New("unsupported audio")

const wantFormat = "WAV PCM 16-bit mono at 8 kHz or 16 kHz, WAV μ-law or A-law mono 8 kHz, raw .ulaw/.alaw/.sln16, or .gsm"

// Prepare checks an upload and returns the name and bytes to store. WAV
// PCM at other rates or with several channels is converted to 8 kHz mono
// 16-bit; anything else Asterisk cannot play is refused with what is needed.
func Prepare(filename string, data []byte) (string, []byte, error) {
	base := strings.ToLower(path.Base(strings.ReplaceAll(filename, "\\", "/")))
	ext := path.Ext(base)
	name := strings.TrimSuffix(base, ext)
	if name == "" || strings.HasPrefix(name, ".") {
		return "", nil, fmt.Errorf("%w %q: give the file a name", ErrBadName, filename)
	}
	if len(data) == 0 {
		return "", nil, fmt.Errorf("%w: %s is empty", ErrFormat, filename)
	}
	if len(data) > MaxAudioBytes {
		return "", nil, fmt.Errorf("%w: %s is over %d MB", ErrFormat, filename, MaxAudioBytes>>20)
	}
	switch ext {
	case ".wav":
		out, err := checkWAV(data)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v; send %s", ErrFormat, filename, err, wantFormat)
		}
		if len(out) > MaxAudioBytes { // a low rate doubles or more on conversion
			return "", nil, fmt.Errorf("%w: %s is %d bytes after conversion to 8 kHz mono, over %d MB; send a shorter prompt", ErrFormat, filename, len(out), MaxAudioBytes>>20)
		}
		return name + ".wav", out, nil
	case ".ulaw", ".alaw", ".ul", ".al":
		if ext == ".ul" {
			ext = ".ulaw"
		} else if ext == ".al" {
			ext = ".alaw"
		}
		if looksLikeContainer(data) {
			return "", nil, fmt.Errorf("%w: %s holds a %s container, not raw 8 kHz samples", ErrFormat, filename, containerName(data))
		}
		return name + ext, data, nil
	case ".sln16":
		if len(data)%2 != 0 || looksLikeContainer(data) {
			return "", nil, fmt.Errorf("%w: %s is not raw 16-bit samples", ErrFormat, filename)
		}
		return name + ext, data, nil
	case ".gsm":
		if len(data)%33 != 0 || data[0]>>4 != 0xD {
			return "", nil, fmt.Errorf("%w: %s is not GSM 06.10 (33-byte frames starting with 0xD)", ErrFormat, filename)
		}
		return name + ext, data, nil
	}
	return "", nil, fmt.Errorf("%w: %s: the extension %q is not playable; send %s", ErrFormat, filename, ext, wantFormat)
}

func looksLikeContainer(b []byte) bool { return containerName(b) != "" }

func containerName(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("RIFF")):
		return "WAV"
	case bytes.HasPrefix(b, []byte("ID3")), len(b) > 1 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		return "MP3"
	case bytes.HasPrefix(b, []byte("OggS")):
		return "Ogg"
	case bytes.HasPrefix(b, []byte("fLaC")):
		return "FLAC"
	}
	return ""
}

// wavFormat is the fmt chunk.
type wavFormat struct {
	tag, channels uint16
	rate          uint32
	bits          uint16
}

// checkWAV parses a RIFF WAVE file defensively and returns the bytes to
// store: as is when Asterisk plays it, converted when it is PCM at another
// rate or channel count.
func checkWAV(b []byte) ([]byte, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		if n := containerName(b); n != "" && n != "WAV" {
			return nil, fmt.Errorf("it is %s, not WAV", n)
		}
		return nil, errors.New("not a RIFF WAVE file")
	}
	var f *wavFormat
	var pcm []byte
	truncated := -1 // offset of a data chunk's size field that claims more than the file holds
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		start := off + 8
		if size < 0 || start+size > len(b) || start+size < start {
			switch {
			case id == "data" && size > MaxAudioBytes:
				return nil, fmt.Errorf("the data chunk claims %d bytes, over the %d MB limit, and the file holds %d", size, MaxAudioBytes>>20, len(b)-start)
			case id == "data": // truncated data: use what is there
				size = len(b) - start
				truncated = off + 4
			default:
				return nil, fmt.Errorf("chunk %q claims %d bytes but the file ends first", id, size)
			}
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, errors.New("fmt chunk too short")
			}
			c := b[start:]
			f = &wavFormat{tag: binary.LittleEndian.Uint16(c[0:2]), channels: binary.LittleEndian.Uint16(c[2:4]),
				rate: binary.LittleEndian.Uint32(c[4:8]), bits: binary.LittleEndian.Uint16(c[14:16])}
			if f.tag == 0xFFFE && size >= 26 { // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
				f.tag = binary.LittleEndian.Uint16(c[24:26])
			}
		case "data":
			pcm = b[start : start+size]
		}
		off = start + size + size%2 // chunks are word-aligned
	}
	switch {
	case f == nil:
		return nil, errors.New("no fmt chunk")
	case pcm == nil || len(pcm) == 0:
		return nil, errors.New("no audio data")
	case f.channels == 0 || f.channels > 8:
		return nil, fmt.Errorf("%d channels", f.channels)
	case len(pcm) < int(f.channels)*max(1, int(f.bits)/8):
		return nil, errors.New("no audio data (less than one sample)")
	}
	asIs := func() []byte {
		if truncated < 0 {
			return b
		}
		// Store sizes that match the bytes, so no reader trusts the claim.
		c := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(c[truncated:], uint32(len(c)-truncated-4))
		binary.LittleEndian.PutUint32(c[4:], uint32(len(c)-8))
		return c
	}
	switch {
	case f.tag == 1 && f.bits == 16 && f.channels == 1 && (f.rate == 8000 || f.rate == 16000):
		return asIs(), nil
	case (f.tag == 6 || f.tag == 7) && f.bits == 8 && f.channels == 1 && f.rate == 8000:
		return asIs(), nil
	case f.tag == 1 && f.bits == 16 && f.rate >= 4000 && f.rate <= 192000:
		out := convertPCM16(pcm, int(f.channels), int(f.rate))
		if len(out) <= 44 {
			return nil, errors.New("no audio data (shorter than one sample at 8 kHz)")
		}
		return out, nil
	}
	return nil, fmt.Errorf("format tag %d, %d-bit, %d channel(s), %d Hz", f.tag, f.bits, f.channels, f.rate)
}

// convertPCM16 turns interleaved 16-bit PCM into 8 kHz mono 16-bit WAV:
// channels are averaged, then a windowed-sinc low-pass at 3.4 kHz (below
// the new Nyquist frequency) resamples it.
func convertPCM16(pcm []byte, channels, rate int) []byte {
	frames := len(pcm) / (2 * channels)
	mono := make([]float64, frames)
	for i := range frames {
		sum := 0
		for c := range channels {
			sum += int(int16(binary.LittleEndian.Uint16(pcm[2*(i*channels+c):])))
		}
		mono[i] = float64(sum) / float64(channels)
	}
	const out = 8000
	n := int(int64(frames) * out / int64(rate))
	ratio := float64(rate) / out
	cutoff := math.Min(1, 1/ratio) * 0.85 // normalised to the input rate's Nyquist
	const taps = 16
	half := int(math.Ceil(taps * ratio))
	res := make([]int16, n)
	for j := range n {
		center := float64(j) * ratio
		lo, hi := int(center)-half, int(center)+half
		acc, norm := 0.0, 0.0
		for i := max(lo, 0); i <= min(hi, frames-1); i++ {
			x := float64(i) - center
			w := 0.5 + 0.5*math.Cos(math.Pi*x/float64(half+1)) // Hann window
			s := cutoff * sinc(cutoff*x) * w
			acc += mono[i] * s
			norm += s
		}
		v := 0.0
		if norm != 0 {
			v = acc / norm
		}
		res[j] = int16(math.Max(-32768, math.Min(32767, math.Round(v))))
	}
	return EncodeWAV(out, res)
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// EncodeWAV writes 16-bit mono PCM samples at rate as a WAV file.
func EncodeWAV(rate int, samples []int16) []byte {
	b := make([]byte, 44+2*len(samples))
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(samples)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(samples)))
	for i, v := range samples {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	return b
}

// Tone is a sine tone of hz as 8 kHz mono WAV: a stand-in prompt for
// demos and tests.
func Tone(hz, seconds float64) []byte {
	s := make([]int16, int(8000*seconds))
	for i := range s {
		s[i] = int16(6000 * math.Sin(2*math.Pi*hz*float64(i)/8000))
	}
	return EncodeWAV(8000, s)
}

// ConvertWAV8k returns a 16-bit PCM WAV (as Prepare keeps it) as 8 kHz
// mono, what Asterisk's wav format plays: synthesised speech is made at
// 16 kHz or more. Anything else is returned as it is.
func ConvertWAV8k(b []byte) []byte {
	var f *wavFormat
	var pcm []byte
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:off+8]))
		start := off + 8
		if size < 0 || start+size > len(b) {
			size = len(b) - start
		}
		switch {
		case id == "fmt " && size >= 16:
			c := b[start:]
			f = &wavFormat{tag: binary.LittleEndian.Uint16(c[0:2]), channels: binary.LittleEndian.Uint16(c[2:4]),
				rate: binary.LittleEndian.Uint32(c[4:8]), bits: binary.LittleEndian.Uint16(c[14:16])}
		case id == "data":
			pcm = b[start : start+size]
		}
		off = start + size + size%2
	}
	if f == nil || f.tag != 1 || f.bits != 16 || f.channels == 0 || len(pcm) < 2*int(f.channels) || f.rate == 8000 && f.channels == 1 {
		return b
	}
	return convertPCM16(pcm, int(f.channels), int(f.rate))
}
