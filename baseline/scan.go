package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"
)

// ScanOptions configures Scan.
type ScanOptions struct {
	Ignore  *Matcher
	Workers int // files hashed in parallel; default GOMAXPROCS
	// Reuse returns the previous entry for rel. If kind, size, mtime, inode
	// and dev are unchanged, its Chunks are reused without reading the file.
	Reuse func(rel string) (*Entry, bool)
	// Progress, if set, is called with cumulative counts of regular files
	// completed and their bytes, from any goroutine.
	Progress func(files int, bytes int64)
	// Found, if set, is called with cumulative counts of the regular files
	// the walk found and their sizes (what Progress will reach), and once
	// more with complete set when the walk is over; from the walking
	// goroutine.
	Found func(files int, bytes int64, complete bool)
	// OnError, if set, is told of each path that exists but cannot be read
	// (a directory that cannot be listed, a file that cannot be opened or
	// read), from any goroutine; the scan goes on without it (for a
	// directory, with its entry but nothing below it). Without OnError such
	// a path fails the scan.
	OnError func(rel string, err error)
	// Faults, if set, makes reads of chosen paths fail (tests).
	Faults *Faults
	Logger *slog.Logger
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return l.With("subsystem", "baseline")
}

// errVanished: the path disappeared or changed type while being read.
var errVanished = errors.New("baseline: path vanished")

