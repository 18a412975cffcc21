package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/internal/fsutil"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"

	"golang.org/x/sys/unix"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// Errors of restore, verify and history. The errors returned carry a
// message naming the folder, source, path or directory at fault and match
// these sentinels with errors.Is.
var (
	// ErrNoReplica: this node keeps no such folder of that source.
	ErrNoReplica = errors.New("restore: no such replica on this node")
	// ErrNotEmpty: the restore target directory is not empty (and Force
	// was not given).
	ErrNotEmpty = errors.New("restore: restore target is not empty")
	// ErrBeforeFirst: the point asked for is before the oldest version kept.
	ErrBeforeFirst = errors.New("restore: no backup at or before that point")
	// ErrNoSuchPath: a path asked for never existed in the backup, or did
	// not exist at the point asked for.
	ErrNoSuchPath = errors.New("restore: no such path in the backup")
	// ErrBadRequest: the request itself is malformed (e.g. both At and Seq).
	ErrBadRequest = errors.New("restore: bad request")
)

// userError is an error with a complete message for the user that matches
// one of the sentinels above.
type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.kind }

func userErrorf(kind error, format string, args ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// RestoreRequest asks for a folder (or some of its paths) of a source as it
// was at a time or journal sequence number, written into To.
type RestoreRequest struct {
	Source string    `json:"source"`          // peer ID or peer name from the config
	Folder string    `json:"folder"`          // folder ID
	To     string    `json:"to"`              // target directory (created if missing)
	At     time.Time `json:"at,omitzero"`     // the state at this time (zero: see Seq)
	Seq    uint64    `json:"seq,omitempty"`   // the state after this seq (0 and zero At: the newest state)
	Paths  []string  `json:"paths,omitempty"` // restrict to these paths and their subtrees (empty: all)
	Force  bool      `json:"force,omitempty"` // restore into a non-empty To
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Source       string    `json:"source"`
	SourceName   string    `json:"source_name"`
	Folder       string    `json:"folder"`
	To           string    `json:"to"`
	Seq          uint64    `json:"seq"`  // newest journal seq in the restored state
	Time         time.Time `json:"time"` // source time of that change
	Files        int       `json:"files"`
	Dirs         int       `json:"dirs"`
	Symlinks     int       `json:"symlinks"`
	Bytes        int64     `json:"bytes"`         // file content written
	HistoryBytes int64     `json:"history_bytes"` // of which read from the history chunk store
}

// Replica is what restore, verify and history read of one replica: from a
// running node or from a data directory opened offline.
type Replica struct {
	DB         *store.DB
	History    *history.Store
	Root       string // the replica tree
	Source     string // the source's peer ID
	SourceName string
	Folder     string
	Rows       index.ReplicaRows
	DataDir    string
	Log        *slog.Logger
	Retained   bool // history is kept (retention > 0)
	// Live is the running replica, nil offline: verify compares with the
	// source's snapshot through it.
	Live Live
}

// Live is the part of a running replica that verify uses.
type Live interface {
	// SourceSnapshot returns the source's current entries when the
	// replica is live and caught up, or an error saying why not.
	SourceSnapshot(ctx context.Context) (uint64, []baseline.Entry, error)
}

func (d *Replica) label() string { return d.Folder + " from " + d.SourceName }

// MatchSource reports whether s names the peer with that ID or name.
func MatchSource(s, id, name string) bool {
	return s == id || (name != "" && s == name)
}

// Spec names one replica a node keeps, as its config says.
type Spec struct {
	Source     string // peer ID
	SourceName string
	Folder     string
	Retention  time.Duration
}

// Select returns the specs of source (a peer ID or name) and folder (""
// matches any). It fails with ErrNoReplica when a source or folder was
// given and nothing matches; cfgFile names the config in that message.
func Select(specs []Spec, source, folder, cfgFile string) ([]Spec, error) {
	var out []Spec
	for _, s := range specs {
		if (source == "" || MatchSource(source, s.Source, s.SourceName)) && (folder == "" || s.Folder == folder) {
			out = append(out, s)
		}
	}
	if len(out) == 0 && (source != "" || folder != "") {
		return nil, NoReplica(source, folder, cfgFile)
	}
	return out, nil
}

// NoReplica is the ErrNoReplica error for source and folder.
func NoReplica(source, folder, cfgFile string) error {
	return userErrorf(ErrNoReplica, "this node keeps no folder %q of %q (see backup_for in %s)", folder, source, cfgFile)
}

// EachOffline opens the index database of a node that is not running (it
// fails with store.ErrLocked if a node holds it) and calls fn for each
// replica of specs.
func EachOffline(dataDir string, specs []Spec, fn func(*Replica) error) error {
	p := filepath.Join(dataDir, "index.db")
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("restore: no index in data_dir %s (has this node ever run?): %w", dataDir, err)
	}
	db, err := store.OpenDB(p)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range specs {
		h, err := history.Open(dataDir, s.Source, s.Folder)
		if err != nil {
			return err
		}
		d := &Replica{DB: db, History: h, Root: filepath.Join(dataDir, "replicas", s.Source, s.Folder),
			Source: s.Source, SourceName: s.SourceName, Folder: s.Folder, Rows: index.Replica(s.Source, s.Folder),
			DataDir: dataDir, Log: slog.Default().With("subsystem", "restore", "source", s.SourceName, "folder", s.Folder),
			Retained: s.Retention > 0}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// cleanPaths normalises the paths of a request ("./a/" -> "a"); "." or ""
// means the whole folder (nil).
func cleanPaths(ps []string) ([]string, error) {
	var out []string
	for _, p := range ps {
		c := path.Clean(strings.TrimPrefix(filepath.ToSlash(p), "/"))
		if c == "." {
			return nil, nil
		}
		if c == ".." || strings.HasPrefix(c, "../") {
			return nil, userErrorf(ErrBadRequest, "path %q: leaves the folder", p)
		}
		out = append(out, c)
	}
	return out, nil
}

func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

// pointInTime returns the state of every path at (at, seq) from the
// version rows, the oldest version kept (time and seq) and the newest
// version included (seq, time).
type pitState struct {
	state     map[string]*baseline.Entry
	firstTime time.Time
	firstSeq  uint64
	lastSeq   uint64
	lastTime  time.Time
	rows      int
}

func pointInTime(tx *store.Tx, h *history.Store, at time.Time, seq uint64) (*pitState, error) {
	ps := &pitState{}
	vs := make(map[string]*history.Version)
	err := h.ForEach(tx, func(ver history.Version) error {
		ps.rows++
		if ps.firstTime.IsZero() || ver.Time.Before(ps.firstTime) {
			ps.firstTime = ver.Time
		}
		if ps.firstSeq == 0 || ver.Seq < ps.firstSeq {
			ps.firstSeq = ver.Seq
		}
		if seq != 0 && ver.Seq > seq {
			return nil
		}
		if !at.IsZero() && ver.Time.After(at) {
			return nil
		}
		if ver.Seq > ps.lastSeq {
			ps.lastSeq, ps.lastTime = ver.Seq, ver.Time
		}
		vs[ver.Path] = &ver
		return nil
	})
	ps.state = make(map[string]*baseline.Entry, len(vs))
	for p, v := range vs {
		if v.Entry != nil {
			v.Entry.Path = p
			ps.state[p] = v.Entry
		}
	}
	return ps, err
}

// everExisted reports whether p (or anything below it) has a version row
// or an entry in the current index.
func everExisted(tx *store.Tx, d *Replica, p string) bool {
	files := d.Rows.Files()
	return d.History.HasPath(tx, p) || files.Has(tx, p) || files.HasBelow(tx, p)
}

// Restore writes the state of replica d asked for by req into req.To.
// progress, if not nil, is called with the content bytes written so far and
// the total. The replica may change meanwhile: every chunk read from it is
// verified against its CID, and the history chunk store is the fallback.
func Restore(ctx context.Context, d *Replica, req RestoreRequest, progress func(done, total int64)) (RestoreResult, error) {
	res := RestoreResult{Source: d.Source, SourceName: d.SourceName, Folder: d.Folder}
	if !req.At.IsZero() && req.Seq != 0 {
		return res, userErrorf(ErrBadRequest, "restore: give a time or a seq, not both")
	}
	if req.To == "" {
		return res, userErrorf(ErrBadRequest, "restore: no target directory")
	}
	to, err := filepath.Abs(req.To)
	if err != nil {
		return res, fmt.Errorf("restore: restore target %s: %w", req.To, err)
	}
	res.To = to
	if dd, err := filepath.Abs(d.DataDir); err == nil && (fsutil.Overlap(to, dd)) {
		return res, userErrorf(ErrBadRequest, "restore target %s overlaps the node's data_dir %s", to, dd)
	}
	paths, err := cleanPaths(req.Paths)
	if err != nil {
		return res, err
	}

	// 1. the state to restore, and where the current replica holds chunks
	var ents []*baseline.Entry
	cur := make(map[string]*baseline.Entry)
	err = d.DB.View(func(tx *store.Tx) error {
		err := d.Rows.Files().Load(tx, func(e *baseline.Entry) error {
			cur[e.Path] = e
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore: index of replica %s: %w", d.label(), err)
		}
		meta := d.Rows.Meta(tx)
		applied := meta.Applied
		if applied == 0 && len(cur) == 0 && !meta.BaselineOK {
			return userErrorf(ErrBeforeFirst, "no backup of %s on this node yet (baseline not done)", d.label())
		}
		state := cur
		if req.At.IsZero() && (req.Seq == 0 || req.Seq >= applied) {
			res.Seq = applied
			res.Time = meta.RecordTime
			if res.Time.IsZero() {
				res.Time = meta.AppliedAt
			}
			res.Time = res.Time.UTC()
		} else {
			ps, err := pointInTime(tx, d.History, req.At, req.Seq)
			if err != nil {
				return err
			}
			if ps.rows == 0 {
				if !d.Retained {
					return userErrorf(ErrBeforeFirst, "no history of %s is kept on this node (retention is 0): only the newest state can be restored", d.label())
				}
				return userErrorf(ErrBeforeFirst, "no history of %s on this node yet", d.label())
			}
			if !req.At.IsZero() && req.At.Before(ps.firstTime) {
				return userErrorf(ErrBeforeFirst, "no backup of %s before %s", d.label(), ps.firstTime.UTC().Format(time.RFC3339Nano))
			}
			if req.Seq != 0 && req.Seq < ps.firstSeq {
				return userErrorf(ErrBeforeFirst, "no backup of %s at or before seq %d (the oldest kept is seq %d)", d.label(), req.Seq, ps.firstSeq)
			}
			state, res.Seq, res.Time = ps.state, ps.lastSeq, ps.lastTime.UTC()
		}
		for _, p := range paths {
			if !everExisted(tx, d, p) {
				return userErrorf(ErrNoSuchPath, "path %q never existed in the backup of %s", p, d.label())
			}
		}
		for p, e := range state {
			if paths == nil {
				ents = append(ents, e)
				continue
			}
			for _, q := range paths {
				if under(p, q) || under(q, p) && e.Kind == baseline.KindDir {
					ents = append(ents, e)
					break
				}
			}
		}
		for _, q := range paths {
			if state[q] == nil {
				found := false
				for p := range state {
					if under(p, q) {
						found = true
						break
					}
				}
				if !found {
					return userErrorf(ErrNoSuchPath, "path %q did not exist in the backup of %s as of seq %d (%s)",
						q, d.label(), res.Seq, res.Time.Format(time.RFC3339Nano))
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Path < ents[j].Path })

	// 2. the target
	if err := prepareTarget(to, req.Force); err != nil {
		return res, err
	}
	out, err := os.OpenRoot(to)
	if err != nil {
		return res, fmt.Errorf("restore: restore target %s: %w", to, err)
	}
	defer out.Close()
	var in *os.Root
	if fi, err := os.Stat(d.Root); err == nil && fi.IsDir() {
		if in, err = os.OpenRoot(d.Root); err != nil {
			return res, fmt.Errorf("restore: replica %s: %w", d.label(), err)
		}
		defer in.Close()
	}
	defer d.History.ReadLock()()

	var total int64
	for _, e := range ents {
		if e.Kind == baseline.KindFile {
			total += e.Size
		}
	}
	rs := &restorer{d: d, in: in, out: out, outDir: to, cur: cur, total: total, progress: progress}
	defer rs.closeIn()
	var dirs []*baseline.Entry
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		switch e.Kind {
		case baseline.KindDir:
			if err := rs.mkdir(e.Path); err != nil {
				return res, err
			}
			dirs = append(dirs, e)
			res.Dirs++
		case baseline.KindSymlink:
			if err := rs.symlink(e); err != nil {
				return res, err
			}
			res.Symlinks++
		case baseline.KindFile:
			if err := rs.file(ctx, e); err != nil {
				return res, err
			}
			res.Files++
			res.Bytes += e.Size
		}
	}
	// directory modes and mtimes after their children, deepest first
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].Path, "/") > strings.Count(dirs[j].Path, "/")
	})
	for _, e := range dirs {
		if err := out.Chmod(e.Path, e.Mode.Perm()); err != nil {
			return res, fmt.Errorf("restore: restore %s: %w", e.Path, err)
		}
		if err := rs.setMtime(e.Path, e.MTime); err != nil {
			return res, err
		}
	}
	res.HistoryBytes = rs.histBytes.Load()
	if progress != nil {
		progress(total, total)
	}
	d.Log.Info("restored", "to", to, "seq", res.Seq, "files", res.Files, "dirs", res.Dirs, "symlinks", res.Symlinks,
		"bytes", res.Bytes, "history_bytes", res.HistoryBytes)
	return res, nil
}

// prepareTarget creates to if missing and refuses a non-empty one unless force.
func prepareTarget(to string, force bool) error {
	fi, err := os.Stat(to)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(to, 0o755); err != nil {
			return fmt.Errorf("restore: restore target %s: %w", to, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("restore: restore target %s: %w", to, err)
	case !fi.IsDir():
		return userErrorf(ErrBadRequest, "restore target %s is not a directory", to)
	}
	if force {
		return nil
	}
	f, err := os.Open(to)
	if err != nil {
		return fmt.Errorf("restore: restore target %s: %w", to, err)
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	if len(names) > 0 {
		return userErrorf(ErrNotEmpty, "restore target %s is not empty (force to restore into it)", to)
	}
	return nil
}

// restorer writes entries into the target tree.
type restorer struct {
	d        *Replica
	in       *os.Root // the replica tree (nil if it does not exist)
	out      *os.Root
	outDir   string
	locs     index.Locs                 // built from cur on first use: whole-file copies need none
	cur      map[string]*baseline.Entry // the replica's current index
	total    int64
	done     int64
	progress func(done, total int64)

	inPath    string
	inFile    *os.File
	histBytes atomic.Int64
}

func (rs *restorer) closeIn() {
	if rs.inFile != nil {
		rs.inFile.Close()
		rs.inFile, rs.inPath = nil, ""
	}
}

// clear removes what is at p in the target unless it is of kind k.
func (rs *restorer) clear(p string, k baseline.Kind) error {
	fi, err := rs.out.Lstat(p)
	if err != nil {
		return nil
	}
	switch {
	case k == baseline.KindDir && fi.IsDir():
		return nil
	case k == baseline.KindFile && fi.Mode().IsRegular():
		return nil // replaced by rename
	}
	if err := rs.out.RemoveAll(p); err != nil {
		return fmt.Errorf("restore: restore %s: %w", p, err)
	}
	return nil
}

func (rs *restorer) mkParent(p string) error {
	if dir := path.Dir(p); dir != "." {
		if err := rs.out.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("restore: restore %s: %w", p, err)
		}
	}
	return nil
}

func (rs *restorer) mkdir(p string) error {
	if err := rs.clear(p, baseline.KindDir); err != nil {
		return err
	}
	if err := rs.mkParent(p); err != nil {
		return err
	}
	if err := rs.out.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("restore: restore %s: %w", p, err)
	}
	return nil
}

func (rs *restorer) symlink(e *baseline.Entry) error {
	if err := rs.mkParent(e.Path); err != nil {
		return err
	}
	if _, err := rs.out.Lstat(e.Path); err == nil {
		if err := rs.out.RemoveAll(e.Path); err != nil {
			return fmt.Errorf("restore: restore %s: %w", e.Path, err)
		}
	}
	if err := rs.out.Symlink(e.Target, e.Path); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	return rs.setMtime(e.Path, e.MTime)
}

// setMtime sets the mtime of p in the target without following a symlink.
func (rs *restorer) setMtime(p string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return fmt.Errorf("restore: restore %s: mtime: %w", p, err)
	}
	abs := filepath.Join(rs.outDir, filepath.FromSlash(p))
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, abs, []unix.Timespec{{Nsec: unix.UTIME_OMIT}, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("restore: restore %s: set mtime: %w", p, err)
	}
	return nil
}

