package replica

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/replica/client"
	"github.com/vigil-mesh/vigil/store"
)

// baseline brings the replica to the source's snapshot: stale paths are
// removed, directories and symlinks made, and files whose content this
// replica does not hold are written from local chunks or chunks fetched in
// one pipelined stream. Files are staged, synced in groups and renamed
// into place; progress is saved per group so a restart resumes without
// fetching again. Records after the snapshot's seq are applied afterwards.
func (r *Replica) baseline(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := r.net.WaitConnected(wctx, r.source)
	cancel()
	if err != nil {
		return &client.SourceError{Err: fmt.Errorf("replica: source %s (%s) not reachable: %w", r.sourceName, r.source, err)}
	}
	snap, err := r.src.Snapshot(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	r.mu.Lock()
	clear(r.unsent) // this baseline brings every path to the snapshot
	r.mu.Unlock()
	r.rep.CacheDirs(true) // thousands of files go into the same directories
	defer r.rep.CacheDirs(false)
	r.log.Info("baseline started", "seq", snap.Seq, "entries", len(snap.Ents), "bytes", snap.Total)
	r.setStatus(func(s *Status) {
		s.Baseline, s.TotalBytes, s.DoneBytes = true, snap.Total, 0
		if snap.Seq > s.Head {
			s.Head = snap.Seq
		}
	})
	ap := newApplier(r)
	ap.seq, ap.at = snap.Seq, start

	want := make(map[string]*baseline.Entry, len(snap.Ents))
	for i := range snap.Ents {
		want[snap.Ents[i].Path] = &snap.Ents[i]
	}
	// 1. stale paths and kind changes. An index that knows nothing (new,
	// or rebuilt after it was damaged) cannot say what is stale: what the
	// tree holds on disk and the snapshot does not is removed.
	if r.files.Len() == 0 {
		if err := r.removeUnknown(want); err != nil {
			return err
		}
	}
	for _, e := range r.files.Sorted() {
		if r.files.Get(e.Path) == nil {
			continue // went with its parent
		}
		if w := want[e.Path]; w == nil || w.Kind != e.Kind {
			if err := ap.removePath(e.Path); err != nil {
				return err
			}
		}
	}
	// 2. directories and symlinks, parents first
	var files []*baseline.Entry
	var done int64
	var refused []string // directories that could not be made: their subtrees are skipped
	for i := range snap.Ents {
		e := &snap.Ents[i]
		if slices.ContainsFunc(refused, func(d string) bool { return strings.HasPrefix(e.Path, d+"/") }) {
			continue
		}
		prev := r.files.Get(e.Path)
		if e.Kind == baseline.KindFile {
			if prev != nil && prev.SameContent(e) {
				if !prev.SameMeta(e) {
					if err := r.rep.SetMeta(e.Path, e.Mode, e.MTime); err != nil {
						return err
					}
					r.files.Put(e)
					ap.touch(e.Path)
				}
				done += e.Size
				continue
			}
			files = append(files, e)
			continue
		}
		if e.Kind == baseline.KindDir {
			// every directory gets its mode and mtime again at the end: an
			// attempt cut short may have written files into it since
			ap.dirs[e.Path] = true
		}
		if prev != nil && prev.SameContent(e) && prev.SameMeta(e) {
			continue
		}
		var err error
		if e.Kind == baseline.KindDir {
			// made durable with the baseline's SyncFS
			err = r.rep.Mkdir(e.Path, e.Mode, e.MTime, store.NoDirSync())
		} else {
			err = r.rep.Symlink(e.Path, e.Target, e.MTime)
		}
		if pathProblem(err) {
			r.setProblem(e.Path, err)
			if e.Kind == baseline.KindDir {
				refused = append(refused, e.Path)
			}
			continue
		}
		if err != nil {
			return err
		}
		r.files.Put(e)
		ap.touch(e.Path)
	}
	r.setStatus(func(s *Status) { s.DoneBytes = done })

	// 3. files
	salvage := r.salvage(ctx)
	failed, err := r.copyFiles(ctx, ap, files, done, salvage)
	if err != nil {
		return err
	}
	if err := ap.finish(); err != nil {
		return err
	}
	// 4. what could not be copied (changed at the source meanwhile) is
	// brought to the source's current state.
	for _, p := range failed {
		if err := ap.repair(ctx, p); err != nil {
			if !pathProblem(err) {
				return err
			}
			r.setProblem(p, err)
			ap.forget(p)
		}
	}
	if err := ap.finish(); err != nil {
		return err
	}
	if err := r.rep.SyncFS(); err != nil {
		return err
	}
	ap.endChange()
	now := time.Now()
	err = r.db.Update(func(tx *store.Tx) error {
		if err := ap.save(tx); err != nil {
			return err
		}
		return r.rows.PutBaselineDone(tx, snap.Seq, now)
	})
	if err != nil {
		return fmt.Errorf("replica: save replica state %s/%s: %w", r.sourceName, r.folder, err)
	}
	r.setStatus(func(s *Status) {
		s.Applied, s.AppliedAt, s.BaselineOK, s.Baseline = snap.Seq, now, true, false
		s.DoneBytes = s.TotalBytes
		s.Files, s.Bytes = r.files.Files(), r.files.Bytes()
		if s.Head < s.Applied {
			s.Head = s.Applied
		}
	})
	// what earlier attempts staged is no longer needed
	if err := r.rep.CleanTemp(); err != nil {
		r.log.Warn("clean staging directory", "err", err)
	}
	r.clearProblem("")
	r.clearPathProblems(ap.written)
	r.progress(snap.Total, snap.Total, true)
	el := time.Since(start)
	r.log.Info("baseline done", "seq", snap.Seq, "entries", r.files.Len(), "bytes", snap.Total,
		"fetched_chunks", r.fetchedChunks.Load(), "seconds", el.Seconds(),
		"mb_per_s", float64(snap.Total)/1e6/max(el.Seconds(), 1e-9))
	r.poke(r.ackKick)
	return nil
}

func (r *Replica) progress(done, total int64, finished bool) {
	r.m.baselineDone.WithLabelValues(r.sourceName, r.folder).Set(float64(done))
	r.m.baselineTotal.WithLabelValues(r.sourceName, r.folder).Set(float64(total))
	if fn := r.onBaseline; fn != nil {
		fn(BaselineEvent{Source: r.source, Folder: r.folder, DoneBytes: done, TotalBytes: total,
			Fetched: r.fetchedChunks.Load(), Finished: finished})
	}
}

// readStaged reads chunk c, at l in a staged file (of this baseline or
// salvaged from an earlier attempt), checked against its CID.
func readStaged(open func(index.Loc) (*os.File, error), l index.Loc, c cid.Cid) ([]byte, error) {
	f, err := open(l)
	if err != nil {
		return nil, errChunkUnavailable
	}
	defer f.Close()
	buf := make([]byte, l.Size)
	if _, err := f.ReadAt(buf, l.Off); err != nil || baseline.VerifyChunk(c, buf) != nil {
		return nil, errChunkUnavailable
	}
	return buf, nil
}

func copyWithin(f *os.File, off, n int64) error {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return err
	}
	_, err := f.Write(buf)
	return err
}

