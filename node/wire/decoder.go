package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
)

// ErrMalformed is wrapped by every decoding error of this package: the
// bytes are not a well-formed message (truncated, out of range, trailing
// bytes, a path that leaves the folder, ...).
var ErrMalformed = errors.New("wire: malformed message")

// Limits of the primitive fields.
const (
	maxString = 4096 // a path, a folder ID, an error message
	maxCID    = 128
)

// Decoder reads the primitive fields of the wire format (and of rows that
// share it): uvarints, varints, bytes and strings with a uvarint length,
// CIDs. The first error sticks and every later read returns zero values,
// so a caller reads a whole message and checks Err once.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err is the first error met, wrapping ErrMalformed, or nil.
func (d *Decoder) Err() error {
	if d.err == nil || errors.Is(d.err, ErrMalformed) {
		return d.err
	}
	return fmt.Errorf("%w: %v", ErrMalformed, d.err)
}

// Rest returns the bytes not read yet.
func (d *Decoder) Rest() []byte { return d.b }

// Len is the number of bytes not read yet.
func (d *Decoder) Len() int { return len(d.b) }

// Fail records err (wrapped in ErrMalformed) unless an error is already set.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

// End fails when bytes are left over.
func (d *Decoder) End() error {
	if d.err == nil && len(d.b) != 0 {
		d.Fail("%d trailing bytes", len(d.b))
	}
	return d.Err()
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.Fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	switch d.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.Fail("flag is neither 0 nor 1")
	return false
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Int reads a uvarint that must fit a non-negative int below 1<<31.
func (d *Decoder) Int() int {
	v := d.Uvarint()
	if v >= 1<<31 {
		d.Fail("count %d out of range", v)
		return 0
	}
	return int(v)
}

// Size reads a uvarint byte count that must fit an int64 below 1<<62.
func (d *Decoder) Size() int64 {
	v := d.Uvarint()
	if v >= 1<<62 {
		d.Fail("size %d out of range", v)
		return 0
	}
	return int64(v)
}

// Bytes reads a uvarint length and that many bytes (at most max). The
// result aliases the input.
func (d *Decoder) Bytes(max int) []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.Fail("field of %d bytes (limit %d, %d left)", n, max, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// String reads a string of at most 4096 bytes.
func (d *Decoder) String() string { return string(d.Bytes(maxString)) }

// Time reads signed unix nanoseconds (0 is the zero time).
func (d *Decoder) Time() time.Time { return FromNanos(d.Varint()) }

// CID reads a CID; a zero length is cid.Undef, accepted only if optional.
func (d *Decoder) CID(optional bool) cid.Cid {
	b := d.Bytes(maxCID)
	if d.err != nil {
		return cid.Undef
	}
	if len(b) == 0 {
		if !optional {
			d.Fail("missing CID")
		}
		return cid.Undef
	}
	c, err := cid.Cast(b)
	if err != nil {
		d.Fail("bad CID: %v", err)
		return cid.Undef
	}
	return c
}

// AppendString appends a uvarint length and s.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendBytes appends a uvarint length and b.
func AppendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// AppendCID appends c's binary form with a uvarint length (0 for cid.Undef).
func AppendCID(dst []byte, c cid.Cid) []byte {
	if !c.Defined() {
		return binary.AppendUvarint(dst, 0)
	}
	return AppendBytes(dst, c.Bytes())
}

// AppendBool appends 1 or 0.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendTime appends t as signed unix nanoseconds (0 for the zero time).
func AppendTime(dst []byte, t time.Time) []byte { return binary.AppendVarint(dst, Nanos(t)) }

// Nanos is t in unix nanoseconds, 0 for the zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos inverts Nanos.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
