package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/internal/fsutil"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/replica/client"
	"github.com/vigil-mesh/vigil/node/replica/local"
	"github.com/vigil-mesh/vigil/store"
)

// A baseline's files are copied by a pipeline of named stages:
//
//	plan      which chunks must come from the source (each once); the
//	          others are copied from the replica or from an earlier file
//	fetch     one pipelined stream brings the planned chunks, in order of
//	          first use (client.Stream)
//	stage     each file is written under a temporary name: a small file is
//	          assembled in memory and written by a pool of smallStagers
//	          goroutines (creating a file is the slow part of a small
//	          file), a big one is streamed chunk by chunk
//	commit    a full group (stageFiles files or stageBytes bytes) is made
//	          durable and renamed into place by a goroutine of its own
//	          (one syncfs before, one after) while the next group is staged
//	record    once a group is in place its index rows are saved, so a
//	          restart resumes without fetching its chunks again
//
// The copier runs on the replica's goroutine; the small stagers and the
// committer are the only other goroutines, and each touches only the group
// it was given.

// smallFile is the size up to which a file is assembled in memory and
// staged by the pool.
const smallFile = 256 << 10

// smallStagers is how many goroutines stage small files.
const smallStagers = 2

// stagedFile is a file written under a temporary name during a baseline.
type stagedFile struct {
	e  *baseline.Entry
	st *store.Staged
}

// stageGroup is a commit group: the files staged together and where their
// chunks can be read until the group is in place.
type stageGroup struct {
	mu     sync.Mutex // guards files (small stagers append)
	files  []stagedFile
	count  int                   // files given to the group
	bytes  int64                 // their bytes
	done   int64                 // baseline bytes done once the group is in place
	mem    map[cid.Cid][]byte    // chunks of the group's small files
	staged map[cid.Cid]index.Loc // chunks in the group's staged files, by temp path
	final  map[string]string     // temp path -> replica path, once committing
	small  *errgroup.Group       // the small stagers of this group
	errc   chan error            // the committer's result
	// refused holds the files the committer could not rename into place
	// for a reason of their own (read once errc has answered)
	refused map[string]error
}

func newStageGroup() *stageGroup {
	g := &stageGroup{mem: make(map[cid.Cid][]byte), staged: make(map[cid.Cid]index.Loc), small: new(errgroup.Group)}
	g.small.SetLimit(smallStagers)
	return g
}

func (g *stageGroup) add(sf stagedFile) {
	g.mu.Lock()
	g.files = append(g.files, sf)
	g.mu.Unlock()
}

// copier copies the files of one baseline.
type copier struct {
	r        *Replica
	ap       *applier
	stream   *client.Stream
	planned  map[cid.Cid]bool      // chunks the stream brings
	consumed map[cid.Cid]bool      // planned chunks already taken from the stream
	cur      *stageGroup           // being staged
	prev     *stageGroup           // being committed, or in place and not yet recorded
	done     int64                 // baseline bytes done
	failed   []string              // files the source no longer had a chunk of
	salvage  map[cid.Cid]index.Loc // chunks of files staged by an attempt cut short
	shown    time.Time             // when progress was last reported
	lr       *local.Reader
	bw       fsutil.VecWriter // reused for every big file
}

