package journal

import (
	"io/fs"
	"sync"
	"sync/atomic"
)

// Faults makes the file operations of a Journal opened WithFaults fail on
// command, so that tests drive it through full disks, I/O errors and torn
// writes on the real file format. Writes and truncations of segment
// files count as writes; fsyncs of files and of the directory as syncs.
// Reads are never affected. An injected error is an *fs.PathError naming
// the file, as a real one is, so errors.Is(err, syscall.ENOSPC) holds
// when ENOSPC was injected.
//
// The zero value injects nothing; methods are safe for concurrent use
// with the journal. When no fault is set the journal pays one atomic load
// per operation.
type Faults struct {
	set atomic.Bool // some fault is set

	mu       sync.Mutex
	writeErr error // every write fails until cleared
	syncErr  error // every sync fails until cleared
	tearErr  error // the next write stores tearKeep bytes, then fails
	tearKeep int
	injected int
}

// FailWrites makes every write and truncation fail with err until
// FailWrites(nil) or Clear. The write stores nothing.
func (f *Faults) FailWrites(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr = err
	f.updateLocked()
}

// FailSyncs makes every fsync fail with err until FailSyncs(nil) or
// Clear.
func (f *Faults) FailSyncs(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncErr = err
	f.updateLocked()
}

// TearNextWrite makes the next write store only its first keep bytes
// (all of them if it is shorter) and then fail with err, once. It takes
// precedence over FailWrites.
func (f *Faults) TearNextWrite(keep int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tearKeep, f.tearErr = max(keep, 0), err
	f.updateLocked()
}

// Clear removes every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr, f.syncErr, f.tearErr = nil, nil, nil
	f.updateLocked()
}

// Injected counts the operations failed so far.
func (f *Faults) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

func (f *Faults) updateLocked() {
	f.set.Store(f.writeErr != nil || f.syncErr != nil || f.tearErr != nil)
}

// active is the cheap check of the write path; f may be nil.
func (f *Faults) active() bool { return f != nil && f.set.Load() }

// write decides the fate of an n-byte write to path: nil error to go on;
// otherwise an error after storing the first keep bytes.
func (f *Faults) write(path string, n int) (keep int, err error) {
	if !f.active() {
		return n, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tearErr != nil {
		keep, err = min(f.tearKeep, n), f.tearErr
		f.tearErr = nil
		f.updateLocked()
	} else if f.writeErr != nil {
		err = f.writeErr
	} else {
		return n, nil
	}
	f.injected++
	return keep, &fs.PathError{Op: "write", Path: path, Err: err}
}

// truncate returns the error of a truncation of path, if one is set.
func (f *Faults) truncate(path string) error {
	return f.fail("truncate", path, func() error { return f.writeErr })
}

// sync returns the error of an fsync of path, if one is set.
func (f *Faults) sync(path string) error {
	return f.fail("sync", path, func() error { return f.syncErr })
}

func (f *Faults) fail(op, path string, which func() error) error {
	if !f.active() {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := which()
	if err == nil {
		return nil
	}
	f.injected++
	return &fs.PathError{Op: op, Path: path, Err: err}
}