// file writes e under a temporary name next to it, then renames it into place.
func (rs *restorer) file(ctx context.Context, e *baseline.Entry) error {
	if err := rs.clear(e.Path, baseline.KindFile); err != nil {
		return err
	}
	if err := rs.mkParent(e.Path); err != nil {
		return err
	}
	tmp := path.Join(path.Dir(e.Path), store.TempPrefix+"restore-"+strconv.FormatUint(rand.Uint64(), 36))
	f, err := rs.out.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			rs.out.Remove(tmp)
		}
	}()
	if err := rs.copyContent(ctx, f, e); err != nil {
		return err
	}
	if err := f.Chmod(e.Mode.Perm()); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	if err := rs.setMtime(tmp, e.MTime); err != nil {
		return err
	}
	if err := rs.out.Rename(tmp, e.Path); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	ok = true
	return nil
}

// copyWhole copies e in one in-kernel copy (copy_file_range) when the
// replica file at the same path is the version to restore: its index entry
// has the same chunk list, and the file on disk still has the size and
// mtime that the applier gave it. Like rsync's quick check, this trusts
// size and mtime; `vigil verify` (and the background scrub) re-hash the
// replica. It reports false when the fast path does not apply.
func (rs *restorer) copyWhole(f *os.File, e *baseline.Entry) (bool, error) {
	c := rs.cur[e.Path]
	if rs.in == nil || c == nil || c.Kind != baseline.KindFile || !c.SameContent(e) || e.Size == 0 {
		return false, nil
	}
	src, err := rs.in.OpenFile(e.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != c.Size || !fi.ModTime().Equal(c.MTime) {
		return false, nil
	}
	n, err := io.Copy(f, src)
	if err != nil || n != e.Size {
		// start over with the verified path
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return false, fmt.Errorf("restore: restore %s: %w", e.Path, serr)
		}
		if terr := f.Truncate(0); terr != nil {
			return false, fmt.Errorf("restore: restore %s: %w", e.Path, terr)
		}
		return false, nil
	}
	rs.done += n
	if rs.progress != nil {
		rs.progress(rs.done, rs.total)
	}
	return true, nil
}