// copyStaged appends chunk c, at l in a staged file, to dst (checked).
func copyStaged(dst *os.File, open func(index.Loc) (*os.File, error), l index.Loc, c cid.Cid) error {
	buf, err := readStaged(open, l, c)
	if err != nil {
		return err
	}
	_, err = dst.Write(buf)
	return err
}

// adoptExisting recognises a file already present in the replica with the
// snapshot's content (written before a crash, before its index row was
// saved): it is hashed locally instead of fetched.
func (r *Replica) adoptExisting(e *baseline.Entry) bool {
	if r.files.Get(e.Path) != nil {
		return false
	}
	fi, err := r.rep.Lstat(e.Path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
		return false
	}
	abs, err := r.rep.Abs(e.Path)
	if err != nil {
		return false
	}
	chunks, _, err := baseline.ChunkFile(context.Background(), abs, nil)
	if err != nil || !baseline.ContentRoot(chunks).Equals(e.Root()) {
		return false
	}
	if err := r.rep.SetMeta(e.Path, e.Mode, e.MTime); err != nil {
		return false
	}
	r.files.Put(e)
	r.locs.Add(e)
	return true
}

func (r *Replica) adopted(e *baseline.Entry) bool {
	got := r.files.Get(e.Path)
	return got == e
}

// removeUnknown removes from the replica tree every path the snapshot does
// not have, or has as another kind. It is for an index that knows none of
// what the tree holds (new, or rebuilt after damage): files the source
// deleted meanwhile would stay otherwise.
func (r *Replica) removeUnknown(want map[string]*baseline.Entry) error {
	gone, err := r.rep.RemoveExcept(func(rel string, t fs.FileMode) bool {
		w := want[rel]
		return w != nil && (w.Kind == baseline.KindDir) == t.IsDir() &&
			(w.Kind == baseline.KindSymlink) == (t&fs.ModeSymlink != 0)
	})
	if gone > 0 {
		r.log.Info("removed what the source does not have from a replica whose index knew none of it", "paths", gone)
	}
	return err
}
