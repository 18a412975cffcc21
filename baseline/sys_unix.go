//go:build unix

package baseline

import (
	"io/fs"
	"syscall"
)

// openFlags: O_NONBLOCK so that a file replaced by a fifo between lstat and
// open cannot block the scan (it has no effect on regular files).
const openFlags = syscall.O_NONBLOCK

func fileID(fi fs.FileInfo) (ino, dev uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino), uint64(st.Dev)
	}
	return 0, 0
}
