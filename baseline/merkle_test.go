package baseline

import (
	"encoding/binary"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

func testChunks(n int) []Chunk {
	out := make([]Chunk, n)
	for i := range out {
		data := pseudoRandom(uint64(100+i), 100+i)
		out[i] = Chunk{CID: ChunkCID(data), Size: uint32(len(data))}
	}
	return out
}

// The construction documented in doc.go, written out by hand for 3 chunks.
func TestContentRootFollowsDocumentedConstruction(t *testing.T) {
	chunks := testChunks(3)
	leaf := func(c Chunk) [32]byte {
		b := append([]byte{0x00}, c.CID.Bytes()...)
		return blake3.Sum256(binary.AppendUvarint(b, uint64(c.Size)))
	}
	node := func(l, r [32]byte) [32]byte {
		b := []byte{0x01, 0x1e, 0x20}
		b = append(b, l[:]...)
		b = append(b, 0x1e, 0x20)
		return blake3.Sum256(append(b, r[:]...))
	}
	want := node(node(leaf(chunks[0]), leaf(chunks[1])), leaf(chunks[2]))
	if got := ContentRoot(chunks); !got.Equals(digestCID(want[:])) {
		t.Fatalf("ContentRoot = %s, want %s", got, digestCID(want[:]))
	}
	one := leaf(chunks[0])
	if got := ContentRoot(chunks[:1]); !got.Equals(digestCID(one[:])) || got.Equals(chunks[0].CID) {
		t.Fatalf("single chunk: root should be its leaf hash, distinct from the chunk CID")
	}
	empty := blake3.Sum256(nil)
	if got := ContentRoot(nil); !got.Equals(digestCID(empty[:])) {
		t.Fatalf("empty: root %s, want BLAKE3 of the empty string", got)
	}
}

func TestContentRootChangesWithAnyChunkAndOrder(t *testing.T) {
	chunks := testChunks(7)
	base := ContentRoot(chunks)
	if !ContentRoot(slices.Clone(chunks)).Equals(base) {
		t.Fatal("same chunks, different root")
	}
	for i := range chunks {
		changed := slices.Clone(chunks)
		changed[i].CID = ChunkCID([]byte{byte(i)})
		if ContentRoot(changed).Equals(base) {
			t.Errorf("changing chunk %d CID kept the root", i)
		}
		resized := slices.Clone(chunks)
		resized[i].Size++
		if ContentRoot(resized).Equals(base) {
			t.Errorf("changing chunk %d size kept the root", i)
		}
	}
	swapped := slices.Clone(chunks)
	swapped[2], swapped[5] = swapped[5], swapped[2]
	if ContentRoot(swapped).Equals(base) {
		t.Error("swapping two chunks kept the root")
	}
	if ContentRoot(chunks[:6]).Equals(base) {
		t.Error("dropping the last (promoted) chunk kept the root")
	}
}

func testEntries() []Entry {
	mt := time.Unix(1_700_000_000, 123456789)
	return []Entry{
		{Path: "a", Kind: KindDir, Mode: 0o755, MTime: mt},
		{Path: "a/f", Kind: KindFile, Mode: 0o644, MTime: mt, Size: sumSizes(testChunks(3)), Chunks: testChunks(3)},
		{Path: "a/g", Kind: KindFile, Mode: 0o644, MTime: mt},
		{Path: "l", Kind: KindSymlink, Mode: 0o777, MTime: mt, Target: "a/f", Size: 3},
	}
}

func TestSnapshotRootIdentifiesFolderState(t *testing.T) {
	entries := testEntries()
	base := SnapshotRoot(entries)
	shuffled := []Entry{entries[3], entries[1], entries[0], entries[2]}
	if !SnapshotRoot(shuffled).Equals(base) {
		t.Error("input order changed the root; entries are sorted by path first")
	}
	if shuffled[0].Path != "l" {
		t.Error("SnapshotRoot reordered its input")
	}
	mutations := map[string]func(e []Entry){
		"mtime":       func(e []Entry) { e[1].MTime = e[1].MTime.Add(time.Nanosecond) },
		"mode":        func(e []Entry) { e[2].Mode = 0o600 },
		"setuid":      func(e []Entry) { e[2].Mode |= fs.ModeSetuid },
		"chunk":       func(e []Entry) { e[1].Chunks = slices.Clone(e[1].Chunks); e[1].Chunks[1].CID = ChunkCID(nil) },
		"target":      func(e []Entry) { e[3].Target = "a/g" },
		"kind":        func(e []Entry) { e[2].Kind = KindDir },
		"path":        func(e []Entry) { e[2].Path = "a/h" },
		"swap bodies": func(e []Entry) { e[1].Chunks, e[2].Chunks = e[2].Chunks, e[1].Chunks },
		"dropped":     func(e []Entry) { e[3] = e[2] },
	}
	for name, mutate := range mutations {
		m := slices.Clone(entries)
		mutate(m)
		if SnapshotRoot(m).Equals(base) {
			t.Errorf("%s: root unchanged", name)
		}
	}
}

func TestEntryRootAndComparisons(t *testing.T) {
	e := testEntries()
	if !e[1].Root().Equals(ContentRoot(e[1].Chunks)) {
		t.Error("file root is not the content root of its chunks")
	}
	sym := blake3.Sum256([]byte("symlink\x00a/f"))
	if !e[3].Root().Equals(digestCID(sym[:])) {
		t.Error("symlink root is not BLAKE3(\"symlink\\x00\"+target)")
	}
	dir := blake3.Sum256([]byte("dir"))
	if !e[0].Root().Equals(digestCID(dir[:])) {
		t.Error("dir root is not BLAKE3(\"dir\")")
	}
	if e[2].Root().Equals(e[0].Root()) {
		t.Error("empty file and directory share a root")
	}

	f := e[1]
	g := f
	g.Chunks = slices.Clone(f.Chunks)
	g.Mode = 0o600
	g.MTime = f.MTime.In(time.UTC)
	if !f.SameContent(&g) || f.SameMeta(&g) {
		t.Error("mode change: want same content, different meta")
	}
	g.Mode = f.Mode
	if !f.SameMeta(&g) {
		t.Error("same instant in another zone must be the same mtime")
	}
	g.Chunks[0].Size++
	if f.SameContent(&g) {
		t.Error("different chunk size reported as same content")
	}
	if e[3].SameContent(&Entry{Kind: KindSymlink, Target: "x", Size: 3}) {
		t.Error("different symlink targets reported as same content")
	}
}
