package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/replica/client"
	"github.com/vigil-mesh/vigil/store"
)

// Fix is a request to bring paths of the replica to the source's current
// state, made by verify (`vigil repair`, the scrub).
type Fix struct {
	Damaged []string // files whose bytes do not match the index
	Missing []string // paths the index has and the tree does not, or that differ from the source
	Extra   []string // paths in the tree the index does not know (removed)
	// HistoryChunks are damaged chunks of the history store: fetched again
	// from the source where it still has them, else removed (verify then
	// names the versions that lost them).
	HistoryChunks []cid.Cid
}

type fixReq struct {
	fix   Fix
	reply chan error
}

// Repair brings the paths of fix to the source's current state, on the
// replica's goroutine: damaged and missing paths are fetched again from the
// source, extra ones removed. It needs the source online.
func (r *Replica) Repair(ctx context.Context, fix Fix) error {
	req := fixReq{fix: fix, reply: make(chan error, 1)}
	select {
	case r.fixes <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// repairPaths runs a Fix (on the run goroutine).
func (r *Replica) repairPaths(ctx context.Context, fix Fix) error {
	if !r.Status().BaselineOK {
		return fmt.Errorf("replica %s/%s: baseline not done; it brings every path to the source's state", r.sourceName, r.folder)
	}
	if !r.net.Connected(r.source) {
		return fmt.Errorf("replica %s/%s: source %s is offline; repair fetches from it", r.sourceName, r.folder, r.sourceName)
	}
	ap := newApplier(r)
	ap.seq, ap.at = r.Status().Applied, time.Now()
	for _, p := range fix.Extra {
		if r.files.Get(p) != nil {
			continue // known meanwhile
		}
		if err := r.rep.Remove(p); err != nil {
			return err
		}
		ap.dirs[index.Parent(p)] = true
	}
	paths := append(append([]string(nil), fix.Damaged...), fix.Missing...)
	for _, p := range paths {
		// its bytes cannot be trusted (or read): forget where its chunks
		// were, so the repair fetches them instead of copying them
		r.damaged[p] = true
		r.files.Walk(p, func(e *baseline.Entry) { r.locs.Drop(e) })
	}
	for _, p := range paths {
		if err := ap.repair(ctx, p); err != nil {
			if pathProblem(err) {
				r.setProblem(p, err)
				ap.forget(p)
				continue
			}
			return err
		}
	}
	if err := r.refetchHistory(ctx, fix.HistoryChunks); err != nil {
		return err
	}
	ap.endChange()
	if err := ap.finish(); err != nil {
		return err
	}
	if err := r.db.Update(ap.save); err != nil {
		return fmt.Errorf("replica %s/%s: save: %w", r.sourceName, r.folder, err)
	}
	r.clearPathProblems(ap.written)
	r.setStatus(func(s *Status) { s.Files, s.Bytes = r.files.Files(), r.files.Bytes() })
	r.poke(r.ackKick)
	return nil
}

// refetchHistory replaces damaged history chunks with the source's copy,
// or removes them when the source no longer has them.
func (r *Replica) refetchHistory(ctx context.Context, cids []cid.Cid) error {
	if len(cids) == 0 {
		return nil
	}
	got := make(map[cid.Cid]bool)
	want := make([]baseline.Chunk, len(cids))
	for i, c := range cids {
		want[i] = baseline.Chunk{CID: c, Size: baseline.MaxChunk}
	}
	err := r.src.Chunks(ctx, want, func(f client.Chunk) error {
		if f.Data == nil {
			return nil
		}
		got[f.CID] = true
		if err := r.hist.Chunks.Delete(f.CID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return r.hist.Chunks.Put(f.CID, f.Data)
	})
	if err != nil {
		return err
	}
	for _, c := range cids {
		if !got[c] {
			r.log.Warn("damaged history chunk removed: the source no longer has it", "chunk", c.String())
			if err := r.hist.Chunks.Delete(c); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}
