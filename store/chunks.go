package store

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// Errors of the chunk stores.
var (
	// ErrNotFound is returned (wrapped, naming the CID) when a chunk is missing.
	ErrNotFound = errors.New("store: not found")
	// ErrUndefinedCID is returned when an undefined cid.Cid is used as a key.
	ErrUndefinedCID = errors.New("store: undefined CID")
)

// ChunkStore is a content-addressed store of chunks keyed by CID. The store
// does not hash: callers verify that data matches its CID before Put, and
// re-verify after Get where bit rot matters. Implementations are safe for
// concurrent use.
type ChunkStore interface {
	// Has reports whether the chunk is stored.
	Has(c cid.Cid) (bool, error)
	// Get returns the chunk; an error wrapping ErrNotFound if it is missing.
	Get(c cid.Cid) ([]byte, error)
	// Put stores data under c. A chunk already present is not written again.
	Put(c cid.Cid, data []byte) error
	// Delete removes the chunk; a missing chunk is not an error.
	Delete(c cid.Cid) error
	// ForEach calls fn for every chunk (in no particular order) with its
	// size in bytes. An error of fn stops the iteration and is returned.
	ForEach(fn func(c cid.Cid, size int64) error) error
	// Size returns the number of chunk bytes stored.
	Size() (int64, error)
}

var (
	_ ChunkStore = (*FileChunks)(nil)
	_ ChunkStore = (*MemChunks)(nil)
)

const (
	chunkTmpDir  = ".tmp"
	chunkStripes = 256
)

// FileChunks is a ChunkStore keeping one file per chunk:
// dir/<last 2 characters of the CID string>/<CID string>. The fan-out uses
// the last characters because the first ones (multibase prefix, version,
// codec, hash function) are the same for all CIDs. A chunk is written to
// dir/.tmp/, fsynced, renamed to its final name and the fan-out directory
// is fsynced, so a crash never leaves a partial chunk under its final name;
// OpenFileChunks empties dir/.tmp/.
type FileChunks struct {
	dir    string
	noSync bool
	size   atomic.Int64
	locks  [chunkStripes]sync.Mutex // per-CID serialisation of Put/Delete
}

// ChunkOption changes how a FileChunks store writes.
type ChunkOption func(*FileChunks)

// NoSync makes Put skip its fsyncs: the caller makes many chunks durable
// at once (syncfs, see Replica.SyncFS) before it relies on them.
func NoSync() ChunkOption { return func(s *FileChunks) { s.noSync = true } }

// OpenFileChunks opens (creating, mode 0700) the chunk store in dir, removes
// temporary files left by a crash and sums the size of the stored chunks
// (a walk of the store, proportional to the number of chunks).
func OpenFileChunks(dir string, opts ...ChunkOption) (*FileChunks, error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &PathError{Op: "open chunks", Path: dir, Err: err}
	}
	tmp := filepath.Join(dir, chunkTmpDir)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, &PathError{Op: "clean chunk temp", Path: tmp, Err: err}
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, &PathError{Op: "open chunks", Path: tmp, Err: err}
	}
	s := &FileChunks{dir: dir}
	for _, o := range opts {
		o(s)
	}
	var total int64
	err := s.walk(func(_ cid.Cid, size int64) error {
		total += size
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.size.Store(total)
	return s, nil
}

// Dir returns the directory of the store.
func (s *FileChunks) Dir() string { return s.dir }

func (s *FileChunks) path(c cid.Cid) (dir, file string, err error) {
	if !c.Defined() {
		return "", "", ErrUndefinedCID
	}
	name := c.String()
	dir = filepath.Join(s.dir, name[len(name)-2:])
	return dir, filepath.Join(dir, name), nil
}

func (s *FileChunks) lock(c cid.Cid) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write(c.Bytes())
	return &s.locks[h.Sum32()%chunkStripes]
}

// Has reports whether the chunk file exists.
func (s *FileChunks) Has(c cid.Cid) (bool, error) {
	_, file, err := s.path(c)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(file)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, &PathError{Op: "stat chunk", Path: file, Err: err}
	}
}

// Get reads the chunk file.
func (s *FileChunks) Get(c cid.Cid) ([]byte, error) {
	_, file, err := s.path(c)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("get chunk %s: %w", c, ErrNotFound)
		}
		return nil, &PathError{Op: "read chunk", Path: file, Err: err}
	}
	return data, nil
}

// Put writes the chunk durably unless it is already present.
func (s *FileChunks) Put(c cid.Cid, data []byte) error {
	dir, file, err := s.path(c)
	if err != nil {
		return err
	}
	mu := s.lock(c)
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Lstat(file); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return &PathError{Op: "stat chunk", Path: file, Err: err}
	}
	if err := s.mkdirFanout(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, chunkTmpDir), "chunk-*")
	if err != nil {
		return &PathError{Op: "put chunk", Path: file, Err: err}
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return &PathError{Op: "write chunk", Path: tmp, Err: err}
	}
	if !s.noSync {
		if err := f.Sync(); err != nil {
			return &PathError{Op: "sync chunk", Path: tmp, Err: err}
		}
	}
	if err := f.Close(); err != nil {
		return &PathError{Op: "close chunk", Path: tmp, Err: err}
	}
	if err := os.Rename(tmp, file); err != nil {
		return &PathError{Op: "rename chunk", Path: file, Err: err}
	}
	ok = true
	s.size.Add(int64(len(data)))
	if s.noSync {
		return nil
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return &PathError{Op: "sync chunk dir", Path: dir, Err: err}
	}
	return nil
}

// mkdirFanout creates a fan-out directory, fsyncing the store directory
// when it is new.
func (s *FileChunks) mkdirFanout(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return &PathError{Op: "mkdir chunk dir", Path: dir, Err: err}
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return &PathError{Op: "sync chunk dir", Path: s.dir, Err: err}
	}
	return nil
}

// Delete removes the chunk file.
func (s *FileChunks) Delete(c cid.Cid) error {
	_, file, err := s.path(c)
	if err != nil {
		return err
	}
	mu := s.lock(c)
	mu.Lock()
	defer mu.Unlock()
	fi, err := os.Lstat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &PathError{Op: "stat chunk", Path: file, Err: err}
	}
	if err := os.Remove(file); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return &PathError{Op: "delete chunk", Path: file, Err: err}
	}
	s.size.Add(-fi.Size())
	return nil
}

// ForEach calls fn for every chunk file, fan-out directory by directory.
// Files whose name is not a CID are skipped. Chunks put or deleted during
// the walk may or may not be seen.
func (s *FileChunks) ForEach(fn func(c cid.Cid, size int64) error) error {
	return s.walk(fn)
}

func (s *FileChunks) walk(fn func(c cid.Cid, size int64) error) error {
	fanouts, err := os.ReadDir(s.dir)
	if err != nil {
		return &PathError{Op: "list chunks", Path: s.dir, Err: err}
	}
	for _, fo := range fanouts {
		if !fo.IsDir() || len(fo.Name()) != 2 {
			continue
		}
		dir := filepath.Join(s.dir, fo.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return &PathError{Op: "list chunks", Path: dir, Err: err}
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			c, err := cid.Decode(e.Name())
			if err != nil || c.String() != e.Name() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted during the walk
			}
			if err != nil {
				return &PathError{Op: "stat chunk", Path: filepath.Join(dir, e.Name()), Err: err}
			}
			if err := fn(c, fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Size returns the bytes stored, kept up to date by Put and Delete.
func (s *FileChunks) Size() (int64, error) { return s.size.Load(), nil }

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
