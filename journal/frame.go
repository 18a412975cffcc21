package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

const (
	segmentMagic      = "VGLJ"
	segmentVersion    = 1
	segmentHeaderSize = 8
	frameHeaderSize   = 24
	frameAlign        = 8
	segmentExt        = ".seg"
	tmpExt            = ".tmp"
	brokenExt         = ".broken"
	skipExt           = ".skip"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Reasons a frame fails to decode; carried in CorruptError.Err.
var (
	errShortFrame  = errors.New("short frame")
	errZeroLength  = errors.New("zero payload length")
	errOversized   = errors.New("payload length exceeds limit")
	errChecksum    = errors.New("checksum mismatch")
	errSeq         = errors.New("sequence number out of order")
	errBadMagic    = errors.New("bad segment magic")
	errBadVersion  = errors.New("unsupported segment version")
	errShortHeader = errors.New("short segment header")
)

// segmentHeader returns the 8 bytes that start every segment file.
func segmentHeader() []byte {
	h := make([]byte, segmentHeaderSize)
	copy(h, segmentMagic)
	binary.LittleEndian.PutUint32(h[4:], segmentVersion)
	return h
}

// checkSegmentHeader validates the first 8 bytes of a segment.
func checkSegmentHeader(h []byte) error {
	if len(h) < segmentHeaderSize {
		return errShortHeader
	}
	if string(h[:4]) != segmentMagic {
		return errBadMagic
	}
	if v := binary.LittleEndian.Uint32(h[4:8]); v != segmentVersion {
		return fmt.Errorf("%w %d", errBadVersion, v)
	}
	return nil
}

// frameSize is the encoded size of a frame with an n-byte payload.
func frameSize(n int) int64 {
	return frameHeaderSize + int64(padded(n))
}

func padded(n int) int { return (n + frameAlign - 1) &^ (frameAlign - 1) }

// putPayload lays out the payload of a frame into dst (len >= frameSize)
// and zeroes the padding; the header is filled by sealFrame.
func putPayload(dst, payload []byte) {
	n := copy(dst[frameHeaderSize:], payload)
	clear(dst[frameHeaderSize+n : frameHeaderSize+padded(n)])
}

// sealFrame fills the header of a frame whose payload (n bytes) is already
// in place: length, CRC32C over seq|time|payload, seq, time.
func sealFrame(dst []byte, n int, seq uint64, nanos int64) {
	binary.LittleEndian.PutUint32(dst[0:], uint32(n))
	binary.LittleEndian.PutUint64(dst[8:], seq)
	binary.LittleEndian.PutUint64(dst[16:], uint64(nanos))
	binary.LittleEndian.PutUint32(dst[4:], crc32.Checksum(dst[8:frameHeaderSize+n], castagnoli))
}

// appendFrame encodes one frame onto dst.
func appendFrame(dst []byte, seq uint64, nanos int64, payload []byte) []byte {
	off := len(dst)
	size := int(frameSize(len(payload)))
	dst = append(dst, make([]byte, size)...)
	putPayload(dst[off:], payload)
	sealFrame(dst[off:], len(payload), seq, nanos)
	return dst
}

// frameHeader is the decoded fixed part of a frame.
type frameHeader struct {
	length uint32
	crc    uint32
	seq    uint64
	nanos  int64
}

// frameDecoder reads frames from a stream, reusing its scratch space.
type frameDecoder struct {
	r    io.Reader
	hdr  [frameHeaderSize]byte
	pad  [frameAlign]byte
	hash hash.Hash32
}

func newFrameDecoder(r io.Reader) *frameDecoder {
	return &frameDecoder{r: r, hash: crc32.New(castagnoli)}
}

// next decodes one frame. A payload length of 0, above maxPayload (or
// MaxRecordSizeLimit), or, when avail >= 0, longer than the avail bytes
// that follow the frame header is rejected before anything is allocated
// or read. With keep the payload is returned in a new slice of exactly
// its length; otherwise it is only checksummed (no allocation). It
// returns io.EOF at a clean end of stream and errShortFrame,
// errZeroLength, errOversized or errChecksum for a bad frame; other
// errors come from the reader.
func (d *frameDecoder) next(maxPayload, avail int64, keep bool) (frameHeader, []byte, error) {
	var h frameHeader
	if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return h, nil, errShortFrame
		}
		return h, nil, err
	}
	h.length = binary.LittleEndian.Uint32(d.hdr[0:])
	h.crc = binary.LittleEndian.Uint32(d.hdr[4:])
	h.seq = binary.LittleEndian.Uint64(d.hdr[8:])
	h.nanos = int64(binary.LittleEndian.Uint64(d.hdr[16:]))
	if h.length == 0 {
		return h, nil, errZeroLength
	}
	if int64(h.length) > maxPayload || h.length > MaxRecordSizeLimit {
		return h, nil, fmt.Errorf("%w: %d > %d", errOversized, h.length, min(maxPayload, MaxRecordSizeLimit))
	}
	if avail >= 0 && int64(padded(int(h.length))) > avail {
		return h, nil, fmt.Errorf("%w: payload of %d bytes, %d left", errShortFrame, h.length, avail)
	}
	d.hash.Reset()
	d.hash.Write(d.hdr[8:])
	var payload []byte
	if keep {
		payload = make([]byte, h.length)
		if _, err := io.ReadFull(d.r, payload); err != nil {
			return h, nil, eofIsShort(err)
		}
		d.hash.Write(payload)
	} else if _, err := io.CopyN(d.hash, d.r, int64(h.length)); err != nil {
		return h, nil, eofIsShort(err)
	}
	if pad := padded(int(h.length)) - int(h.length); pad > 0 {
		if _, err := io.ReadFull(d.r, d.pad[:pad]); err != nil {
			return h, nil, eofIsShort(err)
		}
	}
	if d.hash.Sum32() != h.crc {
		return h, nil, errChecksum
	}
	return h, payload, nil
}

func eofIsShort(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errShortFrame
	}
	return err
}

// isFrameError reports whether err describes bad frame bytes (as opposed
// to an I/O error of the reader).
func isFrameError(err error) bool {
	return errors.Is(err, errShortFrame) || errors.Is(err, errZeroLength) ||
		errors.Is(err, errOversized) || errors.Is(err, errChecksum) || errors.Is(err, errSeq)
}
