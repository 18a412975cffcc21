package replica

import (
	"fmt"
	"io"
	"os"

	"github.com/vigil-mesh/vigil/baseline"
)

// runCopier copies local chunks in runs: consecutive chunks that sit back
// to back in one replica file (the unchanged parts of a file's previous
// version, typically) are copied with one in-kernel copy.
type runCopier struct {
	lr   *localReader
	path string
	off  int64
	n    int64
}

func (rc *runCopier) add(dst *os.File, ch baseline.Chunk) error {
	locs := rc.lr.r.locs[ch.CID]
	if len(locs) == 0 {
		return errChunkUnavailable
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
		return nil
	}
	if err := rc.flush(dst); err != nil {
		return err
	}
	rc.path, rc.off, rc.n = pick.Path, pick.Off, int64(pick.Size)
	return nil
}

func (rc *runCopier) flush(dst *os.File) error {
	if rc.n == 0 {
		return nil
	}
	err := rc.lr.copyRange(dst, rc.path, rc.off, rc.n)
	rc.n = 0
	return err
}

// localReader copies chunks out of the replica's files, keeping the last
// file open.
type localReader struct {
	r    *Replica
	path string
	f    *os.File
}

func newLocalReader(r *Replica) *localReader { return &localReader{r: r} }

func (lr *localReader) close() {
	if lr.f != nil {
		lr.f.Close()
		lr.f = nil
	}
}

// use makes the replica file p the open one; false if it cannot be opened.
func (lr *localReader) use(p string) bool {
	if p == lr.path {
		return true
	}
	lr.close()
	f, err := lr.r.rep.Open(p)
	if err != nil {
		return false
	}
	lr.f, lr.path = f, p
	return true
}

// copyRange copies n bytes at off of the replica file p into dst.
func (lr *localReader) copyRange(dst *os.File, p string, off, n int64) error {
	if !lr.use(p) {
		return errChunkUnavailable
	}
	if _, err := lr.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	got, err := io.Copy(dst, io.LimitReader(lr.f, n))
	if err != nil {
		return fmt.Errorf("replica: copy %d bytes from %s: %w", n, p, err)
	}
	if got != n {
		return errChunkUnavailable // the file is shorter than the index says
	}
	return nil
}

// readChunk reads a chunk from the replica's files.
func (lr *localReader) readChunk(ch baseline.Chunk) ([]byte, error) {
	for _, l := range lr.r.locs[ch.CID] {
		if !lr.use(l.Path) {
			continue
		}
		buf := make([]byte, l.Size)
		if _, err := lr.f.ReadAt(buf, l.Off); err == nil {
			return buf, nil
		}
	}
	return nil, errChunkUnavailable
}

// copyChunk copies a chunk from the first replica file that holds it and
// can be opened.
func (lr *localReader) copyChunk(dst *os.File, ch baseline.Chunk) error {
	for _, l := range lr.r.locs[ch.CID] {
		if lr.use(l.Path) {
			return lr.copyRange(dst, l.Path, l.Off, int64(l.Size))
		}
	}
	return errChunkUnavailable
}
