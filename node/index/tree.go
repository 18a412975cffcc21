package index

import (
	"iter"
	"path"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

// Tree is the in-memory state of a folder: every entry by path, with a
// child index so that a directory's subtree is found without a full scan.
// It is owned by one goroutine for writes; readers hold the owner's lock.
type Tree struct {
	files   map[string]*baseline.Entry
	kids    map[string]map[string]struct{} // parent path ("" for the root) -> child paths
	bytes   int64                          // total size of regular files
	regular int                            // number of regular files
}

func NewTree() *Tree {
	return &Tree{files: make(map[string]*baseline.Entry), kids: make(map[string]map[string]struct{})}
}

// Parent is the parent path of p, "" for a top-level path.
func Parent(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// Get returns the entry at p, nil if none.
func (t *Tree) Get(p string) *baseline.Entry { return t.files[p] }

// Bytes is the total size of the regular files.
func (t *Tree) Bytes() int64 { return t.bytes }

// All yields every entry, in no particular order.
func (t *Tree) All() iter.Seq[*baseline.Entry] {
	return func(yield func(*baseline.Entry) bool) {
		for _, e := range t.files {
			if !yield(e) {
				return
			}
		}
	}
}

// Len is the number of entries: files, directories and symlinks.
func (t *Tree) Len() int { return len(t.files) }

// Files is the number of regular files.
func (t *Tree) Files() int { return t.regular }

// Put sets the entry for e.Path, replacing what was there (a directory
// replaced by a non-directory loses its subtree).
func (t *Tree) Put(e *baseline.Entry) {
	if old := t.files[e.Path]; old != nil {
		if old.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
			for k := range t.kids[e.Path] {
				t.Remove(k)
			}
		}
		if old.Kind == baseline.KindFile {
			t.bytes -= old.Size
			t.regular--
		}
	}
	t.files[e.Path] = e
	if e.Kind == baseline.KindFile {
		t.bytes += e.Size
		t.regular++
	}
	par := Parent(e.Path)
	k := t.kids[par]
	if k == nil {
		k = make(map[string]struct{})
		t.kids[par] = k
	}
	k[e.Path] = struct{}{}
}

// Remove deletes p and its subtree and returns the removed entries.
func (t *Tree) Remove(p string) []*baseline.Entry {
	var out []*baseline.Entry
	t.Walk(p, func(e *baseline.Entry) { out = append(out, e) })
	for _, e := range out {
		delete(t.files, e.Path)
		delete(t.kids, e.Path)
		if e.Kind == baseline.KindFile {
			t.bytes -= e.Size
			t.regular--
		}
	}
	if k := t.kids[Parent(p)]; k != nil {
		delete(k, p)
		if len(k) == 0 {
			delete(t.kids, Parent(p))
		}
	}
	return out
}

// Rename moves from and its subtree to to (replacing what was at to) and
// returns the moved entries under their new paths.
func (t *Tree) Rename(from, to string) []*baseline.Entry {
	moved := t.Remove(from)
	t.Remove(to)
	out := make([]*baseline.Entry, 0, len(moved))
	for _, e := range moved {
		ne := *e
		ne.Path = to + strings.TrimPrefix(e.Path, from)
		t.Put(&ne)
		out = append(out, &ne)
	}
	return out
}

// Walk calls fn for p (if present) and each entry below it, parents first.
func (t *Tree) Walk(p string, fn func(*baseline.Entry)) {
	if e := t.files[p]; e != nil {
		fn(e)
	}
	kids := make([]string, 0, len(t.kids[p]))
	for k := range t.kids[p] {
		kids = append(kids, k)
	}
	sort.Strings(kids)
	for _, k := range kids {
		t.Walk(k, fn)
	}
}

// Sorted returns every entry in path order.
func (t *Tree) Sorted() []*baseline.Entry {
	out := make([]*baseline.Entry, 0, len(t.files))
	for _, e := range t.files {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Loc is where a chunk's bytes can be read: a file of the folder and
// an offset in it.
type Loc struct {
	Path string
	Off  int64
	Size uint32
}

// Locs maps each chunk CID to the files (and offsets) that hold it.
type Locs map[cid.Cid][]Loc

// Add records where e's chunks are.
func (li Locs) Add(e *baseline.Entry) {
	if e.Kind != baseline.KindFile {
		return
	}
	var off int64
	for _, c := range e.Chunks {
		li[c.CID] = append(li[c.CID], Loc{Path: e.Path, Off: off, Size: c.Size})
		off += int64(c.Size)
	}
}

// Drop forgets the chunk locations of e.
func (li Locs) Drop(e *baseline.Entry) {
	if e.Kind != baseline.KindFile {
		return
	}
	for _, c := range e.Chunks {
		locs := li[c.CID]
		out := locs[:0]
		for _, l := range locs {
			if l.Path != e.Path {
				out = append(out, l)
			}
		}
		if len(out) == 0 {
			delete(li, c.CID)
		} else {
			li[c.CID] = out
		}
	}
}
