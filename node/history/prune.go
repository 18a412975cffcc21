package history

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/store"
)

// Prune drops the history that retention no longer covers. For each
// path, the versions older than now-retention are deleted except the newest
// one at or before that cutoff, which is the path's state at the cutoff
// (and is deleted too when it is a tombstone), all in one transaction.
// Then the history chunk store is garbage-collected: the chunks that no
// remaining version references are deleted. Chunks are only deleted after
// the commit, so a crash leaves at worst orphan chunks, which the next run
// removes. The collection is skipped while a restore reads the history
// store (the next run does it).
func (h *Store) Prune(db *store.DB, now time.Time, retention time.Duration, log *slog.Logger) error {
	if retention <= 0 {
		return nil
	}
	cutoff := now.Add(-retention)
	live := make(map[cid.Cid]struct{})
	var dropped, kept int
	err := db.Update(func(tx *store.Tx) error {
		var del [][]byte
		var group []Version // versions of the current path, in seq order
		var keys [][]byte
		flush := func() {
			// the newest version at or before the cutoff is the state at
			// the cutoff: keep it unless it is a tombstone
			last := -1
			for i := range group {
				if !group[i].Time.After(cutoff) {
					last = i
				}
			}
			for i := range group {
				drop := i < last || (i == last && group[i].Entry == nil)
				if drop {
					del = append(del, keys[i])
					continue
				}
				kept++
				if e := group[i].Entry; e != nil {
					for _, c := range e.Chunks {
						live[c.CID] = struct{}{}
					}
				}
			}
			group, keys = group[:0], keys[:0]
		}
		err := tx.ForEach(h.bucket, func(k, v []byte) error {
			ver, err := DecodeVersion(k, v)
			if err != nil {
				return err
			}
			if len(group) > 0 && group[0].Path != ver.Path {
				flush()
			}
			group = append(group, ver)
			keys = append(keys, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		flush()
		for _, k := range del {
			if err := tx.Delete(h.bucket, k); err != nil {
				return err
			}
		}
		dropped = len(del)
		return nil
	})
	if err != nil {
		return fmt.Errorf("history: prune %s: %w", h.Chunks.Dir(), err)
	}
	if !h.gc.TryLock() {
		log.Debug("history chunk collection postponed: a restore is reading the history", "versions_dropped", dropped)
		return nil
	}
	defer h.gc.Unlock()
	var chunks int
	var freed int64
	err = h.Chunks.ForEach(func(c cid.Cid, size int64) error {
		if _, ok := live[c]; ok {
			return nil
		}
		if err := h.Chunks.Delete(c); err != nil {
			return err
		}
		chunks++
		freed += size
		return nil
	})
	if dropped > 0 || chunks > 0 {
		log.Info("history pruned", "cutoff", cutoff.UTC().Format(time.RFC3339), "versions_dropped", dropped,
			"versions_kept", kept, "chunks_freed", chunks, "bytes_freed", freed)
	}
	if err != nil {
		return fmt.Errorf("history: prune chunks in %s: %w", h.Chunks.Dir(), err)
	}
	return nil
}
