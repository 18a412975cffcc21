package replica

import (
	"context"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
)

// salvage indexes the chunks of the files a baseline cut short (the node
// was killed, the source went away) left in the staging directory, so the
// next attempt copies them instead of fetching them again: a staged file
// is written from its start, so each of its chunks but a torn last one is
// a chunk of the file it was becoming. Files holding nothing new (all their
// chunks are in the replica or in another staged file) are removed.
func (r *Replica) salvage(ctx context.Context) map[cid.Cid]index.Loc {
	dir := r.rep.Staging()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return nil
	}
	out := make(map[cid.Cid]index.Loc)
	var files int
	var bytes int64
	for _, de := range ents {
		if ctx.Err() != nil {
			return out
		}
		p := filepath.Join(dir, de.Name())
		if !de.Type().IsRegular() {
			os.RemoveAll(p)
			continue
		}
		chunks, _, err := baseline.ChunkFile(ctx, p, nil)
		if err != nil {
			os.Remove(p)
			continue
		}
		fresh := false
		var off int64
		for _, ch := range chunks {
			if _, ok := out[ch.CID]; !ok && len(r.locs[ch.CID]) == 0 {
				out[ch.CID] = index.Loc{Path: p, Off: off, Size: ch.Size}
				fresh = true
				bytes += int64(ch.Size)
			}
			off += int64(ch.Size)
		}
		if !fresh {
			os.Remove(p)
			continue
		}
		files++
	}
	if files > 0 {
		r.log.Info("salvaged files staged by an interrupted baseline", "files", files, "bytes", bytes)
	}
	return out
}
