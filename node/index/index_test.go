package index

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

func entry(p string, data string) *baseline.Entry {
	d := []byte(data)
	return &baseline.Entry{Path: p, Kind: baseline.KindFile, Mode: 0o644, MTime: time.Unix(1700000000, 0), Size: int64(len(d)),
		Inode: 42, Dev: 7, Chunks: []baseline.Chunk{{CID: baseline.ChunkCID(d), Size: uint32(len(d))}}}
}

func TestTreeRenameMovesSubtreeAndLocsFollow(t *testing.T) {
	tr, locs := NewTree(), make(Locs)
	for _, e := range []*baseline.Entry{{Path: "d", Kind: baseline.KindDir}, entry("d/a", "x"), entry("d/b", "x"), entry("e", "y")} {
		tr.Put(e)
		locs.Add(e)
	}
	if tr.Len() != 4 || tr.Bytes() != 3 || tr.Files() != 3 {
		t.Fatalf("len %d bytes %d files %d", tr.Len(), tr.Bytes(), tr.Files())
	}
	c := baseline.ChunkCID([]byte("x"))
	if len(locs[c]) != 2 {
		t.Fatalf("locs of x: %v", locs[c])
	}
	tr.Walk("d", func(e *baseline.Entry) { locs.Drop(e) })
	for _, e := range tr.Rename("d", "n/d") {
		locs.Add(e)
	}
	if tr.Get("d/a") != nil || tr.Get("n/d/a") == nil || tr.Get("n/d/b") == nil {
		t.Fatal("subtree not moved")
	}
	for _, l := range locs[c] {
		if l.Path != "n/d/a" && l.Path != "n/d/b" {
			t.Fatalf("stale location %+v", l)
		}
	}
	if Parent("n/d/a") != "n/d" || Parent("e") != "" {
		t.Fatal("Parent")
	}
}

func TestRowsRoundTripEntriesAndPositions(t *testing.T) {
	db, err := store.OpenDB(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ar, rr := Agent("docs"), Replica("src", "docs")
	at := time.Unix(1700000001, 5)
	err = db.Update(func(tx *store.Tx) error {
		if err := ar.Files().Put(tx, entry("a", "hello")); err != nil {
			return err
		}
		if err := ar.PutSeq(tx, 9); err != nil {
			return err
		}
		if err := ar.PutBackup(tx, []byte("peer"), BackupRow{Applied: 4, AppliedAt: at, AckedAt: at, Baseline: true}); err != nil {
			return err
		}
		if err := rr.PutApplied(tx, 12, at, at); err != nil {
			return err
		}
		return rr.PutBaselineDone(tx, 10, at)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *store.Tx) error {
		tr, _, err := ar.Files().LoadTree(tx)
		if err != nil || tr.Get("a") == nil || tr.Get("a").Inode != 42 {
			t.Fatalf("tree %v %v", tr.Get("a"), err)
		}
		if m := ar.Meta(tx); m.Seq != 9 || m.Scanned {
			t.Fatalf("agent meta %+v", m)
		}
		n := 0
		ar.Backups(tx, func(id []byte, r BackupRow) error {
			n++
			if string(id) != "peer" || r.Applied != 4 || !r.Baseline || !r.AckedAt.Equal(at) {
				t.Fatalf("backup row %q %+v", id, r)
			}
			return nil
		})
		if n != 1 {
			t.Fatalf("%d backup rows", n)
		}
		m := rr.Meta(tx)
		if m.Applied != 10 || !m.BaselineOK || m.BaselineSeq != 10 || !m.RecordTime.Equal(at) {
			t.Fatalf("replica meta %+v", m)
		}
		return nil
	})
}

func FuzzDecodeEntryRow(f *testing.F) {
	e := entry("a/b", "data")
	f.Add([]byte(e.Path), baseline.AppendEntryLocal(nil, e))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		got, err := DecodeEntry(k, v)
		if err != nil {
			return
		}
		again, err := DecodeEntry(k, baseline.AppendEntryLocal(nil, got))
		if err != nil || !again.SameContent(got) || again.Path != got.Path {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestTreeFilesCountsRegularFilesOnly(t *testing.T) {
	tr := NewTree()
	for _, e := range []*baseline.Entry{{Path: "d", Kind: baseline.KindDir}, entry("d/a", "x"), {Path: "d/l", Kind: baseline.KindSymlink, Target: "a"},
		{Path: "e", Kind: baseline.KindDir}, entry("f", "yy")} {
		tr.Put(e)
	}
	if tr.Files() != 2 || tr.Len() != 5 {
		t.Fatalf("Files() = %d, Len() = %d; want 2 regular files among 5 entries", tr.Files(), tr.Len())
	}
	tr.Put(entry("f", "zzz")) // replaced: still one file
	tr.Put(&baseline.Entry{Path: "d/a", Kind: baseline.KindDir})
	if tr.Files() != 1 {
		t.Fatalf("after replacing d/a by a directory: Files() = %d, want 1", tr.Files())
	}
	tr.Rename("f", "g")
	tr.Remove("d")
	if tr.Files() != 1 || tr.Bytes() != 3 {
		t.Fatalf("after rename and remove: Files() = %d, Bytes() = %d, want 1 and 3", tr.Files(), tr.Bytes())
	}
	tr.Remove("g")
	if tr.Files() != 0 {
		t.Fatalf("empty tree: Files() = %d", tr.Files())
	}
}
