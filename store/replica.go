package store

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// ErrUnsafePath is returned (inside a *PathError) for a relative path that
// is malformed, could leave its replica root, or crosses a symlink.
var ErrUnsafePath = errors.New("store: unsafe path")

// ErrInterrupted, wrapped in the error of a Stage's write function, keeps
// what was written so far in the staging directory (the write was cut short
// by something outside it, and the caller salvages the bytes later) instead
// of removing it.
var ErrInterrupted = errors.New("store: write interrupted")

// MaxPathLen is the longest relative path (in bytes) a Replica accepts.
const MaxPathLen = 4096

// TempPrefix starts the name of the temporary files a restore writes next
// to the files it restores. A Replica keeps its own temporary files out of
// the tree, in its staging directory (see OpenReplica), so every name a
// source may hold is free in the tree.
const TempPrefix = ".vigil-tmp-"

// StagingSuffix ends the name of a replica's staging directory, a sibling
// of its root: "@" cannot appear in a folder ID, so no replica's root can
// take that name.
const StagingSuffix = "@staging"

// PathError records an operation and the path at fault. For a Replica, Path
// is the relative path as received; otherwise it is a file path.
type PathError struct {
	Op   string
	Path string
	Err  error
}

func (e *PathError) Error() string {
	return e.Op + " " + strconv.Quote(e.Path) + ": " + e.Err.Error()
}

func (e *PathError) Unwrap() error { return e.Err }

// ValidatePath checks a slash-separated relative path received from the
// network, without touching the disk. It returns an error wrapping
// ErrUnsafePath if the path is empty, longer than MaxPathLen, contains NUL,
// is absolute, or has an empty, "." or ".." element. Any other name Linux
// allows is accepted: backslashes, leading dots, newlines, bytes that are
// not UTF-8.
func ValidatePath(rel string) error {
	switch {
	case rel == "":
		return unsafePath("empty path")
	case len(rel) > MaxPathLen:
		return unsafePath("longer than " + strconv.Itoa(MaxPathLen) + " bytes")
	case strings.IndexByte(rel, 0) >= 0:
		return unsafePath("NUL byte")
	case rel[0] == '/':
		return unsafePath("absolute path")
	}
	for el := range strings.SplitSeq(rel, "/") {
		if err := validElement(el); err != nil {
			return err
		}
	}
	return nil
}

func validElement(el string) error {
	switch el {
	case "":
		return unsafePath("empty element")
	case ".", "..":
		return unsafePath(strconv.Quote(el) + " element")
	}
	return nil
}

func unsafePath(why string) error { return fmt.Errorf("%w: %s", ErrUnsafePath, why) }

// Replica is a directory tree written only through safe, atomic operations.
// Every relative path is checked with ValidatePath and no existing parent
// inside the root may be a symlink. Methods may be called concurrently for
// different paths.
type Replica struct {
	root    string
	staging string // temporary files, outside the tree
	faults  *Faults

	// dirs, while CacheDirs is on, holds the directories (relative paths)
	// that resolveCreate has made or found to be real directories, so
	// that writing many files into one directory checks its parents once.
	// Remove, Rename and Symlink forget a path and everything below it; a
	// create that finds a remembered directory gone forgets it and checks
	// again. Nil when off.
	dmu  sync.RWMutex
	dirs map[string]struct{}
}

// CacheDirs turns the directory cache on or off (off drops it). A bulk
// writer such as a baseline turns it on for its duration: every create
// then costs one open(2) instead of a check of each parent. While it is
// on, a parent replaced by a symlink from outside this Replica goes
// unnoticed until the cache is dropped (changes made through the Replica
// are always seen), so it is off for everyday writes.
func (r *Replica) CacheDirs(on bool) {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	switch {
	case on && r.dirs == nil:
		r.dirs = make(map[string]struct{})
	case !on:
		r.dirs = nil
	}
}

func (r *Replica) knownDir(rel string) bool {
	r.dmu.RLock()
	_, ok := r.dirs[rel]
	r.dmu.RUnlock()
	return ok
}

// rememberDirs records rel and all its parents as real directories.
func (r *Replica) rememberDirs(rel string) {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if r.dirs == nil {
		return
	}
	for ; rel != "." && rel != "/" && rel != ""; rel = path.Dir(rel) {
		if _, ok := r.dirs[rel]; ok {
			return // and so are its parents
		}
		r.dirs[rel] = struct{}{}
	}
}

