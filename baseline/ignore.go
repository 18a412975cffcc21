package baseline

import (
	"fmt"
	"path"
	"strings"
)

// Matcher holds compiled ignore patterns (the `ignore:` list of a folder).
// A nil *Matcher matches nothing.
type Matcher struct {
	pats []pattern
}

type pattern struct {
	glob     string // path.Match syntax
	anchored bool   // matched against the whole relative path, else against base names
	dirOnly  bool   // matches directories only
}

// NewMatcher compiles gitignore-like patterns:
//   - "*.tmp" (no slash) matches a base name at any depth;
//   - "build/" (trailing slash) matches directories only, and so everything below them;
//   - a pattern with a slash elsewhere ("docs/*.md", "/cache") is anchored to the folder root;
//   - the syntax is path.Match's; "**" is not special and "!" negation is not supported.
//
// The error names the first bad pattern and wraps ErrBadPattern.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, raw := range patterns {
		p := strings.TrimSpace(raw)
		bad := func(why string) error {
			return fmt.Errorf("%w %q: %s", ErrBadPattern, raw, why)
		}
		if p == "" {
			return nil, bad("empty")
		}
		if p[0] == '!' {
			return nil, bad("negation is not supported")
		}
		var pt pattern
		if strings.HasSuffix(p, "/") {
			pt.dirOnly = true
			p = strings.TrimRight(p, "/")
		}
		if strings.Contains(p, "/") {
			pt.anchored = true
			p = strings.TrimPrefix(p, "/")
		}
		if p == "" {
			return nil, bad("matches nothing")
		}
		if strings.Contains(p, "//") {
			return nil, bad("empty path element")
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, bad(err.Error())
		}
		pt.glob = p
		m.pats = append(m.pats, pt)
	}
	return m, nil
}

// Match reports whether rel (slash-separated, relative to the folder root)
// is ignored: the path itself or any directory above it matches a pattern.
func (m *Matcher) Match(rel string, isDir bool) bool {
	if m == nil || len(m.pats) == 0 {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && m.matchOne(rel[:i], true) {
			return true
		}
	}
	return m.matchOne(rel, isDir)
}

// matchOne tests rel alone, not its parents (Scan does not descend into
// ignored directories, so it needs no more).
func (m *Matcher) matchOne(rel string, isDir bool) bool {
	if m == nil {
		return false
	}
	base := path.Base(rel)
	for _, p := range m.pats {
		if p.dirOnly && !isDir {
			continue
		}
		name := base
		if p.anchored {
			name = rel
		}
		if ok, _ := path.Match(p.glob, name); ok {
			return true
		}
	}
	return false
}
