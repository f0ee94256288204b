package speech

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Flite is the local engine: CMU Flite (Debian package flite), run once
// per sentence. It is the embedded default and what the tests hear. Of
// the Debian engines it was chosen for the phone line: its diphone and
// clustergen voices are made from 16 kHz speech with a narrow band that
// survives the 8 kHz μ-law of a call better than espeak-ng's formant
// voice, it starts in milliseconds (festival takes a second to load a
// voice), and it needs no server. It speaks English only: another
// language gets the default voice reading the text.
type Flite struct {
	// Path is the flite binary; "flite" on the PATH when empty.
	Path string
	// Voice is the default voice; "slt" (a clear female US voice).
	Voice string
}

var _ Engine = (*Flite)(nil)

// fliteVoices are the voices Debian's flite carries built in.
var fliteVoices = map[string]bool{"kal": true, "kal16": true, "awb": true, "rms": true, "slt": true}

// Name implements Engine.
func (f *Flite) Name() string { return "flite" }

// Synthesize implements Engine: the text goes through a file, never the
// command line.
func (f *Flite) Synthesize(ctx context.Context, voice, language, text string) ([]byte, error) {
	if voice == "" {
		voice = f.Voice
	}
	if voice == "" {
		voice = "slt"
	}
	if !fliteVoices[voice] {
		return nil, fmt.Errorf("flite has no voice %q (it has kal, kal16, awb, rms and slt)", voice)
	}
	dir, err := os.MkdirTemp("", "elastidial-flite-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "text.txt"), filepath.Join(dir, "speech.wav")
	if err := os.WriteFile(in, []byte(text), 0o600); err != nil {
		return nil, err
	}
	bin := f.Path
	if bin == "" {
		bin = "flite"
	}
	cmd := exec.CommandContext(ctx, bin, "-voice", voice, "-f", in, "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("flite is not installed (Debian package flite): %w", err)
		}
		return nil, fmt.Errorf("flite: %w: %s", err, strings.TrimSpace(string(msg)))
	}
	return os.ReadFile(out)
}
