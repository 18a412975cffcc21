package client

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

// Stream fetches chunks in the background (with Chunks) while its consumer
// takes them in request order with Next.
type Stream struct {
	c      *Client
	in     chan Chunk
	ferr   chan error
	cancel context.CancelFunc
	err    error
	ended  bool
}

// Stream starts fetching want (none: an empty stream). got, if set, is
// called with each chunk received, on the fetching goroutine. The caller
// must Close the stream.
func (c *Client) Stream(ctx context.Context, want []baseline.Chunk, got func(Chunk)) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{c: c, in: make(chan Chunk, 16), ferr: make(chan error, 1), cancel: cancel}
	go func() {
		defer close(s.in)
		s.ferr <- c.Chunks(ctx, want, func(ch Chunk) error {
			if got != nil {
				got(ch)
			}
			select {
			case s.in <- ch:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return s
}

// Next returns the next chunk, which must be id; nil data means the
// source no longer has it.
func (s *Stream) Next(id cid.Cid) ([]byte, error) {
	ch, ok := <-s.in
	if !ok {
		if err := s.Wait(); err != nil {
			return nil, err
		}
		return nil, &SourceError{Err: fmt.Errorf("replica: fetch from %s ended early", s.c.name)}
	}
	if !ch.CID.Equals(id) {
		return nil, fmt.Errorf("replica: fetch from %s out of order", s.c.name)
	}
	return ch.Data, nil
}

// Wait waits for the fetch to end and returns its error.
func (s *Stream) Wait() error {
	if !s.ended {
		s.err, s.ended = <-s.ferr, true
	}
	return s.err
}

// Close stops the fetch (if still running) and waits for it.
func (s *Stream) Close() {
	s.cancel()
	for range s.in {
	}
	s.Wait()
}