// Scan lists every entry below root (root itself excluded), sorted by Path:
// regular files with their chunks, directories (empty ones included) and
// symlinks (target verbatim, never followed). Sockets, fifos and devices are
// skipped with one log line each, as are paths the codec cannot carry
// (longer than MaxPath). Ignored directories are not descended. A path that
// vanishes during the scan is skipped; a path that cannot be read goes to
// OnError if set; any other failure is a *PathError naming the path.
func Scan(ctx context.Context, root string, opts ScanOptions) ([]Entry, error) {
	log := logger(opts.Logger)
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	hashWorkers := max(1, runtime.GOMAXPROCS(0)/workers)
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("baseline: scan: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("baseline: scan %s: not a directory", root)
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("baseline: scan: %w", err)
	}
	defer rt.Close()
	walkRoot := rt.Name()
	if fi, err := os.Lstat(walkRoot); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// The folder itself may be reached through a symlink; walk what it names.
		if walkRoot, err = filepath.EvalSymlinks(walkRoot); err != nil {
			return nil, fmt.Errorf("baseline: scan: %w", err)
		}
	}

	type item struct {
		e    Entry
		skip bool // vanished while being hashed
	}
	var items []*item
	var files, nbytes atomic.Int64
	var foundFiles int
	var foundBytes int64
	done := func(size int64) {
		f, b := files.Add(1), nbytes.Add(size)
		if opts.Progress != nil {
			opts.Progress(int(f), b)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	walkErr := filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if cerr := gctx.Err(); cerr != nil {
			return cerr
		}
		if p == walkRoot {
			return err
		}
		r, rerr := filepath.Rel(walkRoot, p)
		if rerr != nil {
			return fmt.Errorf("baseline: scan: %w", rerr)
		}
		rel := filepath.ToSlash(r)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Vanished; if it was a directory listed already, drop it.
				if n := len(items); n > 0 && items[n-1].e.Path == rel {
					items = items[:n-1]
				}
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if opts.OnError != nil {
				opts.OnError(rel, &PathError{Op: "scan", Path: rel, Err: err})
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			return &PathError{Op: "scan", Path: rel, Err: err}
		}
		if len(rel) > MaxPath {
			log.Warn("skipping path longer than the limit", "path", rel[:64]+"...", "limit", MaxPath)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if opts.Ignore.matchOne(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if ferr := opts.Faults.Check(rel); ferr != nil && d.IsDir() {
			// a directory that cannot be listed: its entry is kept,
			// nothing below it (see the SkipDir at the end)
			if opts.OnError == nil {
				return &PathError{Op: "scan", Path: rel, Err: ferr}
			}
			opts.OnError(rel, &PathError{Op: "scan", Path: rel, Err: ferr})
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if opts.OnError != nil {
				opts.OnError(rel, &PathError{Op: "scan", Path: rel, Err: err})
				return nil
			}
			return &PathError{Op: "scan", Path: rel, Err: err}
		}
		e, needHash, err := entryFromInfo(rel, info, opts.Reuse, func(string) (string, error) { return os.Readlink(p) }, log)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrSpecialFile) {
				return nil
			}
			if opts.OnError != nil {
				opts.OnError(rel, err)
				return nil
			}
			return err
		}
		it := &item{e: e}
		items = append(items, it)
		if e.Kind == KindFile && opts.Found != nil {
			foundFiles++
			foundBytes += e.Size
			opts.Found(foundFiles, foundBytes, false)
		}
		switch {
		case needHash:
			g.Go(func() error {
				_, err := hashFile(gctx, rt, &it.e, hashWorkers, opts.Faults, nil)
				if errors.Is(err, errVanished) {
					it.skip = true
					return nil
				}
				if err != nil && opts.OnError != nil && gctx.Err() == nil {
					opts.OnError(rel, err)
					it.skip = true
					return nil
				}
				if err == nil {
					done(it.e.Size)
				}
				return err
			})
		case e.Kind == KindFile:
			done(e.Size)
		}
		if d.IsDir() && opts.Faults.Check(rel) != nil {
			return filepath.SkipDir
		}
		return nil
	})
	if walkErr == nil && opts.Found != nil {
		opts.Found(foundFiles, foundBytes, true)
	}
	gerr := g.Wait()
	if gerr != nil {
		return nil, gerr
	}
	if walkErr != nil {
		return nil, walkErr
	}
	out := make([]Entry, 0, len(items))
	for _, it := range items {
		if !it.skip {
			out = append(out, it.e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// entryFromInfo builds the entry for an lstat result. For a regular file it
// reuses the previous chunks when allowed, else reports that the file must
// be hashed. Special files give ErrSpecialFile after one log line.
func entryFromInfo(rel string, info fs.FileInfo, reuse func(string) (*Entry, bool), readlink func(string) (string, error), log *slog.Logger) (Entry, bool, error) {
	e := Entry{Path: rel, Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), MTime: info.ModTime()}
	e.Inode, e.Dev = fileID(info)
	switch t := info.Mode().Type(); {
	case t == 0:
		e.Kind = KindFile
		e.Size = info.Size()
		if reuse != nil {
			if prev, ok := reuse(rel); ok && prev != nil && prev.Kind == KindFile && prev.Size == e.Size &&
				prev.MTime.Equal(e.MTime) && prev.Inode == e.Inode && prev.Dev == e.Dev {
				e.Chunks = prev.Chunks
				return e, false, nil
			}
		}
		return e, true, nil
	case t == fs.ModeDir:
		e.Kind = KindDir
		return e, false, nil
	case t == fs.ModeSymlink:
		e.Kind = KindSymlink
		target, err := readlink(rel)
		if err != nil {
			return Entry{}, false, &PathError{Op: "readlink", Path: rel, Err: err}
		}
		if target == "" || len(target) > MaxTarget {
			if log != nil {
				log.Warn("skipping symlink with unsupported target length", "path", rel, "length", len(target))
			}
			return Entry{}, false, fmt.Errorf("%w: %s: symlink target of %d bytes", ErrSpecialFile, rel, len(target))
		}
		e.Target = target
		e.Size = int64(len(target))
		return e, false, nil
	default:
		if log != nil {
			log.Info("skipping special file", "path", rel, "type", t.String())
		}
		return Entry{}, false, fmt.Errorf("%w: %s (%s)", ErrSpecialFile, rel, t)
	}
}

// Reads of one file that raced a writer (the file's stamp moved while it
// was read, or the bytes read do not add up to its size) are thrown away
// and the file read again at once: a read that starts right after a write
// has the whole gap to the writer's next one. One Scan, Stat or Read
// makes at least ReadAttempts reads of a file, and goes on for up to
// ReadPatience since the first, at most MaxReadAttempts in all. Past that
// the call fails with ErrTorn and makes no entry: a mixed state of a file
// is never returned.
const (
	ReadAttempts    = 4
	ReadPatience    = 50 * time.Millisecond
	MaxReadAttempts = 64
)

// memRead: a file up to this size is copied into memory in one pass and
// chunked from there, so the window in which a writer can race the read
// is the copy (about a millisecond for 4 MiB from the page cache), not the
// hashing. Larger files are chunked as they stream in.
const memRead = 16 << 20

// Keep selects the chunks whose bytes a Read returns with the entry (the
// bytes a change record carries), so that the bytes shipped are the bytes
// hashed, from the same read. Budget is shared by the reads of a group
// and shrinks as bytes are kept; chunks past it are not kept.
type Keep struct {
	Want   func(Chunk) bool // nil: every chunk
	Budget int64
}

// readResult is one consistent read of a file: its stamp, and either its
// bytes (a small file, not hashed yet) or its chunks and kept bytes.
type readResult struct {
	stamp   Stamp
	raw     []byte
	chunks  []Chunk
	data    map[cid.Cid][]byte
	retries int
}

// hashFile reads e.Path through rt and fills e's chunks, size and metadata
// from the open file (see readFile), hashing at once.
func hashFile(ctx context.Context, rt *os.Root, e *Entry, workers int, faults *Faults, keep *Keep) (readResult, error) {
	res, err := readFile(ctx, rt, e, workers, faults, keep)
	if err != nil || res.raw == nil {
		return res, err
	}
	res.chunks, res.data, err = chunkBytes(ctx, res.raw, workers, keep)
	res.raw = nil
	if err != nil {
		return res, &PathError{Op: "read", Path: e.Path, Err: err}
	}
	e.Chunks = res.chunks
	return res, nil
}

// readFile reads e.Path through rt and fills e's size and metadata from
// the open file; a file up to memRead bytes comes back as its bytes
// (res.raw, chunked by the caller), a larger one chunked as it streams in
// (e.Chunks). Around each read it takes the open file's stamp (size,
// mtime, ctime, inode); a read whose stamps differ, or whose bytes do not
// add up to the size, raced a writer and is thrown away, up to
// ReadAttempts reads in all, after which it returns ErrTorn (in a
// *PathError). For a small file only the copy is in the window a writer
// can race, never the hashing. A file that is gone, or is no longer a
// regular file, gives errVanished.
func readFile(ctx context.Context, rt *os.Root, e *Entry, workers int, faults *Faults, keep *Keep) (readResult, error) {
	name := filepath.FromSlash(e.Path)
	if err := faults.Check(e.Path); err != nil {
		return readResult{}, &PathError{Op: "read", Path: e.Path, Err: err}
	}
	var res readResult
	var verify []byte // a racy read waiting for a second read to agree
	var verifyChunks []Chunk
	var verifyStamp Stamp
	var buf []byte // reused across attempts
	first := time.Now()
	attempt := 1
	for ; ; attempt++ {
		if attempt > MaxReadAttempts || attempt > ReadAttempts && time.Since(first) >= ReadPatience {
			break
		}
		f, err := rt.OpenFile(name, os.O_RDONLY|openFlags, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return res, errVanished
			}
			return res, &PathError{Op: "read", Path: e.Path, Err: err}
		}
		before, err := f.Stat()
		if err != nil {
			f.Close()
			return res, &PathError{Op: "read", Path: e.Path, Err: err}
		}
		if !before.Mode().IsRegular() {
			f.Close()
			return res, errVanished
		}
		start := time.Now()
		var raw []byte
		var chunks []Chunk
		var data map[cid.Cid][]byte
		var n int64
		spent := int64(0)
		if before.Size() <= memRead {
			if int64(cap(buf)) < before.Size()+1 || verify != nil {
				buf = make([]byte, before.Size()+1) // one more byte: a file that grew shows
			}
			raw = buf[:before.Size()+1]
			var m int
			m, err = io.ReadFull(f, raw)
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = nil
			}
			raw, n = raw[:m], int64(m)
		} else {
			chunks, data, err = chunkStreamKeep(ctx, f, workers, keep, &spent)
			n = sumSizes(chunks)
		}
		var after fs.FileInfo
		if err == nil {
			faults.duringRead(e.Path)
			after, err = f.Stat()
		}
		f.Close()
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, &PathError{Op: "read", Path: e.Path, Err: err}
		}
		bs, as := StampOf(before), StampOf(after)
		stable := bs == as && n == as.Size
		if stable && racy(bs, start) {
			// the ctime cannot be trusted this close to the write: keep
			// the read only if the next one gives the same bytes
			same := verifyStamp == bs && (raw != nil && bytes.Equal(verify, raw) || raw == nil && verifyChunks != nil && slices.EqualFunc(verifyChunks, chunks, chunkEqual))
			if !same {
				verify, verifyChunks, verifyStamp = raw, chunks, bs
				stable = false
			}
		}
		if !stable {
			if keep != nil {
				keep.Budget += spent
			}
			res.retries++
			continue
		}
		e.Mode = before.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		e.MTime = before.ModTime()
		e.Inode, e.Dev = fileID(before)
		e.Size = as.Size
		e.Chunks = chunks
		res.stamp, res.raw, res.chunks, res.data = bs, raw, chunks, data
		return res, nil
	}
	res.retries-- // the last read is not read again
	return res, &PathError{Op: "read", Path: e.Path, Err: fmt.Errorf("%w (%d reads in %v raced a writer)", ErrTorn, attempt-1, time.Since(first).Round(time.Millisecond))}
}

