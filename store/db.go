package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors of the metadata index.
var (
	// ErrLocked is returned by OpenDB when the index file stays locked by
	// another process for longer than the lock timeout.
	ErrLocked = errors.New("store: database is locked (another vigil process may be using it)")
	// ErrNoBucket is returned when a bucket path is empty or contains an
	// empty name.
	ErrNoBucket = errors.New("store: empty bucket path")
)

// dbLockTimeout bounds how long OpenDB waits for the file lock.
const dbLockTimeout = time.Second

// DB is the embedded metadata index, a bbolt file. It is safe for
// concurrent use; only one process may hold the file open at a time.
type DB struct {
	bdb  *bbolt.DB
	path string

	batchMu sync.Mutex
	batch   *batch // collecting Batch callers; nil: none
}

// OpenDB opens (creating if needed, mode 0600) the index file at path.
// Missing parent directories are created with mode 0700. If another
// process holds the file lock for more than about a second, OpenDB fails
// with a *PathError wrapping ErrLocked. A file bbolt cannot read as a
// database fails with a *DamagedError (errors.Is ErrDamaged).
func OpenDB(path string) (db *DB, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, &PathError{Op: "open db", Path: path, Err: err}
	}
	// bbolt reads the meta and freelist pages while it opens the file and
	// panics on a damaged one, leaving the file open and locked: the file
	// is closed here then, which releases the lock. (Its mapping stays.)
	var file *os.File
	opts := &bbolt.Options{Timeout: dbLockTimeout, OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if db == nil && file != nil && errors.Is(err, ErrDamaged) {
			file.Close()
		}
	}()
	defer catch(path, &err)
	bdb, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			err = &PathError{Op: "open db", Path: path, Err: ErrLocked}
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
			errors.Is(err, bolterrors.ErrVersionMismatch):
			err = damaged(path, err)
		default:
			err = &PathError{Op: "open db", Path: path, Err: err}
		}
		return nil, err
	}
	return &DB{bdb: bdb, path: path}, nil
}

// Path returns the file path of the index.
func (db *DB) Path() string { return db.path }

// Close closes the index file. It waits for running transactions.
func (db *DB) Close() error {
	if err := db.bdb.Close(); err != nil {
		return &PathError{Op: "close db", Path: db.path, Err: err}
	}
	return nil
}

// Update runs fn in a read-write transaction, committed if fn returns nil
// and rolled back otherwise. The error of fn is returned unchanged; a
// damaged page met on the way fails with a *DamagedError (errors.Is
// ErrDamaged) instead of a panic. A panic of fn itself is raised again.
func (db *DB) Update(fn func(*Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catch(db.path, &err)
	return db.bdb.Update(func(btx *bbolt.Tx) error { return callFn(fn, &Tx{btx: btx}) })
}

// View runs fn in a read-only transaction. Writes inside it fail. Like
// Update, it fails with a *DamagedError on a damaged page.
func (db *DB) View(fn func(*Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catch(db.path, &err)
	return db.bdb.View(func(btx *bbolt.Tx) error { return callFn(fn, &Tx{btx: btx}) })
}

// Tx is a transaction on the index. Buckets are addressed by a path of
// names (outermost first); Put creates the buckets on its path, the other
// methods treat a missing bucket as empty.
//
// Every byte slice a Tx hands out (Get results, ForEach and Seek keys and
// values) points into the memory-mapped file and is valid only until the
// transaction ends: copy it (bytes.Clone) to keep it. Slices passed to Put
// must not be modified until the transaction ends.
//
// A Tx must only be used by the goroutine running the transaction function.
type Tx struct {
	btx *bbolt.Tx
}

// bucket returns the bucket at path, or nil if any part of it is missing.
func (tx *Tx) bucket(path []string) *bbolt.Bucket {
	defer inBolt()
	if len(path) == 0 {
		return nil
	}
	b := tx.btx.Bucket([]byte(path[0]))
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(name))
	}
	return b
}

