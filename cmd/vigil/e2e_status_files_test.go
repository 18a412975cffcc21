package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestE2EStatusFilesCountsRegularFilesOnly(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("src")
	mustWrite(t, filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	mustWrite(t, filepath.Join(dir, "sub", "b.txt"), []byte("bb"), 0o644)
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()

	if got := dst.replicaStatus(src, "docs").Files; got != 2 {
		t.Errorf("status --json: replica files = %d, want 2 (regular files; not the 2 directories and the symlink)", got)
	}
	code, out, errOut := m.vigil(20*time.Second, "status", "--home", dst.home)
	if code != 0 {
		t.Fatalf("vigil status: exit %d: %s", code, errOut)
	}
	_, rows, _ := strings.Cut(out, "\nREPLICAS\n")
	lines := strings.Split(strings.TrimSpace(rows), "\n")
	if len(lines) != 2 {
		t.Fatalf("REPLICAS table = %q, want a header and one row", rows)
	}
	col := strings.Index(lines[0], "FILES")
	if col < 0 || !strings.HasPrefix(lines[1][col:], "2 ") {
		t.Errorf("REPLICAS table:\n%s\nwant 2 in the FILES column", rows)
	}
}
