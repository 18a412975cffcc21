package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
}

// OpenDB opens (creating if needed, mode 0600) the index file at path.
// Missing parent directories are created with mode 0700. If another
// process holds the file lock for more than about a second, OpenDB fails
// with a *PathError wrapping ErrLocked.
func OpenDB(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, &PathError{Op: "open db", Path: path, Err: err}
	}
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: dbLockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = ErrLocked
		}
		return nil, &PathError{Op: "open db", Path: path, Err: err}
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
// and rolled back otherwise. The error of fn is returned unchanged.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bdb.Update(func(btx *bbolt.Tx) error { return fn(&Tx{btx: btx}) })
}

// Batch is like Update but coalesces concurrent callers into one
// transaction (one fsync for many writers). fn may be called more than
// once (it is retried alone when another fn of the same batch fails), so
// it must be idempotent and must not have side effects outside the
// transaction. Batch only helps when many goroutines call it at once; a
// lone caller waits up to bbolt's batch delay (10 ms).
func (db *DB) Batch(fn func(*Tx) error) error {
	return db.bdb.Batch(func(btx *bbolt.Tx) error { return fn(&Tx{btx: btx}) })
}

// View runs fn in a read-only transaction. Writes inside it fail.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bdb.View(func(btx *bbolt.Tx) error { return fn(&Tx{btx: btx}) })
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
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
	return b.Get(key)
}

// Put sets key to val in bucket, creating the bucket path if needed.
func (tx *Tx) Put(bucket []string, key, val []byte) error {
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
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
	return b.ForEach(fn)
}

// Seek calls fn, in byte order, for every key of bucket that starts with
// prefix (an empty prefix visits every key). A missing bucket means no
// calls. An error of fn stops the iteration and is returned unchanged.
// fn must not modify the bucket.
func (tx *Tx) Seek(bucket []string, prefix []byte, fn func(k, v []byte) error) error {
	b := tx.bucket(bucket)
	if b == nil {
		return nil
	}
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
