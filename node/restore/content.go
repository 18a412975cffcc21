package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/store"
)

// contentError: a chunk of a file was found nowhere intact, so the file
// cannot be restored.
type contentError struct {
	Path  string
	Chunk cid.Cid
	Why   string
}

func (e *contentError) Error() string {
	return fmt.Sprintf("restore: restore %s: %s", e.Path, e.reason())
}

// reason is the error without the path.
func (e *contentError) reason() string {
	if !e.Chunk.Defined() {
		return e.Why
	}
	return fmt.Sprintf("chunk %s %s", e.Chunk, e.Why)
}

// chunkSource finds the chunks a restore writes: in the replica tree (at
// the places its current index gives), else in the history chunk store.
// It is safe for use by several goroutines.
type chunkSource struct {
	d   *Replica
	in  *os.Root                   // the replica tree (nil if it does not exist)
	cur map[string]*baseline.Entry // the replica's current index

	locsOnce sync.Once
	locs     index.Locs // where every chunk of cur is; built on first use

	histBytes atomic.Int64 // read from the history store
}

func newChunkSource(d *Replica, in *os.Root, cur map[string]*baseline.Entry) *chunkSource {
	return &chunkSource{d: d, in: in, cur: cur}
}

// allLocs returns where the replica holds each chunk, by its index.
func (s *chunkSource) allLocs() index.Locs {
	s.locsOnce.Do(func() {
		s.locs = make(index.Locs)
		if s.in == nil {
			return
		}
		for _, e := range s.cur {
			s.locs.Add(e)
		}
	})
	return s.locs
}

// missing returns the first chunk of file e that is neither in the
// replica's index nor in the history store. Nothing is read.
func (s *chunkSource) missing(e *baseline.Entry) (cid.Cid, bool) {
	if c := s.cur[e.Path]; s.in != nil && c != nil && c.SameContent(e) {
		return cid.Undef, false
	}
	for _, c := range e.Chunks {
		if s.in != nil && len(s.allLocs()[c.CID]) > 0 {
			continue
		}
		if ok, _ := s.d.History.Chunks.Has(c.CID); ok {
			continue
		}
		return c.CID, true
	}
	return cid.Undef, false
}

// Content is written in segments of consecutive chunks of about segBytes.
// Workers (up to maxWorkers, one for a small file) each take the next
// segment, read its chunks from the replica (adjacent chunks with one
// read), verify every chunk against its CID, fetch a chunk that does not
// match from elsewhere, and write the segment at its offset: the bytes
// written are the bytes verified, and each worker keeps its buffer hot in
// its core's cache from the read to the write.
const segBytes = 1 << 20

func maxWorkers() int { return max(1, min(runtime.GOMAXPROCS(0), 4)) }

var segPool = sync.Pool{New: func() any { b := make([]byte, segBytes+baseline.MaxChunk); return &b }}

// seg is a run of chunks [first, end) of a file starting at offset off.
type seg struct {
	first, end int
	off        int64
	size       int
}

// fileWrite is the writing of one file's content.
type fileWrite struct {
	s    *chunkSource
	e    *baseline.Entry
	out  *os.File
	done func(int64)

	home   *baseline.Entry // the replica's current entry at e.Path, if a file
	same   bool            // home has e's chunk list: chunk i is at e's offset of chunk i
	homeAt map[cid.Cid]int64

	segs []seg
	next atomic.Int64
	stop atomic.Bool
}

// writeFile writes the content of e into out (an empty file), verified.
// done is called with the bytes of each segment written. The error is a
// *contentError when a chunk is found nowhere intact.
func (s *chunkSource) writeFile(ctx context.Context, out *os.File, e *baseline.Entry, done func(int64)) error {
	var size int64
	for _, c := range e.Chunks {
		size += int64(c.Size)
	}
	if size != e.Size {
		return &contentError{Path: e.Path, Why: fmt.Sprintf("the chunks of the version hold %d bytes, its size is %d", size, e.Size)}
	}
	if size == 0 {
		return nil
	}
	fw := &fileWrite{s: s, e: e, out: out, done: done}
	if h := s.cur[e.Path]; s.in != nil && h != nil && h.Kind == baseline.KindFile {
		fw.home = h
		fw.same = h.SameContent(e)
		if !fw.same {
			fw.homeAt = make(map[cid.Cid]int64, len(h.Chunks))
			var off int64
			for _, c := range h.Chunks {
				if _, ok := fw.homeAt[c.CID]; !ok {
					fw.homeAt[c.CID] = off
				}
				off += int64(c.Size)
			}
		}
	}
	var off int64
	sg := seg{off: 0}
	for i, c := range e.Chunks {
		if sg.size > 0 && sg.size+int(c.Size) > segBytes {
			sg.end = i
			fw.segs = append(fw.segs, sg)
			sg = seg{first: i, off: off}
		}
		sg.size += int(c.Size)
		off += int64(c.Size)
	}
	sg.end = len(e.Chunks)
	fw.segs = append(fw.segs, sg)

	n := min(len(fw.segs), maxWorkers())
	if n == 1 {
		return fw.work(ctx)
	}
	if err := out.Truncate(e.Size); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = fw.work(ctx) })
	}
	errs[0] = fw.work(ctx)
	wg.Wait()
	// a failure to write ends the restore; a missing chunk only this file
	var content error
	for _, err := range errs {
		var ce *contentError
		switch {
		case err == nil:
		case errors.As(err, &ce):
			content = err
		default:
			return err
		}
	}
	return content
}

// worker is one goroutine writing segments of a file.
type worker struct {
	fw     *fileWrite
	bufp   *[]byte
	read   []bool // per chunk of the segment: its bytes were read from the replica
	tried  []index.Loc
	inPath string
	inFile *os.File
}