// copyFiles writes files (in order), returning the paths that could not be
// completed because the source no longer had a chunk. done is the bytes
// already in place before.
func (r *Replica) copyFiles(ctx context.Context, ap *applier, files []*baseline.Entry, done int64, salvage map[cid.Cid]index.Loc) ([]string, error) {
	c := &copier{r: r, ap: ap, done: done, consumed: make(map[cid.Cid]bool), cur: newStageGroup(), lr: newLocalReader(r),
		salvage: salvage}
	defer c.lr.Close()
	remote := c.plan(files)
	var remoteBytes int64
	for _, ch := range remote {
		remoteBytes += int64(ch.Size)
	}
	r.log.Info("baseline copy planned", "files", len(files), "fetch_chunks", len(remote), "fetch_bytes", remoteBytes,
		"salvaged_chunks", len(salvage))
	c.stream = r.streamChunks(ctx, remote)
	defer c.stream.Close()
	defer c.cleanup()
	for _, e := range files {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := c.copyFile(e); err != nil {
			return nil, err
		}
		if c.cur.count >= r.stageFiles || c.cur.bytes >= r.stageBytes {
			if err := c.commit(); err != nil {
				return nil, err
			}
		}
	}
	if err := c.commit(); err != nil {
		return nil, err
	}
	if err := c.record(); err != nil {
		return nil, err
	}
	if err := c.stream.Wait(); err != nil {
		return nil, err
	}
	return c.failed, nil
}

// plan decides which chunks come from the source: a chunk this replica
// holds, or that an earlier file of this baseline brings, is copied
// locally; every other one is fetched once.
func (c *copier) plan(files []*baseline.Entry) []baseline.Chunk {
	c.planned = make(map[cid.Cid]bool)
	var remote []baseline.Chunk
	for _, e := range files {
		if c.r.adoptExisting(e) {
			continue
		}
		for _, ch := range e.Chunks {
			if c.planned[ch.CID] || len(c.r.locs[ch.CID]) > 0 {
				continue
			}
			if _, ok := c.salvage[ch.CID]; ok {
				continue
			}
			c.planned[ch.CID] = true
			remote = append(remote, ch)
		}
	}
	return remote
}

// copyFile stages e (or notes it as failed, or takes it as adopted).
func (c *copier) copyFile(e *baseline.Entry) error {
	if c.r.adopted(e) {
		c.done += e.Size
		c.ap.touch(e.Path)
		return nil
	}
	var ok bool
	var err error
	if e.Size <= smallFile {
		ok, err = c.stageSmall(e)
	} else {
		ok, err = c.stageBig(e)
	}
	if pathProblem(err) {
		// a name or file this replica cannot write: the rest goes on
		c.r.setProblem(e.Path, err)
		return nil
	}
	if err != nil {
		return err
	}
	if !ok {
		c.failed = append(c.failed, e.Path)
		return nil
	}
	c.cur.count++
	c.cur.bytes += e.Size
	if e.Size <= smallFile {
		c.done += e.Size // a big file counted its bytes as it went
	}
	c.showProgress()
	return nil
}

// showProgress reports the bytes staged so far, a few times a second, so
// that lag shows a baseline's progress as it grows (the ack loop sends it).
func (c *copier) showProgress() {
	if now := time.Now(); now.Sub(c.shown) >= 250*time.Millisecond {
		c.shown = now
		done := c.done
		c.r.setStatus(func(s *Status) { s.DoneBytes = max(s.DoneBytes, done) })
		c.r.progress(done, c.r.Status().TotalBytes, false)
	}
}

// fromStream reports whether chunk ch is to be taken from the stream now
// (planned and not taken yet), and marks it taken.
func (c *copier) fromStream(ch cid.Cid) bool {
	if !c.planned[ch] || c.consumed[ch] {
		return false
	}
	c.consumed[ch] = true
	return true
}

// next takes the next chunk from the stream; errChunkUnavailable when the
// source no longer has it.
func (c *copier) next(ch cid.Cid) ([]byte, error) {
	d, err := c.stream.Next(ch)
	if err == nil && d == nil {
		err = errChunkUnavailable
	}
	return d, err
}

// memChunk finds a chunk held in memory by the current or previous group.
func (c *copier) memChunk(ch cid.Cid) ([]byte, bool) {
	if d, ok := c.cur.mem[ch]; ok {
		return d, true
	}
	if c.prev != nil {
		d, ok := c.prev.mem[ch]
		return d, ok
	}
	return nil, false
}