// keepFunc returns the chunk callback that keeps the bytes keep wants
// into *data, counting them in spent (nil keep: nil).
func keepFunc(keep *Keep, data *map[cid.Cid][]byte, spent *int64) func([]byte, Chunk) error {
	if keep == nil {
		return nil
	}
	return func(b []byte, c Chunk) error {
		if keep.Budget < int64(len(b)) || (keep.Want != nil && !keep.Want(c)) {
			return nil
		}
		if _, ok := (*data)[c.CID]; ok {
			return nil
		}
		if *data == nil {
			*data = make(map[cid.Cid][]byte)
		}
		(*data)[c.CID] = append([]byte(nil), b...)
		keep.Budget -= int64(len(b))
		*spent += int64(len(b))
		return nil
	}
}

func chunkStreamKeep(ctx context.Context, r io.Reader, workers int, keep *Keep, spent *int64) ([]Chunk, map[cid.Cid][]byte, error) {
	var data map[cid.Cid][]byte
	chunks, err := chunkStream(ctx, r, &defaultCDC, workers, keepFunc(keep, &data, spent))
	return chunks, data, err
}

// chunkBytes chunks a file read whole into memory.
func chunkBytes(ctx context.Context, raw []byte, workers int, keep *Keep) ([]Chunk, map[cid.Cid][]byte, error) {
	var spent int64
	return chunkStreamKeep(ctx, bytes.NewReader(raw), workers, keep, &spent)
}

