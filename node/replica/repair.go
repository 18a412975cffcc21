package replica

import (
	"context"
	"errors"

	"github.com/vigil-mesh/vigil/baseline"
)

// errNotSent is the problem of a path whose bytes the source could not
// send when this replica asked for them.
var errNotSent = errors.New("the source could not send its bytes (the file changed again there, or cannot be read there); retried")

// repair brings p (and its subtree) to the source's current state,
// fetched over a stream, when a record cannot be applied on what this
// replica holds. Records up to the state's seq are then skipped for p.
func (ap *applier) repair(ctx context.Context, p string) error {
	r := ap.r
	seq, ents, err := r.src.Path(ctx, p)
	if err != nil {
		return err
	}
	r.log.Info("repairing path from the source's current state", "path", p, "as_of", seq, "entries", len(ents))
	keep := make(map[string]bool, len(ents))
	for i := range ents {
		keep[ents[i].Path] = true
	}
	// remove what the source no longer has below p
	var stale []string
	r.files.Walk(p, func(e *baseline.Entry) {
		if !keep[e.Path] {
			stale = append(stale, e.Path)
		}
	})
	for _, s := range stale {
		if r.files.Get(s) == nil {
			continue
		}
		if err := ap.removePath(s); err != nil {
			return err
		}
	}
	if len(ents) == 0 {
		if err := ap.removePath(p); err != nil {
			return err
		}
	}
	for i := range ents {
		e := ents[i]
		prev := r.files.Get(e.Path)
		if prev != nil && prev.SameContent(&e) && !r.damaged[e.Path] {
			if !prev.SameMeta(&e) {
				if err := r.rep.SetMeta(e.Path, e.Mode, e.MTime); err != nil {
					return err
				}
			}
		} else {
			if prev != nil && prev.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
				if err := ap.removePath(e.Path); err != nil {
					return err
				}
				prev = nil
			}
			if prev != nil && prev.Kind == baseline.KindFile && e.Kind != baseline.KindFile {
				if err := ap.keep(prev, nil); err != nil {
					return err
				}
			}
			switch e.Kind {
			case baseline.KindDir:
				err = r.rep.Mkdir(e.Path, e.Mode, e.MTime)
			case baseline.KindSymlink:
				err = r.rep.Symlink(e.Path, e.Target, e.MTime)
			default:
				err = ap.writeFile(ctx, &e, prev, nil)
			}
			if errors.Is(err, errChunkUnavailable) {
				// The source could not send the bytes of the state it
				// announced: the file changed again there (a later record
				// brings it), or cannot be read there now (nothing else
				// will). What this replica holds for it stays (an older
				// state the file had, or nothing; not a deletion), and the
				// path is pending (not synced) until a record or a retry
				// writes it, and a problem of the pair if that takes long:
				// never taken as backed up.
				r.markUnsent(e.Path)
				continue
			}
			if err != nil {
				return err
			}
		}
		if prev != nil {
			r.locs.Drop(prev)
		}
		ne := e
		r.files.Put(&ne)
		r.locs.Add(&ne)
		ap.touch(e.Path)
	}
	r.repaired[p] = seq
	return nil
}
