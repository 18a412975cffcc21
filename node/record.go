package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

// Op is the operation of a change record.
type Op uint8

const (
	// OpPut sets a path to a new state: a file (as a splice of its previous
	// chunk list), a directory or a symlink. Covers create, modify, mkdir
	// and symlink.
	OpPut Op = 1
	// OpDelete removes a path (a whole directory tree for a directory).
	OpDelete Op = 2
	// OpRename moves a path (file or whole directory tree) without
	// resending data.
	OpRename Op = 3
	// OpMeta changes the mode and mtime of a path.
	OpMeta Op = 4
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpRename:
		return "rename"
	case OpMeta:
		return "meta"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ErrBadRecord is returned for a change record that cannot be decoded.
var ErrBadRecord = errors.New("node: bad change record")

// Change is the payload of one journal record: one captured change of one
// path of a protected folder.
type Change struct {
	Op   Op
	Path string
	// To is the new path of an OpRename.
	To string

	// Entry is the new state for OpPut (Chunks holds the full new chunk
	// list after decoding) and the new mode/mtime for OpMeta.
	Entry baseline.Entry

	// BaseRoot is the content root of the version this change applies on
	// (undefined for a create), for OpPut of a file.
	BaseRoot cid.Cid
	// Splice turns the base version's chunks into the new ones.
	Splice baseline.Splice
	// Data holds the bytes of the Splice's added chunks that are carried
	// inline, keyed by CID. Chunks not carried are fetched by CID.
	Data map[cid.Cid][]byte
}

const (
	recordVersion = 1
	maxChangeData = 64 << 20
)

// EncodeChange appends the binary form of c to dst. The format is
// specified in doc.go.
func EncodeChange(dst []byte, c *Change) []byte {
	dst = append(dst, recordVersion, byte(c.Op))
	dst = appendString(dst, c.Path)
	switch c.Op {
	case OpRename:
		dst = appendString(dst, c.To)
	case OpMeta:
		dst = binary.AppendUvarint(dst, uint64(c.Entry.Mode))
		dst = binary.AppendVarint(dst, c.Entry.MTime.UnixNano())
	case OpPut:
		meta := c.Entry
		meta.Chunks = nil
		if meta.Kind == baseline.KindFile {
			meta.Size = 0
		}
		dst = baseline.AppendEntry(dst, &meta)
		if c.Entry.Kind == baseline.KindFile {
			dst = binary.AppendUvarint(dst, uint64(c.Entry.Size))
			dst = appendCID(dst, c.BaseRoot)
			dst = binary.AppendUvarint(dst, uint64(c.Splice.Start))
			dst = binary.AppendUvarint(dst, uint64(c.Splice.Removed))
			dst = binary.AppendUvarint(dst, uint64(len(c.Splice.Added)))
			for _, ch := range c.Splice.Added {
				dst = appendBytes(dst, ch.CID.Bytes())
				dst = binary.AppendUvarint(dst, uint64(ch.Size))
				if d, ok := c.Data[ch.CID]; ok {
					dst = append(dst, 1)
					dst = appendBytes(dst, d)
				} else {
					dst = append(dst, 0)
				}
			}
		}
	}
	return dst
}

// DecodeChange decodes a record payload. For OpPut of a file the result
// holds the splice; the full chunk list is rebuilt by the applier from the
// base version (see Change.Entry). Bounded and safe on hostile input.
func DecodeChange(b []byte) (*Change, error) {
	d := decoder{b: b}
	if v := d.byte(); v != recordVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadRecord, v)
	}
	c := &Change{Op: Op(d.byte())}
	c.Path = d.string()
	if d.err != nil {
		return nil, d.fail()
	}
	if err := baseline.ValidPath(c.Path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	switch c.Op {
	case OpDelete:
	case OpRename:
		c.To = d.string()
		if d.err == nil {
			if err := baseline.ValidPath(c.To); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadRecord, err)
			}
		}
	case OpMeta:
		c.Entry.Path = c.Path
		c.Entry.Mode = fs.FileMode(d.uvarint()) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		c.Entry.MTime = time.Unix(0, d.varint())
	case OpPut:
		if d.err != nil {
			return nil, d.fail()
		}
		e, n, err := baseline.DecodeEntry(d.b)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRecord, err)
		}
		d.b = d.b[n:]
		c.Entry = e
		if e.Path != c.Path {
			return nil, fmt.Errorf("%w: entry path %q differs from record path %q", ErrBadRecord, e.Path, c.Path)
		}
		if e.Kind == baseline.KindFile {
			c.Entry.Size = int64(d.uvarint())
			c.BaseRoot = d.cid(true)
			c.Splice.Start = d.int()
			c.Splice.Removed = d.int()
			n := d.int()
			if d.err == nil && n > len(d.b)/4+1 {
				return nil, fmt.Errorf("%w: %d added chunks in %d bytes", ErrBadRecord, n, len(d.b))
			}
			total := 0
			for i := 0; i < n && d.err == nil; i++ {
				ch := baseline.Chunk{CID: d.cid(false), Size: uint32(d.uvarint())}
				if d.err == nil && (ch.Size == 0 || ch.Size > baseline.MaxChunk) {
					return nil, fmt.Errorf("%w: chunk size %d", ErrBadRecord, ch.Size)
				}
				c.Splice.Added = append(c.Splice.Added, ch)
				if d.byte() == 1 {
					data := d.bytes(int(ch.Size))
					if d.err == nil && len(data) != int(ch.Size) {
						return nil, fmt.Errorf("%w: chunk %s has %d bytes, want %d", ErrBadRecord, ch.CID, len(data), ch.Size)
					}
					total += len(data)
					if total > maxChangeData {
						return nil, fmt.Errorf("%w: inline data over %d bytes", ErrBadRecord, maxChangeData)
					}
					if c.Data == nil {
						c.Data = make(map[cid.Cid][]byte)
					}
					c.Data[ch.CID] = data
				}
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrBadRecord, c.Op)
	}
	if d.err != nil {
		return nil, d.fail()
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(d.b))
	}
	return c, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendCID(dst []byte, c cid.Cid) []byte {
	if !c.Defined() {
		return binary.AppendUvarint(dst, 0)
	}
	return appendBytes(dst, c.Bytes())
}

// decoder reads the primitive fields of the node's binary messages; the
// first error sticks and every later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() error {
	if errors.Is(d.err, ErrBadRecord) {
		return d.err
	}
	return fmt.Errorf("%w: %v", ErrBadRecord, d.err)
}

func (d *decoder) setErr(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.setErr("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.setErr("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.setErr("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uvarint that must fit a non-negative int below 1<<31.
func (d *decoder) int() int {
	v := d.uvarint()
	if v >= 1<<31 {
		d.setErr("count %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.setErr("field of %d bytes (limit %d, %d left)", n, max, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	return string(d.bytes(4096))
}

func (d *decoder) cid(optional bool) cid.Cid {
	b := d.bytes(128)
	if d.err != nil {
		return cid.Undef
	}
	if len(b) == 0 {
		if !optional {
			d.setErr("missing CID")
		}
		return cid.Undef
	}
	c, err := cid.Cast(b)
	if err != nil {
		d.setErr("bad CID: %v", err)
		return cid.Undef
	}
	return c
}
