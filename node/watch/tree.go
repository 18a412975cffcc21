package watch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The tree of watches: which directories carry an inotify watch, which are
// polled instead (past the watch limit), and how they follow the folder.

// addTree tracks the directory rel and every directory below it that is
// not ignored and not yet tracked. With emit it marks every entry found
// below rel pending. The watch on a directory is added before its entries
// are read, so no entry created meanwhile is missed.
func (w *Watcher) addTree(rel string, emit bool, now time.Time) {
	start := filepath.Join(w.root, filepath.FromSlash(rel))
	_ = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d == nil || p == start {
				return nil
			}
			w.log.Debug("walk", "path", p, "err", err)
			return nil
		}
		r, ok := w.rel(p)
		if !ok {
			return nil
		}
		if d.IsDir() {
			if r != rel && w.ignored(r, true) {
				return filepath.SkipDir
			}
			if _, tracked := w.dirs[r]; !tracked {
				if err := w.track(r); err != nil {
					w.warnTrack(p, err)
					return filepath.SkipDir
				}
			}
		} else if w.ignored(r, false) {
			return nil
		}
		if emit && r != rel {
			w.markPending(r, now)
		}
		return nil
	})
}

// track puts a watch on the directory rel, or puts it on polling when the
// inotify limit is reached. It returns an error when rel is not tracked.
func (w *Watcher) track(rel string) error {
	abs := filepath.Join(w.root, filepath.FromSlash(rel))
	d := &watchDir{children: make(map[string]struct{})}
	if err := w.addWatch(abs); err != nil {
		if !watchIsLimit(err) {
			return err
		}
		fp, ferr := watchFingerprint(abs)
		if ferr != nil {
			return ferr
		}
		d.polled, d.fp = true, fp
		w.limitHit = true
		if errors.Is(err, errWatchNoInotify) {
			w.instLimit = true
		}
	}
	w.dirs[rel] = d
	if d.polled {
		w.nPolled.Add(1)
	} else if fi, err := os.Stat(abs); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			d.id = dirID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
			if w.dirPaths[d.id] == nil {
				w.dirPaths[d.id] = make(map[string]struct{}, 1)
			}
			w.dirPaths[d.id][rel] = struct{}{}
		}
	}
	if rel != "." {
		if p, ok := w.dirs[watchParent(rel)]; ok {
			p.children[rel] = struct{}{}
		}
	}
	return nil
}

// untrack drops the directory rel and every tracked directory below it,
// removing their watches: a directory moved away keeps its inotify watch,
// which would report events under its old path.
//
// A directory moved within the folder may already be tracked under its new
// path when the event for the old one arrives (its new parent was walked
// first). Both paths then share one inotify watch, and removing the old
// path's watch removes the new one's too, so the directory is tracked again
// under its new path and everything in it marked pending.
func (w *Watcher) untrack(rel string) {
	d, ok := w.dirs[rel]
	if !ok {
		return
	}
	for c := range d.children {
		w.untrack(c)
	}
	var moved []string // the same directory, tracked under other paths
	if d.polled {
		w.nPolled.Add(-1)
	} else {
		if paths := w.dirPaths[d.id]; paths != nil {
			delete(paths, rel)
			for p := range paths {
				moved = append(moved, p)
			}
			if len(paths) == 0 {
				delete(w.dirPaths, d.id)
			}
		}
		if w.fsw != nil {
			// Fails harmlessly when the kernel already dropped the watch.
			_ = w.fsw.Remove(filepath.Join(w.root, filepath.FromSlash(rel)))
		}
	}
	delete(w.dirs, rel)
	for _, p := range moved {
		w.untrack(p)
		w.addTree(p, true, time.Now())
		w.markPending(p, time.Now())
	}
	if rel != "." {
		if p, ok := w.dirs[watchParent(rel)]; ok {
			delete(p.children, rel)
		}
	}
}

// warnTrack logs a directory that could not be tracked, unless it simply
// vanished.
func (w *Watcher) warnTrack(abs string, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return
	}
	w.log.Warn("cannot watch directory; changes in it are not seen", "path", abs, "err", err)
}

