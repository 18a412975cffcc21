package baseline

import (
	"strings"
	"sync"
)

// Faults makes reads of chosen paths fail on command, for tests of what
// callers do with a path that exists but cannot be read (a permission the
// process lacks, an I/O error), which a test running as root cannot get
// from chmod. A nil *Faults injects nothing. Safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	paths  map[string]error
	during map[string]func()
}

// FailRead makes reads of rel fail with err until Clear: opening a file,
// listing a directory (whose entry is still seen, with nothing below it).
func (f *Faults) FailRead(rel string, err error) {
	f.mu.Lock()
	if f.paths == nil {
		f.paths = make(map[string]error)
	}
	f.paths[rel] = err
	f.mu.Unlock()
}

// Clear ends the failures for rel ("" ends them all).
func (f *Faults) Clear(rel string) {
	f.mu.Lock()
	if rel == "" {
		f.paths = nil
	} else {
		delete(f.paths, rel)
	}
	f.mu.Unlock()
}

// Check returns the failure set for reading rel, nil if none.
func (f *Faults) Check(rel string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paths[strings.TrimSuffix(rel, "/")]
}

// StatOption configures Stat.
type StatOption func(*statOptions)

type statOptions struct {
	faults   *Faults
	deferred *int64
}

// Deferred makes Read return a file of up to 16 MiB as its bytes, read in
// one consistent copy, and leave the chunking to State.Hash: a caller that
// reads several files together checks them all before it spends time
// hashing. budget bounds the bytes so held (it shrinks with each file);
// past it files are hashed at once.
func Deferred(budget *int64) StatOption { return func(o *statOptions) { o.deferred = budget } }

// WithFaults makes Stat consult f before reading.
func WithFaults(f *Faults) StatOption { return func(o *statOptions) { o.faults = f } }

// DuringRead makes every read of the file rel call fn after the file's
// bytes were read and before the read is checked against the file's stamp
// (nil: no more calls): a test changes the file there to race the read.
func (f *Faults) DuringRead(rel string, fn func()) {
	f.mu.Lock()
	if f.during == nil {
		f.during = make(map[string]func())
	}
	if fn == nil {
		delete(f.during, rel)
	} else {
		f.during[rel] = fn
	}
	f.mu.Unlock()
}

func (f *Faults) duringRead(rel string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	fn := f.during[rel]
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}
