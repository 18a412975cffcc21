package agent

import (
	"context"
	"time"

	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/wire"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// snapshot returns the folder's entries at a journal seq.
func (a *Agent) snapshot(ctx context.Context) (uint64, []*baseline.Entry, int64, error) {
	select {
	case <-a.readyCh:
	case <-ctx.Done():
		return 0, nil, 0, ctx.Err()
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.seq, a.files.Sorted(), a.files.Bytes(), nil
}

// pathState returns the current entries of p and its subtree.
func (a *Agent) pathState(p string) (uint64, []*baseline.Entry) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []*baseline.Entry
	a.files.Walk(p, func(e *baseline.Entry) { out = append(out, e) })
	return a.seq, out
}

// chunkLocsBatch returns where each of cids can be read, under one lock.
func (a *Agent) chunkLocsBatch(cids []cid.Cid) [][]index.Loc {
	out := make([][]index.Loc, len(cids))
	a.mu.RLock()
	defer a.mu.RUnlock()
	for i, c := range cids {
		out[i] = append([]index.Loc(nil), a.locs[c]...)
	}
	return out
}

func (a *Agent) isBackup(p peer.ID) bool {
	for _, b := range a.backups {
		if b == p {
			return true
		}
	}
	return false
}

// onAck records a backup's durable position and compacts the journal.
func (a *Agent) onAck(from peer.ID, ak wire.Ack) {
	a.mu.Lock()
	st := a.acks[from]
	if st == nil {
		a.mu.Unlock()
		return
	}
	if ak.Applied < st.Applied && !ak.Baseline && !st.Reset {
		a.log.Warn("backup went back in sequence", "peer", from.String(), "had", st.Applied, "now", ak.Applied)
	}
	st.Applied, st.AppliedAt, st.AckedAt = ak.Applied, ak.AppliedAt, time.Now()
	st.Baseline, st.DoneBytes, st.TotalBytes = ak.Baseline, ak.DoneBytes, ak.TotalBytes
	st.Errors, st.MoreErrors, st.Pending = ak.Errors, ak.MoreErrors, ak.Pending
	if !ak.Baseline {
		st.Reset = false
	}
	row := index.BackupRow{Applied: st.Applied, AppliedAt: st.AppliedAt, AckedAt: st.AckedAt, Baseline: st.Baseline}
	a.mu.Unlock()
	if err := a.db.Batch(func(tx *store.Tx) error { return a.rows.PutBackup(tx, []byte(from), row) }); err != nil {
		a.log.Error("save ack", "peer", from.String(), "err", err)
	}
}

// compact removes journal segments every backup has acknowledged, and
// beyond the size cap those of backups too far behind (which then
// re-baseline).
func (a *Agent) compact() {
	a.mu.RLock()
	min := a.j.Last()
	for _, st := range a.acks {
		if st.Applied < min {
			min = st.Applied
		}
	}
	a.mu.RUnlock()
	if err := a.j.Compact(min + 1); err != nil {
		a.log.Error("compact journal", "err", err)
		return
	}
	capBytes := a.capBytes
	if capBytes <= 0 || a.j.Size() <= capBytes {
		return
	}
	// Over the cap: drop the oldest half of what is retained.
	first, last := a.j.First(), a.j.Last()
	cut := first + (last-first)/2
	a.mu.Lock()
	for pid, st := range a.acks {
		if st.Applied+1 < cut && !st.Reset {
			st.Reset = true
			a.log.Warn("journal over its size cap: backup too far behind will re-baseline",
				"peer", pid.String(), "backup", a.peerName(pid), "applied", st.Applied, "cap_bytes", capBytes)
		}
	}
	a.mu.Unlock()
	if err := a.j.Compact(cut); err != nil {
		a.log.Error("compact journal", "err", err)
	}
}