// State is one consistent read of a path: its entry, the stamp of the
// state read, and the bytes of the chunks a Keep asked for.
type State struct {
	Entry Entry
	// Stamp identifies the state read (from lstat for a directory, a
	// symlink or a file whose chunks were reused, from the open file's
	// fstat for a file read): while the path's stamp is still this, the
	// path holds Entry.
	Stamp Stamp
	// Data holds the bytes of the chunks kept (see Keep), read in the same
	// pass that hashed them.
	Data map[cid.Cid][]byte
	// Retries counts the reads thrown away because they raced a writer.
	Retries int

	raw []byte // a file read with Deferred: its bytes, not chunked yet
}

// Unhashed reports whether the state is a file read with Deferred whose
// chunks Hash has yet to compute.
func (s *State) Unhashed() bool { return s.raw != nil }

// Hash chunks the bytes of a file read with Deferred into Entry.Chunks
// (keeping the chunks keep wants in Data); it does nothing for any other
// state.
func (s *State) Hash(ctx context.Context, keep *Keep) error {
	if s.raw == nil {
		return nil
	}
	chunks, data, err := chunkBytes(ctx, s.raw, runtime.GOMAXPROCS(0), keep)
	if err != nil {
		return &PathError{Op: "read", Path: s.Entry.Path, Err: err}
	}
	s.Entry.Chunks, s.raw = chunks, nil
	for k, v := range data {
		if s.Data == nil {
			s.Data = make(map[cid.Cid][]byte)
		}
		s.Data[k] = v
	}
	return nil
}

