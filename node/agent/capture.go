package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/watch"
	"github.com/vigil-mesh/vigil/node/wire"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/store"
)

func (a *Agent) reuse(rel string) (*baseline.Entry, bool) {
	e := a.files.Get(rel)
	return e, e != nil
}

// observe records the current state of rel (and, for a new directory, of
// everything below it) into obs; nil means absent.
func (a *Agent) observe(ctx context.Context, rel string, obs map[string]*baseline.Entry) {
	if _, done := obs[rel]; done || rel == "" || rel == "." {
		return
	}
	prev := a.files.Get(rel)
	if a.forceFull[rel] {
		delete(a.forceFull, rel)
		prev = nil // chunk the whole file again
	} else if e, ok := a.appendFast(ctx, rel, prev); ok {
		obs[rel] = e
		return
	}
	delete(a.g.torn, rel)
	st, err := baseline.Read(a.root, rel, prev, a.rules.Matcher(), &a.g.keep, baseline.WithFaults(a.faults), baseline.Deferred(&a.g.hold))
	a.g.retries += st.Retries
	if errors.Is(err, baseline.ErrTorn) {
		// Every read raced a writer: no state of it is recorded now (the
		// index and the backups keep the last one), and it is read again.
		a.g.torn[rel] = err
		return
	}
	if err != nil {
		if unreadable(err) {
			// reported until it can be read; the index (and the backups)
			// keep what they had
			a.setProblem(rel, err)
			return
		}
		a.clearProblem(rel)
		obs[rel] = nil
		a.g.read(rel, baseline.Stamp{}, nil) // absent: a later lstat must fail too
		if np := a.movedPath(rel); np != "" {
			a.observe(ctx, np, obs)
		}
		if prev != nil {
			a.files.Walk(rel, func(d *baseline.Entry) {
				if _, ok := obs[d.Path]; !ok {
					obs[d.Path] = nil
				}
			})
		}
		return
	}
	obs[rel] = &st.Entry
	e := st.Entry
	a.g.read(rel, st.Stamp, st.Data)
	if st.Unhashed() {
		a.g.unhashed[rel] = &st
	}
	if prev != nil && prev.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
		a.files.Walk(rel, func(d *baseline.Entry) {
			if _, ok := obs[d.Path]; !ok {
				obs[d.Path] = nil
			}
		})
	}
	// A new directory is listed (files may be in it before its watch was),
	// and so is one that could not be listed before.
	hadProblem := a.hasProblem(rel)
	if e.Kind == baseline.KindDir && (prev == nil || prev.Kind != baseline.KindDir || prev.Inode != e.Inode || hadProblem) {
		ents, err := os.ReadDir(filepath.Join(a.root, filepath.FromSlash(rel)))
		if ferr := a.faults.Check(rel); ferr != nil {
			err = ferr
		}
		if err != nil {
			if unreadable(err) {
				a.setProblem(rel, fmt.Errorf("list directory: %w", err))
			}
			return
		}
		listed := make(map[string]bool, len(ents))
		for _, de := range ents {
			if ctx.Err() != nil {
				return
			}
			p := path.Join(rel, de.Name())
			listed[p] = true
			a.observe(ctx, p, obs)
		}
		if hadProblem {
			// what the index holds below it and the listing does not
			// show is gone
			a.files.Walk(rel, func(d *baseline.Entry) {
				if index.Parent(d.Path) == rel && !listed[d.Path] {
					a.observe(ctx, d.Path, obs)
				}
			})
		}
	}
	a.clearProblem(rel)
}

// Appends to big files (logs, databases' write-ahead logs) are captured
// without reading the whole file again: when a big file only grew and its
// last chunk is unchanged, the old chunks before it are kept and only the
// rest is chunked (FastCDC cuts depend only on the bytes since the last
// cut, so this gives the same chunks as a full pass when the prefix is
// unchanged). A change before the appended region in the same moment
// would go unseen, so every file captured this way is chunked in full once
// it has been quiet for appendRecheck.
const (
	appendFastMin = 4 << 20
	appendRecheck = 3 * time.Second
)

