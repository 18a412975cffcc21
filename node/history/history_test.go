package history

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

func openTest(t *testing.T) (*Store, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenDB(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h, err := Open(dir, "src", "docs")
	if err != nil {
		t.Fatal(err)
	}
	return h, db
}

func fileEntry(p string, data []byte, mt time.Time) *baseline.Entry {
	c := baseline.ChunkCID(data)
	return &baseline.Entry{Path: p, Kind: baseline.KindFile, Mode: 0o644, MTime: mt, Size: int64(len(data)),
		Chunks: []baseline.Chunk{{CID: c, Size: uint32(len(data))}}}
}

func TestVersionsComeBackInSeqOrderWithTombstones(t *testing.T) {
	h, db := openTest(t)
	t0 := time.Unix(1700000000, 0)
	vs := []Version{
		{Path: "a", Seq: 3, Time: t0.Add(3 * time.Second), Entry: nil},
		{Path: "a", Seq: 1, Time: t0, Entry: fileEntry("a", []byte("one"), t0)},
		{Path: "a/b", Seq: 2, Time: t0.Add(time.Second), Entry: fileEntry("a/b", []byte("x"), t0)},
		{Path: "ab", Seq: 2, Time: t0.Add(time.Second), Entry: fileEntry("ab", []byte("y"), t0)},
	}
	if err := db.Update(func(tx *store.Tx) error { return h.Save(tx, vs) }); err != nil {
		t.Fatal(err)
	}
	err := db.View(func(tx *store.Tx) error {
		got, err := h.Versions(tx, "a")
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 3 || got[1].Entry != nil || got[0].Entry.Size != 3 {
			t.Fatalf("versions of a: %+v", got)
		}
		if !h.HasPath(tx, "a") || !h.HasPath(tx, "a/b") || h.HasPath(tx, "b") {
			t.Fatal("HasPath")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPruneKeepsTheStateAtTheCutoffAndFreesUnreferencedChunks(t *testing.T) {
	h, db := openTest(t)
	now := time.Now()
	old, mid, recent := []byte("old content"), []byte("mid content"), []byte("recent content")
	vs := []Version{
		{Path: "f", Seq: 1, Time: now.Add(-3 * time.Hour), Entry: fileEntry("f", old, now)},
		{Path: "f", Seq: 2, Time: now.Add(-2 * time.Hour), Entry: fileEntry("f", mid, now)},
		{Path: "f", Seq: 3, Time: now.Add(-time.Minute), Entry: fileEntry("f", recent, now)},
		{Path: "gone", Seq: 1, Time: now.Add(-3 * time.Hour), Entry: fileEntry("gone", old, now)},
		{Path: "gone", Seq: 2, Time: now.Add(-2 * time.Hour), Entry: nil},
	}
	for _, d := range [][]byte{old, mid, recent} {
		if err := h.Chunks.Put(baseline.ChunkCID(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Update(func(tx *store.Tx) error { return h.Save(tx, vs) }); err != nil {
		t.Fatal(err)
	}
	if err := h.Prune(db, now, time.Hour, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	var left []Version
	db.View(func(tx *store.Tx) error {
		return h.ForEach(tx, func(v Version) error { left = append(left, v); return nil })
	})
	if len(left) != 2 || left[0].Seq != 2 || left[1].Seq != 3 {
		t.Fatalf("left %+v, want f@2 (the state at the cutoff) and f@3", left)
	}
	if _, err := h.Chunks.Get(baseline.ChunkCID(old)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("chunk only old versions used: %v, want ErrNotFound", err)
	}
	if _, err := h.Chunks.Get(baseline.ChunkCID(mid)); err != nil {
		t.Fatalf("chunk of the version at the cutoff: %v", err)
	}
}

func TestPruneLeavesChunksWhileARestoreReads(t *testing.T) {
	h, db := openTest(t)
	d := []byte("orphan")
	if err := h.Chunks.Put(baseline.ChunkCID(d), d); err != nil {
		t.Fatal(err)
	}
	unlock := h.ReadLock()
	if err := h.Prune(db, time.Now(), time.Hour, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Chunks.Get(baseline.ChunkCID(d)); err != nil {
		t.Fatalf("chunk deleted under a reader: %v", err)
	}
	unlock()
	if err := h.Prune(db, time.Now(), time.Hour, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Chunks.Get(baseline.ChunkCID(d)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("orphan chunk kept after the reader left: %v", err)
	}
}

func FuzzDecodeVersion(f *testing.F) {
	t0 := time.Unix(1700000000, 0)
	v := Version{Path: "a/b", Seq: 7, Time: t0, Entry: fileEntry("a/b", []byte("x"), t0)}
	f.Add(key(v.Path, v.Seq), EncodeVersion(&v))
	f.Add(key("gone", 1), EncodeVersion(&Version{Path: "gone", Seq: 1, Time: t0}))
	f.Fuzz(func(t *testing.T, k, val []byte) {
		v, err := DecodeVersion(k, val)
		if err != nil {
			return
		}
		v2, err := DecodeVersion(key(v.Path, v.Seq), EncodeVersion(&v))
		if err != nil || v2.Path != v.Path || v2.Seq != v.Seq || (v2.Entry == nil) != (v.Entry == nil) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
