// Package local reads the chunks a replica already holds out of its own
// files, so that they are copied rather than fetched. Every chunk read is
// checked against its CID: a replica file whose bytes do not match its
// index (damaged on disk, or changed from outside with its mtime kept) is
// never built upon; the replica is told, drops the file's chunk locations
// and gets the chunks from the source instead.
package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
)

// ErrUnavailable: no replica file gives the chunk intact.
var ErrUnavailable = errors.New("replica: chunk unavailable")

// Files is what a Reader needs of the replica.
type Files interface {
	// Open opens a replica file for reading.
	Open(p string) (*os.File, error)
	// Locs returns where the replica's files hold chunk c (the Reader
	// does not keep the slice).
	Locs(c cid.Cid) []index.Loc
	// Damaged is told that file p does not hold chunk ch where its index
	// says.
	Damaged(p string, ch baseline.Chunk)
}

// RunCopier copies local chunks in runs: consecutive chunks that sit back
// to back in one replica file (the unchanged parts of a file's previous
// version, typically) are copied with one in-kernel copy.
type RunCopier struct {
	lr     *Reader
	path   string
	off    int64
	n      int64
	chunks []baseline.Chunk // the chunks of the run, in order
}

// Add adds ch to the run, copying the run so far into dst when ch does not
// continue it.
func (rc *RunCopier) Add(dst *os.File, ch baseline.Chunk) error {
	locs := rc.lr.files.Locs(ch.CID)
	if len(locs) == 0 {
		return ErrUnavailable
	}
	pick := locs[0]
	for _, l := range locs {
		if rc.n > 0 && l.Path == rc.path && l.Off == rc.off+rc.n {
			pick = l
			break
		}
	}
	if rc.n > 0 && pick.Path == rc.path && pick.Off == rc.off+rc.n {
		rc.n += int64(pick.Size)
		rc.chunks = append(rc.chunks, ch)
		return nil
	}
	if err := rc.Flush(dst); err != nil {
		return err
	}
	rc.path, rc.off, rc.n = pick.Path, pick.Off, int64(pick.Size)
	rc.chunks = append(rc.chunks[:0], ch)
	return nil
}

// Flush copies the run so far into dst.
func (rc *RunCopier) Flush(dst *os.File) error {
	if rc.n == 0 {
		return nil
	}
	err := rc.lr.CopyChunks(dst, rc.path, rc.off, rc.chunks)
	rc.n, rc.chunks = 0, rc.chunks[:0]
	return err
}

// Reader copies chunks out of the replica's files, keeping the last
// file open. Every chunk it copies or reads is checked against its CID: a
// replica file whose bytes do not match its index (damaged on disk, or
// changed from outside with its mtime kept) is never built upon. Its
// chunk locations are dropped, so the chunks come from the source instead
// and the file itself is repaired by the record that needs it.
type Reader struct {
	files Files
	path  string
	f     *os.File
	buf   []byte
}

// copyBlock is how many bytes a Reader reads at once.
const copyBlock = 1 << 20

// NewReader returns a reader of the replica files f gives.
func NewReader(f Files) *Reader { return &Reader{files: f} }

// NewRunCopier returns a copier of runs of chunks read by lr.
func NewRunCopier(lr *Reader) *RunCopier { return &RunCopier{lr: lr} }

// Close closes the file kept open.
func (lr *Reader) Close() {
	if lr.f != nil {
		lr.f.Close()
		lr.f = nil
	}
	lr.path = ""
}

// use makes the replica file p the open one; false if it cannot be opened.
func (lr *Reader) use(p string) bool {
	if p == lr.path && lr.f != nil {
		return true
	}
	lr.Close()
	f, err := lr.files.Open(p)
	if err != nil {
		return false
	}
	lr.f, lr.path = f, p
	return true
}

// damaged tells the replica that file p does not hold what its index
// says, and lets the file go.
func (lr *Reader) damaged(p string, ch baseline.Chunk) {
	lr.files.Damaged(p, ch)
	if lr.path == p {
		lr.Close()
	}
}

// CopyChunks copies chunks, which sit back to back at off in replica file
// p, into dst, checking each. ErrUnavailable when p cannot give them.
func (lr *Reader) CopyChunks(dst *os.File, p string, off int64, chunks []baseline.Chunk) error {
	if !lr.use(p) {
		return ErrUnavailable
	}
	if cap(lr.buf) < copyBlock {
		lr.buf = make([]byte, copyBlock+baseline.MaxChunk)
	}
	for len(chunks) > 0 {
		// as many whole chunks as fit in a block (at least one)
		k, n := 0, 0
		for k < len(chunks) && (k == 0 || n+int(chunks[k].Size) <= copyBlock) {
			n += int(chunks[k].Size)
			k++
		}
		buf := lr.buf[:n]
		if _, err := lr.f.ReadAt(buf, off); err != nil {
			if errors.Is(err, io.EOF) {
				return ErrUnavailable // the file is shorter than the index says
			}
			return fmt.Errorf("replica: read %d bytes of %s: %w", n, p, err)
		}
		at := 0
		for _, ch := range chunks[:k] {
			if baseline.VerifyChunk(ch.CID, buf[at:at+int(ch.Size)]) != nil {
				lr.damaged(p, ch)
				return ErrUnavailable
			}
			at += int(ch.Size)
		}
		if _, err := dst.Write(buf); err != nil {
			return err
		}
		off += int64(n)
		chunks = chunks[k:]
	}
	return nil
}

// ReadChunk reads a chunk from the replica's files (checked).
func (lr *Reader) ReadChunk(ch baseline.Chunk) ([]byte, error) {
	for _, l := range slices.Clone(lr.files.Locs(ch.CID)) {
		if !lr.use(l.Path) {
			continue
		}
		buf := make([]byte, l.Size)
		if _, err := lr.f.ReadAt(buf, l.Off); err != nil {
			continue
		}
		if baseline.VerifyChunk(ch.CID, buf) != nil {
			lr.damaged(l.Path, ch)
			continue
		}
		return buf, nil
	}
	return nil, ErrUnavailable
}

// CopyChunk copies a chunk from the first replica file that holds it
// intact.
func (lr *Reader) CopyChunk(dst *os.File, ch baseline.Chunk) error {
	for _, l := range slices.Clone(lr.files.Locs(ch.CID)) {
		err := lr.CopyChunks(dst, l.Path, l.Off, []baseline.Chunk{ch})
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
	}
	return ErrUnavailable
}
