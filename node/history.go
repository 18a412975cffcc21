package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// History of a replica, kept on the backup node:
//
//   - every applied state of every path is a version row in bbolt bucket
//     ["history", <source>, <folder>, "v"], key = path, 0x00, seq (8 bytes
//     big endian) -- so a path's versions are adjacent and in seq order --
//     and value = unix nanos (8 bytes BE, the source's capture time of the
//     change), then either 0x00 (the path does not exist from then on) or
//     0x01 followed by the entry (baseline entry codec);
//   - the content of a version lives in the replica while the replica still
//     holds it; chunks a change removes from the replica (a file replaced,
//     deleted, or renamed over) are first copied into the replica's history
//     chunk store, DATA_DIR/history/<source>/<folder>/chunks, once per CID.
//
// A version row and the applied seq are committed in the same transaction
// after the chunks it depends on are durable, so a crash loses neither.

// Version is one applied state of a path.
type Version struct {
	Path  string
	Seq   uint64
	Time  time.Time
	Entry *baseline.Entry // nil: the path does not exist from this version on
}

// history is the history store of one replica.
type history struct {
	chunks *store.FileChunks
	bucket []string
}

func openHistory(dataDir, src, folder string) (*history, error) {
	dir := filepath.Join(dataDir, "history", src, folder, "chunks")
	cs, err := store.OpenFileChunks(dir, store.NoSync())
	if err != nil {
		return nil, err
	}
	return &history{chunks: cs, bucket: []string{"history", src, folder, "v"}}, nil
}

func versionKey(p string, seq uint64) []byte {
	k := make([]byte, 0, len(p)+9)
	k = append(k, p...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func encodeVersion(v *Version) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(v.Time.UnixNano()))
	if v.Entry == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return baseline.AppendEntry(b, v.Entry)
}

// decodeVersion decodes a version row.
func decodeVersion(k, val []byte) (Version, error) {
	var v Version
	// key = path, 0x00, 8-byte seq (paths never hold 0x00; the seq may)
	i := len(k) - 9
	if i < 1 || k[i] != 0 || len(val) < 9 {
		return v, fmt.Errorf("node: bad history row %q", k)
	}
	v.Path = string(k[:i])
	v.Seq = binary.BigEndian.Uint64(k[i+1:])
	v.Time = time.Unix(0, int64(binary.BigEndian.Uint64(val)))
	if val[8] == 1 {
		e, _, err := baseline.DecodeEntry(val[9:])
		if err != nil {
			return v, fmt.Errorf("node: history row of %q: %w", v.Path, err)
		}
		v.Entry = &e
	}
	return v, nil
}

// save writes version rows in tx.
func (h *history) save(tx *store.Tx, vs []Version) error {
	for i := range vs {
		if err := tx.Put(h.bucket, versionKey(vs[i].Path, vs[i].Seq), encodeVersion(&vs[i])); err != nil {
			return err
		}
	}
	return nil
}

// preserve copies the chunks of file e that keep does not hold (the new
// version of the same path, or nil) from the replica into the history
// chunk store, before the replica's copy is replaced or removed. A chunk
// that cannot be read or does not match is skipped with its error: the
// caller decides whether to go on.
func (h *history) preserve(rep *store.Replica, e *baseline.Entry, keep *baseline.Entry) error {
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
		if ok, _ := h.chunks.Has(c.CID); ok {
			continue
		}
		if f == nil {
			var err error
			if f, err = rep.Open(e.Path); err != nil {
				return fmt.Errorf("node: keep history of %s: %w", e.Path, err)
			}
		}
		buf := make([]byte, c.Size)
		if _, err := f.ReadAt(buf, at); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("node: keep history of %s: %w", e.Path, err))
			continue
		}
		if err := baseline.VerifyChunk(c.CID, buf); err != nil {
			errs = append(errs, fmt.Errorf("node: keep history of %s: replica copy damaged: %w", e.Path, err))
			continue
		}
		if err := h.chunks.Put(c.CID, buf); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// Versions returns the versions of path p (oldest first) from tx.
func (h *history) versions(tx *store.Tx, p string) ([]Version, error) {
	var out []Version
	prefix := append([]byte(p), 0)
	err := tx.Seek(h.bucket, prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return nil // a longer path sharing the prefix cannot contain 0x00: defensive
		}
		ver, err := decodeVersion(k, v)
		if err != nil {
			return err
		}
		out = append(out, ver)
		return nil
	})
	return out, err
}
