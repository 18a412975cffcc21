package replica

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/replica/client"
	"github.com/vigil-mesh/vigil/node/replica/local"
	"github.com/vigil-mesh/vigil/node/wire"
	"github.com/vigil-mesh/vigil/store"
)

// applier applies change records to the replica tree and its index.
type applier struct {
	r     *Replica
	dirty map[string]bool // index rows to rewrite
	dirs  map[string]bool // directories whose entries changed: fsync, restore mtime

	// history: the change being applied, the paths it touched, and the
	// versions the batch produced
	seq       uint64
	at        time.Time
	cur       map[string]bool
	versions  []history.Version
	preserved bool

	written map[string]bool // paths brought to a source state (their problems are over once saved)
}

func newApplier(r *Replica) *applier {
	return &applier{r: r, dirty: make(map[string]bool), dirs: make(map[string]bool), cur: make(map[string]bool),
		written: make(map[string]bool)}
}

func (ap *applier) touch(p string) {
	ap.dirty[p] = true
	ap.dirs[index.Parent(p)] = true
	ap.cur[p] = true
	ap.written[p] = true
}

// forget drops p and its subtree from the index (not from the disk): a
// path that could not be written is not held, and the next record or
// retry for it finds no base and brings it to the source's state.
func (ap *applier) forget(p string) {
	for _, e := range ap.r.files.Remove(p) {
		ap.r.locs.Drop(e)
		ap.dirty[e.Path] = true
		delete(ap.written, e.Path)
		delete(ap.cur, e.Path)
	}
	delete(ap.written, p)
	delete(ap.cur, p)
}

// endChange records the state of every path the current change touched as
// a version at the change's seq and time.
func (ap *applier) endChange() {
	for p := range ap.cur {
		ap.versions = append(ap.versions, history.Version{Path: p, Seq: ap.seq, Time: ap.at, Entry: ap.r.files.Get(p)})
	}
	clear(ap.cur)
}

// keep copies the content of file e that next does not hold into the
// history store before the replica's copy goes away.
func (ap *applier) keep(e, next *baseline.Entry) error {
	if e == nil || e.Kind != baseline.KindFile || ap.r.retention <= 0 {
		return nil
	}
	if err := ap.r.hist.Preserve(ap.r.rep, e, next); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			ap.r.log.Warn("replica file missing; its history is lost", "path", e.Path, "err", err)
			return nil
		}
		var pe *store.PathError
		if errors.As(err, &pe) {
			return err
		}
		ap.r.log.Warn("history incomplete", "path", e.Path, "err", err)
	}
	ap.preserved = true
	return nil
}

