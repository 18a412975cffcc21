package treediff

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDiffNamesEachDifferenceAndCountsTheSource(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, root := range []string{src, dst} {
		if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "d", "same"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "kind"), []byte("file"), 0o644)
	os.Mkdir(filepath.Join(dst, "kind"), 0o755)
	os.Mkdir(filepath.Join(dst, "extra"), 0o755)
	os.WriteFile(filepath.Join(dst, "extra", "inside"), nil, 0o644)
	// the same mtimes where no difference is meant
	for _, p := range []string{"d/same", "d", "kind"} {
		fi, _ := os.Lstat(filepath.Join(src, p))
		os.Chtimes(filepath.Join(dst, p), fi.ModTime(), fi.ModTime())
	}
	var visited []string
	diffs, n, err := Diff(src, dst, func(rel string, _ fs.FileInfo) { visited = append(visited, rel) })
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || !slices.Equal(visited, []string{"d", "d/same", "kind"}) {
		t.Errorf("compared %d entries %q, want d, d/same, kind", n, visited)
	}
	got := strings.Join(diffs, "\n")
	for _, want := range []string{"kind: type ---------- in source, d--------- in replica", "extra in replica: extra"} {
		if !strings.Contains(got, want) {
			t.Errorf("differences lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "extra/inside") || len(diffs) != 2 {
		t.Errorf("want two differences (an extra directory once):\n%s", got)
	}

	diffs, _, err = Diff(src, filepath.Join(dst, "nowhere"), nil)
	if err != nil || len(diffs) == 0 || !strings.Contains(diffs[len(diffs)-1], "does not exist") {
		t.Errorf("missing replica: %q, %v", diffs, err)
	}
	if _, _, err := Diff(filepath.Join(src, "nowhere"), dst, nil); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("unreadable source: err = %v, want one naming it", err)
	}
}