// stagedChunk finds a chunk in a staged file of the current or previous group.
func (c *copier) stagedChunk(ch cid.Cid) (index.Loc, bool) {
	if l, ok := c.cur.staged[ch]; ok {
		return l, true
	}
	if c.prev != nil {
		if l, ok := c.prev.staged[ch]; ok {
			return l, true
		}
	}
	l, ok := c.salvage[ch]
	return l, ok
}

// openStaged opens the staged file of l, at its final path if the
// previous group renamed it meanwhile.
func (c *copier) openStaged(l index.Loc) (*os.File, error) {
	f, err := os.Open(l.Path)
	if err == nil || c.prev == nil {
		return f, err
	}
	rel, ok := c.prev.final[l.Path]
	if !ok {
		return nil, err
	}
	abs, aerr := c.r.rep.Abs(rel)
	if aerr != nil {
		return nil, err
	}
	return os.Open(abs)
}

// stageSmall assembles e in memory and hands it to a small stager; false
// if a chunk is no longer available.
func (c *copier) stageSmall(e *baseline.Entry) (bool, error) {
	data := make([][]byte, 0, len(e.Chunks))
	ok := true
	for _, ch := range e.Chunks {
		var d []byte
		var err error
		if m, hit := c.memChunk(ch.CID); hit {
			d = m
		} else if l, hit := c.stagedChunk(ch.CID); hit {
			d, err = readStaged(c.openStaged, l, ch.CID)
		} else if c.fromStream(ch.CID) {
			d, err = c.next(ch.CID)
		} else {
			d, err = c.lr.ReadChunk(ch)
		}
		if errors.Is(err, errChunkUnavailable) {
			ok = false // keep taking this file's chunks from the stream
			continue
		}
		if err != nil {
			return false, err
		}
		c.cur.mem[ch.CID] = d
		data = append(data, d)
	}
	if !ok {
		return false, nil
	}
	g := c.cur
	g.small.Go(func() error {
		st, err := c.r.rep.Stage(e.Path, e.Mode, e.MTime, func(f *os.File) error { return fsutil.WriteVec(f, data) })
		if pathProblem(err) {
			c.r.setProblem(e.Path, err)
			return nil
		}
		if err != nil {
			return err
		}
		g.add(stagedFile{e: e, st: st})
		return nil
	})
	return true, nil
}

