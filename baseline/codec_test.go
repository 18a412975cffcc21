package baseline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

func entriesEqual(a, b *Entry) bool {
	return a.Path == b.Path && a.SameContent(b) && a.SameMeta(b) && a.Inode == b.Inode && a.Dev == b.Dev
}

func codecEntries() map[string]Entry {
	var chunks []Chunk
	for i := range 4 {
		data := pseudoRandom(uint64(i), MinChunk+i*5000)
		chunks = append(chunks, Chunk{CID: ChunkCID(data), Size: uint32(len(data))})
	}
	mt := time.Unix(1_700_000_000, 999_999_999)
	return map[string]Entry{
		"file":         {Path: "dir/file.bin", Kind: KindFile, Mode: 0o640, MTime: mt, Size: sumSizes(chunks), Chunks: chunks},
		"empty file":   {Path: "empty", Kind: KindFile, Mode: 0o600, MTime: mt},
		"dir":          {Path: "a/b/c", Kind: KindDir, Mode: 0o755 | fs.ModeSetgid | fs.ModeSticky, MTime: mt},
		"symlink":      {Path: "link", Kind: KindSymlink, Mode: 0o777, MTime: mt, Target: "../outside/target", Size: 17},
		"unicode path": {Path: "Für/日本語/émoji-🎉.txt", Kind: KindFile, Mode: 0o644 | fs.ModeSetuid, MTime: time.Unix(-5, 1)},
		"zero time":    {Path: "z", Kind: KindDir},
	}
}

func TestEntryCodecRoundTrip(t *testing.T) {
	for name, e := range codecEntries() {
		t.Run(name, func(t *testing.T) {
			e.Inode, e.Dev = 77, 3
			prefix := []byte("prefix")
			b := AppendEntry(slices.Clone(prefix), &e)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatal("AppendEntry overwrote dst")
			}
			trailing := append(slices.Clone(b[len(prefix):]), 0xff, 0xfe)
			got, n, err := DecodeEntry(trailing)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b)-len(prefix) {
				t.Fatalf("consumed %d bytes, entry is %d", n, len(b)-len(prefix))
			}
			wire := e
			wire.Inode, wire.Dev = 0, 0
			if !entriesEqual(&got, &wire) {
				t.Fatalf("round trip: got %+v, want %+v", got, wire)
			}
			local := AppendEntryLocal(nil, &e)
			got, _, err = DecodeEntry(local)
			if err != nil || !entriesEqual(&got, &e) {
				t.Fatalf("local round trip: got %+v (err %v), want inode and dev kept", got, err)
			}
		})
	}
}

func TestEntryEncodingIsCompact(t *testing.T) {
	e := codecEntries()["file"]
	b := AppendEntry(nil, &e)
	// header + path + mode/time/size + per chunk 36 CID bytes + 2 size bytes.
	if max := 40 + len(e.Path) + len(e.Chunks)*(36+2); len(b) > max {
		t.Fatalf("%d chunks encode in %d bytes, want <= %d", len(e.Chunks), len(b), max)
	}
}

// validFileEncoding builds an encoding by hand, with chunk list parts that
// the rejection table can break.
func encodeRaw(path string, kind byte, mode uint64, size uint64, chunkCIDs [][]byte, chunkSizes []uint64) []byte {
	b := []byte{1, 0}
	b = binary.AppendUvarint(b, uint64(len(path)))
	b = append(b, path...)
	b = append(b, kind)
	b = binary.AppendUvarint(b, mode)
	b = binary.AppendVarint(b, 1000)
	b = binary.AppendUvarint(b, 0)
	if kind == byte(KindFile) {
		b = binary.AppendUvarint(b, size)
		b = binary.AppendUvarint(b, uint64(len(chunkCIDs)))
		for i := range chunkCIDs {
			b = append(b, chunkCIDs[i]...)
			b = binary.AppendUvarint(b, chunkSizes[i])
		}
	}
	return b
}

