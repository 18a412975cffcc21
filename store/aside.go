package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// HeldDB is an index file locked against every other opener without being
// read (a damaged file may not open), to be set aside. See HoldDB.
type HeldDB struct {
	path string
	f    *os.File
}

// HoldDB takes the lock of the index file at path, as OpenDB would but
// without waiting and without reading the file. It fails at once with a
// *PathError wrapping ErrLocked when a process has the file open (a
// running node, an offline restore), and with one matching fs.ErrNotExist
// when there is no file.
func HoldDB(path string) (*HeldDB, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, &PathError{Op: "hold db", Path: path, Err: err}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			err = ErrLocked
		}
		return nil, &PathError{Op: "hold db", Path: path, Err: err}
	}
	return &HeldDB{path: path, f: f}, nil
}

// SetAside renames the held file to <path>.damaged-<UTC time of now>
// (with a number added when that name is taken), makes the rename durable
// and releases the file. It returns the new path. The next OpenDB of path
// creates a new, empty index.
func (h *HeldDB) SetAside(now time.Time) (string, error) {
	defer h.Release()
	base := h.path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	aside := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(h.path, aside); err != nil {
		return "", &PathError{Op: "set aside db", Path: h.path, Err: err}
	}
	if err := fsutil.SyncDir(filepath.Dir(h.path)); err != nil {
		return "", &PathError{Op: "set aside db", Path: h.path, Err: err}
	}
	return aside, nil
}

// Release unlocks the file (SetAside does it itself).
func (h *HeldDB) Release() error {
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}
