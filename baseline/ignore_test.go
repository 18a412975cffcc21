package baseline

import (
	"errors"
	"strings"
	"testing"
)

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{"*.tmp", ".cache/", "build/", "docs/*.md", "/top.txt", " spaced.log "})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel   string
		isDir bool
		want  bool
	}{
		{"a.tmp", false, true},
		{"deep/er/a.tmp", false, true},
		{"a.tmp.keep", false, false},
		{"dir.tmp", true, true}, // no slash: matches directories too
		{".cache", true, true},
		{".cache", false, false}, // trailing slash: directories only
		{"x/.cache", true, true},
		{"x/.cache/blob", false, true}, // below an ignored directory
		{"build/out/obj.o", false, true},
		{"build", false, false},
		{"docs/a.md", false, true},
		{"docs/sub/a.md", false, false}, // anchored: "*" does not cross "/"
		{"other/docs/a.md", false, false},
		{"top.txt", false, true},
		{"sub/top.txt", false, false},
		{"spaced.log", false, true},
		{"keep.go", false, false},
	}
	for _, tt := range tests {
		if got := m.Match(tt.rel, tt.isDir); got != tt.want {
			t.Errorf("Match(%q, dir=%v) = %v, want %v", tt.rel, tt.isDir, got, tt.want)
		}
	}
	var none *Matcher
	if none.Match("a.tmp", false) {
		t.Error("nil Matcher matched")
	}
	empty, err := NewMatcher(nil)
	if err != nil || empty.Match("anything", true) {
		t.Errorf("empty Matcher: err %v or matched", err)
	}
}

func TestNewMatcherRejectsBadPatterns(t *testing.T) {
	for _, p := range []string{"!keep.tmp", "", "   ", "[a-", "/", "a//b", "a\\"} {
		_, err := NewMatcher([]string{"ok.tmp", p})
		if !errors.Is(err, ErrBadPattern) || !strings.Contains(err.Error(), p) {
			t.Errorf("pattern %q: err = %v, want ErrBadPattern naming it", p, err)
		}
	}
}
