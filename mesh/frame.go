package mesh

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
)

// FrameReader is what ReadFrame reads from, e.g. a *bufio.Reader wrapping
// a stream.
type FrameReader interface {
	io.Reader
	io.ByteReader
}

// maxFrameLen is the largest frame length WriteFrame produces: frames must
// stay addressable as an int on every platform.
const maxFrameLen = math.MaxInt32

// coalesceLimit is the payload size up to which WriteFrame copies header
// and payload into one buffer to issue a single Write.
const coalesceLimit = 32 << 10

// WriteFrame writes one frame: uvarint(1+len(payload)), the type byte, the
// payload. It issues one Write for small payloads and two for large ones;
// wrap w in a bufio.Writer to batch many small frames.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if uint64(len(payload)) >= maxFrameLen {
		return fmt.Errorf("%w: payload of %d bytes", ErrFrameTooLarge, len(payload))
	}
	var hdr [binary.MaxVarintLen64 + 1]byte
	n := binary.PutUvarint(hdr[:], uint64(len(payload))+1)
	hdr[n] = typ
	n++
	if len(payload) <= coalesceLimit {
		buf := make([]byte, n+len(payload))
		copy(buf, hdr[:n])
		copy(buf[n:], payload)
		_, err := w.Write(buf)
		return err
	}
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// Large frames are read in growing pieces, so that the memory a frame
// holds follows the bytes actually received, not the length announced.
const (
	// firstPiece is the largest frame allocated at its full length at
	// once; a longer frame starts with a buffer of at most this size.
	firstPiece = 64 << 10
	// pieceGrowth is the factor between the sizes of consecutive pieces
	// of a large frame; lastGrowth bounds the step from the last piece to
	// the frame's own buffer. A reader holds at most about lastGrowth
	// times what it received (pieces are rounded up to a power of two),
	// plus firstPiece, and copies n/lastGrowth + n/(lastGrowth*pieceGrowth)
	// + ... (about n/14) bytes of an n-byte frame once more than a single
	// read would.
	pieceGrowth = 8
	lastGrowth  = 16
)

// ReadFrame reads one frame written by WriteFrame. max bounds the frame
// length (type byte + payload): a longer frame yields ErrFrameTooLarge
// before anything is allocated, and the stream is then unusable. It returns
// io.EOF only when r ends exactly at a frame boundary and
// io.ErrUnexpectedEOF when r ends inside a frame. The payload is a new
// slice owned by the caller (empty, not nil, for a frame with no payload).
//
// A frame of up to 64 KiB is read into one buffer of its length. A longer
// one is read into (recycled) buffers that grow as its bytes arrive, from
// at most 64 KiB to the announced length: a peer that announces 80 MiB
// and sends a few bytes makes the reader hold at most 64 KiB.
func ReadFrame(r FrameReader, max int) (typ byte, payload []byte, err error) {
	n, err := readUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: zero length", ErrBadFrame)
	}
	if max < 0 || n > uint64(max) {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if n <= firstPiece {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, noEOF(err)
		}
		return buf[0], buf[1:], nil
	}
	return readPieces(r, int(n))
}

// readPieces reads a frame of n > firstPiece bytes into pooled pieces
// that grow pieceGrowth-fold as they fill, then, once the last piece
// holds at least n/lastGrowth bytes, into a buffer of its own of n bytes,
// the one returned.
func readPieces(r io.Reader, n int) (typ byte, payload []byte, err error) {
	piece := getPiece(pieceSize(n))
	for got := 0; ; {
		if _, err := io.ReadFull(r, piece.b[got:]); err != nil {
			putPiece(piece)
			return 0, nil, noEOF(err)
		}
		// This piece is full: the peer has sent it, grow.
		got = len(piece.b)
		if got*lastGrowth >= n {
			buf := make([]byte, n)
			copy(buf, piece.b)
			putPiece(piece)
			if _, err := io.ReadFull(r, buf[got:]); err != nil {
				return 0, nil, noEOF(err)
			}
			return buf[0], buf[1:], nil
		}
		next := getPiece(got * pieceGrowth)
		copy(next.b, piece.b)
		putPiece(piece)
		piece = next
	}
}

// noEOF turns io.EOF, which inside a frame means a truncated one, into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pieceSize returns the size of the first piece of a frame of n bytes
// (n > firstPiece): n/lastGrowth, then divided by pieceGrowth as often as
// needed to reach at most firstPiece, rounding up, so that the last piece
// holds about n/lastGrowth bytes.
func pieceSize(n int) int {
	n = (n + lastGrowth - 1) / lastGrowth
	for n > firstPiece {
		n = (n + pieceGrowth - 1) / pieceGrowth
	}
	return n
}

// The pieces of large frames are recycled: they are garbage as soon as
// copied into the next one, and allocating them anew for every frame
// (zeroed, then collected) costs more than the copies. Pool c holds
// buffers of capacity 1<<c.
var piecePools [bits.UintSize]sync.Pool

// piece is a buffer from piecePools; b is its first len(b) bytes, data
// of an earlier frame until overwritten.
type piece struct {
	b    []byte
	full *[]byte // the whole buffer, as pooled
	pool int
}

func getPiece(size int) piece {
	c := bits.Len(uint(size - 1))
	full, _ := piecePools[c].Get().(*[]byte)
	if full == nil {
		b := make([]byte, 1<<c)
		full = &b
	}
	return piece{b: (*full)[:size], full: full, pool: c}
}

func putPiece(p piece) { piecePools[p.pool].Put(p.full) }

// readUvarint is binary.ReadUvarint with the overflow reported as
// ErrBadFrame and read errors passed through untouched.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<shift, nil
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, fmt.Errorf("%w: length prefix overflows 64 bits", ErrBadFrame)
}
