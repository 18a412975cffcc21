package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWithinAcceptsSameAndInsideRefusesSiblingsAndPrefixes(t *testing.T) {
	for _, c := range []struct {
		p, dir string
		want   bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b/c", "/a/b", true},
		{"/a/bc", "/a/b", false},
		{"/a", "/a/b", false},
		{"/x/..y", "/x", true},
		{"/x/../y", "/x", false},
	} {
		if got := Within(filepath.Clean(c.p), c.dir); got != c.want {
			t.Errorf("Within(%q, %q) = %v, want %v", c.p, c.dir, got, c.want)
		}
	}
}

func TestOverlapSeesThroughSymlinks(t *testing.T) {
	d := t.TempDir()
	real := filepath.Join(d, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(d, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if !Overlap(filepath.Join(link, "not-yet", "x"), real) {
		t.Error("a path below a symlink to real does not overlap real")
	}
	if Overlap(filepath.Join(d, "other"), real) {
		t.Error("a sibling overlaps")
	}
}

func TestWriteFileAtomicReplacesContentAndLeavesNoTemp(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "f")
	for _, content := range []string{"one", "two, longer"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(d)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(ents))
	}
}
