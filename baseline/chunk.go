package baseline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/zeebo/blake3"
)

const digestLen = 32

// ChunkCID returns the CID of a chunk: CIDv1, raw codec, BLAKE3-256
// multihash of data.
func ChunkCID(data []byte) cid.Cid {
	sum := blake3.Sum256(data)
	return digestCID(sum[:])
}

// digestCID wraps a 32-byte BLAKE3 digest as a raw CIDv1 without rehashing.
func digestCID(digest []byte) cid.Cid {
	mh, err := multihash.Encode(digest, multihash.BLAKE3)
	if err != nil {
		// Encode fails only for unknown codes, and BLAKE3 is known.
		panic("baseline: multihash.Encode: " + err.Error())
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// checkCID reports whether c is a chunk CID this package accepts: CIDv1,
// raw codec, BLAKE3 or SHA2-256 multihash with a 32-byte digest. It returns
// the multihash code and digest.
func checkCID(c cid.Cid) (uint64, []byte, error) {
	if !c.Defined() {
		return 0, nil, fmt.Errorf("%w: undefined", ErrUnsupportedCID)
	}
	if c.Version() != 1 || c.Type() != cid.Raw {
		return 0, nil, fmt.Errorf("%w: %s: want raw CIDv1", ErrUnsupportedCID, c)
	}
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %w", ErrUnsupportedCID, c, err)
	}
	if (dec.Code != multihash.BLAKE3 && dec.Code != multihash.SHA2_256) || len(dec.Digest) != digestLen {
		return 0, nil, fmt.Errorf("%w: %s: hash %s of %d bytes", ErrUnsupportedCID, c, multihash.Codes[dec.Code], len(dec.Digest))
	}
	return dec.Code, dec.Digest, nil
}

// VerifyChunk checks that data hashes to c, using the hash function that c
// names (BLAKE3-256 or SHA2-256). It returns an error wrapping
// ErrChunkMismatch on a mismatch and ErrUnsupportedCID for any other kind
// of CID.
func VerifyChunk(c cid.Cid, data []byte) error {
	code, want, err := checkCID(c)
	if err != nil {
		return err
	}
	var got [digestLen]byte
	switch code {
	case multihash.BLAKE3:
		got = blake3.Sum256(data)
	case multihash.SHA2_256:
		got = sha256.Sum256(data)
	}
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("%w: %s (%d bytes)", ErrChunkMismatch, c, len(data))
	}
	return nil
}

// ChunkReader cuts r into content-defined chunks and hashes them. fn, if not
// nil, is called for each chunk in stream order with the chunk's bytes
// (valid only during the call) and its Chunk; an error from fn stops the
// stream and is returned. Cutting runs in one goroutine and hashing in
// GOMAXPROCS workers; memory stays bounded whatever the stream length.
func ChunkReader(ctx context.Context, r io.Reader, fn func(data []byte, c Chunk) error) ([]Chunk, error) {
	return chunkStream(ctx, r, &defaultCDC, runtime.GOMAXPROCS(0), fn)
}

// ChunkFile opens path and chunks it like ChunkReader. It returns the chunks
// and the number of bytes read. fn may be nil.
func ChunkFile(ctx context.Context, path string, fn func(data []byte, c Chunk) error) ([]Chunk, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	chunks, err := ChunkReader(ctx, f, fn)
	if err != nil {
		return nil, 0, err
	}
	return chunks, sumSizes(chunks), nil
}

func sumSizes(chunks []Chunk) int64 {
	var n int64
	for _, c := range chunks {
		n += int64(c.Size)
	}
	return n
}

// segment returns the size of the read buffers: each holds many chunks so
// that one hashing task amortizes the hand-off between goroutines.
func (c *cdc) segment() int { return max(256<<10, 8*c.max) }

var segPools sync.Map // segment size -> *sync.Pool of *[]byte

func getSeg(size int) *[]byte {
	p, _ := segPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool).Get().(*[]byte)
}

func putSeg(size int, b *[]byte) {
	if p, ok := segPools.Load(size); ok {
		p.(*sync.Pool).Put(b)
	}
}

// batch is one segment of the stream: its bytes, the chunk ends within it
// and, once done is closed, the chunks' CIDs.
type batch struct {
	seg    *[]byte
	data   []byte
	ends   []int
	chunks []Chunk
	done   chan struct{}
}

