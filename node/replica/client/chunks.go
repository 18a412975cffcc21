package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/wire"
)

// Chunks keeps at most Window bytes of chunks requested and not yet
// received, in requests of at most Request bytes (and
// wire.ChunksPerRequest CIDs): enough to keep a link busy, little to lose
// when a node is killed mid-transfer, bounded memory.
const (
	Window  = 4 << 20
	Request = 512 << 10
)

// request is one chunks request: its CIDs and their expected bytes.
type request struct {
	cids  []cid.Cid
	bytes int64
}

// requests cuts want into requests.
func requests(want []baseline.Chunk) []request {
	var out []request
	var cur request
	for _, c := range want {
		size := int64(max(c.Size, 1))
		if len(cur.cids) > 0 && (len(cur.cids) == wire.ChunksPerRequest || cur.bytes+size > Request) {
			out = append(out, cur)
			cur = request{}
		}
		cur.cids = append(cur.cids, c.CID)
		cur.bytes += size
	}
	if len(cur.cids) > 0 {
		out = append(out, cur)
	}
	return out
}

// Chunks asks for the chunks of want over one stream, pipelined, and hands
// each to fn in request order, verified against its CID (Data nil: the
// source no longer has it, or sent something else). fn runs on the caller's
// goroutine; an error of fn stops the transfer and is returned.
func (c *Client) Chunks(ctx context.Context, want []baseline.Chunk, fn func(Chunk) error) error {
	if len(want) == 0 {
		return nil
	}
	st, err := c.open(ctx, 0, nil)
	if err != nil {
		return err
	}
	defer st.close()
	what := "fetch chunks from " + c.name

	reqs := requests(want)
	g, gctx := errgroup.WithContext(ctx)
	window := semaphore.NewWeighted(Window)
	out := make(chan Chunk, 16)
	// Four stages run side by side: writing requests, reading answer
	// frames off the stream, verifying their chunks, and the caller's fn.
	g.Go(func() error {
		for _, r := range reqs {
			if err := window.Acquire(gctx, min(r.bytes, Window)); err != nil {
				return err
			}
			if err := st.send(wire.ChunksReq, wire.EncodeChunksReq(c.folder, r.cids)); err != nil {
				return err
			}
		}
		return nil
	})
	type frame struct {
		at   int // index in want of the frame's first chunk
		n    int
		body []byte
	}
	frames := make(chan frame, 1)
	g.Go(func() error {
		defer close(frames)
		at := 0
		for _, r := range reqs {
			typ, body, err := st.next(what)
			if err != nil {
				return err
			}
			if typ != wire.Chunks {
				return fmt.Errorf("%s: unexpected frame 0x%02x", what, typ)
			}
			window.Release(min(r.bytes, Window))
			select {
			case frames <- frame{at: at, n: len(r.cids), body: body}:
			case <-gctx.Done():
				return gctx.Err()
			}
			at += len(r.cids)
		}
		return nil
	})
	g.Go(func() error {
		defer close(out)
		for fr := range frames {
			ans := wire.NewChunkAnswers(fr.body)
			for _, ch := range want[fr.at : fr.at+fr.n] {
				data, err := ans.Next()
				if err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				f := Chunk{Chunk: ch}
				if data != nil && baseline.VerifyChunk(ch.CID, data) == nil {
					f.Data = data
				}
				select {
				case out <- f:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if err := ans.End(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
	var ferr error
	for f := range out {
		if ferr == nil {
			if ferr = fn(f); ferr != nil {
				st.s.Reset() // unblocks the reader and writer
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
