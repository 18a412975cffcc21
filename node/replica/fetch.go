package replica

import (
	"context"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/replica/client"
)

// streamChunks starts fetching want in the background (see client.Stream).
func (r *Replica) streamChunks(ctx context.Context, want []baseline.Chunk) *client.Stream {
	return r.src.Stream(ctx, want, r.countFetched)
}

// fetch fetches want over one stream and hands each chunk to fn in request
// order, on the caller's goroutine.
func (r *Replica) fetch(ctx context.Context, want []baseline.Chunk, fn func(client.Chunk) error) error {
	return r.src.Chunks(ctx, want, func(c client.Chunk) error {
		r.countFetched(c)
		return fn(c)
	})
}

// countFetched counts a chunk received (Data nil: the source did not have
// it).
func (r *Replica) countFetched(c client.Chunk) {
	if c.Data != nil {
		r.fetchedChunks.Add(1)
		r.m.chunksFetched.Inc()
		r.m.bytesFetched.Add(float64(len(c.Data)))
	}
}