// Stat returns the entry for one path of the folder at root, like Scan
// would: lstat, then chunking a regular file unless prev allows reuse. It
// returns an error wrapping fs.ErrNotExist only if rel is gone, as a
// second lstat confirms (or it lies below a symlink or non-directory),
// ErrTorn if the file changed during every read (see ReadAttempts),
// ErrIgnored if ignore matches it or a parent, ErrSpecialFile for
// sockets, fifos and devices, and ErrBadPath for an invalid rel.
func Stat(root, rel string, prev *Entry, ignore *Matcher, opts ...StatOption) (Entry, error) {
	st, err := Read(root, rel, prev, ignore, nil, opts...)
	return st.Entry, err
}

// Read is Stat that also returns the stamp of the state read and, when
// keep is set, the bytes of the chunks it selects.
func Read(root, rel string, prev *Entry, ignore *Matcher, keep *Keep, opts ...StatOption) (State, error) {
	var o statOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := ValidPath(rel); err != nil {
		return State{}, err
	}
	if len(rel) > MaxPath {
		return State{}, fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPath)
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		return State{}, fmt.Errorf("baseline: stat: %w", err)
	}
	defer rt.Close()
	retries := 0
	for attempt := 1; ; attempt++ {
		st, err := readOnce(rt, rel, prev, ignore, keep, o)
		st.Retries += retries
		if !errors.Is(err, errVanished) {
			return st, err
		}
		// The file went away or changed type between lstat and open: it
		// is absent only if a new lstat says so.
		if _, lerr := rt.Lstat(filepath.FromSlash(rel)); errors.Is(lerr, fs.ErrNotExist) {
			return State{}, &PathError{Op: "stat", Path: rel, Err: fs.ErrNotExist}
		}
		retries = st.Retries + 1
		if attempt == ReadAttempts {
			return State{Retries: retries}, &PathError{Op: "read", Path: rel, Err: fmt.Errorf("%w (replaced while opened, %d times in a row)", ErrTorn, attempt)}
		}
	}
}

func readOnce(rt *os.Root, rel string, prev *Entry, ignore *Matcher, keep *Keep, o statOptions) (State, error) {
	// Every parent must be a real directory: Scan never enters symlinks.
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		fi, err := rt.Lstat(filepath.FromSlash(rel[:i]))
		if err != nil {
			return State{}, &PathError{Op: "stat", Path: rel, Err: err}
		}
		if !fi.IsDir() {
			return State{}, &PathError{Op: "stat", Path: rel, Err: fmt.Errorf("%s is not a directory: %w", rel[:i], fs.ErrNotExist)}
		}
	}
	info, err := rt.Lstat(filepath.FromSlash(rel))
	if err != nil {
		return State{}, &PathError{Op: "stat", Path: rel, Err: err}
	}
	if ignore.Match(rel, info.IsDir()) {
		return State{}, fmt.Errorf("%w: %s", ErrIgnored, rel)
	}
	var reuse func(string) (*Entry, bool)
	if prev != nil {
		reuse = func(string) (*Entry, bool) { return prev, true }
	}
	readlink := func(l string) (string, error) { return rt.Readlink(filepath.FromSlash(l)) }
	e, needHash, err := entryFromInfo(rel, info, reuse, readlink, nil)
	if err != nil || !needHash {
		return State{Entry: e, Stamp: StampOf(info)}, err
	}
	if o.deferred != nil {
		res, err := readFile(context.Background(), rt, &e, runtime.GOMAXPROCS(0), o.faults, keep)
		if err != nil {
			return State{Retries: res.retries}, err
		}
		st := State{Entry: e, Stamp: res.stamp, Data: res.data, Retries: res.retries, raw: res.raw}
		if *o.deferred < int64(len(res.raw)) {
			// past the budget of bytes held: hashed now
			err = st.Hash(context.Background(), keep)
		} else {
			*o.deferred -= int64(len(res.raw))
		}
		return st, err
	}
	res, err := hashFile(context.Background(), rt, &e, runtime.GOMAXPROCS(0), o.faults, keep)
	if err != nil {
		return State{Retries: res.retries}, err
	}
	return State{Entry: e, Stamp: res.stamp, Data: res.data, Retries: res.retries}, nil
}
