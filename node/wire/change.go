package wire

import (
	"encoding/binary"
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
	// OpGroup is the changes of paths read together as one consistent
	// group (Change.Group, each a put, delete, rename or meta): a backup
	// applies all of them or none, and records their versions at the
	// group's one seq and time.
	OpGroup Op = 5
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
	case OpGroup:
		return "group"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

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

	// Group holds the changes of an OpGroup, in the order they apply
	// (none of them a group); Path is the first one's path.
	Group []*Change
}

// NewGroup returns the change that applies cs together: cs itself when it
// holds one change, else an OpGroup of them. cs must not be empty.
func NewGroup(cs []*Change) *Change {
	if len(cs) == 1 {
		return cs[0]
	}
	return &Change{Op: OpGroup, Path: cs[0].Path, Group: cs}
}

// Changes returns the changes c stands for: its group's, or c itself.
func (c *Change) Changes() []*Change {
	if c.Op == OpGroup {
		return c.Group
	}
	return []*Change{c}
}

const (
	recordVersion = 1
	maxChangeData = 64 << 20
)

// EncodeChange appends the binary form of c to dst. The format is
// specified in the package documentation.
func EncodeChange(dst []byte, c *Change) []byte {
	dst = append(dst, recordVersion, byte(c.Op))
	dst = AppendString(dst, c.Path)
	switch c.Op {
	case OpGroup:
		dst = binary.AppendUvarint(dst, uint64(len(c.Group)))
		for _, m := range c.Group {
			dst = AppendBytes(dst, EncodeChange(nil, m))
		}
		return dst
	case OpRename:
		dst = AppendString(dst, c.To)
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
			dst = AppendCID(dst, c.BaseRoot)
			dst = binary.AppendUvarint(dst, uint64(c.Splice.Start))
			dst = binary.AppendUvarint(dst, uint64(c.Splice.Removed))
			dst = binary.AppendUvarint(dst, uint64(len(c.Splice.Added)))
			for _, ch := range c.Splice.Added {
				dst = AppendBytes(dst, ch.CID.Bytes())
				dst = binary.AppendUvarint(dst, uint64(ch.Size))
				if d, ok := c.Data[ch.CID]; ok {
					dst = append(dst, 1)
					dst = AppendBytes(dst, d)
				} else {
					dst = append(dst, 0)
				}
			}
		}
	}
	return dst
}

// EncodeGroup returns the record of a group of changes already encoded
// with EncodeChange (the first one's path is path), without encoding them
// again; one change is returned as it is.
func EncodeGroup(path string, members [][]byte) []byte {
	if len(members) == 1 {
		return members[0]
	}
	n := 16 + len(path)
	for _, m := range members {
		n += len(m) + binary.MaxVarintLen64
	}
	dst := make([]byte, 0, n)
	dst = append(dst, recordVersion, byte(OpGroup))
	dst = AppendString(dst, path)
	dst = binary.AppendUvarint(dst, uint64(len(members)))
	for _, m := range members {
		dst = AppendBytes(dst, m)
	}
	return dst
}

// DecodeChange decodes a record payload. For OpPut of a file the result
// holds the splice; the full chunk list is rebuilt by the applier from the
// base version (see Change.Entry). Bounded and safe on hostile input.
func DecodeChange(b []byte) (*Change, error) {
	d := NewDecoder(b)
	if v := d.Byte(); v != recordVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	c := &Change{Op: Op(d.Byte())}
	c.Path = d.String()
	if err := d.Err(); err != nil {
		return nil, err
	}
	if err := baseline.ValidPath(c.Path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch c.Op {
	case OpGroup:
		n := d.Int()
		if d.Err() == nil && (n < 1 || n > d.Len()/4+1) {
			return nil, fmt.Errorf("%w: group of %d changes in %d bytes", ErrMalformed, n, d.Len())
		}
		for i := 0; i < n && d.Err() == nil; i++ {
			b := d.Bytes(d.Len())
			if d.Err() != nil {
				break
			}
			m, err := DecodeChange(b)
			if err != nil {
				return nil, err
			}
			if m.Op == OpGroup {
				return nil, fmt.Errorf("%w: a group inside a group", ErrMalformed)
			}
			c.Group = append(c.Group, m)
		}
		if d.Err() == nil && c.Group[0].Path != c.Path {
			return nil, fmt.Errorf("%w: group path %q is not its first change's %q", ErrMalformed, c.Path, c.Group[0].Path)
		}
	case OpDelete:
	case OpRename:
		c.To = d.String()
		if d.Err() == nil {
			if err := baseline.ValidPath(c.To); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	case OpMeta:
		c.Entry.Path = c.Path
		c.Entry.Mode = fs.FileMode(d.Uvarint()) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		c.Entry.MTime = time.Unix(0, d.Varint())
	case OpPut:
		if err := d.Err(); err != nil {
			return nil, err
		}
		e, n, err := baseline.DecodeEntry(d.Rest())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		d = NewDecoder(d.Rest()[n:])
		c.Entry = e
		if e.Path != c.Path {
			return nil, fmt.Errorf("%w: entry path %q differs from record path %q", ErrMalformed, e.Path, c.Path)
		}
		if e.Kind == baseline.KindFile {
			c.Entry.Size = d.Size()
			c.BaseRoot = d.CID(true)
			c.Splice.Start = d.Int()
			c.Splice.Removed = d.Int()
			n := d.Int()
			if d.Err() == nil && n > d.Len()/4+1 {
				return nil, fmt.Errorf("%w: %d added chunks in %d bytes", ErrMalformed, n, d.Len())
			}
			total := 0
			for i := 0; i < n && d.Err() == nil; i++ {
				ch := baseline.Chunk{CID: d.CID(false), Size: uint32(d.Uvarint())}
				if d.Err() == nil && (ch.Size == 0 || ch.Size > baseline.MaxChunk) {
					return nil, fmt.Errorf("%w: chunk size %d", ErrMalformed, ch.Size)
				}
				c.Splice.Added = append(c.Splice.Added, ch)
				if d.Byte() == 1 {
					data := d.Bytes(int(ch.Size))
					if d.Err() == nil && len(data) != int(ch.Size) {
						return nil, fmt.Errorf("%w: chunk %s has %d bytes, want %d", ErrMalformed, ch.CID, len(data), ch.Size)
					}
					total += len(data)
					if total > maxChangeData {
						return nil, fmt.Errorf("%w: inline data over %d bytes", ErrMalformed, maxChangeData)
					}
					if c.Data == nil {
						c.Data = make(map[cid.Cid][]byte)
					}
					c.Data[ch.CID] = data
				}
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrMalformed, c.Op)
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if d.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, d.Len())
	}
	return c, nil
}
