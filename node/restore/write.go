package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// restorer writes the entries of a plan into a target.
type restorer struct {
	d   *Replica
	src *chunkSource
	tg  *target

	mu       sync.Mutex // guards done and the progress calls
	total    int64
	done     int64
	progress func(done, total int64)
}

// addDone counts n more content bytes written.
func (rs *restorer) addDone(n int64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.done += n
	if rs.progress != nil {
		rs.progress(rs.done, rs.total)
	}
}

// run writes ents (in path order) and then the directories' modes and
// mtimes, deepest first. A file whose content is found nowhere intact is
// recorded in res.Failed; any other error ends the run.
func (rs *restorer) run(ctx context.Context, ents []*baseline.Entry, res *RestoreResult) error {
	var dirs []*baseline.Entry
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch e.Kind {
		case baseline.KindDir:
			if err := rs.tg.mkdirAll(e.Path, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, e)
			res.Dirs++
		case baseline.KindSymlink:
			if err := rs.tg.mkdirAll(path.Dir(e.Path), 0o755); err != nil {
				return err
			}
			if err := rs.tg.symlink(e.Path, e.Target); err != nil {
				return err
			}
			if err := rs.tg.setMtime(e.Path, e.MTime); err != nil {
				return err
			}
			res.Symlinks++
		case baseline.KindFile:
			err := rs.file(ctx, e)
			var ce *contentError
			if errors.As(err, &ce) {
				f := FailedFile{Path: e.Path, Error: ce.reason()}
				if ce.Chunk.Defined() {
					f.Chunk = ce.Chunk.String()
				}
				rs.d.Log.Info("file not restored", "path", e.Path, "chunk", f.Chunk, "err", f.Error)
				res.Failed = append(res.Failed, f)
				continue
			}
			if err != nil {
				return err
			}
			res.Files++
			res.Bytes += e.Size
		}
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].Path, "/") > strings.Count(dirs[j].Path, "/")
	})
	for _, e := range dirs {
		if err := rs.tg.setDirMeta(e.Path, e.Mode.Perm(), e.MTime); err != nil {
			return err
		}
	}
	return nil
}

// file writes e under a temporary name next to it, verified chunk by
// chunk, then renames it into place. A *contentError leaves the target as
// it was at e.Path.
func (rs *restorer) file(ctx context.Context, e *baseline.Entry) error {
	if err := rs.tg.mkdirAll(path.Dir(e.Path), 0o755); err != nil {
		return err
	}
	tmp := tempName(e.Path, store.TempPrefix+"restore-")
	f, err := rs.tg.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	placed := false
	defer func() {
		if !placed {
			f.Close()
			rs.tg.root.Remove(tmp)
		}
	}()
	if err := rs.src.writeFile(ctx, f, e, rs.addDone); err != nil {
		return err
	}
	if err := f.Chmod(e.Mode.Perm()); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("restore: restore %s: %w", e.Path, err)
	}
	if err := rs.tg.setMtime(tmp, e.MTime); err != nil {
		return err
	}
	if err := rs.tg.place(tmp, e.Path); err != nil {
		return err
	}
	placed = true
	return nil
}
