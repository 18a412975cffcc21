package restore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-mesh/vigil/store"
)

// target is the directory a restore writes into, and what it takes to
// undo the restore: a To the restore created is removed whole; a To that
// was empty is emptied again; in a To that held something (Force), every
// change is logged so that rollback puts back what was there. What the
// restore replaces in such a To is set aside under a temporary name in
// the same directory, and deleted by commit.
type target struct {
	dir      string   // absolute path of To
	root     *os.Root // To
	created  string   // the topmost directory of To's path this restore created ("": To existed)
	wasEmpty bool     // To existed and was empty
	log      bool     // To held something: keep the undo log
	undo     []undoOp
	asides   []string        // what this restore set aside, deleted by commit
	existed  map[string]bool // log only: directories that were there before the restore
}

type undoKind uint8

const (
	undoCreated undoKind = iota // path did not exist: remove it
	undoAside                   // what was at path is at aside: put it back
	undoMeta                    // directory path had mode and mtime: set them back
)

type undoOp struct {
	kind  undoKind
	path  string
	aside string
	mode  fs.FileMode
	mtime time.Time
}

// asidePrefix names what a restore set aside in a non-empty target.
const asidePrefix = store.TempPrefix + "restore-old-"

// tempName is a fresh temporary name in the directory of p.
func tempName(p, prefix string) string {
	return path.Join(path.Dir(p), prefix+strconv.FormatUint(rand.Uint64(), 36))
}

// checkTarget refuses a To that is not a directory, or that is not empty
// unless force, without creating anything.
func checkTarget(to string, force bool) error {
	fi, err := os.Stat(to)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("restore: restore target %s: %w", to, err)
	case !fi.IsDir():
		return userErrorf(ErrBadRequest, "restore target %s is not a directory", to)
	}
	empty, err := isEmptyDir(to)
	if err != nil {
		return fmt.Errorf("restore: restore target %s: %w", to, err)
	}
	if !empty && !force {
		return userErrorf(ErrNotEmpty, "restore target %s is not empty", to)
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return true, nil
}

// openTarget checks To (see checkTarget), creates it if missing and opens it.
func openTarget(to string, force bool) (*target, error) {
	if err := checkTarget(to, force); err != nil {
		return nil, err
	}
	t := &target{dir: to}
	if _, err := os.Stat(to); errors.Is(err, fs.ErrNotExist) {
		top := to
		for {
			parent := filepath.Dir(top)
			if parent == top {
				break
			}
			if _, err := os.Lstat(parent); err == nil {
				break
			}
			top = parent
		}
		if err := os.MkdirAll(to, 0o755); err != nil {
			return nil, fmt.Errorf("restore: restore target %s: %w", to, err)
		}
		t.created = top
	} else {
		empty, err := isEmptyDir(to)
		if err != nil {
			return nil, fmt.Errorf("restore: restore target %s: %w", to, err)
		}
		t.wasEmpty = empty
		t.log = !empty
		if t.log {
			t.existed = make(map[string]bool)
		}
	}
	root, err := os.OpenRoot(to)
	if err != nil {
		if t.created != "" {
			os.RemoveAll(t.created)
		}
		return nil, fmt.Errorf("restore: restore target %s: %w", to, err)
	}
	t.root = root
	return t, nil
}

func (t *target) errorf(p string, err error) error {
	return fmt.Errorf("restore: restore %s: %w", p, err)
}

// mkdirAll makes sure p and its parents are directories in the target; a
// directory it creates gets perm (the entries' modes are set at the end).
func (t *target) mkdirAll(p string, perm fs.FileMode) error {
	if p == "." || p == "" {
		return nil
	}
	fi, err := t.root.Lstat(p)
	if err == nil && fi.IsDir() {
		if t.log {
			t.existed[p] = true
		}
		return nil
	}
	if err := t.mkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	if err == nil {
		// not a directory: what is there goes
		if err := t.clear(p); err != nil {
			return err
		}
	}
	if err := t.root.Mkdir(p, perm); err != nil {
		return t.errorf(p, err)
	}
	if t.log {
		t.undo = append(t.undo, undoOp{kind: undoCreated, path: p})
	}
	return nil
}

