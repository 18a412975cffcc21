package baseline

import (
	"io/fs"
	"time"

	"github.com/ipfs/go-cid"
)

// Kind is the type of a folder entry.
type Kind uint8

const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return "unknown"
}

// Chunk is one content-defined chunk of a file: its CIDv1 (raw codec,
// BLAKE3 multihash) and its length in bytes.
type Chunk struct {
	CID  cid.Cid
	Size uint32
}

// Entry describes one path of a protected folder: a regular file with its
// manifest (ordered chunks), a directory or a symlink.
type Entry struct {
	Path   string      // slash-separated, relative to the folder root, never "" or starting with "/" or containing ".."
	Kind   Kind        //
	Mode   fs.FileMode // permission bits only (fs.ModePerm | setuid/setgid/sticky)
	MTime  time.Time   // modification time, nanosecond precision
	Size   int64       // file size in bytes (0 for dirs; len(Target) for symlinks)
	Target string      // symlink target, verbatim
	Chunks []Chunk     // file content, in order; empty for an empty file

	// Source-local identity used only to skip rehashing unchanged files on a
	// rescan. Never sent on the wire.
	Inode uint64
	Dev   uint64
}
