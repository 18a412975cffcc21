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
// target, kind), files the index does not know are reported as extra, and
// every chunk of the history store is re-hashed against its CID. When the
// replica is running and its source online and caught up, the index is
// also compared with the source's current snapshot (Against "source").
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
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		e := idx[p]
		if e.Kind == baseline.KindFile {
			rep.Files++
			rep.Bytes += e.Size
		}
		if pr := checkEntry(ctx, root, e); pr != nil {
			problems = append(problems, *pr)
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
				if pr2 := checkEntry(ctx, root, e); pr2 != nil {
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
				if pr2 := checkEntry(ctx, root, e); pr2 != nil {
					kept = append(kept, *pr2)
				}
			}
		}
		problems = kept
	}

	// 2. the history chunk store
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
			problems = append(problems, VerifyProblem{Path: file, Kind: "history-chunk", CID: c.String(), Detail: fmt.Sprintf("chunk %s: %v", c, err)})
			return nil
		}
		if err := baseline.VerifyChunk(c, data); err != nil {
			problems = append(problems, VerifyProblem{Path: file, Kind: "history-chunk", CID: c.String(),
				Detail: fmt.Sprintf("chunk %s: content does not match its CID", c)})
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("restore: verify history of %s: %w", d.label(), err)
	}

	// 3. the index against the source's current snapshot
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

// checkEntry compares the replica tree at e.Path with e; nil if they match.
func checkEntry(ctx context.Context, root *os.Root, e *baseline.Entry) *VerifyProblem {
	differs := func(format string, args ...any) *VerifyProblem {
		return &VerifyProblem{Path: e.Path, Kind: "differs", Detail: fmt.Sprintf(format, args...)}
	}
	if root == nil {
		return &VerifyProblem{Path: e.Path, Kind: "missing", Detail: "the replica tree does not exist"}
	}
	fi, err := root.Lstat(e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return &VerifyProblem{Path: e.Path, Kind: "missing", Detail: "a " + e.Kind.String() + " in the index, not in the replica tree"}
	}
	if err != nil {
		return differs("%v", err)
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
		return differs("a %s in the index, a %v in the replica tree", e.Kind, fi.Mode().Type())
	}
	switch e.Kind {
	case baseline.KindFile:
		if fi.Size() != e.Size {
			return differs("size %d, want %d", fi.Size(), e.Size)
		}
		if fi.Mode().Perm() != e.Mode.Perm() {
			return differs("mode %v, want %v", fi.Mode().Perm(), e.Mode.Perm())
		}
		if !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime) {
			return differs("mtime %s, want %s", fi.ModTime().UTC().Format(time.RFC3339Nano), e.MTime.UTC().Format(time.RFC3339Nano))
		}
		f, err := root.Open(e.Path)
		if err != nil {
			return differs("%v", err)
		}
		chunks, err := baseline.ChunkReader(ctx, f, nil)
		f.Close()
		if err != nil {
			return differs("read: %v", err)
		}
		if got := baseline.ContentRoot(chunks); !got.Equals(e.Root()) {
			return differs("content root %s, want %s", got, e.Root())
		}
	case baseline.KindDir:
		if fi.Mode().Perm() != dirPerm(e.Mode) {
			return differs("mode %v, want %v", fi.Mode().Perm(), dirPerm(e.Mode))
		}
		if !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime) {
			return differs("mtime %s, want %s", fi.ModTime().UTC().Format(time.RFC3339Nano), e.MTime.UTC().Format(time.RFC3339Nano))
		}
	case baseline.KindSymlink:
		t, err := root.Readlink(e.Path)
		if err != nil {
			return differs("%v", err)
		}
		if t != e.Target {
			return differs("symlink target %q, want %q", t, e.Target)
		}
		if !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime) {
			return differs("mtime %s, want %s", fi.ModTime().UTC().Format(time.RFC3339Nano), e.MTime.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
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
