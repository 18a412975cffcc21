package replica

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/node/replica/client"
	"github.com/vigil-mesh/vigil/node/wire"
	"github.com/vigil-mesh/vigil/store"
)

// Problem is something that keeps this replica from holding its source's
// changes: a path it cannot write (Path set; the rest of the folder goes
// on) or a failure that blocks the whole replica (Path empty: the disk is
// full, the source refuses, the baseline cannot be taken).
type Problem struct {
	Path  string
	Err   string
	Since time.Time
}

// maxProblems bounds the path problems kept.
const maxProblems = 1000

// problemRetry is how often the paths that could not be written are
// brought to the source's state again.
const problemRetry = 30 * time.Second

// setProblem records a problem (keeping the time it was first seen) and
// logs it when it is new or its message changed.
func (r *Replica) setProblem(p string, err error) {
	msg := err.Error()
	r.mu.Lock()
	old, ok := r.problems[p]
	if !ok && len(r.problems) >= maxProblems && p != "" {
		r.mu.Unlock()
		return
	}
	if !ok {
		old = Problem{Path: p, Since: time.Now()}
	}
	changed := old.Err != msg
	old.Err = msg
	r.problems[p] = old
	if p == "" {
		r.st.LastError = msg
	}
	r.mu.Unlock()
	if changed {
		if p == "" {
			r.log.Error("replica blocked", "err", msg)
		} else {
			r.log.Warn("path cannot be written to the replica; the rest of the folder goes on", "path", p, "err", msg)
		}
	}
}

func (r *Replica) clearProblem(p string) {
	r.mu.Lock()
	_, ok := r.problems[p]
	delete(r.problems, p)
	if p == "" {
		r.st.LastError = "" // and any transient failure noted
	}
	r.mu.Unlock()
	if ok {
		if p == "" {
			r.log.Info("replica unblocked")
		} else {
			r.log.Info("path written to the replica again", "path", p)
		}
	}
}

// clearPathProblems drops the problems of the paths written (touched),
// and takes them off the unsent paths.
func (r *Replica) clearPathProblems(touched map[string]bool) {
	r.mu.Lock()
	for p := range r.unsent {
		if touched[p] {
			delete(r.unsent, p)
		}
	}
	var cleared []string
	for p := range r.problems {
		if p != "" && touched[p] {
			delete(r.problems, p)
			cleared = append(cleared, p)
		}
	}
	r.mu.Unlock()
	for _, p := range cleared {
		r.log.Info("path written to the replica again", "path", p)
	}
}

func (r *Replica) problemPaths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p := range r.problems {
		if p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// problemList returns the problems, the replica's own first. The caller
// holds mu.
func (r *Replica) problemList() []Problem {
	out := make([]Problem, 0, len(r.problems))
	for _, p := range r.problems {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y Problem) int { return strings.Compare(x.Path, y.Path) })
	return out
}

// pathProblem reports whether err, from writing one path, concerns that
// path only (a name the file system refuses, a permission): the record
// is set aside as a problem of the path and the folder goes on. Any other
// failure (disk full, I/O error, the database) blocks the replica until it
// is gone.
func pathProblem(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, store.ErrUnsafePath) {
		return true
	}
	var pe *store.PathError
	if !errors.As(err, &pe) {
		return false
	}
	for _, e := range []syscall.Errno{syscall.ENAMETOOLONG, syscall.EINVAL, syscall.EACCES, syscall.EPERM,
		syscall.EILSEQ, syscall.EISDIR, syscall.ELOOP, syscall.EEXIST, syscall.EMLINK, syscall.EFBIG, syscall.ETXTBSY} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// retryProblems brings each path that could not be written to the
// source's current state again.
func (r *Replica) retryProblems(ctx context.Context) {
	r.repairNow(ctx, r.problemPaths(), "retry of a path that could not be written")
}