func (a *Agent) appendFast(ctx context.Context, rel string, prev *baseline.Entry) (*baseline.Entry, bool) {
	if prev == nil || prev.Kind != baseline.KindFile || prev.Size < appendFastMin || len(prev.Chunks) == 0 || a.rules.Match(rel, false) {
		return nil, false
	}
	abs := filepath.Join(a.root, filepath.FromSlash(rel))
	fi, err := os.Lstat(abs)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() <= prev.Size {
		return nil, false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || uint64(st.Ino) != prev.Inode || uint64(st.Dev) != prev.Dev {
		return nil, false
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil || baseline.StampOf(before) != baseline.StampOf(fi) {
		return nil, false
	}
	n := len(prev.Chunks)
	last := prev.Chunks[n-1]
	lastOff := prev.Size - int64(last.Size)
	buf := make([]byte, last.Size)
	if _, err := f.ReadAt(buf, lastOff); err != nil || baseline.VerifyChunk(last.CID, buf) != nil {
		return nil, false
	}
	keep := a.g.keep.Budget
	data := make(map[cid.Cid][]byte)
	tail, err := baseline.ChunkReader(ctx, io.NewSectionReader(f, lastOff, fi.Size()-lastOff), func(b []byte, c baseline.Chunk) error {
		if int64(len(b)) <= keep && len(a.locs[c.CID]) == 0 {
			data[c.CID] = append([]byte(nil), b...)
			keep -= int64(len(b))
		}
		return nil
	})
	if err != nil {
		return nil, false
	}
	// a write during the read: the full read (with its retries) decides
	after, err := f.Stat()
	if err != nil || baseline.StampOf(after) != baseline.StampOf(before) {
		a.g.retries++
		return nil, false
	}
	a.g.keep.Budget = keep
	a.g.read(rel, baseline.StampOf(before), data)
	e := *prev
	e.Chunks = append(prev.Chunks[:n-1:n-1], tail...)
	e.Size = fi.Size()
	e.MTime = fi.ModTime()
	e.Mode = fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	a.recheck[rel] = time.Now()
	return &e, true
}

// dueRechecks returns the files captured by appendFast that have been quiet
// long enough to be chunked in full.
func (a *Agent) dueRechecks(now time.Time) []string {
	var due []string
	for p, t := range a.recheck {
		if now.Sub(t) >= appendRecheck {
			due = append(due, p)
			delete(a.recheck, p)
			a.forceFull[p] = true
		}
	}
	return due
}

// consistent fixes up observations made while the tree changed under
// them: a path seen present below a directory seen absent (the directory
// was renamed or removed between the two looks) is taken as absent too;
// the events for its new location arrive in a later batch.
func consistent(obs map[string]*baseline.Entry) {
	keys := make([]string, 0, len(obs))
	for p := range obs {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		if obs[p] == nil {
			continue
		}
		for q := index.Parent(p); q != ""; q = index.Parent(q) {
			if e, seen := obs[q]; seen && (e == nil || e.Kind != baseline.KindDir) {
				obs[p] = nil
				break
			}
		}
	}
}

// Consistent capture (docs/capture.md). A capture reads a group: the
// paths of a settled batch and every other path with changes the watcher
// holds (Take), so files changed together are read together. Each read is
// stamped (baseline.Read); once all are read, the group is checked as a
// whole: every path still has the stamp it was read with, and no path
// outside the group changed meanwhile (a second Take, after the kernel's
// queue is drained). Paths that moved are read again, paths that changed
// outside the group join it, up to groupRounds rounds. The group is then
// journaled as one record, and the backup applies it as one: the files of
// a group are, as far as the checks can tell, the state they had together
// at one moment, which is what a database needs to restore from.
//
// Past the bounds nothing mixed is kept: a file whose every read raced a
// writer (baseline.ErrTorn) is left out and read again soon (a problem of
// the path once that has lasted tornProblemAfter); a group whose files
// kept changing across groupRounds rounds is journaled with each file a
// state it had, counted (capture_groups_unsettled_total) and logged, and
// the paths that moved are read again at once.
const (
	groupRounds = 8
	// groupKeep bounds the chunk bytes a group keeps from its reads to
	// ship inline; chunks past it are read again when the record is made
	// (and verified) or fetched by the backups.
	groupKeep = 40 << 20
	// maxGroupPayload: a capture whose records exceed this is journaled as
	// several groups, in order.
	maxGroupPayload = 32 << 20
	// tornProblemAfter: a file torn on every capture for this long is
	// reported as a problem of its path (Config.TornProblemAfter).
	tornProblemAfter = 10 * time.Second
)

// groupRead is what the current capture has read. Owned by the run
// goroutine.
type groupRead struct {
	stamps  map[string]baseline.Stamp // stamp of each path read; zero: seen absent
	data    map[cid.Cid][]byte        // chunk bytes kept from the reads
	keep    baseline.Keep
	torn    map[string]error // paths whose every read raced a writer
	rescan  bool             // the watcher asked for a full rescan meanwhile
	retries int
	// requeued: paths given back to the watcher because they changed
	// while the group was read (read again by the next capture)
	requeued []string
	last     string // the path read last
	// files read into memory and not chunked yet (baseline.Deferred):
	// hashed once the group has settled, so that hashing does not widen
	// the window in which the group's files must stay still
	unhashed map[string]*baseline.State
	hold     int64 // bytes the group may still hold unhashed
}

// groupHold bounds the bytes of a group's files held in memory until the
// group has settled; past it files are hashed as they are read.
const groupHold = 64 << 20

func (a *Agent) newGroup() *groupRead {
	g := &groupRead{stamps: make(map[string]baseline.Stamp), data: make(map[cid.Cid][]byte), torn: make(map[string]error),
		unhashed: make(map[string]*baseline.State), hold: groupHold}
	g.keep = baseline.Keep{Budget: groupKeep, Want: func(c baseline.Chunk) bool { return len(a.locs[c.CID]) == 0 }}
	return g
}

func (g *groupRead) read(rel string, st baseline.Stamp, data map[cid.Cid][]byte) {
	g.stamps[rel] = st
	g.last = rel
	for k, v := range data {
		g.data[k] = v
	}
}

// sameState reports whether a path stamped was still stamped now: for a
// directory, the same directory (its entries are paths of their own).
func sameState(was, now baseline.Stamp) bool {
	if was.Mode.IsDir() {
		return now.Mode == was.Mode && now.Ino == was.Ino && now.Dev == was.Dev
	}
	return was == now
}

// moved returns the paths of the group whose stamp is no longer the one
// they were read with. The path read last is left out: the group's moment
// is the end of that read, and every other path must have stayed as read
// until then, which their stamps now still being the same proves. (A file
// written all the time is then one of a consistent group whenever the
// others stay still while it is read last.)
func (a *Agent) moved() []string {
	var out []string
	for p, was := range a.g.stamps {
		if p == a.g.last {
			continue
		}
		fi, err := os.Lstat(filepath.Join(a.root, filepath.FromSlash(p)))
		var now baseline.Stamp
		if err == nil {
			now = baseline.StampOf(fi)
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			continue // cannot tell; the read said what it said
		}
		if !sameState(was, now) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// take returns what the watcher holds now (nil when it stopped).
func (a *Agent) take(ctx context.Context) watch.Batch {
	b, err := a.w.Take(ctx)
	if err != nil {
		return watch.Batch{}
	}
	if b.Rescan {
		a.g.rescan = true
	}
	return b
}

// settle checks the group as a whole and reads again what changed while
// it was read, until one round finds nothing changed or groupRounds is
// reached.
func (a *Agent) settle(ctx context.Context, obs map[string]*baseline.Entry) {
	for round := 1; ctx.Err() == nil; round++ {
		moved := a.moved()
		b := a.take(ctx)
		again := slices.Clone(moved)
		var requeue []string
		for _, p := range b.Paths {
			_, stamped := a.g.stamps[p]
			_, torn := a.g.torn[p]
			switch {
			case torn:
				// read again later (it is requeued below)
			case !stamped:
				again = append(again, p) // changed outside the group (or not read by a stamped read)
			case !slices.Contains(moved, p):
				// changed after the check, or before the read: read again
				// in the next capture
				requeue = append(requeue, p)
			}
		}
		if len(again) == 0 {
			a.requeue(requeue)
			return
		}
		if round == groupRounds {
			a.m.groupsUneven.WithLabelValues(a.id).Inc()
			a.log.Warn("files kept changing while they were read together; journaled with each file a state it had, not one moment across them, and read again",
				"paths", len(again), "rounds", round, "example", again[0])
			a.requeue(append(requeue, again...))
			return
		}
		a.m.groupRounds.WithLabelValues(a.id).Inc()
		slices.Sort(again)
		again = slices.Compact(again)
		// the paths are read again, and so are their parents: a path
		// created or removed moved its directory's mtime
		drop := slices.Clone(again)
		for _, p := range again {
			if par := index.Parent(p); par != "" {
				if e := obs[par]; e != nil && e.Kind == baseline.KindDir {
					drop = append(drop, par)
				}
			}
		}
		for _, p := range drop {
			delete(obs, p)
			delete(a.g.stamps, p)
			if st, ok := a.g.unhashed[p]; ok {
				a.g.hold += st.Entry.Size
				delete(a.g.unhashed, p)
			}
		}
		// parents first: the files read last are the ones that move
		for _, p := range again {
			if par := index.Parent(p); par != "" {
				a.observe(ctx, par, obs)
			}
		}
		for _, p := range again {
			a.observe(ctx, p, obs)
		}
	}
}

// capture examines paths (or the whole folder) against the index, turns
// the differences into change records, journals them, updates the index
// and publishes the records.
func (a *Agent) capture(ctx context.Context, paths []string, full bool) error {
	start := time.Now()
	a.g = a.newGroup()
	defer func() { a.g = nil }()
	obs := make(map[string]*baseline.Entry)
	if full {
		var mu sync.Mutex
		bad := make(map[string]error) // paths that could not be read
		a.scan.start(!a.scanned)
		defer a.scan.end()
		ents, err := baseline.Scan(ctx, a.root, baseline.ScanOptions{Ignore: a.rules.Matcher(), Reuse: a.reuse, Logger: a.log, Faults: a.faults,
			Progress: a.scan.read, Found: a.scan.found,
			OnError: func(rel string, err error) {
				mu.Lock()
				bad[rel] = err
				mu.Unlock()
			}})
		if err != nil {
			return err
		}
		for i := range ents {
			obs[ents[i].Path] = &ents[i]
		}
		for e := range a.files.All() {
			if _, ok := obs[e.Path]; ok {
				continue
			}
			// What could not be read (or lies below a directory that
			// could not be listed) stays as the index has it.
			kept := false
			for b := range bad {
				if under(e.Path, b) {
					kept = true
					break
				}
			}
			if !kept {
				obs[e.Path] = nil
			}
		}
		for rel, err := range bad {
			if errors.Is(err, baseline.ErrTorn) {
				a.g.torn[rel] = err
				delete(bad, rel)
				continue
			}
			a.setProblem(rel, err)
		}
		a.clearProblemsExcept(bad)
	} else {
		keep := a.recentMoves[:0]
		for _, m := range a.recentMoves {
			if time.Since(m.at) < moveMemory {
				keep = append(keep, m)
			}
		}
		a.recentMoves = keep
		// everything else that changed is read with the batch
		if more := a.take(ctx).Paths; len(more) > 0 {
			paths = append(slices.Clone(paths), more...)
			slices.Sort(paths)
			paths = slices.Compact(paths)
		}
		for _, p := range paths {
			a.observe(ctx, p, obs)
		}
		for _, p := range paths {
			if par := index.Parent(p); par != "" {
				a.observe(ctx, par, obs)
			}
		}
	}
	if a.scanned {
		a.settle(ctx, obs)
	}
	if err := a.hashGroup(ctx, obs); err != nil || ctx.Err() != nil {
		return err
	}
	a.tornPaths()
	consistent(obs)
	if err := a.record(ctx, obs, paths, full); err != nil {
		return err
	}
	a.m.readRetries.WithLabelValues(a.id).Add(float64(a.g.retries))
	a.stats.retries.Add(int64(a.g.retries))
	a.recovered()
	a.unsettled = a.g.requeued
	a.m.captureLatency.WithLabelValues(a.id).Observe(time.Since(start).Seconds())
	if a.g.rescan && !full {
		return a.capture(ctx, nil, true)
	}
	return nil
}

// hashGroup chunks the files of the group read into memory, now that the
// group has settled.
func (a *Agent) hashGroup(ctx context.Context, obs map[string]*baseline.Entry) error {
	paths := make([]string, 0, len(a.g.unhashed))
	for p := range a.g.unhashed {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		st := a.g.unhashed[p]
		if obs[p] != &st.Entry {
			continue // read again since
		}
		if err := st.Hash(ctx, &a.g.keep); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for k, v := range st.Data {
			a.g.data[k] = v
		}
	}
	return nil
}

// tornPaths handles the files of the group that could not be read whole:
// they are read again after the quiet period, and one torn on every
// capture for tornProblemAfter is a problem of its path until it is read.
func (a *Agent) tornPaths() {
	now := time.Now()
	var again []string
	for p, err := range a.g.torn {
		again = append(again, p)
		a.m.tornReads.WithLabelValues(a.id).Inc()
		a.stats.torn.Add(1)
		since, ok := a.tornSince[p]
		if !ok {
			a.tornSince[p] = now
			a.log.Info("file changed during every read; captured again later", "path", p)
		} else if now.Sub(since) >= a.tornAfter {
			a.setProblem(p, fmt.Errorf("changes too fast to be read whole since %s: %w", since.Format(time.RFC3339), err))
		}
	}
	for p := range a.tornSince {
		if _, ok := a.g.torn[p]; !ok {
			if _, stamped := a.g.stamps[p]; stamped {
				delete(a.tornSince, p)
			}
		}
	}
	a.requeue(again)
}

// requeue gives paths back to the watcher to be read again, and counts
// them as not captured yet (see Sync).
func (a *Agent) requeue(paths []string) {
	a.g.requeued = append(a.g.requeued, paths...)
	a.w.Requeue(paths)
}

// CaptureStats counts, since the agent started, the file reads thrown
// away because a writer raced them and the files left out of a capture
// because every read of them did.
func (a *Agent) CaptureStats() (retries, torn int64) {
	return a.stats.retries.Load(), a.stats.torn.Load()
}

// record turns the observations into changes, journals them and updates
// the index (the first scan only builds the index).
func (a *Agent) record(ctx context.Context, obs map[string]*baseline.Entry, paths []string, full bool) error {
	if full && !a.scanned {
		// First scan: it is the snapshot; nothing to journal.
		a.mu.Lock()
		for _, e := range obs {
			if e != nil {
				a.files.Put(e)
				a.locs.Add(e)
			}
		}
		ents, seq := a.files.Sorted(), a.seq
		a.mu.Unlock()
		if err := a.saveIndex(ctx, ents, seq); err != nil {
			return err
		}
		a.mu.Lock()
		a.scanned = true
		a.mu.Unlock()
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	changes, dirty := a.diff(obs)
	if a.log.Enabled(ctx, slog.LevelDebug) {
		var cs []string
		for _, c := range changes {
			cs = append(cs, c.Op.String()+" "+c.Path+" "+c.To)
		}
		a.log.Debug("batch", "paths", strings.Join(paths, ","), "full", full, "changes", strings.Join(cs, ","))
	}
	if len(changes) == 0 {
		return nil
	}
	return a.commit(ctx, changes, dirty)
}

// saveBatch is how many index rows one transaction of saveIndex writes.
const saveBatch = 8192

// saveIndex writes the index of a first scan: rows in key order (bbolt
// appends them to its pages instead of inserting each into one leaf that
// grows until the commit splits it, which costs time quadratic in the
// rows), in transactions of saveBatch rows, so that memory stays bounded
// and a stop is not held up. The folder counts as scanned only with the
// last transaction: a scan cut short is made again on the next start.
// a.mu is not held: only the capture goroutine writes the rows.
func (a *Agent) saveIndex(ctx context.Context, ents []*baseline.Entry, seq uint64) error {
	files := a.rows.Files()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(ents), saveBatch)
		last := n == len(ents)
		err := a.db.Update(func(tx *store.Tx) error {
			for _, e := range ents[:n] {
				if err := files.Put(tx, e); err != nil {
					return err
				}
			}
			if !last {
				return nil
			}
			if err := a.rows.PutSeq(tx, seq); err != nil {
				return err
			}
			return a.rows.PutScanned(tx)
		})
		if err != nil {
			return fmt.Errorf("agent: save index of folder %q: %w", a.id, err)
		}
		ents = ents[n:]
		if last {
			return nil
		}
	}
}

// diff turns observed states into changes, applying them to the index as
// it goes (the caller holds a.mu). dirty collects the paths whose index
// rows must be rewritten.
func (a *Agent) diff(obs map[string]*baseline.Entry) ([]*wire.Change, map[string]bool) {
	var changes []*wire.Change
	dirty := make(map[string]bool)
	mark := func(es []*baseline.Entry) {
		for _, e := range es {
			dirty[e.Path] = true
		}
	}

	keys := make([]string, 0, len(obs))
	for p := range obs {
		keys = append(keys, p)
	}
	sort.Strings(keys)

	// Renames: a path that vanished and a new path with the same inode.
	type ino struct{ dev, ino uint64 }
	gone := make(map[ino]string)
	for _, p := range keys {
		if prev := a.files.Get(p); obs[p] == nil && prev != nil && prev.Inode != 0 {
			gone[ino{prev.Dev, prev.Inode}] = p
		}
	}
	if len(gone) > 0 {
		// A directory renamed in this batch moves the index entries below
		// it: later lookups of their old paths are translated.
		moved := make(map[string]string)
		translate := func(p string) string {
			for i := 0; i <= len(moved); i++ {
				changed := false
				for from, to := range moved {
					if p == from || strings.HasPrefix(p, from+"/") {
						p, changed = to+p[len(from):], true
					}
				}
				if !changed {
					break
				}
			}
			return p
		}
		for _, p := range keys {
			cur := obs[p]
			if cur == nil || cur.Inode == 0 {
				continue
			}
			if prev := a.files.Get(p); prev != nil && prev.Kind == cur.Kind {
				continue
			}
			orig, ok := gone[ino{cur.Dev, cur.Inode}]
			if !ok {
				continue
			}
			from := translate(orig)
			src := a.files.Get(from)
			if src == nil || src.Kind != cur.Kind || from == p {
				continue
			}
			delete(gone, ino{cur.Dev, cur.Inode})
			a.files.Walk(from, func(e *baseline.Entry) {
				a.locs.Drop(e)
				dirty[e.Path] = true
			})
			moved2 := a.files.Rename(from, p)
			for _, e := range moved2 {
				a.locs.Add(e)
			}
			mark(moved2)
			if cur.Kind == baseline.KindDir {
				moved[from] = p
				a.recentMoves = append(a.recentMoves, dirMove{from: from, to: p, at: time.Now()})
			}
			changes = append(changes, &wire.Change{Op: wire.OpRename, Path: from, To: p})
		}
		// Entries that moved with a directory but are not on disk any more
		// (the new directory was listed in full) are gone.
		added := false
		for _, to := range moved {
			a.files.Walk(to, func(e *baseline.Entry) {
				if _, ok := obs[e.Path]; !ok {
					obs[e.Path] = nil
					keys = append(keys, e.Path)
					added = true
				}
			})
		}
		if added {
			sort.Strings(keys)
		}
	}

	// Deletes: the topmost vanished paths.
	for _, p := range keys {
		if obs[p] != nil || a.files.Get(p) == nil {
			continue
		}
		removed := a.files.Remove(p)
		for _, e := range removed {
			a.locs.Drop(e)
		}
		mark(removed)
		changes = append(changes, &wire.Change{Op: wire.OpDelete, Path: p})
	}

	// Creates, modifications and metadata changes, parents first;
	// directory metadata last since changes inside a directory move its
	// mtime on the backup.
	var dirMeta []*wire.Change
	inline := 0
	for _, p := range keys {
		cur := obs[p]
		if cur == nil {
			continue
		}
		prev := a.files.Get(p)
		switch {
		case prev != nil && prev.SameContent(cur):
			if !prev.SameMeta(cur) {
				c := &wire.Change{Op: wire.OpMeta, Path: p, Entry: *cur}
				if cur.Kind == baseline.KindDir {
					dirMeta = append(dirMeta, c)
				} else {
					changes = append(changes, c)
				}
			}
			if !prev.SameMeta(cur) || prev.Inode != cur.Inode || prev.Dev != cur.Dev {
				a.files.Put(cur)
				if cur.Kind == baseline.KindFile {
					a.locs.Drop(prev)
					a.locs.Add(cur)
				}
				dirty[p] = true
			}
			continue
		case prev != nil && prev.Kind != cur.Kind:
			removed := a.files.Remove(p)
			for _, e := range removed {
				a.locs.Drop(e)
			}
			mark(removed)
			changes = append(changes, &wire.Change{Op: wire.OpDelete, Path: p})
			prev = nil
		}
		c := &wire.Change{Op: wire.OpPut, Path: p, Entry: *cur}
		if cur.Kind == baseline.KindFile {
			var old []baseline.Chunk
			if prev != nil {
				old = prev.Chunks
				c.BaseRoot = prev.Root()
			}
			c.Splice = baseline.Diff(old, cur.Chunks)
			inline += a.attachData(c, cur, maxInlinePerRecord)
		}
		if prev != nil {
			a.locs.Drop(prev)
		}
		a.files.Put(cur)
		a.locs.Add(cur)
		dirty[p] = true
		changes = append(changes, c)
	}
	return append(changes, dirMeta...), dirty
}

// attachData reads the bytes of the splice's added chunks that the
// backups cannot already hold (not elsewhere in the folder) into c.Data,
// up to limit bytes, and returns how many bytes it attached.
func (a *Agent) attachData(c *wire.Change, cur *baseline.Entry, limit int) int {
	if len(c.Splice.Added) == 0 {
		return 0
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var off int64
	for i := 0; i < c.Splice.Start; i++ {
		off += int64(cur.Chunks[i].Size)
	}
	total := 0
	seen := make(map[cid.Cid]bool)
	for _, ch := range c.Splice.Added {
		at := off
		off += int64(ch.Size)
		if seen[ch.CID] || len(a.locs[ch.CID]) > 0 {
			continue
		}
		seen[ch.CID] = true
		if a.g != nil {
			// the bytes hashed, from the same read
			if d, ok := a.g.data[ch.CID]; ok {
				if c.Data == nil {
					c.Data = make(map[cid.Cid][]byte)
				}
				c.Data[ch.CID] = d
				continue
			}
		}
		if total+int(ch.Size) > limit {
			continue
		}
		if f == nil {
			var err error
			if f, err = os.Open(filepath.Join(a.root, filepath.FromSlash(cur.Path))); err != nil {
				return total // changed again already: backups fetch or repair
			}
		}
		buf := make([]byte, ch.Size)
		if _, err := f.ReadAt(buf, at); err != nil {
			return total
		}
		if baseline.VerifyChunk(ch.CID, buf) != nil {
			continue // the file moved on; the chunk is fetched or repaired
		}
		if c.Data == nil {
			c.Data = make(map[cid.Cid][]byte)
		}
		c.Data[ch.CID] = buf
		total += len(buf)
	}
	return total
}

// commit journals changes (in batches bounded in bytes), saves the index
// rows and publishes the records. The caller holds a.mu.
func (a *Agent) commit(ctx context.Context, changes []*wire.Change, dirty map[string]bool) error {
	var infos []journal.RecordInfo
	var payloads [][]byte
	size := 0
	flush := func() error {
		if len(payloads) == 0 {
			return nil
		}
		in, err := a.j.AppendBatch(payloads)
		if err != nil {
			return fmt.Errorf("agent: journal of folder %q: %w", a.id, err)
		}
		a.publishRecords(ctx, in, payloads)
		infos = append(infos, in...)
		payloads, size = payloads[:0:0], 0
		return nil
	}
	for _, p := range groupRecords(changes) {
		if size+len(p) > maxBatchPayload {
			if err := flush(); err != nil {
				return err
			}
		}
		payloads = append(payloads, p)
		size += len(p)
	}
	if err := flush(); err != nil {
		return err
	}
	a.seq = a.j.Last()
	err := a.db.Update(func(tx *store.Tx) error {
		if err := a.rows.Files().Sync(tx, a.files, dirty); err != nil {
			return err
		}
		return a.rows.PutSeq(tx, a.seq)
	})
	if err != nil {
		// The records are durable; the next start's rescan re-derives the
		// index rows (records are idempotent on the backups).
		a.log.Error("save index", "err", err)
	}
	for _, c := range changes {
		a.m.changes.WithLabelValues(a.id, c.Op.String()).Inc()
	}
	a.log.Debug("captured", "records", len(infos), "head", a.seq)
	return nil
}

// groupRecords encodes the changes of one capture as records: one group
// record when they fit in maxGroupPayload, else several, in order (a
// single change is a record of its own kind).
func groupRecords(changes []*wire.Change) [][]byte {
	var out [][]byte
	var cur [][]byte
	var first string
	size := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, wire.EncodeGroup(first, cur))
			cur, size = nil, 0
		}
	}
	for _, c := range changes {
		b := wire.EncodeChange(nil, c)
		if size+len(b) > maxGroupPayload {
			flush()
		}
		if len(cur) == 0 {
			first = c.Path
		}
		cur = append(cur, b)
		size += len(b)
	}
	flush()
	return out
}

// publishRecords publishes journaled records on the folder topic, packing
// consecutive small ones into one message (one signature, one message for
// a burst of changes); a record too large for pubsub is only announced.
func (a *Agent) publishRecords(ctx context.Context, infos []journal.RecordInfo, payloads [][]byte) {
	var pk wire.RecordPacker
	for i, info := range infos {
		r := wire.Record{Seq: info.Seq, Time: info.Time, Payload: payloads[i]}
		if !wire.Fits(r.Payload) {
			a.publish(ctx, pk.Flush())
			a.publish(ctx, wire.EncodeAnnounce(r))
			continue
		}
		a.publish(ctx, pk.Add(r))
	}
	a.publish(ctx, pk.Flush())
}

// publish sends msg (nil: nothing) on the folder's topic.
func (a *Agent) publish(ctx context.Context, msg []byte) {
	if msg == nil {
		return
	}
	if err := a.topic.Publish(ctx, msg); err != nil && ctx.Err() == nil {
		a.log.Debug("publish", "err", err)
	}
}