// removePath removes p and its subtree from the replica, keeping the
// removed files' content in the history first.
func (ap *applier) removePath(p string) error {
	var errs []error
	ap.r.files.Walk(p, func(e *baseline.Entry) {
		if err := ap.keep(e, nil); err != nil {
			errs = append(errs, err)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ap.r.rep.Remove(p); err != nil {
		return err
	}
	ap.remove(p)
	return nil
}

// skip reports whether a record at seq for p is older than a repair that
// already brought p (or one of its parents) to a newer state.
func (ap *applier) skip(p string, seq uint64) bool {
	if len(ap.r.repaired) == 0 {
		return false
	}
	for q := p; q != ""; q = index.Parent(q) {
		if s, ok := ap.r.repaired[q]; ok && s >= seq {
			return true
		}
	}
	return false
}

// createJob is one new file of a create run.
type createJob struct {
	rec wire.Record
	c   *wire.Change
	e   baseline.Entry
	err error
}

// minCreateRun: runs of new files shorter than this are left to the
// one-by-one path.
const minCreateRun = 4

// createJobFor returns the job writing c if c creates a new file whose
// bytes all travel inline and that no earlier job of the run (paths)
// writes, else nil.
func (ap *applier) createJobFor(c *wire.Change, seq uint64, paths map[string]bool) *createJob {
	r := ap.r
	if c.Op != wire.OpPut || c.Entry.Kind != baseline.KindFile || c.BaseRoot.Defined() ||
		r.files.Get(c.Path) != nil || paths[c.Path] || ap.skip(c.Path, seq) {
		return nil
	}
	if q := index.Parent(c.Path); q != "" {
		if pe := r.files.Get(q); pe != nil && pe.Kind != baseline.KindDir {
			return nil
		}
	}
	chunks, err := c.Splice.Apply(nil)
	if err != nil || sumChunks(chunks) != c.Entry.Size {
		return nil
	}
	for _, ch := range chunks {
		if _, ok := c.Data[ch.CID]; !ok {
			return nil
		}
	}
	e := c.Entry
	e.Path, e.Chunks = c.Path, chunks
	return &createJob{c: c, e: e}
}

// writeNew writes the files of a create run in parallel (fsyncs of
// different files share the file system's journal commits).
func (ap *applier) writeNew(run []*createJob) {
	const maxParallel = 4
	r := ap.r
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for _, j := range run {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j.err = r.rep.WriteFile(j.e.Path, j.e.Mode, j.e.MTime, func(f *os.File) error {
				for _, ch := range j.e.Chunks {
					d := j.c.Data[ch.CID]
					if err := baseline.VerifyChunk(ch.CID, d); err != nil {
						return err
					}
					if _, err := f.Write(d); err != nil {
						return err
					}
				}
				return nil
			}, store.NoDirSync())
		}()
	}
	wg.Wait()
}

// created enters a file written by a create run in the index.
func (ap *applier) created(j *createJob) {
	e := j.e
	ap.r.files.Put(&e)
	ap.r.locs.Add(&e)
	ap.touch(e.Path)
}

// createRun applies a run of consecutive records that each create a new
// file whose bytes all travel inline (a burst of new small files): the
// files are written and fsynced in parallel, then entered in the index in
// seq order. It returns how many records it applied and the last of them;
// runs shorter than minCreateRun are left to the one-by-one path.
func (ap *applier) createRun(ctx context.Context, recs []wire.Record) (int, wire.Record, error) {
	r := ap.r
	var run []*createJob
	paths := make(map[string]bool)
	next := recs[0].Seq
	for _, rec := range recs {
		if rec.Seq != next {
			break
		}
		c, err := wire.DecodeChange(rec.Payload)
		if err != nil {
			break
		}
		j := ap.createJobFor(c, rec.Seq, paths)
		if j == nil {
			break
		}
		j.rec = rec
		run = append(run, j)
		paths[c.Path] = true
		next++
	}
	if len(run) < minCreateRun {
		return 0, wire.Record{}, nil
	}
	ap.writeNew(run)
	n := 0
	var last wire.Record
	for _, j := range run {
		if j.err != nil {
			if pathProblem(j.err) {
				// stop the run here: the one-by-one path applies this
				// record again and sets the path aside
				break
			}
			return n, last, fmt.Errorf("replica: apply record %d (put %s) to replica %s/%s: %w", j.rec.Seq, j.c.Path, r.sourceName, r.folder, j.err)
		}
		ap.seq, ap.at = j.rec.Seq, j.rec.Time
		ap.created(j)
		ap.endChange()
		n, last = n+1, j.rec
	}
	r.createdInRuns.Add(int64(n))
	return n, last, nil
}

// repairedBelow reports whether a path at or below p was repaired to a
// state as of seq or later.
func (ap *applier) repairedBelow(p string, seq uint64) bool {
	for q, s := range ap.r.repaired {
		if s >= seq && (q == p || strings.HasPrefix(q, p+"/")) {
			return true
		}
	}
	return false
}

func (ap *applier) apply(ctx context.Context, seq uint64, c *wire.Change) error {
	if c.Op == wire.OpGroup {
		return ap.applyGroup(ctx, seq, c)
	}
	return ap.applyChange(ctx, seq, c)
}

// maxGroupPrefetch bounds the chunk bytes a group's prefetch holds in
// memory; a group that needs more fetches them while its files are
// written, as a single change does.
const maxGroupPrefetch = 64 << 20

// applyGroup applies the changes of a group (paths read together on the
// source) as one record: every path's version is recorded at the group's
// seq and time, and they are committed in one transaction with the rest of
// the batch. The chunks the group needs that are neither inline nor held
// here are fetched first, before anything changes, so that a source gone
// offline fails the group as a whole instead of half-way. A path that
// cannot be written here is a problem of that path, as for a single
// change, and the rest of the group is applied.
func (ap *applier) applyGroup(ctx context.Context, seq uint64, g *wire.Change) error {
	if err := ap.prefetch(ctx, g.Group); err != nil {
		return err
	}
	for i := 0; i < len(g.Group); i++ {
		// a run of new files whose bytes all came along (a checkout, an
		// unpacked archive) is written in parallel
		if n, err := ap.groupCreateRun(seq, g.Group[i:]); n > 0 || err != nil {
			if err != nil {
				return err
			}
			i += n - 1
			continue
		}
		c := g.Group[i]
		err := ap.applyChange(ctx, seq, c)
		if err == nil {
			continue
		}
		if !pathProblem(err) {
			return err
		}
		for _, p := range []string{c.Path, c.To} {
			if p != "" {
				ap.r.setProblem(p, fmt.Errorf("record %d (%s in a group): %w", seq, c.Op, err))
				ap.forget(p)
			}
		}
	}
	return nil
}

// groupCreateRun writes the run of new files that starts cs (see
// createRun), if it is long enough, and returns how many changes it
// applied. A file that cannot be written here ends the run: the
// one-by-one path applies it again and sets the path aside.
func (ap *applier) groupCreateRun(seq uint64, cs []*wire.Change) (int, error) {
	var run []*createJob
	paths := make(map[string]bool)
	for _, c := range cs {
		j := ap.createJobFor(c, seq, paths)
		if j == nil {
			break
		}
		run = append(run, j)
		paths[c.Path] = true
	}
	if len(run) < minCreateRun {
		return 0, nil
	}
	ap.writeNew(run)
	n := 0
	for _, j := range run {
		if j.err != nil {
			if pathProblem(j.err) {
				break
			}
			return n, fmt.Errorf("replica: apply record %d (put %s in a group) to replica %s/%s: %w", seq, j.c.Path, ap.r.sourceName, ap.r.folder, j.err)
		}
		ap.created(j)
		n++
	}
	ap.r.createdInRuns.Add(int64(n))
	return n, nil
}

// prefetch fetches the chunks that the file puts of cs need and that are
// neither inline, nor in the replica, nor in its history, into the puts'
// inline data (up to maxGroupPrefetch bytes in all).
func (ap *applier) prefetch(ctx context.Context, cs []*wire.Change) error {
	r := ap.r
	type need struct {
		c  *wire.Change
		ch baseline.Chunk
	}
	var want []baseline.Chunk
	var needs []need
	seen := make(map[cid.Cid]bool)
	var total int64
	for _, c := range cs {
		if c.Op != wire.OpPut || c.Entry.Kind != baseline.KindFile || len(c.Splice.Added) == 0 {
			continue
		}
		for _, ch := range c.Splice.Added {
			if seen[ch.CID] {
				continue
			}
			seen[ch.CID] = true
			if _, ok := c.Data[ch.CID]; ok || len(r.locs[ch.CID]) > 0 {
				continue
			}
			if ok, _ := r.hist.Chunks.Has(ch.CID); ok {
				continue
			}
			total += int64(ch.Size)
			want = append(want, ch)
			needs = append(needs, need{c, ch})
		}
	}
	if len(want) == 0 || total > maxGroupPrefetch {
		return nil
	}
	got := make(map[cid.Cid][]byte, len(want))
	err := r.fetch(ctx, want, func(f client.Chunk) error {
		if f.Data != nil {
			got[f.CID] = f.Data
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range needs {
		if d, ok := got[n.ch.CID]; ok {
			if n.c.Data == nil {
				n.c.Data = make(map[cid.Cid][]byte)
			}
			n.c.Data[n.ch.CID] = d
		}
	}
	return nil
}

func (ap *applier) applyChange(ctx context.Context, seq uint64, c *wire.Change) error {
	if c.Op == wire.OpRename {
		// A repair may already have brought one end of the move past this
		// record: then only the other end needs updating.
		fromDone, toDone := ap.skip(c.Path, seq), ap.skip(c.To, seq)
		switch {
		case fromDone && toDone:
			return nil
		case fromDone:
			return ap.repair(ctx, c.To)
		case toDone:
			return ap.removePath(c.Path)
		}
	} else if ap.skip(c.Path, seq) {
		return nil
	}
	err := ap.applyOp(ctx, c)
	if err == nil && c.Op == wire.OpRename && (ap.repairedBelow(c.Path, seq) || ap.repairedBelow(c.To, seq)) {
		// Something below the moved tree was repaired to a state newer
		// than this record: the move carried (or dropped) it under the
		// wrong assumptions, so bring the destination to the source's
		// current state as a whole.
		return ap.repair(ctx, c.To)
	}
	if err == nil || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		return err
	}
	// The replica tree is not what the index says: an apply was cut short
	// (the node was killed after renaming files into place but before the
	// commit) or someone changed the replica. Forget what is not on disk
	// and bring the paths to the source's current state.
	ap.r.log.Info("replica differs from its index; repairing from the source", "path", c.Path, "op", c.Op.String(), "err", err)
	paths := []string{c.Path}
	if c.Op == wire.OpRename {
		paths = append(paths, c.To)
	}
	for _, p := range paths {
		var gone []string
		ap.r.files.Walk(p, func(e *baseline.Entry) {
			if _, lerr := ap.r.rep.Lstat(e.Path); lerr != nil {
				gone = append(gone, e.Path)
			}
		})
		for _, g := range gone {
			ap.remove(g)
		}
	}
	for _, p := range paths {
		if err := ap.repair(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (ap *applier) applyOp(ctx context.Context, c *wire.Change) error {
	r := ap.r
	switch c.Op {
	case wire.OpDelete:
		if err := ap.removePath(c.Path); err != nil {
			return err
		}
	case wire.OpRename:
		if r.files.Get(c.Path) == nil {
			return ap.repair(ctx, c.To)
		}
		var errs []error
		r.files.Walk(c.To, func(e *baseline.Entry) { errs = append(errs, ap.keep(e, nil)) })
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := r.rep.Rename(c.Path, c.To); err != nil {
			return err
		}
		for _, p := range []string{c.Path, c.To} {
			r.files.Walk(p, func(e *baseline.Entry) {
				r.locs.Drop(e)
				ap.touch(e.Path)
			})
		}
		for _, e := range r.files.Rename(c.Path, c.To) {
			r.locs.Add(e)
			ap.touch(e.Path)
		}
	case wire.OpMeta:
		e := r.files.Get(c.Path)
		if e == nil {
			return ap.repair(ctx, c.Path)
		}
		if err := r.rep.SetMeta(c.Path, c.Entry.Mode, c.Entry.MTime); err != nil {
			return err
		}
		ne := *e
		ne.Mode, ne.MTime = c.Entry.Mode, c.Entry.MTime
		r.files.Put(&ne)
		ap.touch(c.Path)
	case wire.OpPut:
		return ap.put(ctx, c)
	}
	return nil
}

func (ap *applier) remove(p string) {
	for _, e := range ap.r.files.Remove(p) {
		ap.r.locs.Drop(e)
		ap.touch(e.Path)
	}
	// paths at or below p that this replica could not write or get are
	// at the source's state now: absent
	for _, q := range ap.r.troubledUnder(p) {
		ap.written[q] = true
	}
}

func (ap *applier) put(ctx context.Context, c *wire.Change) error {
	r := ap.r
	prev := r.files.Get(c.Path)
	e := c.Entry
	e.Path = c.Path
	if prev != nil && prev.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
		if err := ap.removePath(c.Path); err != nil {
			return err
		}
		prev = nil
	}
	if prev != nil && prev.Kind == baseline.KindFile && e.Kind != baseline.KindFile {
		if err := ap.keep(prev, nil); err != nil {
			return err
		}
	}
	switch e.Kind {
	case baseline.KindDir:
		if err := r.rep.Mkdir(c.Path, e.Mode, e.MTime); err != nil {
			return err
		}
	case baseline.KindSymlink:
		if err := r.rep.Symlink(c.Path, e.Target, e.MTime); err != nil {
			return err
		}
	case baseline.KindFile:
		var base []baseline.Chunk
		switch {
		case !c.BaseRoot.Defined() && (prev == nil || prev.Kind != baseline.KindFile):
		case prev != nil && prev.Kind == baseline.KindFile && c.BaseRoot.Defined() && prev.Root().Equals(c.BaseRoot):
			base = prev.Chunks
		default:
			return ap.repair(ctx, c.Path)
		}
		chunks, err := c.Splice.Apply(base)
		if err != nil {
			return ap.repair(ctx, c.Path)
		}
		e.Chunks = chunks
		if sumChunks(chunks) != e.Size {
			return ap.repair(ctx, c.Path)
		}
		if err := ap.writeFile(ctx, &e, prev, c.Data); err != nil {
			if errors.Is(err, errChunkUnavailable) {
				return ap.repair(ctx, c.Path)
			}
			return err
		}
	}
	if prev != nil {
		r.locs.Drop(prev)
	}
	ne := e
	r.files.Put(&ne)
	r.locs.Add(&ne)
	ap.touch(c.Path)
	return nil
}

func sumChunks(cs []baseline.Chunk) int64 {
	var n int64
	for _, c := range cs {
		n += int64(c.Size)
	}
	return n
}

// writeFile writes e's content into the replica: chunks come from the
// record's inline data, from the replica's own files (the previous version
// or any other file holding the chunk), or are fetched from the source.
func (ap *applier) writeFile(ctx context.Context, e *baseline.Entry, prev *baseline.Entry, data map[cid.Cid][]byte) error {
	r := ap.r
	// Chunks neither inline nor local are fetched first.
	var want []baseline.Chunk
	seen := make(map[cid.Cid]bool)
	for _, ch := range e.Chunks {
		if seen[ch.CID] {
			continue
		}
		seen[ch.CID] = true
		if _, ok := data[ch.CID]; ok {
			continue
		}
		if len(r.locs[ch.CID]) > 0 {
			continue
		}
		// a chunk this replica held before (kept in its history) need
		// not travel again
		if ok, _ := r.hist.Chunks.Has(ch.CID); ok {
			if d, err := r.hist.Chunks.Get(ch.CID); err == nil && baseline.VerifyChunk(ch.CID, d) == nil {
				if data == nil {
					data = make(map[cid.Cid][]byte)
				}
				data[ch.CID] = d
				continue
			}
		}
		want = append(want, ch)
	}
	if err := ap.keep(prev, e); err != nil {
		return err
	}
	// The chunks to fetch stream in while the file is written (in order of
	// first use), so memory does not grow with the change.
	stream := r.streamChunks(ctx, want)
	defer stream.Close()
	wanted := make(map[cid.Cid]bool, len(want))
	for _, c := range want {
		wanted[c.CID] = true
	}
	src := newLocalReader(r)
	defer src.Close()
	err := r.rep.WriteFile(e.Path, e.Mode, e.MTime, func(f *os.File) error {
		run := local.NewRunCopier(src)
		written := make(map[cid.Cid]int64) // fetched chunks already in f
		var off int64
		for _, ch := range e.Chunks {
			at := off
			off += int64(ch.Size)
			d, ok := data[ch.CID]
			switch {
			case ok:
				if err := baseline.VerifyChunk(ch.CID, d); err != nil {
					return err
				}
			case !wanted[ch.CID]:
				if err := run.Add(f, ch); err != nil {
					return err
				}
				continue
			default:
				if err := run.Flush(f); err != nil {
					return err
				}
				if o, seen := written[ch.CID]; seen {
					if err := copyWithin(f, o, int64(ch.Size)); err != nil {
						return err
					}
					continue
				}
				got, err := stream.Next(ch.CID)
				if err != nil {
					return err
				}
				if got == nil {
					return errChunkUnavailable
				}
				d = got
				written[ch.CID] = at
			}
			if err := run.Flush(f); err != nil {
				return err
			}
			if _, err := f.Write(d); err != nil {
				return err
			}
		}
		return run.Flush(f)
	}, store.NoDirSync())
	if err != nil {
		return err
	}
	if err := stream.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	delete(r.damaged, e.Path)
	return nil
}

// finish makes the batch durable on disk: directory mtimes restored
// (children changes moved them), then each touched directory fsynced.
func (ap *applier) finish() error {
	r := ap.r
	if ap.preserved {
		// history chunks are written without fsync: make them durable
		// before the versions that need them are committed
		if err := r.rep.SyncFS(); err != nil {
			return err
		}
		ap.preserved = false
	}
	dirs := make([]string, 0, len(ap.dirs))
	for d := range ap.dirs {
		dirs = append(dirs, d)
	}
	// deepest first, so restoring a child's mtime happens before its parent's
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		rel := d
		if rel == "" {
			rel = "."
		}
		if e := r.files.Get(d); e != nil && e.Kind == baseline.KindDir {
			if err := r.rep.SetMeta(d, e.Mode, e.MTime); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := r.rep.SyncDir(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (ap *applier) save(tx *store.Tx) error {
	if ap.r.retention > 0 {
		if err := ap.r.hist.Save(tx, ap.versions); err != nil {
			return err
		}
	}
	ap.versions = ap.versions[:0]
	return ap.r.rows.Files().Sync(tx, ap.r.files, ap.dirty)
}