// Content is copied in segments of consecutive chunks: one goroutine reads
// a segment's chunks from the replica (merging adjacent reads), workers
// verify each chunk against its CID (falling back to the history store),
// and the caller writes the segments in order. Memory stays bounded by the
// segments in flight.
const (
	segBytes = 1 << 20
	segDepth = 4
)

type segChunk struct {
	c     baseline.Chunk
	start int  // offset in the segment buffer
	read  bool // bytes read from the replica (to be verified)
}

type segment struct {
	buf    []byte
	chunks []segChunk
	err    error
	done   chan struct{}
}

var segPool = sync.Pool{New: func() any { b := make([]byte, 0, segBytes+256<<10); return &b }}

func newSegment() *segment {
	b := segPool.Get().(*[]byte)
	return &segment{buf: (*b)[:0], done: make(chan struct{})}
}

func (s *segment) release() {
	b := s.buf[:0]
	if cap(b) >= segBytes {
		segPool.Put(&b)
	}
	s.buf = nil
}

func (rs *restorer) copyContent(ctx context.Context, f *os.File, e *baseline.Entry) error {
	if ok, err := rs.copyWhole(f, e); ok || err != nil {
		return err
	}
	write := func(s *segment) error {
		defer s.release()
		if s.err != nil {
			return s.err
		}
		if _, err := f.Write(s.buf); err != nil {
			return fmt.Errorf("restore: restore %s: %w", e.Path, err)
		}
		rs.done += int64(len(s.buf))
		if rs.progress != nil {
			rs.progress(rs.done, rs.total)
		}
		return nil
	}
	if e.Size <= segBytes {
		var err error
		rs.produce(ctx, e, func(s *segment) bool {
			rs.verify(e, s)
			err = write(s)
			return err == nil
		})
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *segment, segDepth)
	order := make(chan *segment, segDepth)
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				rs.verify(e, s)
				close(s.done)
			}
		}()
	}
	perr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(order)
		perr <- rs.produce(ctx, e, func(s *segment) bool {
			select {
			case order <- s:
			case <-ctx.Done():
				s.release()
				return false
			}
			work <- s // never blocks for long: workers do not wait on anyone
			return true
		})
	}()
	var werr error
	for s := range order {
		<-s.done
		if werr != nil {
			s.release()
			continue
		}
		if werr = write(s); werr != nil {
			cancel()
		}
	}
	wg.Wait()
	if werr != nil {
		return werr
	}
	return <-perr
}