// forgetDirs drops rel and everything below it from the remembered
// directories. Since a remembered directory's parents are remembered too,
// nothing below rel is remembered unless rel is.
func (r *Replica) forgetDirs(rel string) {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if _, ok := r.dirs[rel]; !ok {
		return
	}
	delete(r.dirs, rel)
	pre := rel + "/"
	for d := range r.dirs {
		if strings.HasPrefix(d, pre) {
			delete(r.dirs, d)
		}
	}
}

// ReplicaOption configures OpenReplica.
type ReplicaOption func(*Replica)

// WithFaults makes the replica's writes fail as f says (tests).
func WithFaults(f *Faults) ReplicaOption { return func(r *Replica) { r.faults = f } }

// OpenReplica opens the replica rooted at root, creating it (and missing
// parents, mode 0700) if needed, and its staging directory: root's real
// path with StagingSuffix appended, beside it on the same file system, where
// files are written before they are renamed into the tree. The root itself
// may be reached through a symlink; the tree below it is never.
func OpenReplica(root string, opts ...ReplicaOption) (*Replica, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, &PathError{Op: "open replica", Path: root, Err: err}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, &PathError{Op: "open replica", Path: abs, Err: err}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, &PathError{Op: "open replica", Path: abs, Err: err}
	}
	if !fi.IsDir() {
		return nil, &PathError{Op: "open replica", Path: abs, Err: syscall.ENOTDIR}
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, &PathError{Op: "open replica", Path: abs, Err: err}
	}
	r := &Replica{root: abs, staging: real + StagingSuffix}
	for _, o := range opts {
		o(r)
	}
	if err := os.MkdirAll(r.staging, 0o700); err != nil {
		return nil, &PathError{Op: "open replica", Path: r.staging, Err: err}
	}
	return r, nil
}

// Staging is the directory where the replica writes files before renaming
// them into the tree.
func (r *Replica) Staging() string { return r.staging }

// Root returns the absolute root directory.
func (r *Replica) Root() string { return r.root }

// Abs returns the absolute path of rel after validating it and checking
// that no existing parent is a symlink. "." names the root.
func (r *Replica) Abs(rel string) (string, error) {
	return r.resolve("abs", rel, true)
}

// resolve validates rel, checks its existing parents and returns its
// absolute path. With allowRoot, "." names the root.
func (r *Replica) resolve(op, rel string, allowRoot bool) (string, error) {
	if allowRoot && rel == "." {
		return r.root, nil
	}
	if err := ValidatePath(rel); err != nil {
		return "", &PathError{Op: op, Path: rel, Err: err}
	}
	cur := r.root
	parents := strings.Split(rel, "/")
	parents = parents[:len(parents)-1]
	for i, el := range parents {
		cur = filepath.Join(cur, el)
		fi, err := os.Lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				break // nothing below exists; resolution stops here
			}
			return "", &PathError{Op: op, Path: rel, Err: err}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", &PathError{Op: op, Path: rel, Err: unsafePath("parent " + strconv.Quote(strings.Join(parents[:i+1], "/")) + " is a symlink")}
		}
		if !fi.IsDir() {
			break // not traversable: the operation fails with ENOTDIR
		}
	}
	return filepath.Join(r.root, filepath.FromSlash(rel)), nil
}

// resolveCreate is resolve for operations that create rel: the missing
// parent directories are created (mode 0755, subject to the umask) and made
// durable; an existing parent must be a real directory.
func (r *Replica) resolveCreate(op, rel string) (string, error) {
	if err := ValidatePath(rel); err != nil {
		return "", &PathError{Op: op, Path: rel, Err: err}
	}
	parent := path.Dir(rel)
	if parent == "." || r.knownDir(parent) {
		return filepath.Join(r.root, filepath.FromSlash(rel)), nil
	}
	cur := r.root
	parents := strings.Split(rel, "/")
	parents = parents[:len(parents)-1]
	for i, el := range parents {
		parent := cur
		cur = filepath.Join(cur, el)
		err := os.Mkdir(cur, 0o755)
		if err == nil {
			if err := fsutil.SyncDir(parent); err != nil {
				return "", &PathError{Op: op, Path: rel, Err: err}
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", &PathError{Op: op, Path: rel, Err: err}
		}
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", &PathError{Op: op, Path: rel, Err: err}
		}
		prefix := strconv.Quote(strings.Join(parents[:i+1], "/"))
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", &PathError{Op: op, Path: rel, Err: unsafePath("parent " + prefix + " is a symlink")}
		}
		if !fi.IsDir() {
			return "", &PathError{Op: op, Path: rel, Err: fmt.Errorf("parent %s: %w", prefix, syscall.ENOTDIR)}
		}
	}
	r.rememberDirs(parent)
	return filepath.Join(r.root, filepath.FromSlash(rel)), nil
}

