package agent

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
)

// Problem is something that keeps a change from being backed up: a path
// that cannot be read (Path set), or the folder's captures failing (Path
// empty: the journal cannot be written, the folder cannot be scanned).
type Problem struct {
	Path  string
	Err   string
	Since time.Time
	err   error
}

// maxProblems bounds the problems an agent keeps (the rest are counted in
// one more entry).
const maxProblems = 1000

func (a *Agent) setProblem(p string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	msg := err.Error()
	if old, ok := a.problems[p]; ok {
		old.Err, old.err = msg, err
		a.problems[p] = old
		return
	}
	if len(a.problems) >= maxProblems && p != "" {
		return
	}
	if p != "" {
		a.log.Warn("path cannot be backed up", "path", p, "err", msg)
	}
	a.problems[p] = Problem{Path: p, Err: msg, Since: time.Now(), err: err}
	if p == "" {
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

func (a *Agent) clearProblem(p string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.problems[p]; ok {
		delete(a.problems, p)
		if p != "" {
			a.log.Info("path backed up again", "path", p)
		}
	}
}

// clearProblemsExcept drops the path problems (not the folder's) of paths
// not in keep: a full scan read everything else.
func (a *Agent) clearProblemsExcept(keep map[string]error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p := range a.problems {
		if _, ok := keep[p]; !ok && p != "" {
			delete(a.problems, p)
		}
	}
}

// folderProblem is the folder's capture failure, nil if none.
func (a *Agent) folderProblem() error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if p, ok := a.problems[""]; ok {
		return p.err
	}
	return nil
}

// problemPaths are the paths that could not be read.
func (a *Agent) problemPaths() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []string
	for p := range a.problems {
		if p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// problemList returns the problems, folder-wide first, then by path. The
// caller holds mu.
func (a *Agent) problemList() []Problem {
	out := make([]Problem, 0, len(a.problems)+1)
	for _, p := range a.problems {
		out = append(out, p)
	}
	if a.rulesProblem != nil {
		out = append(out, *a.rulesProblem)
	}
	slices.SortFunc(out, func(x, y Problem) int { return strings.Compare(x.Path, y.Path) })
	return out
}

// unreadable reports whether err from reading a path means the path
// exists and cannot be read (a problem to report), as opposed to gone,
// ignored or not a kind vigil keeps.
func unreadable(err error) bool {
	return err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, baseline.ErrIgnored) &&
		!errors.Is(err, baseline.ErrSpecialFile) && !errors.Is(err, syscall.ENOTDIR)
}

// under reports whether p is q or lies below it.
func under(p, q string) bool { return p == q || strings.HasPrefix(p, q+"/") }

// hasProblem reports whether p is a path that could not be read.
func (a *Agent) hasProblem(p string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.problems[p]
	return ok
}
