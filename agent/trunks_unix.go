package agent

import (
	"os"
	"syscall"
)

// fileGID is the group owning a file.
func fileGID(st os.FileInfo) (int, bool) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Gid), true
	}
	return 0, false
}