// WriteFile replaces rel atomically with a regular file: a temporary file
// in the staging directory is filled by write, given mode's
// permission bits (setuid/setgid/sticky are not reproduced) and mtime
// (skipped if zero), fsynced, renamed over rel, and the directory is
// fsynced. Missing parent directories are created first. If write (or any
// later step) fails, the temporary file is removed and rel is untouched.
// write must not close f. An existing directory at rel is not replaced
// (Remove it first).
func (r *Replica) WriteFile(rel string, mode fs.FileMode, mtime time.Time, write func(f *os.File) error, opts ...WriteOption) error {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	st, err := r.stage(rel, mode, mtime, write, true)
	if err != nil {
		return err
	}
	if err := st.Commit(); err != nil {
		return err
	}
	if o.noDirSync {
		return nil
	}
	if err := fsutil.SyncDir(filepath.Dir(st.abs)); err != nil {
		return &PathError{Op: "write", Path: rel, Err: err}
	}
	return nil
}

// WriteOption changes how WriteFile makes a file durable.
type WriteOption func(*writeOptions)

type writeOptions struct{ noDirSync bool }

// NoDirSync leaves the fsync of the parent directory to the caller (who
// syncs each directory once for many files with SyncDir).
func NoDirSync() WriteOption { return func(o *writeOptions) { o.noDirSync = true } }

// Staged is a file written under a temporary name in the staging
// directory, not yet in place. Commit renames it into place; Abort
// removes it.
type Staged struct {
	r             *Replica
	rel, abs, tmp string
}

// Stage writes a file under a temporary name in the staging directory
// (creating rel's missing parents) without syncing it: the caller syncs many staged files at once
// with SyncFS before committing them, so that every file is durable before
// it replaces the old one.
func (r *Replica) Stage(rel string, mode fs.FileMode, mtime time.Time, write func(f *os.File) error) (*Staged, error) {
	return r.stage(rel, mode, mtime, write, false)
}

