package baseline

import (
	"io/fs"
	"sync"
	"time"
)

// Stamp is what identifies one state of a path without reading it: its
// type and permissions, size, mtime, ctime, inode and device as lstat (or
// fstat of the open file) gives them. A write to a file moves its ctime,
// so two equal stamps taken around a read mean nothing wrote the file in
// between (see FineCtime for the kernels where that holds to the
// nanosecond).
type Stamp struct {
	Mode  fs.FileMode // type and permission bits
	Size  int64
	MTime int64 // unix nanoseconds
	CTime int64 // unix nanoseconds (the mtime where the system has no ctime)
	Ino   uint64
	Dev   uint64
}

// StampOf returns the stamp of an lstat or fstat result.
func StampOf(fi fs.FileInfo) Stamp {
	s := Stamp{Mode: fi.Mode(), Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	s.Ino, s.Dev = fileID(fi)
	s.CTime = ctimeOf(fi)
	return s
}

// IsZero reports whether s is unset (a path seen absent, or not stamped).
func (s Stamp) IsZero() bool { return s == Stamp{} }

// racyWindow: on a kernel whose ctime is coarse (FineCtime false), a
// write in the same clock tick as the stamp taken before a read leaves
// the ctime as it was. A file whose ctime is this close to the start of
// its read is read a second time and kept only if both reads agree.
const racyWindow = 20 * time.Millisecond

var (
	fineOnce sync.Once
	fine     bool
)

// FineCtime reports whether this kernel gives a file a new ctime on every
// write that follows a stat of it (Linux 6.13 and later, "multigrain"
// timestamps, on ext4, xfs, btrfs and tmpfs). Where it does not, ctimes
// move once per clock tick, and reads of files changed within racyWindow
// are verified by a second read.
func FineCtime() bool {
	fineOnce.Do(func() { fine = kernelAtLeast(6, 13) })
	return fine
}

// racy reports whether a read that started at start of a file stamped s
// must be verified by a second read.
func racy(s Stamp, start time.Time) bool {
	return !FineCtime() && start.UnixNano()-s.CTime < int64(racyWindow)
}
