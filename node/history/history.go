package history

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// Version is one applied state of a path.
type Version struct {
	Path  string
	Seq   uint64
	Time  time.Time
	Entry *baseline.Entry // nil: the path does not exist from this version on

	// root is the content root a version decoded from JSON had (its
	// entry comes back without chunks to compute it from).
	root string
}

// Store is the history of one replica: version rows in bbolt and the
// chunks replaced versions need.
type Store struct {
	Chunks *store.FileChunks
	bucket []string
	gc     sync.RWMutex // write: chunk collection; read: restores reading chunks
}

// Open opens the history of the replica of folder from src (a peer ID
// string) under dataDir.
func Open(dataDir, src, folder string) (*Store, error) {
	dir := filepath.Join(dataDir, "history", src, folder, "chunks")
	cs, err := store.OpenFileChunks(dir, store.NoSync())
	if err != nil {
		return nil, err
	}
	return &Store{Chunks: cs, bucket: []string{"history", src, folder, "v"}}, nil
}

func key(p string, seq uint64) []byte {
	k := make([]byte, 0, len(p)+9)
	k = append(k, p...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// EncodeVersion is the value of a version row.
func EncodeVersion(v *Version) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(v.Time.UnixNano()))
	if v.Entry == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return baseline.AppendEntry(b, v.Entry)
}

// DecodeVersion decodes a version row (key and value).
func DecodeVersion(k, val []byte) (Version, error) {
	var v Version
	// key = path, 0x00, 8-byte seq (paths never hold 0x00; the seq may)
	i := len(k) - 9
	if i < 1 || k[i] != 0 || len(val) < 9 {
		return v, fmt.Errorf("history: bad history row %q", k)
	}
	v.Path = string(k[:i])
	v.Seq = binary.BigEndian.Uint64(k[i+1:])
	v.Time = time.Unix(0, int64(binary.BigEndian.Uint64(val)))
	if val[8] == 1 {
		e, _, err := baseline.DecodeEntry(val[9:])
		if err != nil {
			return v, fmt.Errorf("history: history row of %q: %w", v.Path, err)
		}
		v.Entry = &e
	}
	return v, nil
}

// Save writes version rows in tx.
func (h *Store) Save(tx *store.Tx, vs []Version) error {
	for i := range vs {
		if err := tx.Put(h.bucket, key(vs[i].Path, vs[i].Seq), EncodeVersion(&vs[i])); err != nil {
			return err
		}
	}
	return nil
}

// Preserve copies the chunks of file e that keep does not hold (the new
// version of the same path, or nil) from the replica into the history
// chunk store, before the replica's copy is replaced or removed. A chunk
// that cannot be read or does not match is skipped with its error: the
// caller decides whether to go on.
func (h *Store) Preserve(rep *store.Replica, e *baseline.Entry, keep *baseline.Entry) error {
	if e == nil || e.Kind != baseline.KindFile || len(e.Chunks) == 0 {
		return nil
	}
	kept := make(map[cid.Cid]bool)
	if keep != nil {
		for _, c := range keep.Chunks {
			kept[c.CID] = true
		}
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var off int64
	var errs []error
	for _, c := range e.Chunks {
		at := off
		off += int64(c.Size)
		if kept[c.CID] {
			continue
		}
		kept[c.CID] = true
		if ok, _ := h.Chunks.Has(c.CID); ok {
			continue
		}
		if f == nil {
			var err error
			if f, err = rep.Open(e.Path); err != nil {
				return fmt.Errorf("history: keep history of %s: %w", e.Path, err)
			}
		}
		buf := make([]byte, c.Size)
		if _, err := f.ReadAt(buf, at); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("history: keep history of %s: %w", e.Path, err))
			continue
		}
		if err := baseline.VerifyChunk(c.CID, buf); err != nil {
			errs = append(errs, fmt.Errorf("history: keep history of %s: replica copy damaged: %w", e.Path, err))
			continue
		}
		if err := h.Chunks.Put(c.CID, buf); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// Versions returns the versions of path p (oldest first) from tx.
func (h *Store) Versions(tx *store.Tx, p string) ([]Version, error) {
	var out []Version
	prefix := append([]byte(p), 0)
	err := tx.Seek(h.bucket, prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return nil // a longer path sharing the prefix cannot contain 0x00: defensive
		}
		ver, err := DecodeVersion(k, v)
		if err != nil {
			return err
		}
		out = append(out, ver)
		return nil
	})
	return out, err
}

// ForEach calls fn for every version row, in path then seq order.
func (h *Store) ForEach(tx *store.Tx, fn func(Version) error) error {
	return tx.ForEach(h.bucket, func(k, v []byte) error {
		ver, err := DecodeVersion(k, v)
		if err != nil {
			return err
		}
		return fn(ver)
	})
}

// HasPath reports whether p or a path below it has a version row.
func (h *Store) HasPath(tx *store.Tx, p string) bool {
	found := false
	stop := errors.New("found")
	for _, prefix := range []string{p + "\x00", p + "/"} {
		tx.Seek(h.bucket, []byte(prefix), func(k, v []byte) error { found = true; return stop })
		if found {
			return true
		}
	}
	return false
}

// ReadLock keeps Prune from deleting chunks until the returned func is
// called: a restore holds it while it reads the history chunk store.
func (h *Store) ReadLock() (unlock func()) {
	h.gc.RLock()
	return h.gc.RUnlock
}