func (r *Replica) stage(rel string, mode fs.FileMode, mtime time.Time, write func(f *os.File) error, sync bool) (*Staged, error) {
	const op = "write"
	if err := r.faults.check(rel); err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	abs, err := r.resolveCreate(op, rel)
	if err != nil {
		return nil, err
	}
	f, err := createTemp(r.staging)
	if err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		if errors.Is(err, ErrInterrupted) {
			done = true // kept in the staging directory for the caller to salvage
			_ = f.Close()
		}
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	if err := setMtime(tmp, mtime); err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	if sync {
		if err := f.Sync(); err != nil {
			return nil, &PathError{Op: op, Path: rel, Err: err}
		}
	} else if st, err := f.Stat(); err == nil && st.Size() >= 1<<20 {
		// start writeback of a big file now so the caller's SyncFS finds
		// little left to do
		_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if err := f.Close(); err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	done = true
	return &Staged{r: r, rel: rel, abs: abs, tmp: tmp}, nil
}

// newTemp calls create with new random TempPrefix names in dir until one
// does not exist yet, and returns that name.
func newTemp(dir string, create func(name string) error) (string, error) {
	for range 100 {
		name := filepath.Join(dir, TempPrefix+strconv.FormatUint(rand.Uint64(), 36))
		err := create(name)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", &fs.PathError{Op: "create", Path: filepath.Join(dir, TempPrefix+"*"), Err: fs.ErrExist}
}

// createTemp creates a new file (mode 0600) with a TempPrefix name in dir.
// It opens the file with one open(2), where os.CreateTemp spends a few
// more system calls per file on poller registration.
func createTemp(dir string) (*os.File, error) {
	var fd int
	name, err := newTemp(dir, func(name string) error {
		var err error
		fd, err = unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return &fs.PathError{Op: "create", Path: name, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Commit renames the staged file into place (the parents it needs are
// made again if they went away meanwhile).
func (s *Staged) Commit() error {
	err := os.Rename(s.tmp, s.abs)
	if err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		// a remembered parent was changed behind this replica's back:
		// check (and make) the parents again
		s.r.forgetDirs(path.Dir(s.rel))
		var abs string
		if abs, err = s.r.resolveCreate("write", s.rel); err == nil {
			s.abs = abs
			err = os.Rename(s.tmp, s.abs)
		}
	}
	if err != nil {
		_ = os.Remove(s.tmp)
		var pe *PathError
		if errors.As(err, &pe) {
			return err
		}
		return &PathError{Op: "write", Path: s.rel, Err: err}
	}
	return nil
}

// Abort removes the staged file.
func (s *Staged) Abort() { _ = os.Remove(s.tmp) }

// TempPath is the absolute path of the staged file until it is committed.
func (s *Staged) TempPath() string { return s.tmp }

// Path is the replica-relative destination of the staged file.
func (s *Staged) Path() string { return s.rel }

// SyncFS flushes the whole file system that holds the replica (syncfs(2)):
// one call makes many staged files durable.
func (r *Replica) SyncFS() error {
	f, err := os.Open(r.root)
	if err != nil {
		return &PathError{Op: "sync", Path: ".", Err: err}
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &PathError{Op: "sync", Path: ".", Err: err}
	}
	return nil
}

func (r *Replica) Symlink(rel, target string, mtime time.Time) error {
	const op = "symlink"
	if target == "" || len(target) > MaxPathLen || strings.IndexByte(target, 0) >= 0 {
		return &PathError{Op: op, Path: rel, Err: unsafePath("invalid symlink target " + strconv.Quote(target))}
	}
	abs, err := r.resolveCreate(op, rel)
	if err != nil {
		return err
	}
	if err := r.faults.check(rel); err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	r.forgetDirs(rel) // a directory at rel is replaced
	dir := filepath.Dir(abs)
	tmp, err := newTemp(r.staging, func(name string) error { return os.Symlink(target, name) })
	if err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := setMtime(tmp, mtime); err != nil {
		_ = os.Remove(tmp)
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := os.Rename(tmp, abs); err != nil {
		_ = os.Remove(tmp)
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	return nil
}

// dirMode is the mode given to a replica directory: the source's
// permission bits plus owner rwx, so the replica stays writable (a source
// directory of mode 0555 is kept as 0755).
func dirMode(mode fs.FileMode) fs.FileMode { return mode.Perm() | 0o700 }

// Mkdir makes rel a directory with mode (see SetMeta) and mtime (skipped if
// zero), creating parents. An existing directory only gets its mode and
// mtime set; an existing file or symlink at rel is replaced.
func (r *Replica) Mkdir(rel string, mode fs.FileMode, mtime time.Time, opts ...WriteOption) error {
	const op = "mkdir"
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := r.faults.check(rel); err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	abs, err := r.resolveCreate(op, rel)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(abs)
	switch {
	case err == nil && fi.IsDir():
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err == nil { // a file or symlink is in the way
			if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return &PathError{Op: op, Path: rel, Err: err}
			}
		}
		if err := os.Mkdir(abs, 0o700); err != nil {
			if !errors.Is(err, fs.ErrExist) {
				return &PathError{Op: op, Path: rel, Err: err}
			}
			if fi, err := os.Lstat(abs); err != nil || !fi.IsDir() {
				return &PathError{Op: op, Path: rel, Err: fmt.Errorf("created concurrently: %w", fs.ErrExist)}
			}
		}
		if !o.noDirSync {
			if err := fsutil.SyncDir(filepath.Dir(abs)); err != nil {
				return &PathError{Op: op, Path: rel, Err: err}
			}
		}
	default:
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := os.Chmod(abs, dirMode(mode)); err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := setMtime(abs, mtime); err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	return nil
}

// SetMeta sets the permission bits (not for symlinks; directories always
// keep owner rwx) and the mtime (skipped if zero) of rel without following
// a symlink. "." names the root. Since a directory's mtime changes whenever
// an entry in it is created, renamed or removed, callers set directory
// mtimes with SetMeta after writing the directory's children.
func (r *Replica) SetMeta(rel string, mode fs.FileMode, mtime time.Time) error {
	const op = "setmeta"
	abs, err := r.resolve(op, rel, true)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
	case fi.IsDir():
		err = os.Chmod(abs, dirMode(mode))
	default:
		err = os.Chmod(abs, mode.Perm())
	}
	if err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := setMtime(abs, mtime); err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	return nil
}

// RemoveExcept removes every path of the tree that keep refuses (given
// the path and its type), a directory with all below it, and returns how
// many it removed. Paths vigil never writes (see ValidatePath) are left.
func (r *Replica) RemoveExcept(keep func(rel string, t fs.FileMode) bool) (int, error) {
	var gone []string
	err := filepath.WalkDir(r.root, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if abs == r.root {
			return nil
		}
		rel, err := filepath.Rel(r.root, abs)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ValidatePath(rel) != nil || keep(rel, d.Type()) {
			return nil
		}
		gone = append(gone, rel)
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: list %s: %w", r.root, err)
	}
	for i, rel := range gone {
		if err := r.Remove(rel); err != nil {
			return i, err
		}
	}
	return len(gone), nil
}

// Remove removes rel: a file, a symlink (not its target) or a whole
// directory tree. A missing rel is not an error. The parent directory is
// fsynced.
func (r *Replica) Remove(rel string) error {
	const op = "remove"
	abs, err := r.resolve(op, rel, false)
	if err != nil {
		return err
	}
	r.forgetDirs(rel)
	if err := os.RemoveAll(abs); err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil // a parent is a file: rel does not exist
		}
		return &PathError{Op: op, Path: rel, Err: err}
	}
	if err := fsutil.SyncDir(filepath.Dir(abs)); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	return nil
}

// Rename moves from to to, creating the parents of to. An existing file or
// symlink at to is replaced atomically; an existing directory at to (or any
// entry at to when from is a directory) is removed first. Moving a path
// into itself or over one of its parents is refused (EINVAL). Both parent
// directories are fsynced.
func (r *Replica) Rename(from, to string) error {
	const op = "rename"
	fromAbs, err := r.resolve(op, from, false)
	if err != nil {
		return err
	}
	if err := ValidatePath(to); err != nil {
		return &PathError{Op: op, Path: to, Err: err}
	}
	if strings.HasPrefix(to, from+"/") || strings.HasPrefix(from, to+"/") {
		return &PathError{Op: op, Path: to, Err: fmt.Errorf("rename %q to %q: %w", from, to, syscall.EINVAL)}
	}
	src, err := os.Lstat(fromAbs)
	if err != nil {
		return &PathError{Op: op, Path: from, Err: err}
	}
	if from == to {
		return nil
	}
	toAbs, err := r.resolveCreate(op, to)
	if err != nil {
		return err
	}
	r.forgetDirs(from)
	r.forgetDirs(to)
	dst, err := os.Lstat(toAbs)
	switch {
	case err == nil && (dst.IsDir() || src.IsDir()):
		if err := os.RemoveAll(toAbs); err != nil {
			return &PathError{Op: op, Path: to, Err: err}
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return &PathError{Op: op, Path: to, Err: err}
	}
	if err := os.Rename(fromAbs, toAbs); err != nil {
		return &PathError{Op: op, Path: to, Err: err}
	}
	if err := fsutil.SyncDir(filepath.Dir(toAbs)); err != nil {
		return &PathError{Op: op, Path: to, Err: err}
	}
	if filepath.Dir(fromAbs) != filepath.Dir(toAbs) {
		if err := fsutil.SyncDir(filepath.Dir(fromAbs)); err != nil {
			return &PathError{Op: op, Path: from, Err: err}
		}
	}
	return nil
}

// Open opens rel for reading. A symlink at rel is not followed (the open
// fails with ELOOP); directories can be opened to list them. "." names the
// root.
func (r *Replica) Open(rel string) (*os.File, error) {
	const op = "open"
	abs, err := r.resolve(op, rel, true)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	return f, nil
}

// Lstat returns the FileInfo of rel without following a symlink. "." names
// the root.
func (r *Replica) Lstat(rel string) (fs.FileInfo, error) {
	const op = "lstat"
	abs, err := r.resolve(op, rel, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return nil, &PathError{Op: op, Path: rel, Err: err}
	}
	return fi, nil
}

// CleanTemp removes what a crash left in the staging directory. Call it
// once when opening a replica, before writing.
func (r *Replica) CleanTemp() error {
	ents, err := os.ReadDir(r.staging)
	if err != nil {
		return &PathError{Op: "cleantemp", Path: r.staging, Err: err}
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(r.staging, e.Name())); err != nil {
			return &PathError{Op: "cleantemp", Path: r.staging, Err: err}
		}
	}
	return nil
}

// SyncDir fsyncs the directory rel ("." names the root) so that entries
// changed in it are durable.
func (r *Replica) SyncDir(rel string) error {
	const op = "syncdir"
	abs, err := r.resolve(op, rel, true)
	if err != nil {
		return err
	}
	d, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &PathError{Op: op, Path: rel, Err: err}
	}
	return nil
}

// setMtime sets the modification time of path, not following a symlink,
// and leaves the access time alone. A zero mtime is skipped.
func setMtime(path string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return fmt.Errorf("mtime %v: %w", mtime, err)
	}
	times := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, ts}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lutimes", Path: path, Err: err}
	}
	return nil
}
