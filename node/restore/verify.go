package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/store"
)

// readIndex returns the replica's current index and applied seq.
func readIndex(d *Replica) (map[string]*baseline.Entry, uint64, error) {
	idx := make(map[string]*baseline.Entry)
	var applied uint64
	err := d.DB.View(func(tx *store.Tx) error {
		applied = d.Rows.Meta(tx).Applied
		err := d.Rows.Files().Load(tx, func(e *baseline.Entry) error {
			idx[e.Path] = e
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore: index of replica %s: %w", d.label(), err)
		}
		return nil
	})
	return idx, applied, err
}

// Verify checks replica d: every file of the replica tree is re-chunked and
// compared with the index (content root, size, mode bits, mtime, symlink
// target, kind), files the index does not know are reported as extra,
// every chunk of the history store is re-hashed against its CID, and every
// version kept for point-in-time restore is checked to be restorable: each
// of its chunks is intact in the history store or in the replica tree at a
// place its index gives (else "history-missing"). When the replica is
// running and its source online and caught up, the index is also compared
// with the source's current snapshot (Against "source").
func Verify(ctx context.Context, d *Replica) (VerifyReport, error) {
	rep := VerifyReport{Source: d.Source, SourceName: d.SourceName, Folder: d.Folder,
		Time: time.Now().UTC(), Against: "local", Problems: []VerifyProblem{}}
	idx, applied, err := readIndex(d)
	if err != nil {
		return rep, err
	}
	var root *os.Root
	if fi, err := os.Stat(d.Root); err == nil && fi.IsDir() {
		if root, err = os.OpenRoot(d.Root); err != nil {
			return rep, fmt.Errorf("restore: replica %s: %w", d.label(), err)
		}
		defer root.Close()
	}

	// 1. the replica tree against the index
	paths := make([]string, 0, len(idx))
	for p := range idx {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var problems []VerifyProblem
	// files whose content is not all as the index says: what they hold
	unsure := make(map[string]*held)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		e := idx[p]
		if e.Kind == baseline.KindFile {
			rep.Files++
			rep.Bytes += e.Size
		}
		pr, h := checkEntry(ctx, root, e)
		if pr != nil {
			problems = append(problems, *pr)
		}
		if h != nil {
			unsure[p] = h
		}
	}
	if root != nil {
		err := filepath.WalkDir(d.Root, func(abs string, de fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if abs == d.Root {
				return nil
			}
			if strings.HasPrefix(de.Name(), store.TempPrefix) {
				if de.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			rel, _ := filepath.Rel(d.Root, abs)
			rel = filepath.ToSlash(rel)
			e := idx[rel]
			if e == nil {
				problems = append(problems, VerifyProblem{Path: rel, Kind: "extra", Detail: "in the replica tree but not in this node's index"})
				if de.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("restore: walk replica %s: %w", d.label(), err)
		}
	}
	// The replica may have changed while it was read: re-check each
	// problem against a fresh index before reporting it.
	if len(problems) > 0 && d.Live != nil {
		fresh, _, err := readIndex(d)
		if err != nil {
			return rep, err
		}
		kept := problems[:0]
		for _, pr := range problems {
			e := fresh[pr.Path]
			switch {
			case pr.Kind == "extra" && e != nil:
				if pr2, _ := checkEntry(ctx, root, e); pr2 != nil {
					kept = append(kept, *pr2)
				}
			case pr.Kind == "extra":
				if _, err := root.Lstat(pr.Path); err == nil {
					kept = append(kept, pr)
				}
			case e == nil:
				// removed from the index meanwhile
			case e.SameContent(idx[pr.Path]) && e.SameMeta(idx[pr.Path]):
				kept = append(kept, pr)
			default:
				if pr2, _ := checkEntry(ctx, root, e); pr2 != nil {
					kept = append(kept, *pr2)
				}
			}
		}
		problems = kept
	}

	// 2. the history chunk store
	intact := make(map[cid.Cid]struct{}) // history chunks that match their CID
	err = d.History.Chunks.ForEach(func(c cid.Cid, size int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := d.History.Chunks.Get(c)
		if errors.Is(err, store.ErrNotFound) {
			return nil // pruned meanwhile
		}
		rep.HistoryChunks++
		file := filepath.Join(d.History.Chunks.Dir(), c.String()[len(c.String())-2:], c.String())
		if err != nil {
			problems = append(problems, VerifyProblem{Path: file, Kind: "history-chunk", Chunk: c.String(), Detail: fmt.Sprintf("chunk %s: %v", c, err)})
			return nil
		}
		if err := baseline.VerifyChunk(c, data); err != nil {
			problems = append(problems, VerifyProblem{Path: file, Kind: "history-chunk", Chunk: c.String(),
				Detail: fmt.Sprintf("chunk %s: content does not match its CID", c)})
			return nil
		}
		intact[c] = struct{}{}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("restore: verify history of %s: %w", d.label(), err)
	}

	// 3. every version kept can be restored
	missing, err := verifyVersions(ctx, d, root, idx, unsure, intact, &rep)
	if err != nil {
		return rep, err
	}
	problems = append(problems, missing...)

	// 4. the index against the source's current snapshot
	if d.Live != nil {
		src, err := verifyAgainstSource(ctx, d, applied)
		if err != nil {
			d.Log.Info("verify against the source skipped", "err", err)
		} else {
			rep.Against = "source"
			problems = append(problems, src...)
		}
	}
	rep.Problems = append(rep.Problems, problems...)
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// held is what a replica file whose content differs from its index entry
// still holds intact: the chunks found at their index offsets.
type held struct {
	at map[int64]cid.Cid // offset -> chunk the file holds there
}

func (h *held) has(l index.Loc, c cid.Cid) bool {
	got, ok := h.at[l.Off]
	return ok && got.Equals(c)
}

// checkEntry compares the replica tree at e.Path with e; the problem is
// nil if they match. For a file whose content is not as e says (or cannot
// be read), it also returns what the file holds intact (nil otherwise).
func checkEntry(ctx context.Context, root *os.Root, e *baseline.Entry) (*VerifyProblem, *held) {
	differs := func(format string, args ...any) *VerifyProblem {
		return &VerifyProblem{Path: e.Path, Kind: "differs", Detail: fmt.Sprintf(format, args...)}
	}
	lost := &held{}
	if root == nil {
		return &VerifyProblem{Path: e.Path, Kind: "missing", Detail: "the replica tree does not exist"}, lost
	}
	fi, err := root.Lstat(e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return &VerifyProblem{Path: e.Path, Kind: "missing", Detail: "a " + e.Kind.String() + " in the index, not in the replica tree"}, lost
	}
	if err != nil {
		return differs("%v", err), lost
	}
	var kind baseline.Kind
	switch {
	case fi.Mode().IsRegular():
		kind = baseline.KindFile
	case fi.IsDir():
		kind = baseline.KindDir
	case fi.Mode()&fs.ModeSymlink != 0:
		kind = baseline.KindSymlink
	}
	if kind != e.Kind {
		return differs("a %s in the index, a %v in the replica tree", e.Kind, fi.Mode().Type()), lost
	}
	switch e.Kind {
	case baseline.KindFile:
		// the content is read even when the metadata differs: a restore
		// can still take its chunks
		f, err := root.Open(e.Path)
		if err != nil {
			return differs("%v", err), lost
		}
		var off int64
		at := make(map[int64]cid.Cid)
		chunks, err := baseline.ChunkReader(ctx, f, nil)
		f.Close()
		if err != nil {
			return differs("read: %v", err), lost
		}
		for _, c := range chunks {
			at[off] = c.CID
			off += int64(c.Size)
		}
		var h *held
		got := baseline.ContentRoot(chunks)
		if !got.Equals(e.Root()) {
			h = &held{at: at}
		}
		switch {
		case fi.Size() != e.Size:
			return differs("size %d, want %d", fi.Size(), e.Size), h
		case h != nil:
			return differs("content root %s, want %s", got, e.Root()), h
		case fi.Mode().Perm() != e.Mode.Perm():
			return differs("mode %v, want %v", fi.Mode().Perm(), e.Mode.Perm()), nil
		case !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime):
			return differs("mtime %s, want %s", fi.ModTime().UTC().Format(time.RFC3339Nano), e.MTime.UTC().Format(time.RFC3339Nano)), nil
		}
	case baseline.KindDir:
		if fi.Mode().Perm() != dirPerm(e.Mode) {
			return differs("mode %v, want %v", fi.Mode().Perm(), dirPerm(e.Mode)), nil
		}
		if !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime) {
			return differs("mtime %s, want %s", fi.ModTime().UTC().Format(time.RFC3339Nano), e.MTime.UTC().Format(time.RFC3339Nano)), nil
		}
	case baseline.KindSymlink:
		t, err := root.Readlink(e.Path)
		if err != nil {
			return differs("%v", err), nil
		}
		if t != e.Target {
			return differs("symlink target %q, want %q", t, e.Target), nil
		}
		if !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime) {
			return differs("mtime %s, want %s", fi.ModTime().UTC().Format(time.RFC3339Nano), e.MTime.UTC().Format(time.RFC3339Nano)), nil
		}
	}
	return nil, nil
}

// verifyVersions checks that the content of every version row can be
// restored: each chunk is in intact (the history chunks that match their
// CID) or in a replica file at the place the index idx gives, where that
// file was found intact (not in unsure, or unsure says it holds the chunk
// there). A version that fails is checked again by reading its chunks
// afresh (the replica may have moved on meanwhile) before it is reported.
func verifyVersions(ctx context.Context, d *Replica, root *os.Root, idx map[string]*baseline.Entry,
	unsure map[string]*held, intact map[cid.Cid]struct{}, rep *VerifyReport) ([]VerifyProblem, error) {
	var locs index.Locs
	inReplica := func(c baseline.Chunk) bool {
		if root == nil {
			return false
		}
		if locs == nil {
			locs = make(index.Locs)
			for _, e := range idx {
				locs.Add(e)
			}
		}
		for _, l := range locs[c.CID] {
			if l.Size != c.Size {
				continue
			}
			if h := unsure[l.Path]; h == nil || h.has(l, c.CID) {
				return true
			}
		}
		return false
	}
	var suspects []history.Version
	err := d.DB.View(func(tx *store.Tx) error {
		return d.History.ForEach(tx, func(v history.Version) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			rep.HistoryVersions++
			e := v.Entry
			if e == nil || e.Kind != baseline.KindFile || len(e.Chunks) == 0 {
				return nil
			}
			if cur := idx[v.Path]; cur != nil && unsure[v.Path] == nil && cur.SameContent(e) {
				return nil // the replica file holds this version, intact
			}
			for _, c := range e.Chunks {
				if _, ok := intact[c.CID]; ok || inReplica(c) {
					continue
				}
				suspects = append(suspects, v)
				break
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("restore: verify history of %s: %w", d.label(), err)
	}
	if len(suspects) == 0 {
		return nil, nil
	}

	// look again, reading each chunk from wherever the index now says it is
	fresh, _, err := readIndex(d)
	if err != nil {
		return nil, err
	}
	freshLocs := make(index.Locs)
	for _, e := range fresh {
		freshLocs.Add(e)
	}
	found := make(map[cid.Cid]bool)
	available := func(c baseline.Chunk) bool {
		if ok, seen := found[c.CID]; seen {
			return ok
		}
		ok := false
		if data, err := d.History.Chunks.Get(c.CID); err == nil && baseline.VerifyChunk(c.CID, data) == nil {
			ok = true
		}
		if !ok && root != nil {
			buf := make([]byte, c.Size)
			for _, l := range freshLocs[c.CID] {
				if l.Size != c.Size {
					continue
				}
				if readAt(root, l.Path, buf, l.Off) && baseline.VerifyChunk(c.CID, buf) == nil {
					ok = true
					break
				}
			}
		}
		found[c.CID] = ok
		return ok
	}
	var out []VerifyProblem
	for _, v := range suspects {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var first cid.Cid
		n := 0
		for _, c := range v.Entry.Chunks {
			if !available(c) {
				if n == 0 {
					first = c.CID
				}
				n++
			}
		}
		if n == 0 {
			continue
		}
		t, seq := v.Time.UTC(), v.Seq
		detail := fmt.Sprintf("the version of %s (seq %d) cannot be restored: chunk %s", t.Format(time.RFC3339Nano), seq, first)
		if n > 1 {
			detail += fmt.Sprintf(" (and %d more of its %d chunks)", n-1, len(v.Entry.Chunks))
		}
		detail += " is neither intact in the history store nor in the replica"
		out = append(out, VerifyProblem{Path: v.Path, Kind: "history-missing", Detail: detail, Seq: &seq, Time: &t, Chunk: first.String()})
	}
	return out, nil
}

// readAt reads len(buf) bytes of replica file p at off.
func readAt(root *os.Root, p string, buf []byte, off int64) bool {
	f, err := root.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	n, _ := f.ReadAt(buf, off)
	return n == len(buf)
}

// dirPerm is the permission a replica gives a directory: the owner keeps
// rwx so that the replica can always be updated (see store.Replica.Mkdir).
func dirPerm(m fs.FileMode) fs.FileMode { return m.Perm() | 0o700 }

// verifyAgainstSource compares the index with the source's current
// snapshot when the source is online and the replica is live with nothing
// left to apply; otherwise it says why not.
func verifyAgainstSource(ctx context.Context, d *Replica, applied uint64) ([]VerifyProblem, error) {
	seq, ents, err := d.Live.SourceSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	idx, now, err := readIndex(d)
	if err != nil {
		return nil, err
	}
	if seq != now {
		return nil, fmt.Errorf("source snapshot at seq %d, replica at seq %d: changes in flight", seq, now)
	}
	var out []VerifyProblem
	seen := make(map[string]bool, len(ents))
	for i := range ents {
		s := &ents[i]
		seen[s.Path] = true
		e := idx[s.Path]
		switch {
		case e == nil:
			out = append(out, VerifyProblem{Path: s.Path, Kind: "differs-from-source", Detail: "the source has it, this replica's index does not"})
		case e.Kind != s.Kind:
			out = append(out, VerifyProblem{Path: s.Path, Kind: "differs-from-source", Detail: fmt.Sprintf("a %s at the source, a %s here", s.Kind, e.Kind)})
		case !e.Root().Equals(s.Root()):
			out = append(out, VerifyProblem{Path: s.Path, Kind: "differs-from-source", Detail: fmt.Sprintf("content root %s here, %s at the source", e.Root(), s.Root())})
		}
	}
	for p := range idx {
		if !seen[p] {
			out = append(out, VerifyProblem{Path: p, Kind: "differs-from-source", Detail: "this replica's index has it, the source does not"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
