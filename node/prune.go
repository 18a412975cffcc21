package node

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/store"
)

// pruneHistory drops the history that retention no longer covers. For each
// path, the versions older than now-retention are deleted except the newest
// one at or before that cutoff, which is the path's state at the cutoff
// (and is deleted too when it is a tombstone), all in one transaction.
// Then the history chunk store is garbage-collected: the chunks that no
// remaining version references are deleted. Chunks are only deleted after
// the commit, so a crash leaves at worst orphan chunks, which the next run
// removes. The collection is skipped while a restore reads the history
// store (the next run does it).
func (r *replica) pruneHistory(now time.Time) error {
	if r.retention <= 0 {
		return nil
	}
	cutoff := now.Add(-r.retention)
	live := make(map[cid.Cid]struct{})
	var dropped, kept int
	err := r.n.db.Update(func(tx *store.Tx) error {
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
		err := tx.ForEach(r.hist.bucket, func(k, v []byte) error {
			ver, err := decodeVersion(k, v)
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
			if err := tx.Delete(r.hist.bucket, k); err != nil {
				return err
			}
		}
		dropped = len(del)
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: prune history of %s/%s: %w", r.sourceName, r.folder, err)
	}
	gc := r.hist.gcLock()
	if !gc.TryLock() {
		r.log.Debug("history chunk collection postponed: a restore is reading the history", "versions_dropped", dropped)
		return nil
	}
	defer gc.Unlock()
	var chunks int
	var freed int64
	err = r.hist.chunks.ForEach(func(c cid.Cid, size int64) error {
		if _, ok := live[c]; ok {
			return nil
		}
		if err := r.hist.chunks.Delete(c); err != nil {
			return err
		}
		chunks++
		freed += size
		return nil
	})
	if dropped > 0 || chunks > 0 {
		r.log.Info("history pruned", "cutoff", cutoff.UTC().Format(time.RFC3339), "versions_dropped", dropped,
			"versions_kept", kept, "chunks_freed", chunks, "bytes_freed", freed)
	}
	if err != nil {
		return fmt.Errorf("node: prune history chunks of %s/%s: %w", r.sourceName, r.folder, err)
	}
	return nil
}

// gcLocks holds, per history store, the lock that keeps the chunk
// collection of pruneHistory (writer) away from restores reading chunks
// (readers).
var gcLocks sync.Map // *history -> *sync.RWMutex

func (h *history) gcLock() *sync.RWMutex {
	l, _ := gcLocks.LoadOrStore(h, new(sync.RWMutex))
	return l.(*sync.RWMutex)
}