// clear removes what is at p, setting it aside when the target held
// something before the restore.
func (t *target) clear(p string) error {
	if !t.log {
		if err := t.root.RemoveAll(p); err != nil {
			return t.errorf(p, err)
		}
		return nil
	}
	aside := tempName(p, asidePrefix)
	if err := t.root.Rename(p, aside); err != nil {
		return t.errorf(p, err)
	}
	t.undo = append(t.undo, undoOp{kind: undoAside, path: p, aside: aside})
	t.asides = append(t.asides, aside)
	return nil
}

// place renames the finished temporary file tmp to p, replacing what is
// there (a file, or anything else).
func (t *target) place(tmp, p string) error {
	fi, err := t.root.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if t.log {
			t.undo = append(t.undo, undoOp{kind: undoCreated, path: p})
		}
	case err != nil:
		return t.errorf(p, err)
	case !fi.Mode().IsRegular():
		if err := t.clear(p); err != nil {
			return err
		}
		if t.log {
			t.undo = append(t.undo, undoOp{kind: undoCreated, path: p})
		}
	case t.log:
		// keep the old file under another name (a hard link: p never
		// disappears), then rename over it
		aside := tempName(p, asidePrefix)
		if err := t.root.Link(p, aside); err != nil {
			if err := t.root.Rename(p, aside); err != nil {
				return t.errorf(p, err)
			}
		}
		t.undo = append(t.undo, undoOp{kind: undoAside, path: p, aside: aside})
		t.asides = append(t.asides, aside)
	}
	if err := t.root.Rename(tmp, p); err != nil {
		return t.errorf(p, err)
	}
	return nil
}

// symlink makes p a symlink to target, replacing what is there.
func (t *target) symlink(p, target string) error {
	if _, err := t.root.Lstat(p); err == nil {
		if err := t.clear(p); err != nil {
			return err
		}
	}
	if err := t.root.Symlink(target, p); err != nil {
		return t.errorf(p, err)
	}
	if t.log {
		t.undo = append(t.undo, undoOp{kind: undoCreated, path: p})
	}
	return nil
}

// setDirMeta gives directory p its mode and mtime, logging the old ones
// of a directory that was there before.
func (t *target) setDirMeta(p string, mode fs.FileMode, mtime time.Time) error {
	if t.log && t.existed[p] {
		if fi, err := t.root.Lstat(p); err == nil {
			t.undo = append(t.undo, undoOp{kind: undoMeta, path: p, mode: fi.Mode().Perm(), mtime: fi.ModTime()})
		}
	}
	if err := t.root.Chmod(p, mode); err != nil {
		return t.errorf(p, err)
	}
	return t.setMtime(p, mtime)
}

// setMtime sets the mtime of p in the target without following a symlink.
func (t *target) setMtime(p string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return fmt.Errorf("restore: restore %s: mtime: %w", p, err)
	}
	abs := filepath.Join(t.dir, filepath.FromSlash(p))
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, abs, []unix.Timespec{{Nsec: unix.UTIME_OMIT}, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("restore: restore %s: set mtime: %w", p, err)
	}
	return nil
}

// commit ends a restore that is kept: what was set aside is deleted.
func (t *target) commit() error {
	var errs []error
	for _, a := range t.asides {
		if err := removeAll(filepath.Join(t.dir, a)); err != nil {
			errs = append(errs, err)
		}
	}
	t.root.Close()
	return errors.Join(errs...)
}

// rollback undoes the restore: it removes the To it created, empties the
// To that was empty, or replays the undo log backwards.
func (t *target) rollback() error {
	if t.created != "" {
		t.root.Close()
		return removeAll(t.created)
	}
	defer t.root.Close()
	if t.wasEmpty {
		f, err := t.root.Open(".")
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		var errs []error
		for _, n := range names {
			errs = append(errs, removeAll(filepath.Join(t.dir, n)))
		}
		return errors.Join(errs...)
	}
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		op := t.undo[i]
		switch op.kind {
		case undoCreated:
			errs = append(errs, removeAll(filepath.Join(t.dir, op.path)))
		case undoAside:
			if err := removeAll(filepath.Join(t.dir, op.path)); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, t.root.Rename(op.aside, op.path))
		case undoMeta:
			errs = append(errs, t.root.Chmod(op.path, op.mode))
			errs = append(errs, t.setMtime(op.path, op.mtime))
		}
	}
	return errors.Join(errs...)
}

// removeAll removes p and what is below it, first giving the owner write
// access to directories the restore made read-only.
func removeAll(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
