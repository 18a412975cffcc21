package store

import (
	"strings"
	"sync"
)

// Faults makes a Replica's writes (files, directories, symlinks) fail on
// command, for tests of what callers do when the backup's disk is full or
// a name cannot be written. The zero value injects nothing; a nil *Faults
// too. Safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	all   error            // every write fails with it
	paths map[string]error // writes of these paths (and below) fail
}

// FailWrites makes every write fail with err until Clear.
func (f *Faults) FailWrites(err error) {
	f.mu.Lock()
	f.all = err
	f.mu.Unlock()
}

// FailPath makes writes of rel, and of anything below it, fail with err
// until Clear.
func (f *Faults) FailPath(rel string, err error) {
	f.mu.Lock()
	if f.paths == nil {
		f.paths = make(map[string]error)
	}
	f.paths[rel] = err
	f.mu.Unlock()
}

// Clear ends every injected failure.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.all, f.paths = nil, nil
	f.mu.Unlock()
}

func (f *Faults) check(rel string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.all != nil {
		return f.all
	}
	for p, err := range f.paths {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return err
		}
	}
	return nil
}
