package replica

import (
	"os"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/replica/local"
)

// errChunkUnavailable: no replica file gives the chunk intact.
var errChunkUnavailable = local.ErrUnavailable

// localFiles gives package local the replica's files; the caller holds
// what guards r.locs and r.files (the run loop owns them).
type localFiles struct{ r *Replica }

func newLocalReader(r *Replica) *local.Reader { return local.NewReader(localFiles{r}) }

func (l localFiles) Open(p string) (*os.File, error) { return l.r.rep.Open(p) }

func (l localFiles) Locs(c cid.Cid) []index.Loc { return l.r.locs[c] }

// Damaged records that replica file p does not hold what its index says:
// its chunk locations are dropped, so the chunks come from the source and
// the file itself is repaired by the record that needs it.
func (l localFiles) Damaged(p string, ch baseline.Chunk) {
	r := l.r
	r.m.damaged.Inc()
	r.log.Warn("replica file does not match its index (damaged); its chunks are fetched from the source and the file repaired",
		"path", p, "chunk", ch.CID.String())
	if e := r.files.Get(p); e != nil {
		r.locs.Drop(e)
	}
	r.damaged[p] = true
}
