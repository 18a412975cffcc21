package baseline

import (
	"encoding/binary"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/zeebo/blake3"
)

// Domain-separation prefixes of the Merkle trees (see doc.go).
const (
	tagContentLeaf  = 0x00
	tagNode         = 0x01
	tagSnapshotLeaf = 0x02
)

// merkleRoot folds leaf digests pairwise, left to right, level by level; an
// odd last node moves up unchanged. No leaves: BLAKE3 of the empty string.
func merkleRoot(level [][digestLen]byte) [digestLen]byte {
	if len(level) == 0 {
		return blake3.Sum256(nil)
	}
	var buf [1 + 2*(2+digestLen)]byte
	buf[0] = tagNode
	for len(level) > 1 {
		next := level[:0]
		for i := 0; i+1 < len(level); i += 2 {
			putMH(buf[1:], level[i])
			putMH(buf[1+2+digestLen:], level[i+1])
			next = append(next, blake3.Sum256(buf[:]))
		}
		if len(level)%2 == 1 {
			next = append(next, level[len(level)-1])
		}
		level = next
	}
	return level[0]
}

// putMH writes the BLAKE3-256 multihash of a digest: 0x1e 0x20 digest.
func putMH(dst []byte, d [digestLen]byte) {
	dst[0] = byte(multihash.BLAKE3)
	dst[1] = digestLen
	copy(dst[2:], d[:])
}

// ContentRoot returns the Merkle root of a file's chunk list (see doc.go for
// the construction). It depends on every chunk's CID, size and position.
func ContentRoot(chunks []Chunk) cid.Cid {
	leaves := make([][digestLen]byte, len(chunks))
	buf := make([]byte, 0, 64)
	for i, c := range chunks {
		buf = append(buf[:0], tagContentLeaf)
		buf = append(buf, c.CID.Bytes()...)
		buf = binary.AppendUvarint(buf, uint64(c.Size))
		leaves[i] = blake3.Sum256(buf)
	}
	root := merkleRoot(leaves)
	return digestCID(root[:])
}

// Root identifies a version of the entry's content: ContentRoot(Chunks) for
// a file, BLAKE3("symlink\x00"+Target) for a symlink, BLAKE3("dir") for a
// directory.
func (e *Entry) Root() cid.Cid {
	switch e.Kind {
	case KindFile:
		return ContentRoot(e.Chunks)
	case KindSymlink:
		sum := blake3.Sum256([]byte("symlink\x00" + e.Target))
		return digestCID(sum[:])
	default:
		sum := blake3.Sum256([]byte("dir"))
		return digestCID(sum[:])
	}
}

// SameContent reports whether e and o have the same kind, size, symlink
// target and chunk list.
func (e *Entry) SameContent(o *Entry) bool {
	return e.Kind == o.Kind && e.Size == o.Size && e.Target == o.Target &&
		slices.EqualFunc(e.Chunks, o.Chunks, chunkEqual)
}

// SameMeta reports whether e and o have the same mode and modification time.
func (e *Entry) SameMeta(o *Entry) bool {
	return e.Mode == o.Mode && e.MTime.Equal(o.MTime)
}

func chunkEqual(a, b Chunk) bool { return a.Size == b.Size && a.CID.Equals(b.CID) }

// SnapshotRoot returns the Merkle root over entries sorted by Path: the
// identity of one folder snapshot. The order of the input slice does not
// matter; it is not modified.
func SnapshotRoot(entries []Entry) cid.Cid {
	idx := make([]int, len(entries))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(entries[a].Path, entries[b].Path) })
	leaves := make([][digestLen]byte, len(entries))
	buf := make([]byte, 0, 128)
	for i, j := range idx {
		e := &entries[j]
		buf = append(buf[:0], tagSnapshotLeaf)
		buf = binary.AppendUvarint(buf, uint64(len(e.Path)))
		buf = append(buf, e.Path...)
		buf = append(buf, byte(e.Kind))
		buf = binary.AppendUvarint(buf, uint64(modeBits(e.Mode)))
		buf = appendTime(buf, e.MTime)
		buf = append(buf, e.Root().Bytes()...)
		leaves[i] = blake3.Sum256(buf)
	}
	root := merkleRoot(leaves)
	return digestCID(root[:])
}
