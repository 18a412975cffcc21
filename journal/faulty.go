package journal

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Faulty wraps a Log and makes its appends fail on command, for tests of
// the packages that write to a Log: Fail until Heal, or FailNext for a
// number of calls. A failed call stores nothing and returns the given
// error wrapped with ErrNotWritable, as a Journal reports a failed write;
// Err reports it while failures are set. Every other method is the
// wrapped Log's. Safe for concurrent use.
type Faulty struct {
	inner Log

	mu       sync.Mutex
	err      error // injected failure; nil: none
	left     int   // calls still to fail; < 0: until Heal
	calls    int
	failures int
}

// NewFaulty wraps l; it does not fail until told to.
func NewFaulty(l Log) *Faulty { return &Faulty{inner: l} }

// Fail makes every Append and AppendBatch fail with err until Heal.
func (f *Faulty) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.left = err, -1
}

// FailNext makes the next n Append or AppendBatch calls fail with err.
func (f *Faulty) FailNext(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.left = err, n
	if n <= 0 {
		f.err = nil
	}
}

// Heal ends the failures set by Fail or FailNext.
func (f *Faulty) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.left = nil, 0
}

// Calls counts the Append and AppendBatch calls so far (an Append is one
// call), failed or not.
func (f *Faulty) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Failures counts the calls failed on command so far.
func (f *Faulty) Failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures
}

// Unwrap returns the wrapped Log.
func (f *Faulty) Unwrap() Log { return f.inner }

// injected counts a call and returns its injected failure, if any.
func (f *Faulty) injected() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err == nil {
		return nil
	}
	err := fmt.Errorf("%w: %w", ErrNotWritable, f.err)
	f.failures++
	if f.left > 0 {
		if f.left--; f.left == 0 {
			f.err = nil
		}
	}
	return err
}

// Append implements Log.
func (f *Faulty) Append(payload []byte) (RecordInfo, error) {
	infos, err := f.AppendBatch([][]byte{payload})
	if err != nil {
		return RecordInfo{}, err
	}
	return infos[0], nil
}

// AppendBatch implements Log.
func (f *Faulty) AppendBatch(payloads [][]byte) ([]RecordInfo, error) {
	if err := f.injected(); err != nil {
		return nil, err
	}
	return f.inner.AppendBatch(payloads)
}

// Err implements Log: the injected failure while one is set, else the
// wrapped Log's.
func (f *Faulty) Err() error {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotWritable, err)
	}
	return f.inner.Err()
}

// First implements Log.
func (f *Faulty) First() uint64 { return f.inner.First() }

// Last implements Log.
func (f *Faulty) Last() uint64 { return f.inner.Last() }

// Read implements Log.
func (f *Faulty) Read(from uint64, fn func(Record) error) error { return f.inner.Read(from, fn) }

// Info implements Log.
func (f *Faulty) Info(seq uint64) (RecordInfo, error) { return f.inner.Info(seq) }

// Pending implements Log.
func (f *Faulty) Pending(after uint64) (uint64, int64, time.Time) { return f.inner.Pending(after) }

// Wait implements Log.
func (f *Faulty) Wait(ctx context.Context, after uint64) error { return f.inner.Wait(ctx, after) }

// Compact implements Log.
func (f *Faulty) Compact(before uint64) error { return f.inner.Compact(before) }

// SkipTo implements Log.
func (f *Faulty) SkipTo(next uint64) error { return f.inner.SkipTo(next) }

// Size implements Log.
func (f *Faulty) Size() int64 { return f.inner.Size() }

// Close implements Log.
func (f *Faulty) Close() error { return f.inner.Close() }