// produce cuts e's chunks into segments, reads what the replica holds and
// hands each segment to emit (which returns false to stop).
func (rs *restorer) produce(ctx context.Context, e *baseline.Entry, emit func(*segment) bool) error {
	s := newSegment()
	// pending run: consecutive chunks read with one ReadAt
	var runFile *os.File
	var runOff int64
	var runStart, runLen int
	var runIdx []int
	flushRun := func() {
		if runLen > 0 && runFile != nil {
			n, err := runFile.ReadAt(s.buf[runStart:runStart+runLen], runOff)
			for _, i := range runIdx {
				c := &s.chunks[i]
				c.read = err == nil || c.start-runStart+int(c.c.Size) <= n
			}
		}
		runFile, runLen, runIdx = nil, 0, runIdx[:0]
	}
	var fileOff int64
	for _, c := range e.Chunks {
		if err := ctx.Err(); err != nil {
			s.release()
			return err
		}
		if len(s.chunks) > 0 && len(s.buf)+int(c.Size) > segBytes {
			flushRun()
			if !emit(s) {
				return ctx.Err()
			}
			s = newSegment()
		}
		start := len(s.buf)
		s.buf = slices.Grow(s.buf, int(c.Size))[:start+int(c.Size)]
		s.chunks = append(s.chunks, segChunk{c: c, start: start})
		if l, ok := rs.pick(e.Path, fileOff, c); ok {
			if l.Path != rs.inPath {
				flushRun()
			}
			if f := rs.open(l.Path); f != nil {
				if runFile == f && runOff+int64(runLen) == l.Off && runStart+runLen == start {
					runLen += int(c.Size)
				} else {
					flushRun()
					runFile, runOff, runStart, runLen = f, l.Off, start, int(c.Size)
				}
				runIdx = append(runIdx, len(s.chunks)-1)
			}
		}
		fileOff += int64(c.Size)
	}
	flushRun()
	emit(s)
	return nil
}

