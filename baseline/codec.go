package baseline

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Limits enforced by DecodeEntry (and by Scan, which skips what the codec
// could not carry).
const (
	MaxPath      = 4096    // bytes of an entry's path
	MaxTarget    = 4096    // bytes of a symlink target
	MaxChunks    = 1 << 24 // chunks of one file
	entryVersion = 1
	flagLocal    = 1 << 0 // inode and dev follow the kind-specific part
	chunkCIDLen  = 4 + digestLen
)

// modeBits converts the permission, setuid, setgid and sticky bits of m to
// their Unix octal form (0..07777).
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

func fromModeBits(b uint32) fs.FileMode {
	m := fs.FileMode(b & 0o777)
	if b&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if b&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if b&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// AppendEntry appends the wire encoding of e to dst (format in doc.go). The
// source-local Inode and Dev are not encoded.
func AppendEntry(dst []byte, e *Entry) []byte { return appendEntry(dst, e, false) }

// AppendEntryLocal is AppendEntry plus Inode and Dev (when either is
// non-zero), for a node's own index; never send it on the wire.
func AppendEntryLocal(dst []byte, e *Entry) []byte { return appendEntry(dst, e, true) }

func appendEntry(dst []byte, e *Entry, local bool) []byte {
	local = local && (e.Inode != 0 || e.Dev != 0)
	var flags byte
	if local {
		flags |= flagLocal
	}
	dst = append(dst, entryVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(len(e.Path)))
	dst = append(dst, e.Path...)
	dst = append(dst, byte(e.Kind))
	dst = binary.AppendUvarint(dst, uint64(modeBits(e.Mode)))
	dst = appendTime(dst, e.MTime)
	switch e.Kind {
	case KindFile:
		dst = binary.AppendUvarint(dst, uint64(e.Size))
		dst = binary.AppendUvarint(dst, uint64(len(e.Chunks)))
		for _, c := range e.Chunks {
			dst = append(dst, c.CID.Bytes()...)
			dst = binary.AppendUvarint(dst, uint64(c.Size))
		}
	case KindSymlink:
		dst = binary.AppendUvarint(dst, uint64(len(e.Target)))
		dst = append(dst, e.Target...)
	}
	if local {
		dst = binary.AppendUvarint(dst, e.Inode)
		dst = binary.AppendUvarint(dst, e.Dev)
	}
	return dst
}

// decoder reads canonical (minimal) varints and fixed fields, remembering
// the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEntry, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("%s: truncated or overlong varint at byte %d", what, d.off)
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		d.fail("%s: non-minimal varint at byte %d", what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("%s: truncated or overlong varint at byte %d", what, d.off)
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		d.fail("%s: non-minimal varint at byte %d", what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.off {
		d.fail("%s: truncated at byte %d", what, d.off)
		return nil
	}
	v := d.b[d.off : d.off+n]
	d.off += n
	return v
}

func (d *decoder) byte1(what string) byte {
	v := d.bytes(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

// DecodeEntry decodes one entry from the start of b and returns it with the
// number of bytes consumed. Every field is bounded (see doc.go); a malformed
// entry yields an error wrapping ErrBadEntry. It never panics and allocates
// no more than the input length justifies.
func DecodeEntry(b []byte) (Entry, int, error) {
	d := &decoder{b: b}
	var e Entry
	if v := d.byte1("version"); d.err == nil && v != entryVersion {
		d.fail("unknown version %d", v)
	}
	flags := d.byte1("flags")
	if d.err == nil && flags&^flagLocal != 0 {
		d.fail("unknown flags %#x", flags)
	}
	plen := d.uvarint("path length")
	if d.err == nil && (plen == 0 || plen > MaxPath) {
		d.fail("path length %d out of 1..%d", plen, MaxPath)
	}
	if p := d.bytes(int(plen), "path"); d.err == nil {
		e.Path = string(p)
		if why := pathProblem(e.Path); why != "" {
			d.fail("path %q %s", e.Path, why)
		}
	}
	e.Kind = Kind(d.byte1("kind"))
	if d.err == nil && (e.Kind < KindFile || e.Kind > KindSymlink) {
		d.fail("%s: unknown kind %d", e.Path, e.Kind)
	}
	mode := d.uvarint("mode")
	if d.err == nil && mode > 0o7777 {
		d.fail("%s: mode %#o has bits beyond 07777", e.Path, mode)
	}
	e.Mode = fromModeBits(uint32(mode))
	sec := d.varint("mtime seconds")
	nsec := d.uvarint("mtime nanoseconds")
	if d.err == nil && nsec >= 1e9 {
		d.fail("%s: mtime nanoseconds %d out of range", e.Path, nsec)
	}
	e.MTime = time.Unix(sec, int64(nsec))
	switch e.Kind {
	case KindFile:
		d.decodeChunks(&e)
	case KindSymlink:
		tlen := d.uvarint("target length")
		if d.err == nil && (tlen == 0 || tlen > MaxTarget) {
			d.fail("%s: symlink target length %d out of 1..%d", e.Path, tlen, MaxTarget)
		}
		if t := d.bytes(int(tlen), "target"); d.err == nil {
			if strings.IndexByte(string(t), 0) >= 0 {
				d.fail("%s: NUL in symlink target", e.Path)
			}
			e.Target = string(t)
			e.Size = int64(len(t))
		}
	}
	if flags&flagLocal != 0 {
		e.Inode = d.uvarint("inode")
		e.Dev = d.uvarint("dev")
		if d.err == nil && e.Inode == 0 && e.Dev == 0 {
			d.fail("%s: local flag without inode or dev", e.Path)
		}
	}
	if d.err != nil {
		return Entry{}, 0, d.err
	}
	return e, d.off, nil
}

func (d *decoder) decodeChunks(e *Entry) {
	size := d.uvarint("size")
	if d.err == nil && size > math.MaxInt64 {
		d.fail("%s: size %d too large", e.Path, size)
	}
	count := d.uvarint("chunk count")
	if d.err != nil {
		return
	}
	limit := min(size/MinChunk+2, MaxChunks, uint64(len(d.b)-d.off)/(chunkCIDLen+1))
	if count > limit {
		d.fail("%s: %d chunks for %d bytes (limit %d)", e.Path, count, size, limit)
		return
	}
	if count > 0 {
		e.Chunks = make([]Chunk, count)
	}
	var sum uint64
	for i := range e.Chunks {
		raw := d.bytes(chunkCIDLen, "chunk CID")
		if d.err != nil {
			return
		}
		if raw[0] != 1 || raw[1] != cid.Raw || (raw[2] != multihash.BLAKE3 && raw[2] != multihash.SHA2_256) || raw[3] != digestLen {
			d.fail("%s: chunk %d: not a raw CIDv1 with a 32-byte BLAKE3 or SHA2-256 multihash", e.Path, i)
			return
		}
		c, err := cid.Cast(raw)
		if err != nil {
			d.fail("%s: chunk %d: %v", e.Path, i, err)
			return
		}
		n := d.uvarint("chunk size")
		if d.err == nil && (n == 0 || n > MaxChunk) {
			d.fail("%s: chunk %d: size %d out of 1..%d", e.Path, i, n, MaxChunk)
		}
		if d.err != nil {
			return
		}
		sum += n
		e.Chunks[i] = Chunk{CID: c, Size: uint32(n)}
	}
	if sum != size {
		d.fail("%s: chunks hold %d bytes, size says %d", e.Path, sum, size)
		return
	}
	e.Size = int64(size)
}

// ValidPath checks that p is a slash-separated path relative to a folder
// root: not empty, no leading "/", no empty, "." or ".." element (so no
// "//" and no trailing "/"), no NUL byte. The error wraps ErrBadPath.
func ValidPath(p string) error {
	if why := pathProblem(p); why != "" {
		return fmt.Errorf("%w: %q %s", ErrBadPath, p, why)
	}
	return nil
}

func pathProblem(p string) string {
	if p == "" {
		return "is empty"
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "contains NUL"
	}
	if p[0] == '/' {
		return "is absolute"
	}
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "":
			return "has an empty element"
		case ".", "..":
			return fmt.Sprintf("has a %q element", elem)
		}
	}
	return ""
}
