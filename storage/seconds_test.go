package storage

import (
	"context"
	"errors"
	"testing"
)

// TestSeconds: a prompt's length is the longest of its formats in the
// library; a prompt that is not there is ErrNotFound.
func TestSeconds(t *testing.T) {
	ctx := context.Background()
	lib := &Library{Store: &Folder{Dir: t.TempDir(), Secret: []byte("k")}}
	if _, err := lib.Put(ctx, "survey", "hello.wav", Tone(440, 2.5)); err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Put(ctx, "survey", "hello.ulaw", make([]byte, 8000*3)); err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Put(ctx, "survey", "bye.wav", Tone(440, 1)); err != nil {
		t.Fatal(err)
	}
	for prompt, want := range map[string]float64{"survey/hello": 3, "survey/bye": 1} {
		if got, err := lib.Seconds(ctx, prompt); err != nil || got < want-0.01 || got > want+0.01 {
			t.Errorf("%s: %g s %v, want %g s", prompt, got, err, want)
		}
	}
	if _, err := lib.Seconds(ctx, "survey/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing prompt: %v, want ErrNotFound", err)
	}
}