func (b *batch) hash() {
	b.chunks = make([]Chunk, len(b.ends))
	start := 0
	for i, end := range b.ends {
		sum := blake3.Sum256(b.data[start:end])
		b.chunks[i] = Chunk{CID: digestCID(sum[:]), Size: uint32(end - start)}
		start = end
	}
}

func (b *batch) deliver(ctx context.Context, out []Chunk, fn func([]byte, Chunk) error) ([]Chunk, error) {
	start := 0
	for i, end := range b.ends {
		if fn != nil {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			if err := fn(b.data[start:end], b.chunks[i]); err != nil {
				return out, err
			}
		}
		start = end
	}
	return append(out, b.chunks...), nil
}

// cutAll appends the chunk ends found in data[from:] to ends and returns the
// offset of the first byte not yet cut. Unless final, cutting stops when
// fewer than c.max bytes remain, as the next cut may depend on bytes not yet
// read.
func (c *cdc) cutAll(data []byte, from int, final bool, ends []int) ([]int, int) {
	pos := from
	for len(data)-pos >= c.max || (final && pos < len(data)) {
		pos += c.cut(data[pos:])
		ends = append(ends, pos)
	}
	return ends, pos
}

// fill reads into buf until it is full or the stream ends.
func fill(r io.Reader, buf []byte) (int, bool, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return n, false, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, true, nil
	default:
		return n, false, err
	}
}

func chunkStream(ctx context.Context, r io.Reader, c *cdc, workers int, fn func([]byte, Chunk) error) ([]Chunk, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	segSize := c.segment()
	seg := getSeg(segSize)
	n, eof, err := fill(r, *seg)
	if err != nil {
		putSeg(segSize, seg)
		return nil, err
	}
	if eof {
		// Small stream: one segment, no goroutines.
		b := &batch{seg: seg, data: (*seg)[:n]}
		b.ends, _ = c.cutAll(b.data, 0, true, nil)
		b.hash()
		out, err := b.deliver(ctx, nil, fn)
		putSeg(segSize, seg)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return chunkPipeline(ctx, r, c, max(1, workers), seg, n, fn)
}

// chunkPipeline: a cutter goroutine reads segments and finds cut points,
// hashers hash whole segments, and the caller's goroutine delivers them in
// order. At most inflight segments exist at once.
func chunkPipeline(ctx context.Context, r io.Reader, c *cdc, workers int, first *[]byte, firstLen int, fn func([]byte, Chunk) error) ([]Chunk, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	segSize := c.segment()
	inflight := min(workers, 8) + 2
	slots := make(chan struct{}, inflight)
	work := make(chan *batch, inflight)
	order := make(chan *batch, inflight)
	var wg sync.WaitGroup
	var cutErr error // written by the cutter before it closes order

	slots <- struct{}{} // the first segment
	wg.Add(1)
	go func() { // cutter
		defer wg.Done()
		defer close(work)
		defer close(order)
		carry := make([]byte, 0, c.max)
		seg, n, eof := first, firstLen, false
		for {
			data := (*seg)[:n]
			b := &batch{seg: seg, data: data, done: make(chan struct{})}
			var pos int
			b.ends, pos = c.cutAll(data, 0, eof, nil)
			b.data = data[:pos]
			carry = append(carry[:0], data[pos:]...)
			select {
			case order <- b:
			case <-ctx.Done():
				return
			}
			select {
			case work <- b:
			case <-ctx.Done():
				return
			}
			if eof {
				return
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			seg = getSeg(segSize)
			copy(*seg, carry)
			var m int
			var err error
			m, eof, err = fill(r, (*seg)[len(carry):])
			if err != nil {
				cutErr = err
				return
			}
			n = len(carry) + m
		}
	}()
	for range workers {
		wg.Add(1)
		go func() { // hasher
			defer wg.Done()
			for b := range work {
				if ctx.Err() == nil {
					b.hash()
				}
				close(b.done)
			}
		}()
	}

	var out []Chunk
	var err error
	for b := range order {
		select {
		case <-b.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
		if out, err = b.deliver(ctx, out, fn); err != nil {
			break
		}
		putSeg(segSize, b.seg)
		<-slots
	}
	cancel()
	for range order { // let the cutter finish if it is still sending
	}
	wg.Wait()
	if err == nil {
		err = cutErr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
