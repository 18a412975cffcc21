package agent

import (
	"sync/atomic"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
)

// Rules are a folder's ignore patterns: those of its config followed by
// those of its .vigilignore file, reloaded when that file changes. The
// watcher and the agent share one Rules.
type Rules struct {
	root     string
	patterns []string
	m        atomic.Pointer[baseline.Matcher]
}

// NewRules reads the ignore file of the folder at root after the config's
// patterns. A bad ignore file is returned as an error along with Rules
// holding the config's patterns alone, so the folder is still protected.
func NewRules(root string, patterns []string) (*Rules, error) {
	r := &Rules{root: root, patterns: patterns}
	err := r.Reload()
	if err != nil {
		m, merr := baseline.NewMatcher(patterns)
		if merr != nil {
			return nil, merr
		}
		r.m.Store(m)
	}
	return r, err
}

// Reload reads the ignore file again; on error the rules in force stay.
func (r *Rules) Reload() error {
	m, err := baseline.LoadMatcher(r.root, r.patterns)
	if err != nil {
		return err
	}
	r.m.Store(m)
	return nil
}

// Match reports whether rel is ignored.
func (r *Rules) Match(rel string, isDir bool) bool { return r.Matcher().Match(rel, isDir) }

// Matcher is the matcher in force (nil Rules: none).
func (r *Rules) Matcher() *baseline.Matcher {
	if r == nil {
		return nil
	}
	return r.m.Load()
}

// ReportIgnoreFile records that the folder's ignore file could not be
// used (err names the file and line).
func (a *Agent) ReportIgnoreFile(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rulesProblem == nil {
		a.log.Error("ignore file not used; the rules before it stay in force", "err", err)
		a.rulesProblem = &Problem{Path: baseline.IgnoreFile, Since: time.Now()}
	}
	a.rulesProblem.Err, a.rulesProblem.err = err.Error(), err
}