// repairNow brings paths to the source's current state in one commit and
// clears the problems (and unsent marks) of those it wrote. A path that
// cannot be written is a problem of its own; any other failure stops the
// retry (logged with what) and it returns false.
func (r *Replica) repairNow(ctx context.Context, paths []string, what string) bool {
	if len(paths) == 0 || !r.Status().BaselineOK || !r.net.Connected(r.source) {
		return false
	}
	ap := newApplier(r)
	ap.seq, ap.at = r.Status().Applied, time.Now()
	for _, p := range paths {
		if err := ap.repair(ctx, p); err != nil {
			if pathProblem(err) {
				r.setProblem(p, err)
				ap.forget(p)
				continue
			}
			r.log.Debug(what, "path", p, "err", err)
			return false
		}
	}
	ap.endChange()
	if err := ap.finish(); err != nil {
		r.setProblem("", err)
		return false
	}
	if err := r.db.Update(ap.save); err != nil {
		r.setProblem("", fmt.Errorf("save replica state: %w", err))
		return false
	}
	r.clearPathProblems(ap.written)
	return true
}

// blockedNow reports whether a failure blocks the whole replica.
func (r *Replica) blockedNow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.problems[""]
	return ok && r.st.BaselineOK
}

// failsHere reports whether err is a failure of this node (its disk, its
// database) or a refusal by the source (it answered with an error): those
// block the replica until they are fixed and are reported as problems. Any
// other failure is the network or the source going away, retried without
// alarm (the pair shows as offline or behind meanwhile).
func failsHere(err error) bool {
	var se *client.SourceError
	if errors.As(err, &se) {
		return false
	}
	var spe *store.PathError
	var fpe *fs.PathError
	var re *wire.RemoteError
	return errors.As(err, &spe) || errors.As(err, &fpe) || errors.As(err, &re) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS)
}

// noteTransient records a failure that is retried without being a
// problem: it shows as the replica's last error until the next success.
func (r *Replica) noteTransient(err error) {
	r.mu.Lock()
	r.st.LastError = err.Error()
	r.mu.Unlock()
	r.log.Info("interrupted; will retry", "err", err)
}

// Paths a repair could not bring to the source's state because the source
// could not send their bytes (the file changed again there, or cannot be
// read there) are unsent: reported to the source as pending (the pair is
// not synced), asked for again every unsentRetry, and a problem of the
// path once unsent for unsentGrace (a later record usually brings them
// sooner: the file had changed at the source).
const (
	unsentRetry    = time.Second
	unsentGrace    = 10 * time.Second
	maxUnsentRetry = 100 // paths asked for again per retry
)

// markUnsent records p as unsent (keeping the time it first was).
func (r *Replica) markUnsent(p string) {
	r.mu.Lock()
	if _, ok := r.unsent[p]; !ok {
		r.unsent[p] = time.Now()
	}
	r.mu.Unlock()
}

// retryUnsent asks the source again for the unsent paths; those unsent
// for longer than the grace become problems of their path (in one step,
// so that an ack never shows one of them as neither).
func (r *Replica) retryUnsent(ctx context.Context) {
	var paths []string
	r.mu.Lock()
	for _, p := range slices.Sorted(maps.Keys(r.unsent)) {
		if len(paths) == maxUnsentRetry {
			break
		}
		if _, reported := r.problems[p]; !reported { // else retried with the problems
			paths = append(paths, p)
		}
	}
	r.mu.Unlock()
	if len(paths) > 0 && !r.repairNow(ctx, paths, "retry of a path the source could not send") {
		return
	}
	grace := min(unsentGrace, 3*r.retryEvery)
	now := time.Now()
	var late []string
	r.mu.Lock()
	for p, since := range r.unsent {
		if now.Sub(since) < grace {
			continue
		}
		if _, ok := r.problems[p]; !ok && len(r.problems) < maxProblems {
			r.problems[p] = Problem{Path: p, Err: errNotSent.Error(), Since: since}
			late = append(late, p)
		}
	}
	r.mu.Unlock()
	for _, p := range late {
		r.log.Warn("path cannot be written to the replica; the rest of the folder goes on", "path", p, "err", errNotSent)
	}
}

// troubledUnder returns the paths at or below p that are problems or
// unsent.
func (r *Replica) troubledUnder(p string) []string {
	under := func(q string) bool { return q == p || strings.HasPrefix(q, p+"/") }
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for q := range r.unsent {
		if under(q) {
			out = append(out, q)
		}
	}
	for q := range r.problems {
		if q != "" && under(q) {
			out = append(out, q)
		}
	}
	return out
}
