package store

import (
	"errors"
	"sync"
	"time"
)

// Batch coalesces concurrent writers into one transaction, as bbolt's
// DB.Batch does. It is done here rather than by bbolt because bbolt runs a
// batch on a timer goroutine of its own, where a panic on a damaged page
// could not be recovered: here every batch runs through Update.
const (
	maxBatchSize  = 1000                  // callers in one transaction
	maxBatchDelay = 10 * time.Millisecond // a batch waits this long for more callers
)

// Batch is like Update but coalesces concurrent callers into one
// transaction (one fsync for many writers). fn may be called more than
// once (it is retried alone when another fn of the same batch fails), so
// it must be idempotent and must not have side effects outside the
// transaction. Batch only helps when many goroutines call it at once; a
// lone caller waits up to 10 ms. A damaged page fails every caller of the
// batch with a *DamagedError.
func (db *DB) Batch(fn func(*Tx) error) error {
	errc := make(chan error, 1)
	db.batchMu.Lock()
	if db.batch == nil || len(db.batch.calls) >= maxBatchSize {
		b := &batch{db: db}
		b.timer = time.AfterFunc(maxBatchDelay, b.trigger)
		db.batch = b
	}
	b := db.batch
	b.calls = append(b.calls, batchCall{fn: fn, err: errc})
	if len(b.calls) >= maxBatchSize {
		go b.trigger() // full: run it now
	}
	db.batchMu.Unlock()

	err := <-errc
	if err == errTrySolo {
		err = db.Update(fn)
	}
	return err
}

// errTrySolo tells a Batch caller that its function failed inside the
// batch: it runs it again in a transaction of its own, where its error (or
// panic) is its own.
var errTrySolo = errors.New("store: batch function failed; run it alone")

type batch struct {
	db    *DB
	timer *time.Timer
	start sync.Once
	calls []batchCall
}

type batchCall struct {
	fn  func(*Tx) error
	err chan<- error // buffered: run never blocks on it
}

func (b *batch) trigger() { b.start.Do(b.run) }

// run commits the batch: every function in one transaction. One that fails
// (or panics) is taken out and told to run alone, and the rest are tried
// again.
func (b *batch) run() {
	db := b.db
	db.batchMu.Lock()
	b.timer.Stop()
	if db.batch == b {
		db.batch = nil // callers from now on start a new batch
	}
	db.batchMu.Unlock()
	for len(b.calls) > 0 {
		failed := -1
		err := db.Update(func(tx *Tx) error {
			for i, c := range b.calls {
				if err := tryCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			c := b.calls[failed]
			b.calls[failed] = b.calls[len(b.calls)-1]
			b.calls = b.calls[:len(b.calls)-1]
			c.err <- errTrySolo
			continue
		}
		for _, c := range b.calls {
			c.err <- err
		}
		return
	}
}

// tryCall runs fn, turning any panic into an error: the caller runs fn
// again alone, on its own goroutine, where the panic is raised or
// recovered as Update does.
func tryCall(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errTrySolo
		}
	}()
	return fn(tx)
}