// stageBig streams e into a staged file chunk by chunk; false if a chunk
// is no longer available.
func (c *copier) stageBig(e *baseline.Entry) (ok bool, err error) {
	// its bytes count as done as they are written (a big file is seconds
	// of a baseline); taken back if it cannot be completed
	counted := int64(0)
	defer func() {
		if !ok || err != nil {
			c.done -= counted
		} else {
			c.done += e.Size - counted
		}
	}()
	missing := false
	written := make(map[cid.Cid]index.Loc) // chunk -> offset and size in this file
	st, err := c.r.rep.Stage(e.Path, e.Mode, e.MTime, func(f *os.File) error {
		// fetched chunks are written through a buffer; local copies (which
		// read or write f directly) flush it first
		bw := &c.bw
		bw.Reset(f)
		var off int64
		for _, ch := range e.Chunks {
			var err error
			if l, ok := written[ch.CID]; ok {
				if err = bw.Flush(); err == nil {
					err = copyWithin(f, l.Off, int64(l.Size))
				}
			} else if m, ok := c.memChunk(ch.CID); ok {
				err = bw.Write(m)
			} else if l, ok := c.stagedChunk(ch.CID); ok {
				if err = bw.Flush(); err == nil {
					err = copyStaged(f, c.openStaged, l, ch.CID)
				}
			} else if c.fromStream(ch.CID) {
				var data []byte
				if data, err = c.next(ch.CID); err == nil {
					err = bw.Write(data)
				} else if !errors.Is(err, errChunkUnavailable) {
					// the source went away: keep what is written for the
					// next attempt to salvage
					if ferr := bw.Flush(); ferr != nil {
						return ferr
					}
					return fmt.Errorf("%w: %w", store.ErrInterrupted, err)
				}
			} else if err = bw.Flush(); err == nil {
				err = c.lr.CopyChunk(f, ch)
			}
			if errors.Is(err, errChunkUnavailable) {
				missing, err = true, nil
			}
			if err != nil {
				return err
			}
			if _, ok := written[ch.CID]; !ok && !missing {
				written[ch.CID] = index.Loc{Off: off, Size: ch.Size}
			}
			off += int64(ch.Size)
			if !missing {
				counted += int64(ch.Size)
				c.done += int64(ch.Size)
				c.showProgress()
			}
		}
		if missing {
			return errChunkUnavailable
		}
		return bw.Flush()
	})
	if errors.Is(err, errChunkUnavailable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for id, l := range written {
		if _, ok := c.cur.staged[id]; !ok {
			l.Path = st.TempPath()
			c.cur.staged[id] = l
		}
	}
	c.cur.add(stagedFile{e: e, st: st})
	return true, nil
}

// commit waits for the current group's stagers, records the previous
// group, and starts committing the current one in the background.
func (c *copier) commit() error {
	g := c.cur
	if err := g.small.Wait(); err != nil {
		return err
	}
	if err := c.record(); err != nil {
		return err
	}
	if len(g.files) == 0 {
		c.cur = newStageGroup()
		return nil
	}
	for _, sf := range g.files {
		if err := c.ap.keep(c.r.files.Get(sf.e.Path), sf.e); err != nil {
			return err
		}
	}
	g.done = c.done
	g.final = make(map[string]string, len(g.files))
	for _, sf := range g.files {
		g.final[sf.st.TempPath()] = sf.st.Path()
	}
	g.errc = make(chan error, 1)
	go func() {
		var err error
		g.refused, err = c.r.commitStaged(g.files)
		g.errc <- err
	}()
	c.prev, c.cur = g, newStageGroup()
	return nil
}

// record waits for the previous group to be in place and saves its index
// rows and progress.
func (c *copier) record() error {
	g := c.prev
	if g == nil {
		return nil
	}
	c.prev = nil
	if err := <-g.errc; err != nil {
		return err // what is still staged is salvaged by the next attempt
	}
	r, ap := c.r, c.ap
	ap.preserved = false
	for _, sf := range g.files {
		if err := g.refused[sf.e.Path]; err != nil {
			r.setProblem(sf.e.Path, err)
			continue
		}
		if old := r.files.Get(sf.e.Path); old != nil {
			r.locs.Drop(old)
		}
		delete(r.damaged, sf.e.Path)
		r.files.Put(sf.e)
		r.locs.Add(sf.e)
		ap.touch(sf.e.Path)
	}
	ap.endChange()
	if err := r.db.Update(func(tx *store.Tx) error { return ap.save(tx) }); err != nil {
		return err
	}
	clear(ap.dirty)
	r.setStatus(func(s *Status) { s.DoneBytes = max(s.DoneBytes, g.done) })
	r.poke(r.ackKick)
	return nil
}

// cleanup, on an early return, waits for the goroutines. What was staged
// and not renamed stays in the staging directory: the next attempt
// salvages its chunks (and a completed baseline empties the directory).
func (c *copier) cleanup() {
	c.cur.small.Wait()
	if c.prev != nil {
		<-c.prev.errc
	}
}

// commitStaged makes a group of staged files durable (one syncfs), renames
// them into place and makes the renames durable (another). A file whose
// rename fails for a reason of its own is returned in refused (and
// removed from staging); any other failure stops the group.
func (r *Replica) commitStaged(group []stagedFile) (refused map[string]error, err error) {
	if err := r.rep.SyncFS(); err != nil {
		return nil, err
	}
	for _, sf := range group {
		if err := sf.st.Commit(); err != nil {
			if !pathProblem(err) {
				return refused, err
			}
			if refused == nil {
				refused = make(map[string]error)
			}
			refused[sf.e.Path] = err
		}
	}
	return refused, r.rep.SyncFS()
}