// work writes segments until none is left, one fails or ctx ends.
func (fw *fileWrite) work(ctx context.Context) error {
	w := &worker{fw: fw, bufp: segPool.Get().(*[]byte)}
	defer func() {
		segPool.Put(w.bufp)
		if w.inFile != nil {
			w.inFile.Close()
		}
	}()
	for {
		if fw.stop.Load() {
			return nil
		}
		i := int(fw.next.Add(1) - 1)
		if i >= len(fw.segs) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			fw.stop.Store(true)
			return err
		}
		if err := w.segment(fw.segs[i]); err != nil {
			fw.stop.Store(true)
			return err
		}
	}
}

// locate returns where the replica should hold chunk c of e, which is at
// offset off of e.
func (fw *fileWrite) locate(c baseline.Chunk, off int64, prefer string) (index.Loc, bool) {
	if fw.same {
		return index.Loc{Path: fw.e.Path, Off: off, Size: c.Size}, true
	}
	if fw.home != nil {
		if at, ok := fw.homeAt[c.CID]; ok {
			return index.Loc{Path: fw.e.Path, Off: at, Size: c.Size}, true
		}
	}
	if fw.s.in == nil {
		return index.Loc{}, false
	}
	best := -1
	locs := fw.s.allLocs()[c.CID]
	for i, l := range locs {
		if l.Size != c.Size {
			continue
		}
		if best < 0 || l.Path == prefer {
			best = i
		}
	}
	if best < 0 {
		return index.Loc{}, false
	}
	return locs[best], true
}

// open returns the replica file p, keeping one file open; nil if it
// cannot be opened.
func (w *worker) open(p string) *os.File {
	if p == w.inPath && w.inFile != nil {
		return w.inFile
	}
	if w.inFile != nil {
		w.inFile.Close()
		w.inFile, w.inPath = nil, ""
	}
	f, err := w.fw.s.in.Open(p)
	if err != nil {
		return nil
	}
	w.inFile, w.inPath = f, p
	return f
}

// segment reads, verifies and writes one segment.
func (w *worker) segment(sg seg) error {
	fw := w.fw
	chunks := fw.e.Chunks[sg.first:sg.end]
	buf := (*w.bufp)[:sg.size]
	w.read = append(w.read[:0], make([]bool, len(chunks))...)
	w.tried = append(w.tried[:0], make([]index.Loc, len(chunks))...)

	// read what the replica holds, adjacent chunks of one file at once
	var runFile *os.File
	var runOff int64
	var runStart, runLen, runFirst int
	flush := func() {
		if runFile != nil && runLen > 0 {
			n, err := runFile.ReadAt(buf[runStart:runStart+runLen], runOff)
			at := runStart
			for i := runFirst; at < runStart+runLen; i++ {
				end := at + int(chunks[i].Size)
				w.read[i] = err == nil || end <= runStart+n
				at = end
			}
		}
		runFile, runLen = nil, 0
	}
	start, off := 0, sg.off
	for i, c := range chunks {
		if l, ok := fw.locate(c, off, w.inPath); ok {
			w.tried[i] = l
			if l.Path != w.inPath {
				flush()
			}
			if f := w.open(l.Path); f != nil {
				if runFile == f && runOff+int64(runLen) == l.Off && runStart+runLen == start {
					runLen += int(c.Size)
				} else {
					flush()
					runFile, runOff, runStart, runLen, runFirst = f, l.Off, start, int(c.Size), i
				}
			}
		} else {
			flush()
		}
		start += int(c.Size)
		off += int64(c.Size)
	}
	flush()

	// verify each chunk; fetch a bad or missing one from elsewhere
	start = 0
	for i, c := range chunks {
		dst := buf[start : start+int(c.Size)]
		start += int(c.Size)
		if w.read[i] && baseline.VerifyChunk(c.CID, dst) == nil {
			continue
		}
		if err := w.repair(c, dst, w.tried[i], w.read[i]); err != nil {
			return err
		}
	}
	if _, err := fw.out.WriteAt(buf, sg.off); err != nil {
		return fmt.Errorf("restore: restore %s: %w", fw.e.Path, err)
	}
	fw.done(int64(len(buf)))
	return nil
}

// repair fills dst with chunk c from another place of the replica that
// holds it, else from the history store, each verified. tried is the
// place already read (read: its bytes were read and did not match).
func (w *worker) repair(c baseline.Chunk, dst []byte, tried index.Loc, read bool) error {
	fw := w.fw
	damaged := read
	if fw.s.in != nil {
		for _, l := range fw.s.allLocs()[c.CID] {
			if l == tried || l.Size != c.Size {
				continue
			}
			f := w.open(l.Path)
			if f == nil {
				continue
			}
			n, _ := f.ReadAt(dst, l.Off)
			if n == len(dst) && baseline.VerifyChunk(c.CID, dst) == nil {
				return nil
			}
			damaged = true
		}
	}
	data, err := fw.s.d.History.Chunks.Get(c.CID)
	if err == nil && len(data) == len(dst) && baseline.VerifyChunk(c.CID, data) == nil {
		copy(dst, data)
		fw.s.histBytes.Add(int64(len(data)))
		return nil
	}
	var why string
	switch {
	case err == nil:
		why = "is damaged in the history store"
		if damaged {
			why = "is damaged in the replica and in the history store"
		}
	case !errors.Is(err, store.ErrNotFound):
		why = fmt.Sprintf("cannot be read from the history store (%v)", err)
	case damaged:
		why = "is damaged in the replica and not in the history store"
	default:
		why = "is found neither in the replica nor in the history store"
	}
	return &contentError{Path: fw.e.Path, Chunk: c.CID, Why: why}
}
