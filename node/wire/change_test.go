package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

func sampleChanges() []*Change {
	d1, d2 := []byte("chunk one"), bytes.Repeat([]byte{7}, 3000)
	c1, c2 := baseline.ChunkCID(d1), baseline.ChunkCID(d2)
	mt := time.Unix(1700000000, 123456789)
	return []*Change{
		{Op: OpPut, Path: "dir/file.bin", Entry: baseline.Entry{Path: "dir/file.bin", Kind: baseline.KindFile, Mode: 0o644, MTime: mt, Size: int64(len(d1) + len(d2) + 10)},
			BaseRoot: baseline.ContentRoot([]baseline.Chunk{{CID: c1, Size: 10}}),
			Splice:   baseline.Splice{Start: 1, Removed: 2, Added: []baseline.Chunk{{CID: c1, Size: uint32(len(d1))}, {CID: c2, Size: uint32(len(d2))}}},
			Data:     map[cid.Cid][]byte{c2: d2}},
		{Op: OpPut, Path: "new", Entry: baseline.Entry{Path: "new", Kind: baseline.KindFile, Mode: 0o600, MTime: mt, Size: int64(len(d1))},
			Splice: baseline.Splice{Added: []baseline.Chunk{{CID: c1, Size: uint32(len(d1))}}}, Data: map[cid.Cid][]byte{c1: d1}},
		{Op: OpPut, Path: "empty", Entry: baseline.Entry{Path: "empty", Kind: baseline.KindFile, Mode: 0o644, MTime: mt}},
		{Op: OpPut, Path: "d", Entry: baseline.Entry{Path: "d", Kind: baseline.KindDir, Mode: 0o755, MTime: mt}},
		{Op: OpPut, Path: "l", Entry: baseline.Entry{Path: "l", Kind: baseline.KindSymlink, Mode: 0o777, MTime: mt, Target: "../x", Size: 4}},
		{Op: OpDelete, Path: "gone/ünïcode name"},
		{Op: OpRename, Path: "a/b", To: "c/d"},
		{Op: OpMeta, Path: "f", Entry: baseline.Entry{Path: "f", Mode: 0o600, MTime: mt}},
	}
}

func TestChangeRoundTripKeepsEveryField(t *testing.T) {
	for _, c := range sampleChanges() {
		b := EncodeChange(nil, c)
		got, err := DecodeChange(b)
		if err != nil {
			t.Fatalf("%s %s: %v", c.Op, c.Path, err)
		}
		if got.Op != c.Op || got.Path != c.Path || got.To != c.To {
			t.Fatalf("%s: header %+v, want %+v", c.Path, got, c)
		}
		if c.Op == OpPut || c.Op == OpMeta {
			if got.Entry.Mode != c.Entry.Mode || !got.Entry.MTime.Equal(c.Entry.MTime) || got.Entry.Size != c.Entry.Size || got.Entry.Target != c.Entry.Target {
				t.Fatalf("%s: entry %+v, want %+v", c.Path, got.Entry, c.Entry)
			}
		}
		if c.Op == OpPut && c.Entry.Kind == baseline.KindFile {
			if !got.BaseRoot.Equals(c.BaseRoot) && (got.BaseRoot.Defined() || c.BaseRoot.Defined()) {
				t.Fatalf("%s: base root %v, want %v", c.Path, got.BaseRoot, c.BaseRoot)
			}
			if got.Splice.Start != c.Splice.Start || got.Splice.Removed != c.Splice.Removed || len(got.Splice.Added) != len(c.Splice.Added) {
				t.Fatalf("%s: splice %+v, want %+v", c.Path, got.Splice, c.Splice)
			}
			if len(got.Data) != len(c.Data) {
				t.Fatalf("%s: %d inline chunks, want %d", c.Path, len(got.Data), len(c.Data))
			}
			for k, v := range c.Data {
				if !bytes.Equal(got.Data[k], v) {
					t.Fatalf("%s: inline data of %s differs", c.Path, k)
				}
			}
		}
	}
}

func TestDecodeChangeRejectsHostileRecords(t *testing.T) {
	good := EncodeChange(nil, sampleChanges()[0])
	cases := map[string][]byte{
		"empty":          {},
		"bad version":    append([]byte{9}, good[1:]...),
		"unknown op":     {recordVersion, 99, 1, 'a'},
		"path escapes":   EncodeChange(nil, &Change{Op: OpDelete, Path: "../etc/passwd"}),
		"absolute path":  EncodeChange(nil, &Change{Op: OpDelete, Path: "/etc/passwd"}),
		"rename escapes": EncodeChange(nil, &Change{Op: OpRename, Path: "a", To: "a/../../b"}),
		"truncated":      good[:len(good)-5],
		"trailing bytes": append(append([]byte{}, good...), 0),
	}
	for name, b := range cases {
		if _, err := DecodeChange(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeChange(f *testing.F) {
	for _, c := range sampleChanges() {
		f.Add(EncodeChange(nil, c))
	}
	f.Add(EncodeChange(nil, NewGroup(sampleChanges())))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChange(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not a bad-record error", err)
			}
			return
		}
		// what decodes re-encodes to something that decodes the same way
		c2, err := DecodeChange(EncodeChange(nil, c))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if c2.Op != c.Op || c2.Path != c.Path || c2.To != c.To || len(c2.Splice.Added) != len(c.Splice.Added) || len(c2.Group) != len(c.Group) {
			t.Fatalf("round trip changed the record: %+v vs %+v", c, c2)
		}
	})
}
