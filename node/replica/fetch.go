package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
)

// fetched is one chunk delivered by a fetch, in request order. Data is
// nil when the source no longer has the chunk or what it sent did not
// match the CID.
type fetched struct {
	CID  cid.Cid
	Data []byte
}

// A fetch keeps at most fetchWindow bytes of chunks requested and not yet
// received, in requests of at most fetchRequest bytes (and
// wire.ChunksPerRequest CIDs): enough to keep a link busy, little to lose
// when a node is killed mid-transfer, bounded memory.
const (
	fetchWindow  = 4 << 20
	fetchRequest = 512 << 10
)

// openSync opens a /vigil/sync stream to the replica's source.
func (r *Replica) openSync(ctx context.Context) (transport.Stream, error) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := r.net.Open(octx, r.source, mesh.ProtoSync)
	if err != nil {
		return nil, &sourceError{fmt.Errorf("replica: open stream to source %s (%s): %w", r.sourceName, r.source, err)}
	}
	return s, nil
}

// fetchBatch is one chunks request: its CIDs and their expected bytes.
type fetchBatch struct {
	cids  []cid.Cid
	bytes int64
}

// batches cuts want into requests.
func batches(want []baseline.Chunk) []fetchBatch {
	var out []fetchBatch
	var cur fetchBatch
	for _, c := range want {
		size := int64(max(c.Size, 1))
		if len(cur.cids) > 0 && (len(cur.cids) == wire.ChunksPerRequest || cur.bytes+size > fetchRequest) {
			out = append(out, cur)
			cur = fetchBatch{}
		}
		cur.cids = append(cur.cids, c.CID)
		cur.bytes += size
	}
	if len(cur.cids) > 0 {
		out = append(out, cur)
	}
	return out
}

// fetch asks the source for the chunks of want over one stream, pipelined
// in requests, and hands each chunk to fn in order, verified against its
// CID. fn runs on the caller's goroutine.
func (r *Replica) fetch(ctx context.Context, want []baseline.Chunk, fn func(fetched) error) error {
	if len(want) == 0 {
		return nil
	}
	s, err := r.openSync(ctx)
	if err != nil {
		return err
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()

	reqs := batches(want)
	g, gctx := errgroup.WithContext(ctx)
	window := semaphore.NewWeighted(fetchWindow)
	out := make(chan fetched, 16)
	g.Go(func() error {
		w := bufio.NewWriterSize(s, 64<<10)
		for _, b := range reqs {
			if err := window.Acquire(gctx, min(b.bytes, fetchWindow)); err != nil {
				return err
			}
			if err := writeFrame(w, wire.ChunksReq, wire.EncodeChunksReq(r.folder, b.cids)); err != nil {
				return &sourceError{err}
			}
			if err := w.Flush(); err != nil {
				return &sourceError{err}
			}
		}
		return nil
	})
	// Three stages run side by side: reading frames off the stream,
	// verifying their chunks, and the caller's fn.
	type frame struct {
		batch []cid.Cid
		body  []byte
	}
	frames := make(chan frame, 1)
	g.Go(func() error {
		defer close(frames)
		br := bufio.NewReaderSize(s, 256<<10)
		for _, b := range reqs {
			typ, body, err := readFrame(br)
			if err != nil {
				return &sourceError{fmt.Errorf("replica: fetch chunks from %s: %w", r.sourceName, err)}
			}
			switch typ {
			case wire.Chunks:
			case wire.Error:
				return wire.DecodeError(body)
			default:
				return fmt.Errorf("replica: fetch chunks from %s: unexpected frame 0x%02x", r.sourceName, typ)
			}
			window.Release(min(b.bytes, fetchWindow))
			select {
			case frames <- frame{batch: b.cids, body: body}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		defer close(out)
		for fr := range frames {
			ans := wire.NewChunkAnswers(fr.body)
			for _, c := range fr.batch {
				f := fetched{CID: c}
				data, err := ans.Next()
				if err != nil {
					return fmt.Errorf("replica: fetch chunks from %s: %w", r.sourceName, err)
				}
				if data != nil {
					if err := baseline.VerifyChunk(c, data); err != nil {
						r.log.Debug("chunk from source does not match", "cid", c.String(), "err", err)
					} else {
						f.Data = data
						r.fetchedChunks.Add(1)
						r.m.chunksFetched.Inc()
						r.m.bytesFetched.Add(float64(len(data)))
					}
				}
				select {
				case out <- f:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if err := ans.End(); err != nil {
				return fmt.Errorf("replica: fetch chunks from %s: %w", r.sourceName, err)
			}
		}
		return nil
	})
	var ferr error
	for f := range out {
		if ferr == nil {
			ferr = fn(f)
			if ferr != nil {
				s.Reset() // unblocks the reader and writer
			}
		}
	}
	gerr := g.Wait()
	if ferr != nil {
		return ferr
	}
	if gerr != nil && !errors.Is(gerr, context.Canceled) {
		return gerr
	}
	return gerr
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
		s.ferr <- r.fetch(ctx, want, func(f fetched) error {
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
		return nil, &sourceError{fmt.Errorf("replica: fetch from %s ended early", s.r.sourceName)}
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