// resync brings the tracked directories in line with the tree after events
// were lost: new directories are tracked, vanished ones dropped, polling
// fingerprints refreshed. Nothing is marked pending (a rescan follows).
func (w *Watcher) resync() {
	seen := make(map[string]struct{}, len(w.dirs))
	_ = filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		r, ok := w.rel(p)
		if !ok {
			return nil
		}
		if r != "." && w.ignored(r, true) {
			return filepath.SkipDir
		}
		if wd, tracked := w.dirs[r]; tracked {
			if wd.polled {
				if fp, err := watchFingerprint(p); err == nil {
					wd.fp = fp
				}
			}
		} else if err := w.track(r); err != nil {
			w.warnTrack(p, err)
			return filepath.SkipDir
		}
		seen[r] = struct{}{}
		return nil
	})
	for r := range w.dirs {
		if _, ok := seen[r]; !ok {
			w.untrack(r) // no-op for a subtree already dropped
		}
	}
	w.warnLimit()
}

// pollAll compares every polled directory with its last fingerprint.
func (w *Watcher) pollAll(now time.Time) {
	var rels []string
	for r, d := range w.dirs {
		if d.polled {
			rels = append(rels, r)
		}
	}
	slices.Sort(rels) // parents first
	for _, r := range rels {
		w.pollDir(r, now)
	}
	w.warnLimit()
}

func (w *Watcher) pollDir(rel string, now time.Time) {
	d, ok := w.dirs[rel]
	if !ok || !d.polled {
		return
	}
	abs := filepath.Join(w.root, filepath.FromSlash(rel))
	fp, err := watchFingerprint(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			w.untrack(rel)
			if rel == "." {
				w.readyRes, w.readyBatch = true, nil
			} else {
				w.markPending(rel, now)
			}
			return
		}
		w.log.Debug("poll", "path", abs, "err", err)
		return
	}
	old := d.fp
	d.fp = fp
	for name, e := range fp {
		o, had := old[name]
		if had && o == e {
			continue
		}
		c := watchJoin(rel, name)
		isDir := e.mode.IsDir()
		if had && o.mode.IsDir() && !isDir {
			w.untrack(c)
		}
		if w.ignored(c, isDir) {
			continue
		}
		w.markPending(c, now)
		if _, tracked := w.dirs[c]; isDir && !tracked {
			w.addTree(c, true, now)
		}
	}
	for name, o := range old {
		if _, ok := fp[name]; ok {
			continue
		}
		c := watchJoin(rel, name)
		w.untrack(c)
		if !w.ignored(c, o.mode.IsDir()) {
			w.markPending(c, now)
		}
	}
}

// warnLimit logs the watch limit warning, once per watcher.
func (w *Watcher) warnLimit() {
	if !w.limitHit || w.limitWarn {
		return
	}
	w.limitWarn = true
	if w.instLimit {
		w.log.Warn("inotify instance limit reached: the folder is polled instead of watched; raise the limit with: "+watchFixInstances,
			"unwatched_dirs", w.nPolled.Load(), "poll_interval", w.poll)
		return
	}
	w.log.Warn("inotify watch limit reached: directories that cannot be watched are polled instead; raise the limit with: "+watchFixWatches,
		"unwatched_dirs", w.nPolled.Load(), "poll_interval", w.poll)
}

// watchFingerprint returns name, size, mtime and mode of the direct
// children of dir.
func watchFingerprint(dir string) (map[string]watchEntryFP, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fp := make(map[string]watchEntryFP, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // vanished meanwhile: reported as removed
		}
		fp[e.Name()] = watchEntryFP{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	}
	return fp, nil
}

// watchIsLimit reports whether a watch failed because of the inotify watch
// limit (or because no inotify instance exists).
func watchIsLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, errWatchNoInotify) ||
		strings.Contains(err.Error(), "no space left on device")
}

// watchIsInstanceLimit reports whether creating an inotify instance failed
// because of the instance limit.
func watchIsInstanceLimit(err error) bool {
	return errors.Is(err, syscall.EMFILE) || strings.Contains(err.Error(), "too many open files")
}
