package mesh

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
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

// ReadFrame reads one frame written by WriteFrame. max bounds the frame
// length (type byte + payload): a longer frame yields ErrFrameTooLarge
// before anything is allocated, and the stream is then unusable. It returns
// io.EOF only when r ends exactly at a frame boundary and
// io.ErrUnexpectedEOF when r ends inside a frame. The payload is a new
// slice owned by the caller (empty, not nil, for a frame with no payload).
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
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

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
