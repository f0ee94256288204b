package asterisksim

import (
	"os"
	"path/filepath"
	"testing"
)

// With OtherUser, files follow Asterisk running as its own user: the agent
// writing prompts 0600 (finding 2 of issue 13) or a recording folder only
// it may write makes STREAM FILE and RECORD FILE fail as on a real node.
func TestOtherUserFileAccess(t *testing.T) {
	sounds := t.TempDir()
	os.Chmod(sounds, 0o755)
	dir := filepath.Join(sounds, "elastidial")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "open.wav"), []byte("RIFF"), 0o644)
	os.WriteFile(filepath.Join(dir, "private.wav"), []byte("RIFF"), 0o600)
	os.MkdirAll(filepath.Join(sounds, "rec-open"), 0o777)
	os.Chmod(filepath.Join(sounds, "rec-open"), 0o777) // past the umask
	os.MkdirAll(filepath.Join(sounds, "rec-private"), 0o755)
	for _, other := range []bool{false, true} {
		s := &Sim{Sounds: sounds, OtherUser: other}
		if !s.soundExists("elastidial/open") || s.soundExists("elastidial/missing") {
			t.Errorf("other=%v: readable prompt or missing prompt wrong", other)
		}
		if got := s.soundExists("elastidial/private"); got == other {
			t.Errorf("other=%v: 0600 prompt readable %v", other, got)
		}
		if _, ok := s.recordPath("rec-open/m", "wav"); !ok {
			t.Errorf("other=%v: cannot record into a 0777 folder", other)
		}
		if _, ok := s.recordPath("rec-private/m", "wav"); ok == other {
			t.Errorf("other=%v: recording into a 0755 folder ok=%v", other, ok)
		}
		if _, ok := s.recordPath("nofolder/m", "wav"); ok {
			t.Errorf("other=%v: recorded into a missing folder", other)
		}
	}
}
