package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrDamaged is matched (errors.Is) by every error of a database file whose
// pages are not what bbolt wrote: bbolt refused to open it, or an
// assertion of bbolt failed (bbolt panics on a page that does not describe
// itself as expected), or reading its memory-mapped pages faulted. The
// error is a *DamagedError naming the file.
var ErrDamaged = errors.New("store: database file damaged")

// DamagedError is the error of a damaged database file: Path is the file,
// What what was found wrong (bbolt's words).
type DamagedError struct {
	Path string
	What string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("store: %s damaged (%s): %s", filepath.Base(e.Path), e.Path, e.What)
}

// Unwrap makes the error match ErrDamaged.
func (e *DamagedError) Unwrap() error { return ErrDamaged }

// maxWhat bounds the length of DamagedError.What: some of bbolt's panic
// values list every page it checked.
const maxWhat = 300

func damaged(path string, what any) *DamagedError {
	s := strings.Join(strings.Fields(fmt.Sprint(what)), " ")
	if f, ok := what.(interface{ Addr() uintptr }); ok {
		s = fmt.Sprintf("a page points outside the file (memory fault at %#x)", f.Addr())
	}
	if len(s) > maxWhat {
		s = s[:maxWhat] + "..."
	}
	return &DamagedError{Path: path, What: s}
}

// How panics are told apart. bbolt panics (asserts) when a page is not
// what it expects, and reading a page that points past the mapped file
// faults; both mean a damaged file and become a *DamagedError. A panic of
// the caller's own function is a bug of the caller and is raised again
// unchanged. The boundary is the Tx methods: a panic raised inside one of
// them (or inside bbolt outside the caller's function: begin, commit,
// open) is bbolt's; a panic raised in the caller's function outside them
// is the caller's, unless it is a memory fault (reading a slice that
// points into the damaged mapping).
type (
	// dbPanic wraps a panic raised inside bbolt.
	dbPanic struct{ v any }
	// fnPanic wraps a panic raised by the caller's function.
	fnPanic struct{ v any }
)

// isFault reports whether v is a memory fault at a non-nil address, which
// the runtime raises as a panic instead of crashing only while
// debug.SetPanicOnFault is on (as it is inside every transaction).
func isFault(v any) bool {
	_, ok := v.(interface{ Addr() uintptr })
	return ok
}

// inBolt is deferred by every Tx method: a panic raised inside it is
// bbolt's, unless it is already marked (a panic of the caller's function
// passed through ForEach or Seek).
func inBolt() {
	r := recover()
	switch r.(type) {
	case nil:
		return
	case dbPanic, fnPanic:
		panic(r)
	}
	panic(dbPanic{r})
}

// inCaller is deferred around the caller's function: an unmarked panic
// is the caller's, unless it is a memory fault.
func inCaller() {
	r := recover()
	switch r.(type) {
	case nil:
		return
	case dbPanic, fnPanic:
		panic(r)
	}
	if isFault(r) {
		panic(dbPanic{r})
	}
	panic(fnPanic{r})
}

// callFn runs the caller's transaction function with its panics marked.
func callFn(fn func(*Tx) error, tx *Tx) error {
	defer inCaller()
	return fn(tx)
}

// wrapIter marks the panics of the caller's ForEach or Seek function.
func wrapIter(fn func(k, v []byte) error) func(k, v []byte) error {
	return func(k, v []byte) error {
		defer inCaller()
		return fn(k, v)
	}
}

// catch is deferred by View, Update and Batch (and OpenDB, through
// catchOpen): a panic of bbolt's becomes a *DamagedError in *err, one of
// the caller's is raised again as it was.
func catch(path string, err *error) {
	r := recover()
	switch v := r.(type) {
	case nil:
		return
	case fnPanic:
		panic(v.v)
	case dbPanic:
		r = v.v
	}
	*err = damaged(path, r)
}
