package restore

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/store"
)

// fixture is a replica built by hand, without a node: a replica tree, its
// index rows, version rows and history chunk store, moved on change by
// change the way the applier does (the old content of a replaced or
// deleted file is kept in the history store first).
type fixture struct {
	t    *testing.T
	d    *Replica
	rep  *store.Replica
	cur  map[string]*baseline.Entry
	seq  uint64 // of the last change
	next uint64 // of the next change: 1 at first (0: the baseline of an empty journal)
	t0   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenDB(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h, err := history.Open(dir, "src", "f")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "replicas", "src", "f")
	rep, err := store.OpenReplica(root)
	if err != nil {
		t.Fatal(err)
	}
	d := &Replica{DB: db, History: h, Root: root, Source: "src", SourceName: "laptop", Folder: "f",
		Rows: index.Replica("src", "f"), DataDir: dir, Log: slog.New(slog.DiscardHandler), Retained: true}
	return &fixture{t: t, d: d, rep: rep, cur: make(map[string]*baseline.Entry), next: 1,
		t0: time.Now().Add(-time.Hour).Truncate(time.Second)}
}

// dirMark in a change makes the path a directory.
var dirMark = []byte("\x00dir")

// change applies one change at seq f.next: each path becomes a file with
// the given content, a directory (dirMark), or is deleted (nil). The
// change at seq n is at t0 + n seconds. It returns the seq and source
// time of the change.
func (f *fixture) change(files map[string][]byte) (uint64, time.Time) {
	t := f.t
	t.Helper()
	f.seq = f.next
	f.next++
	at := f.t0.Add(time.Duration(f.seq) * time.Second)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var vs []history.Version
	for _, p := range paths {
		data := files[p]
		var next *baseline.Entry
		switch {
		case data == nil:
		case bytes.Equal(data, dirMark):
			next = &baseline.Entry{Path: p, Kind: baseline.KindDir, Mode: 0o750, MTime: at}
		default:
			chunks, err := baseline.ChunkReader(context.Background(), bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			next = &baseline.Entry{Path: p, Kind: baseline.KindFile, Mode: 0o640, MTime: at, Size: int64(len(data)), Chunks: chunks}
		}
		if old := f.cur[p]; old != nil {
			f.d.History.Preserve(f.rep, old, next) // a damaged chunk is skipped, as by the applier
			if next == nil || next.Kind != old.Kind {
				if err := f.rep.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		switch {
		case next == nil:
			delete(f.cur, p)
		case next.Kind == baseline.KindDir:
			if err := f.rep.Mkdir(p, next.Mode, next.MTime); err != nil {
				t.Fatal(err)
			}
			f.cur[p] = next
		default:
			err := f.rep.WriteFile(p, next.Mode, next.MTime, func(w *os.File) error { _, err := w.Write(data); return err })
			if err != nil {
				t.Fatal(err)
			}
			f.cur[p] = next
		}
		vs = append(vs, history.Version{Path: p, Seq: f.seq, Time: at, Entry: next})
	}
	err := f.d.DB.Update(func(tx *store.Tx) error {
		for _, v := range vs {
			if v.Entry == nil {
				if err := f.d.Rows.Files().Delete(tx, v.Path); err != nil {
					return err
				}
			} else if err := f.d.Rows.Files().Put(tx, v.Entry); err != nil {
				return err
			}
		}
		if err := f.d.History.Save(tx, vs); err != nil {
			return err
		}
		return f.d.Rows.PutApplied(tx, f.seq, time.Now(), at)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f.seq, at
}

// damage flips the byte at off of replica file p, keeping its size and mtime.
func (f *fixture) damage(p string, off int64) {
	f.t.Helper()
	abs := filepath.Join(f.d.Root, filepath.FromSlash(p))
	fi, err := os.Stat(abs)
	if err != nil {
		f.t.Fatal(err)
	}
	fl, err := os.OpenFile(abs, os.O_RDWR, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := fl.ReadAt(b, off); err != nil {
		f.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fl.WriteAt(b, off); err != nil {
		f.t.Fatal(err)
	}
	fl.Close()
	if err := os.Chtimes(abs, fi.ModTime(), fi.ModTime()); err != nil {
		f.t.Fatal(err)
	}
}

// chunkAt returns the chunk of the current version of p that holds byte off.
func (f *fixture) chunkAt(p string, off int64) baseline.Chunk {
	f.t.Helper()
	var at int64
	for _, c := range f.cur[p].Chunks {
		if off < at+int64(c.Size) {
			return c
		}
		at += int64(c.Size)
	}
	f.t.Fatalf("%s has no byte %d", p, off)
	return baseline.Chunk{}
}

// restore runs Restore of the fixture's replica.
func (f *fixture) restore(req RestoreRequest) (RestoreResult, error) {
	req.Source, req.Folder = "src", "f"
	return Restore(context.Background(), f.d, req, nil)
}

// snapshot returns every path below dir with its kind, mode and content
// (a symlink's target): what a test compares before and after.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
