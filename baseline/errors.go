package baseline

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Sentinel errors. Callers test for them with errors.Is; the returned errors
// wrap them with the detail at fault.
var (
	// ErrChunkMismatch: data does not hash to the CID it was fetched for.
	ErrChunkMismatch = errors.New("baseline: chunk does not match its CID")
	// ErrUnsupportedCID: a CID that is not a raw-codec CIDv1 with a 32-byte
	// BLAKE3 or SHA2-256 multihash.
	ErrUnsupportedCID = errors.New("baseline: unsupported CID")
	// ErrBadEntry: an encoded entry is malformed or out of bounds.
	ErrBadEntry = errors.New("baseline: bad entry")
	// ErrBadPath: a path is not a clean slash-separated relative path.
	ErrBadPath = errors.New("baseline: bad path")
	// ErrBadSplice: a splice does not fit the chunk list it is applied to.
	ErrBadSplice = errors.New("baseline: splice out of range")
	// ErrBadPattern: an ignore pattern cannot be compiled.
	ErrBadPattern = errors.New("baseline: bad ignore pattern")
	// ErrIgnored: Stat was asked for a path that the ignore patterns exclude.
	ErrIgnored = errors.New("baseline: path is ignored")
	// ErrSpecialFile: Stat found a socket, fifo or device, which is not protected.
	ErrSpecialFile = errors.New("baseline: special file not supported")
	// ErrTorn: a file changed during every read of it (ReadAttempts in a
	// row): no state of it could be read whole. The file exists; it is
	// read again later.
	ErrTorn = errors.New("baseline: file changed while it was read")
)

// PathError records a failure on one path of a folder. Path is relative to
// the folder root (slash-separated); Err is usually an *fs.PathError.
type PathError struct {
	Op   string // "scan", "stat", "read", "readlink"
	Path string
	Err  error
}

func (e *PathError) Error() string {
	return fmt.Sprintf("baseline: %s %s: %v", e.Op, e.Path, e.Err)
}

func (e *PathError) Unwrap() error { return e.Err }

// IgnoreFileError reports a folder's ignore file (IgnoreFile) that cannot be
// read or holds a bad pattern. Path is the file's path; Line is 1-based, 0
// when the whole file is at fault. Err wraps ErrBadPattern for a bad
// pattern, else the read error.
type IgnoreFileError struct {
	Path string
	Line int
	Err  error
}

func (e *IgnoreFileError) Error() string {
	var msg string
	var pe *fs.PathError
	if errors.As(e.Err, &pe) && pe.Path == e.Path {
		msg = pe.Op + ": " + pe.Err.Error()
	} else {
		msg = strings.TrimPrefix(e.Err.Error(), "baseline: ")
	}
	if e.Line > 0 {
		return fmt.Sprintf("baseline: %s:%d: %s", e.Path, e.Line, msg)
	}
	return fmt.Sprintf("baseline: ignore file %s: %s", e.Path, msg)
}

func (e *IgnoreFileError) Unwrap() error { return e.Err }
