package storage

import (
	"math"
	"testing"
)

func TestDescribeAndPlayEveryStoredFormat(t *testing.T) {
	tone := Tone(440, 1.5) // 8 kHz 16-bit mono WAV
	_, pcm, _ := wavPCM(tone)
	ulawBytes := make([]byte, 8000) // one second of µ-law silence (0xFF)
	for i := range ulawBytes {
		ulawBytes[i] = 0xFF
	}
	for _, c := range []struct {
		key      string
		data     []byte
		format   string
		seconds  float64
		playable bool
	}{
		{"p/tone.wav", tone, "WAV PCM 16-bit mono", 1.5, true},
		{"p/quiet.ulaw", ulawBytes, "G.711 µ-law", 1, true},
		{"p/quiet.alaw", make([]byte, 4000), "G.711 A-law", 0.5, true},
		{"p/tone.sln16", pcm, "signed linear 16-bit", float64(len(pcm)/2) / 16000, true},
		{"p/x.gsm", make([]byte, 33*50), "GSM 06.10", 1, false},
	} {
		in, err := Describe(c.key, c.data)
		if err != nil || in.Format != c.format || math.Abs(in.Seconds-c.seconds) > 0.001 || in.Playable != c.playable {
			t.Errorf("%s: %+v %v, want %s %.3f s playable %v", c.key, in, err, c.format, c.seconds, c.playable)
			continue
		}
		wav, err := BrowserWAV(c.key, c.data)
		if !c.playable {
			if err == nil {
				t.Errorf("%s: a browser cannot play it, yet it was served", c.key)
			}
			continue
		}
		back, err := Describe("p/back.wav", wav)
		if err != nil || math.Abs(back.Seconds-c.seconds) > 0.001 {
			t.Errorf("%s as WAV: %+v %v, want %.3f s", c.key, back, err, c.seconds)
		}
	}
	if ulaw(0xFF) != 0 || alaw(0xD5) != 8 || ulaw(0x00) != -32124 {
		t.Errorf("G.711: µ-law 0xFF=%d 0x00=%d, A-law 0xD5=%d", ulaw(0xFF), ulaw(0x00), alaw(0xD5))
	}
}