// pick finds chunk c in the replica: preferably at the same place of the
// same path, else in the file already open, else anywhere.
func (rs *restorer) pick(p string, off int64, c baseline.Chunk) (index.Loc, bool) {
	if rs.in == nil {
		return index.Loc{}, false
	}
	if rs.locs == nil {
		rs.locs = make(index.Locs)
		for _, e := range rs.cur {
			rs.locs.Add(e)
		}
	}
	best := -1
	for i, l := range rs.locs[c.CID] {
		if l.Size != c.Size {
			continue
		}
		if l.Path == p && l.Off == off {
			return l, true
		}
		if best < 0 || l.Path == rs.inPath {
			best = i
		}
	}
	if best < 0 {
		return index.Loc{}, false
	}
	return rs.locs[c.CID][best], true
}

// open returns the replica file p, keeping one file open.
func (rs *restorer) open(p string) *os.File {
	if p == rs.inPath {
		return rs.inFile
	}
	rs.closeIn()
	f, err := rs.in.Open(p)
	if err != nil {
		return nil
	}
	rs.inFile, rs.inPath = f, p
	return f
}

// verify checks every chunk of s against its CID; a chunk the replica did
// not give (or gave changed) is taken from the history chunk store.
func (rs *restorer) verify(e *baseline.Entry, s *segment) {
	for _, sc := range s.chunks {
		dst := s.buf[sc.start : sc.start+int(sc.c.Size)]
		if sc.read && baseline.VerifyChunk(sc.c.CID, dst) == nil {
			continue
		}
		data, err := rs.d.History.Chunks.Get(sc.c.CID)
		if err == nil && len(data) == len(dst) && baseline.VerifyChunk(sc.c.CID, data) == nil {
			copy(dst, data)
			rs.histBytes.Add(int64(len(data)))
			continue
		}
		why := "found neither in the replica nor in the history store"
		if err == nil {
			why = "the history store's copy is damaged"
		}
		s.err = fmt.Errorf("restore: restore %s: chunk %s %s", e.Path, sc.c.CID, why)
		return
	}
}

// UserError returns an error with message msg that matches kind (one of
// the sentinels above) with errors.Is; the control client uses it to turn
// an error answer back into the error the node returned.
func UserError(kind error, msg string) error { return &userError{kind: kind, msg: msg} }
