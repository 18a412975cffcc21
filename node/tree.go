package node

import (
	"path"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

// tree is the in-memory state of a folder: every entry by path, with a
// child index so that a directory's subtree is found without a full scan.
// It is owned by one goroutine for writes; readers hold the owner's lock.
type tree struct {
	files map[string]*baseline.Entry
	kids  map[string]map[string]struct{} // parent path ("" for the root) -> child paths
	bytes int64                          // total size of regular files
}

func newTree() *tree {
	return &tree{files: make(map[string]*baseline.Entry), kids: make(map[string]map[string]struct{})}
}

func parentOf(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

func (t *tree) get(p string) *baseline.Entry { return t.files[p] }

func (t *tree) len() int { return len(t.files) }

// put sets the entry for e.Path, replacing what was there (a directory
// replaced by a non-directory loses its subtree).
func (t *tree) put(e *baseline.Entry) {
	if old := t.files[e.Path]; old != nil {
		if old.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
			for k := range t.kids[e.Path] {
				t.remove(k)
			}
		}
		if old.Kind == baseline.KindFile {
			t.bytes -= old.Size
		}
	}
	t.files[e.Path] = e
	if e.Kind == baseline.KindFile {
		t.bytes += e.Size
	}
	par := parentOf(e.Path)
	k := t.kids[par]
	if k == nil {
		k = make(map[string]struct{})
		t.kids[par] = k
	}
	k[e.Path] = struct{}{}
}

// remove deletes p and its subtree and returns the removed entries.
func (t *tree) remove(p string) []*baseline.Entry {
	var out []*baseline.Entry
	t.walk(p, func(e *baseline.Entry) { out = append(out, e) })
	for _, e := range out {
		delete(t.files, e.Path)
		delete(t.kids, e.Path)
		if e.Kind == baseline.KindFile {
			t.bytes -= e.Size
		}
	}
	if k := t.kids[parentOf(p)]; k != nil {
		delete(k, p)
		if len(k) == 0 {
			delete(t.kids, parentOf(p))
		}
	}
	return out
}

// rename moves from and its subtree to to (replacing what was at to) and
// returns the moved entries under their new paths.
func (t *tree) rename(from, to string) []*baseline.Entry {
	moved := t.remove(from)
	t.remove(to)
	out := make([]*baseline.Entry, 0, len(moved))
	for _, e := range moved {
		ne := *e
		ne.Path = to + strings.TrimPrefix(e.Path, from)
		t.put(&ne)
		out = append(out, &ne)
	}
	return out
}

// walk calls fn for p (if present) and each entry below it, parents first.
func (t *tree) walk(p string, fn func(*baseline.Entry)) {
	if e := t.files[p]; e != nil {
		fn(e)
	}
	kids := make([]string, 0, len(t.kids[p]))
	for k := range t.kids[p] {
		kids = append(kids, k)
	}
	sort.Strings(kids)
	for _, k := range kids {
		t.walk(k, fn)
	}
}

// sorted returns every entry in path order.
func (t *tree) sorted() []*baseline.Entry {
	out := make([]*baseline.Entry, 0, len(t.files))
	for _, e := range t.files {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// chunkLoc is where a chunk's bytes can be read: a file of the folder and
// an offset in it.
type chunkLoc struct {
	path string
	off  int64
	size uint32
}

// locIndex maps each chunk CID to the files (and offsets) that hold it.
type locIndex map[cid.Cid][]chunkLoc

func (li locIndex) add(e *baseline.Entry) {
	if e.Kind != baseline.KindFile {
		return
	}
	var off int64
	for _, c := range e.Chunks {
		li[c.CID] = append(li[c.CID], chunkLoc{path: e.Path, off: off, size: c.Size})
		off += int64(c.Size)
	}
}

func (li locIndex) drop(e *baseline.Entry) {
	if e.Kind != baseline.KindFile {
		return
	}
	for _, c := range e.Chunks {
		locs := li[c.CID]
		out := locs[:0]
		for _, l := range locs {
			if l.path != e.Path {
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

// encodeIndexEntry is the bbolt form of an entry: the wire encoding plus
// the source-local inode and device.
func encodeIndexEntry(e *baseline.Entry) []byte { return baseline.AppendEntryLocal(nil, e) }

func decodeIndexEntry(b []byte) (*baseline.Entry, error) {
	e, _, err := baseline.DecodeEntry(b)
	if err != nil {
		return nil, err
	}
	return &e, nil
}
