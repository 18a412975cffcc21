package baseline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

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
		switch {
		case needHash:
			g.Go(func() error {
				err := hashFile(gctx, rt, &it.e, hashWorkers, opts.Faults)
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

// hashFile reads e.Path through rt and fills e's chunks, size and metadata
// from the open file. If the file changes while it is read, it is read
// again (up to 3 times in all); the entry keeps the mtime seen before the
// last read, so a later rescan notices any change made during it.
func hashFile(ctx context.Context, rt *os.Root, e *Entry, workers int, faults *Faults) error {
	name := filepath.FromSlash(e.Path)
	if err := faults.Check(e.Path); err != nil {
		return &PathError{Op: "read", Path: e.Path, Err: err}
	}
	for attempt := 1; ; attempt++ {
		f, err := rt.OpenFile(name, os.O_RDONLY|openFlags, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errVanished
			}
			return &PathError{Op: "read", Path: e.Path, Err: err}
		}
		before, err := f.Stat()
		if err != nil {
			f.Close()
			return &PathError{Op: "read", Path: e.Path, Err: err}
		}
		if !before.Mode().IsRegular() {
			f.Close()
			return errVanished
		}
		chunks, err := chunkStream(ctx, f, &defaultCDC, workers, nil)
		if err != nil {
			f.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &PathError{Op: "read", Path: e.Path, Err: err}
		}
		after, err := f.Stat()
		f.Close()
		if err != nil {
			return &PathError{Op: "read", Path: e.Path, Err: err}
		}
		size := sumSizes(chunks)
		stable := after.Size() == size && after.ModTime().Equal(before.ModTime())
		if stable || attempt == 3 {
			e.Mode = before.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			e.MTime = before.ModTime()
			e.Inode, e.Dev = fileID(before)
			e.Size = size
			e.Chunks = chunks
			return nil
		}
	}
}

// Stat returns the entry for one path of the folder at root, like Scan
// would: lstat, then chunking a regular file unless prev allows reuse. It
// returns an error wrapping fs.ErrNotExist if rel is gone (or lies below a
// symlink or non-directory), ErrIgnored if ignore matches it or a parent,
// ErrSpecialFile for sockets, fifos and devices, and ErrBadPath for an
// invalid rel.
func Stat(root, rel string, prev *Entry, ignore *Matcher, opts ...StatOption) (Entry, error) {
	var o statOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := ValidPath(rel); err != nil {
		return Entry{}, err
	}
	if len(rel) > MaxPath {
		return Entry{}, fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPath)
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		return Entry{}, fmt.Errorf("baseline: stat: %w", err)
	}
	defer rt.Close()
	// Every parent must be a real directory: Scan never enters symlinks.
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		fi, err := rt.Lstat(filepath.FromSlash(rel[:i]))
		if err != nil {
			return Entry{}, &PathError{Op: "stat", Path: rel, Err: err}
		}
		if !fi.IsDir() {
			return Entry{}, &PathError{Op: "stat", Path: rel, Err: fmt.Errorf("%s is not a directory: %w", rel[:i], fs.ErrNotExist)}
		}
	}
	info, err := rt.Lstat(filepath.FromSlash(rel))
	if err != nil {
		return Entry{}, &PathError{Op: "stat", Path: rel, Err: err}
	}
	if ignore.Match(rel, info.IsDir()) {
		return Entry{}, fmt.Errorf("%w: %s", ErrIgnored, rel)
	}
	var reuse func(string) (*Entry, bool)
	if prev != nil {
		reuse = func(string) (*Entry, bool) { return prev, true }
	}
	readlink := func(l string) (string, error) { return rt.Readlink(filepath.FromSlash(l)) }
	e, needHash, err := entryFromInfo(rel, info, reuse, readlink, nil)
	if err != nil || !needHash {
		return e, err
	}
	err = hashFile(context.Background(), rt, &e, runtime.GOMAXPROCS(0), o.faults)
	if errors.Is(err, errVanished) {
		return Entry{}, &PathError{Op: "stat", Path: rel, Err: fs.ErrNotExist}
	}
	return e, err
}
