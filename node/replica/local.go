package replica

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/vigil-mesh/vigil/baseline"
)

// runCopier copies local chunks in runs: consecutive chunks that sit back
// to back in one replica file (the unchanged parts of a file's previous
// version, typically) are copied with one in-kernel copy.
type runCopier struct {
	lr     *localReader
	path   string
	off    int64
	n      int64
	chunks []baseline.Chunk // the chunks of the run, in order
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
		rc.chunks = append(rc.chunks, ch)
		return nil
	}
	if err := rc.flush(dst); err != nil {
		return err
	}
	rc.path, rc.off, rc.n = pick.Path, pick.Off, int64(pick.Size)
	rc.chunks = append(rc.chunks[:0], ch)
	return nil
}

func (rc *runCopier) flush(dst *os.File) error {
	if rc.n == 0 {
		return nil
	}
	err := rc.lr.copyChunks(dst, rc.path, rc.off, rc.chunks)
	rc.n, rc.chunks = 0, rc.chunks[:0]
	return err
}

// localReader copies chunks out of the replica's files, keeping the last
// file open. Every chunk it copies or reads is checked against its CID: a
// replica file whose bytes do not match its index (damaged on disk, or
// changed from outside with its mtime kept) is never built upon. Its
// chunk locations are dropped, so the chunks come from the source instead
// and the file itself is repaired by the record that needs it.
type localReader struct {
	r    *Replica
	path string
	f    *os.File
	buf  []byte
}

// copyBlock is how many bytes localReader reads at once.
const copyBlock = 1 << 20

func newLocalReader(r *Replica) *localReader { return &localReader{r: r} }

func (lr *localReader) close() {
	if lr.f != nil {
		lr.f.Close()
		lr.f = nil
	}
	lr.path = ""
}

// use makes the replica file p the open one; false if it cannot be opened.
func (lr *localReader) use(p string) bool {
	if p == lr.path && lr.f != nil {
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

// damaged records that replica file p does not hold what its index says:
// its chunk locations are dropped.
func (lr *localReader) damaged(p string, ch baseline.Chunk) {
	r := lr.r
	r.m.damaged.Inc()
	r.log.Warn("replica file does not match its index (damaged); its chunks are fetched from the source and the file repaired",
		"path", p, "chunk", ch.CID.String())
	if e := r.files.Get(p); e != nil {
		r.locs.Drop(e)
	}
	r.damaged[p] = true
	if lr.path == p {
		lr.close()
	}
}

// copyChunks copies chunks, which sit back to back at off in replica file
// p, into dst, checking each. errChunkUnavailable when p cannot give them.
func (lr *localReader) copyChunks(dst *os.File, p string, off int64, chunks []baseline.Chunk) error {
	if !lr.use(p) {
		return errChunkUnavailable
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
				return errChunkUnavailable // the file is shorter than the index says
			}
			return fmt.Errorf("replica: read %d bytes of %s: %w", n, p, err)
		}
		at := 0
		for _, ch := range chunks[:k] {
			if baseline.VerifyChunk(ch.CID, buf[at:at+int(ch.Size)]) != nil {
				lr.damaged(p, ch)
				return errChunkUnavailable
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

// readChunk reads a chunk from the replica's files (checked).
func (lr *localReader) readChunk(ch baseline.Chunk) ([]byte, error) {
	for _, l := range slices.Clone(lr.r.locs[ch.CID]) {
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
	return nil, errChunkUnavailable
}

// copyChunk copies a chunk from the first replica file that holds it
// intact.
func (lr *localReader) copyChunk(dst *os.File, ch baseline.Chunk) error {
	for _, l := range slices.Clone(lr.r.locs[ch.CID]) {
		err := lr.copyChunks(dst, l.Path, l.Off, []baseline.Chunk{ch})
		if !errors.Is(err, errChunkUnavailable) {
			return err
		}
	}
	return errChunkUnavailable
}
