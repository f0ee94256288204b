package storage

import (
	"bytes"
	"testing"
)

// FuzzPrepareWAV: whatever a client uploads as .wav, Prepare never panics,
// never stores more than MaxAudioBytes, stores only RIFF WAVE, and what it
// stores is accepted again unchanged (a stored file is what nodes play).
func FuzzPrepareWAV(f *testing.F) {
	f.Add(EncodeWAV(8000, make([]int16, 80)))
	f.Add(EncodeWAV(44100, make([]int16, 441)))
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x40\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		name, out, err := Prepare("x.wav", data)
		if err != nil {
			return
		}
		if name != "x.wav" || len(out) > MaxAudioBytes || !bytes.HasPrefix(out, []byte("RIFF")) || string(out[8:12]) != "WAVE" {
			t.Fatalf("stored %q: %d bytes, %.12q", name, len(out), out)
		}
		_, again, err := Prepare("x.wav", out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("stored bytes not stable: %v", err)
		}
	})
}