// createBucket returns the bucket at path, creating every missing level.
func (tx *Tx) createBucket(path []string) (*bbolt.Bucket, error) {
	defer inBolt()
	if err := checkBucketPath(path); err != nil {
		return nil, err
	}
	b, err := tx.btx.CreateBucketIfNotExists([]byte(path[0]))
	if err != nil {
		return nil, fmt.Errorf("store: bucket %s: %w", bucketName(path[:1]), err)
	}
	for i, name := range path[1:] {
		b, err = b.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return nil, fmt.Errorf("store: bucket %s: %w", bucketName(path[:i+2]), err)
		}
	}
	return b, nil
}

func checkBucketPath(path []string) error {
	if len(path) == 0 {
		return ErrNoBucket
	}
	for _, name := range path {
		if name == "" {
			return fmt.Errorf("%w: %s", ErrNoBucket, bucketName(path))
		}
	}
	return nil
}

func bucketName(path []string) string { return strings.Join(path, "/") }

// Get returns the value of key in bucket, or nil if the bucket or the key
// is missing (or key names a nested bucket). The slice is valid only
// during the transaction.
func (tx *Tx) Get(bucket []string, key []byte) []byte {
	defer inBolt()
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
	return b.Get(key)
}

// Put sets key to val in bucket, creating the bucket path if needed.
func (tx *Tx) Put(bucket []string, key, val []byte) error {
	defer inBolt()
	b, err := tx.createBucket(bucket)
	if err != nil {
		return err
	}
	if err := b.Put(key, val); err != nil {
		return fmt.Errorf("store: put in %s: %w", bucketName(bucket), err)
	}
	return nil
}

// Delete removes key from bucket. A missing bucket or key is not an error.
func (tx *Tx) Delete(bucket []string, key []byte) error {
	defer inBolt()
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("store: delete in %s: %w", bucketName(bucket), err)
	}
	return nil
}

// ForEach calls fn for every key of bucket in byte order; v is nil for a
// nested bucket. A missing bucket means no calls. An error of fn stops the
// iteration and is returned unchanged. fn must not modify the bucket.
func (tx *Tx) ForEach(bucket []string, fn func(k, v []byte) error) error {
	defer inBolt()
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
	return b.ForEach(wrapIter(fn))
}

// Seek calls fn, in byte order, for every key of bucket that starts with
// prefix (an empty prefix visits every key). A missing bucket means no
// calls. An error of fn stops the iteration and is returned unchanged.
// fn must not modify the bucket.
func (tx *Tx) Seek(bucket []string, prefix []byte, fn func(k, v []byte) error) error {
	defer inBolt()
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
	fn = wrapIter(fn)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBucket removes bucket and everything below it. A missing bucket is
// not an error.
func (tx *Tx) DeleteBucket(bucket []string) error {
	defer inBolt()
	if err := checkBucketPath(bucket); err != nil {
		return err
	}
	last := []byte(bucket[len(bucket)-1])
	var err error
	if len(bucket) == 1 {
		err = tx.btx.DeleteBucket(last)
	} else {
		parent := tx.bucket(bucket[:len(bucket)-1])
		if parent == nil {
			return nil
		}
		err = parent.DeleteBucket(last)
	}
	if err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return fmt.Errorf("store: delete bucket %s: %w", bucketName(bucket), err)
	}
	return nil
}

// Count returns the number of keys directly in bucket (nested buckets count
// as one key each); 0 for a missing bucket. It walks the bucket: O(n).
func (tx *Tx) Count(bucket []string) int {
	defer inBolt()
	b := tx.bucket(bucket)
	if b == nil {
		return 0
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// U64 encodes v as 8 bytes big endian, so that numeric order is byte order.
func U64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// FromU64 decodes a value written by U64. It returns 0 if b is not 8 bytes
// long.
func FromU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
