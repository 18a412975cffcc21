package replica

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/replica/client"
)

// fetched is one chunk delivered by a fetch, in request order. Data is
// nil when the source no longer has the chunk or what it sent did not
// match the CID.
type fetched struct {
	CID  cid.Cid
	Data []byte
}

// chunkStream fetches chunks in the background while its consumer takes
// them in order with next.
type chunkStream struct {
	r      *Replica
	in     chan fetched
	ferr   chan error
	cancel context.CancelFunc
	err    error
	ended  bool
}

// streamChunks starts fetching want (none: an empty stream).
func (r *Replica) streamChunks(ctx context.Context, want []baseline.Chunk) *chunkStream {
	ctx, cancel := context.WithCancel(ctx)
	s := &chunkStream{r: r, in: make(chan fetched, 16), ferr: make(chan error, 1), cancel: cancel}
	go func() {
		defer close(s.in)
		s.ferr <- r.src.Chunks(ctx, want, func(c client.Chunk) error {
			f := fetched{CID: c.CID, Data: c.Data}
			if f.Data != nil {
				r.fetchedChunks.Add(1)
				r.m.chunksFetched.Inc()
				r.m.bytesFetched.Add(float64(len(f.Data)))
			}
			select {
			case s.in <- f:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return s
}

// next returns the next chunk, which must be c; nil data means the source
// no longer has it.
func (s *chunkStream) next(c cid.Cid) ([]byte, error) {
	f, ok := <-s.in
	if !ok {
		if err := s.wait(); err != nil {
			return nil, err
		}
		return nil, &client.SourceError{Err: fmt.Errorf("replica: fetch from %s ended early", s.r.sourceName)}
	}
	if !f.CID.Equals(c) {
		return nil, fmt.Errorf("replica: fetch from %s out of order", s.r.sourceName)
	}
	return f.Data, nil
}

// wait waits for the fetch to end and returns its error.
func (s *chunkStream) wait() error {
	if !s.ended {
		s.err, s.ended = <-s.ferr, true
	}
	return s.err
}

// close stops the fetch (if still running) and waits for it.
func (s *chunkStream) close() {
	s.cancel()
	for range s.in {
	}
	s.wait()
}

// fetch fetches want over one stream and hands each chunk to fn in request
// order, on the caller's goroutine.
func (r *Replica) fetch(ctx context.Context, want []baseline.Chunk, fn func(fetched) error) error {
	return r.src.Chunks(ctx, want, func(c client.Chunk) error {
		if c.Data != nil {
			r.fetchedChunks.Add(1)
			r.m.chunksFetched.Inc()
			r.m.bytesFetched.Add(float64(len(c.Data)))
		}
		return fn(fetched{CID: c.CID, Data: c.Data})
	})
}