func TestDecodeEntryRejects(t *testing.T) {
	good := ChunkCID([]byte("x")).Bytes()
	sha := slices.Clone(good)
	sha[2] = 0x12
	dagpb := slices.Clone(good)
	dagpb[1] = 0x70
	sha1 := slices.Clone(good)
	sha1[2] = 0x11
	cidv0 := slices.Clone(good)
	cidv0[0] = 0
	one := func(size uint64, c []byte, csize uint64) []byte {
		return encodeRaw("f", 1, 0o644, size, [][]byte{c}, []uint64{csize})
	}

	if _, _, err := DecodeEntry(encodeRaw("f", 1, 0o644, 10, [][]byte{good}, []uint64{10})); err != nil {
		t.Fatalf("hand-built good entry rejected: %v", err)
	}
	if _, _, err := DecodeEntry(encodeRaw("f", 1, 0o644, 10, [][]byte{sha}, []uint64{10})); err != nil {
		t.Fatalf("SHA2-256 chunk rejected: %v", err)
	}
	overlong := encodeRaw("f", 2, 0o644, 0, nil, nil)
	overlong = append(overlong[:5], append([]byte{0xa4, 0x83, 0x00}, overlong[7:]...)...) // mode 0o644 padded
	huge := encodeRaw("f", 1, 0o644, 1<<40, nil, nil)
	huge = append(huge[:len(huge)-1], binary.AppendUvarint(nil, 1<<30)...)
	localZero := encodeRaw("d", 2, 0o755, 0, nil, nil)
	localZero[1] = flagLocal
	localZero = append(localZero, 0, 0)
	symlink := func(target string) []byte {
		b := encodeRaw("l", 3, 0o777, 0, nil, nil)
		b = binary.AppendUvarint(b, uint64(len(target)))
		return append(b, target...)
	}

	tests := map[string][]byte{
		"empty input":        nil,
		"bad version":        append([]byte{2}, encodeRaw("f", 2, 0, 0, nil, nil)[1:]...),
		"unknown flag":       append([]byte{1, 0x80}, encodeRaw("f", 2, 0, 0, nil, nil)[2:]...),
		"empty path":         encodeRaw("", 2, 0o755, 0, nil, nil),
		"absolute path":      encodeRaw("/etc/passwd", 1, 0o644, 0, nil, nil),
		"dotdot path":        encodeRaw("a/../../b", 1, 0o644, 0, nil, nil),
		"dot path":           encodeRaw("./a", 1, 0o644, 0, nil, nil),
		"double slash":       encodeRaw("a//b", 1, 0o644, 0, nil, nil),
		"trailing slash":     encodeRaw("a/", 2, 0o644, 0, nil, nil),
		"NUL in path":        encodeRaw("a\x00b", 1, 0o644, 0, nil, nil),
		"path too long":      encodeRaw(strings.Repeat("a", MaxPath+1), 1, 0o644, 0, nil, nil),
		"kind 0":             encodeRaw("f", 0, 0o644, 0, nil, nil),
		"kind 4":             encodeRaw("f", 4, 0o644, 0, nil, nil),
		"mode bits":          encodeRaw("f", 1, 0o10000, 0, nil, nil),
		"overlong varint":    overlong,
		"size mismatch":      one(11, good, 10),
		"zero chunk size":    one(0, good, 0),
		"chunk too large":    one(MaxChunk+1, good, MaxChunk+1),
		"too many chunks":    encodeRaw("f", 1, 0o644, 3, [][]byte{good, good, good}, []uint64{1, 1, 1}),
		"chunks beyond size": encodeRaw("f", 1, 0o644, 2*MinChunk, [][]byte{good, good, good, good, good}, []uint64{MinChunk, MinChunk, 0, 0, 0}),
		"dag-pb chunk":       one(10, dagpb, 10),
		"sha1 chunk":         one(10, sha1, 10),
		"cidv0 chunk":        one(10, cidv0, 10),
		"count beyond input": huge,
		"truncated chunk":    one(10, good, 10)[:30],
		"local without ids":  localZero,
		"empty target":       symlink(""),
		"target too long":    symlink(strings.Repeat("t", MaxTarget+1)),
		"NUL in target":      symlink("a\x00"),
	}
	for name, b := range tests {
		e, n, err := DecodeEntry(b)
		if !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: err = %v (entry %q, %d bytes), want ErrBadEntry", name, err, e.Path, n)
		}
	}
	// Every strict prefix of a valid entry is rejected, not misread.
	full := AppendEntryLocal(nil, &Entry{Path: "p/q", Kind: KindFile, Size: 20, Chunks: []Chunk{{ChunkCID([]byte("a")), 20}}, Inode: 9, Dev: 1})
	for i := range len(full) {
		if _, _, err := DecodeEntry(full[:i]); !errors.Is(err, ErrBadEntry) {
			t.Fatalf("prefix of %d/%d bytes: err = %v", i, len(full), err)
		}
	}
}

func TestValidPath(t *testing.T) {
	for _, p := range []string{"a", "a/b", ".hidden", "a/..b", "..x/y", "日本/語", "a b", "a\\b"} {
		if err := ValidPath(p); err != nil {
			t.Errorf("ValidPath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", ".", "..", "/", "/a", "a/", "a//b", "./a", "a/./b", "a/..", "../a", "a\x00"} {
		if err := ValidPath(p); !errors.Is(err, ErrBadPath) {
			t.Errorf("ValidPath(%q) = %v, want ErrBadPath", p, err)
		}
	}
}

// FuzzDecodeEntry: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to exactly the bytes consumed (the encoding is
// canonical) and satisfies the documented bounds.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range codecEntries() {
		f.Add(AppendEntry(nil, &e))
		e.Inode = 5
		f.Add(AppendEntryLocal(nil, &e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("error not wrapping ErrBadEntry: %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		var again []byte
		if e.Inode != 0 || e.Dev != 0 {
			again = AppendEntryLocal(nil, &e)
		} else {
			again = AppendEntry(nil, &e)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b[:n], again)
		}
		if ValidPath(e.Path) != nil || sumSizes(e.Chunks) != e.Size && e.Kind == KindFile {
			t.Fatalf("decoded entry breaks the bounds: %+v", e)
		}
		for _, c := range e.Chunks {
			if _, _, err := checkCID(c.CID); err != nil {
				t.Fatalf("decoded unsupported chunk CID: %v", err)
			}
		}
	})
}
