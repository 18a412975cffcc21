package store

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func openTestReplica(t testing.TB) *Replica {
	t.Helper()
	r, err := OpenReplica(filepath.Join(t.TempDir(), "replicas", "peer", "folder"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeString(s string) func(f *os.File) error {
	return func(f *os.File) error {
		_, err := io.WriteString(f, s)
		return err
	}
}

func readRel(t *testing.T, r *Replica, rel string) string {
	t.Helper()
	f, err := r.Open(rel)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listTree returns every entry below dir as slash paths, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestValidatePathTable(t *testing.T) {
	long := strings.Repeat("a/", MaxPathLen/2) + "b"
	tests := []struct {
		rel string
		ok  bool
	}{
		{"a", true},
		{"a/b/c.txt", true},
		{".hidden/..dots../x..", true},
		{`dir\file`, true},
		{"", false},
		{"../x", false},
		{"..", false},
		{".", false},
		{"./a", false},
		{"a/./b", false},
		{"/abs", false},
		{"/", false},
		{"a/../../b", false},
		{"a/..", false},
		{"a//b", false},
		{"a/", false},
		{"a\x00b", false},
		{long, false},
		// names Linux allows are names a backup must hold
		{`..\x`, true},
		{`a\..\..\b`, true},
		{`\etc\passwd`, true},
		{"a/.vigil-tmp-123", true},
		{".vigil-tmp-notes", true},
		{"new\nline", true},
		{"bad\xff\xfeutf8", true},
		{strings.Repeat("n", 255), true},
	}
	for _, tt := range tests {
		err := ValidatePath(tt.rel)
		if tt.ok && err != nil {
			t.Errorf("ValidatePath(%q) = %v, want ok", tt.rel, err)
		}
		if !tt.ok && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("ValidatePath(%q) = %v, want ErrUnsafePath", tt.rel, err)
		}
	}
	r := openTestReplica(t)
	for _, tt := range tests {
		if tt.ok {
			continue
		}
		err := r.WriteFile(tt.rel, 0o644, time.Time{}, writeString("x"))
		var pe *PathError
		if !errors.As(err, &pe) || pe.Path != tt.rel || !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteFile(%q) = %v, want *PathError naming it with ErrUnsafePath", tt.rel, err)
		}
	}
	if got := listTree(t, r.Root()); len(got) != 0 {
		t.Errorf("refused writes left %q in the replica", got)
	}
	for _, tt := range tests {
		if !tt.ok {
			continue
		}
		r := openTestReplica(t) // each in an empty tree ("a" would block "a/b/c.txt")
		if err := r.WriteFile(tt.rel, 0o644, time.Time{}, writeString("x")); err != nil {
			t.Errorf("WriteFile(%q) = %v, want the file written", tt.rel, err)
			continue
		}
		if b, err := os.ReadFile(filepath.Join(r.Root(), filepath.FromSlash(tt.rel))); err != nil || string(b) != "x" {
			t.Errorf("%q inside the root: %q, %v", tt.rel, b, err)
		}
	}
}

func TestReplicaRefusesSymlinkedParentAndWritesNothingOutside(t *testing.T) {
	r := openTestReplica(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.Root(), "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"evil", "real/evil"} {
		if err := os.Symlink(outside, filepath.Join(r.Root(), link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.WriteFile("inside", 0o644, time.Time{}, writeString("in")); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_000_000_000, 0)
	for _, base := range []string{"evil", "real/evil"} {
		victim := base + "/victim"
		ops := map[string]func() error{
			"WriteFile":    func() error { return r.WriteFile(victim, 0o644, mt, writeString("pwned")) },
			"WriteFileNew": func() error { return r.WriteFile(base+"/new/deep", 0o644, mt, writeString("pwned")) },
			"Symlink":      func() error { return r.Symlink(base+"/link", "/etc/passwd", mt) },
			"Mkdir":        func() error { return r.Mkdir(base+"/dir", 0o755, mt) },
			"SetMeta":      func() error { return r.SetMeta(victim, 0o777, mt) },
			"Remove":       func() error { return r.Remove(victim) },
			"RenameFrom":   func() error { return r.Rename(victim, "stolen") },
			"RenameTo":     func() error { return r.Rename("inside", victim) },
			"Open":         func() error { f, err := r.Open(victim); f.Close(); return err },
			"Lstat":        func() error { _, err := r.Lstat(victim); return err },
			"Abs":          func() error { _, err := r.Abs(victim); return err },
			"SyncDir":      func() error { return r.SyncDir(base + "/sub") },
		}
		for name, op := range ops {
			err := op()
			var pe *PathError
			if !errors.Is(err, ErrUnsafePath) || !errors.As(err, &pe) {
				t.Errorf("%s through %s: err = %v, want *PathError with ErrUnsafePath", name, base, err)
			}
		}
	}
	if got := listTree(t, outside); !slices.Equal(got, []string{"victim"}) {
		t.Errorf("outside dir now holds %q, want only victim", got)
	}
	fi, err := os.Stat(filepath.Join(outside, "victim"))
	if err != nil {
		t.Fatalf("victim outside the root: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(outside, "victim"))
	if string(b) != "keep" || fi.Mode().Perm() != 0o644 || fi.ModTime().Equal(mt) {
		t.Errorf("victim changed: %q mode %v mtime %v", b, fi.Mode().Perm(), fi.ModTime())
	}
	if got := readRel(t, r, "inside"); got != "in" {
		t.Errorf("inside = %q after refused rename", got)
	}
}

func TestReplicaOpenDoesNotFollowFinalSymlink(t *testing.T) {
	r := openTestReplica(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Symlink("link", secret, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f, err := r.Open("link")
	if err == nil {
		f.Close()
		t.Fatal("Open followed a symlink out of the replica")
	}
	if !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Open(link) = %v, want ELOOP", err)
	}
}

func TestReplicaFailingWriteLeavesOldContentAndNoTemp(t *testing.T) {
	r := openTestReplica(t)
	old := time.Unix(1_600_000_000, 0)
	if err := r.WriteFile("d/f.txt", 0o644, old, writeString("old content")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("source vanished")
	err := r.WriteFile("d/f.txt", 0o600, time.Now(), func(f *os.File) error {
		if _, err := io.WriteString(f, "half of the new"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFile error = %v, want it to wrap the write error", err)
	}
	if got := readRel(t, r, "d/f.txt"); got != "old content" {
		t.Errorf("content after failed write = %q, want old content", got)
	}
	fi, _ := r.Lstat("d/f.txt")
	if fi.Mode().Perm() != 0o644 || !fi.ModTime().Equal(old) {
		t.Errorf("metadata after failed write: mode %v mtime %v", fi.Mode().Perm(), fi.ModTime())
	}
	if got := listTree(t, r.Root()); !slices.Equal(got, []string{"d", "d/f.txt"}) {
		t.Errorf("tree after failed write = %q, want no temp files", got)
	}
	// a failing first write does not create the file either
	if err := r.WriteFile("d/new", 0o644, time.Time{}, func(*os.File) error { return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := r.Lstat("d/new"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat after failed first write = %v, want not exist", err)
	}
}

func TestReplicaWriteFileSetsModeAndNanosecondMtime(t *testing.T) {
	r := openTestReplica(t)
	mt := time.Unix(1_700_000_000, 123_456_789)
	for rel, mode := range map[string]fs.FileMode{"private": 0o600, "bin/tool": 0o755, "ro": 0o444} {
		if err := r.WriteFile(rel, mode, mt, writeString(rel)); err != nil {
			t.Fatal(err)
		}
		fi, err := r.Lstat(rel)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want regular %v", rel, fi.Mode(), mode)
		}
		if !fi.ModTime().Equal(mt) {
			t.Errorf("%s mtime = %v, want %v (ns precision)", rel, fi.ModTime(), mt)
		}
		if got := readRel(t, r, rel); got != rel {
			t.Errorf("%s content = %q", rel, got)
		}
	}
	// replacing a read-only file works (it is a rename in a writable dir)
	if err := r.WriteFile("ro", 0o444, mt, writeString("v2")); err != nil {
		t.Fatal(err)
	}
	if got := readRel(t, r, "ro"); got != "v2" {
		t.Errorf("ro after replace = %q", got)
	}
}

func TestReplicaSymlinkRelativeAndDanglingKeepTargetAndMtime(t *testing.T) {
	r := openTestReplica(t)
	mt := time.Unix(1_650_000_000, 987_654_321)
	if err := r.WriteFile("a/target", 0o644, time.Time{}, writeString("t")); err != nil {
		t.Fatal(err)
	}
	targetInfo, _ := r.Lstat("a/target")
	links := map[string]string{"b/rel": "../a/target", "dangling": "does/not/exist", "abs": "/nonexistent/abs"}
	for rel, target := range links {
		if err := r.Symlink(rel, target, mt); err != nil {
			t.Fatal(err)
		}
	}
	for rel, target := range links {
		abs, _ := r.Abs(rel)
		got, err := os.Readlink(abs)
		if err != nil || got != target {
			t.Errorf("Readlink(%s) = %q, %v; want %q", rel, got, err, target)
		}
		fi, _ := r.Lstat(rel)
		if fi.Mode()&fs.ModeSymlink == 0 || !fi.ModTime().Equal(mt) {
			t.Errorf("%s: mode %v mtime %v, want symlink with mtime %v", rel, fi.Mode(), fi.ModTime(), mt)
		}
	}
	after, _ := r.Lstat("a/target")
	if !after.ModTime().Equal(targetInfo.ModTime()) {
		t.Error("setting a link's mtime changed its target")
	}
	// replacing: a symlink over a symlink and over a regular file
	if err := r.Symlink("dangling", "elsewhere", mt); err != nil {
		t.Fatal(err)
	}
	if err := r.Symlink("a/target", "x", mt); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"dangling": "elsewhere", "a/target": "x"} {
		abs, _ := r.Abs(rel)
		if got, _ := os.Readlink(abs); got != want {
			t.Errorf("after replace %s -> %q, want %q", rel, got, want)
		}
	}
	if err := r.Symlink("l", "", mt); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Symlink with empty target = %v, want ErrUnsafePath", err)
	}
	newMt := time.Unix(1_000, 5)
	if err := r.SetMeta("b/rel", 0o777, newMt); err != nil {
		t.Fatal(err)
	}
	if fi, _ := r.Lstat("b/rel"); !fi.ModTime().Equal(newMt) {
		t.Errorf("SetMeta on symlink: mtime %v, want %v", fi.ModTime(), newMt)
	}
	if got := listTree(t, r.Root()); slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, TempPrefix) }) {
		t.Errorf("temp entries left: %q", got)
	}
}

func TestReplicaMkdirEmptyDirsModesAndReplacement(t *testing.T) {
	r := openTestReplica(t)
	mt := time.Unix(1_500_000_000, 42)
	if err := r.Mkdir("x/y/empty", 0o750, mt); err != nil {
		t.Fatal(err)
	}
	fi, _ := r.Lstat("x/y/empty")
	if !fi.IsDir() || fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(mt) {
		t.Errorf("empty dir: %v %v %v", fi.Mode(), fi.Mode().Perm(), fi.ModTime())
	}
	// existing directory: only metadata changes, contents stay
	if err := r.WriteFile("x/y/empty/child", 0o644, time.Time{}, writeString("c")); err != nil {
		t.Fatal(err)
	}
	if err := r.Mkdir("x/y/empty", 0o700, mt); err != nil {
		t.Fatal(err)
	}
	fi, _ = r.Lstat("x/y/empty")
	if fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(mt) {
		t.Errorf("re-Mkdir: mode %v mtime %v", fi.Mode().Perm(), fi.ModTime())
	}
	if readRel(t, r, "x/y/empty/child") != "c" {
		t.Error("re-Mkdir lost the child")
	}
	// a file and a symlink in the way are replaced
	_ = r.WriteFile("wasfile", 0o644, time.Time{}, writeString("f"))
	_ = r.Symlink("waslink", "/tmp", time.Time{})
	for _, rel := range []string{"wasfile", "waslink"} {
		if err := r.Mkdir(rel, 0o755, mt); err != nil {
			t.Fatal(err)
		}
		if fi, _ := r.Lstat(rel); !fi.IsDir() {
			t.Errorf("%s is %v after Mkdir, want dir", rel, fi.Mode())
		}
	}
	// a read-only source directory stays writable in the replica
	if err := r.Mkdir("ro", 0o555, mt); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("ro/f", 0o444, time.Time{}, writeString("r")); err != nil {
		t.Fatalf("write into a 0555 source dir: %v", err)
	}
	if fi, _ := r.Lstat("ro"); fi.Mode().Perm() != 0o755 {
		t.Errorf("ro dir mode = %v, want 0755 (source bits + owner rwx)", fi.Mode().Perm())
	}
}

func TestReplicaSetMetaAfterChildrenKeepsDirectoryMtime(t *testing.T) {
	r := openTestReplica(t)
	mt := time.Unix(1_234_567_890, 0)
	if err := r.Mkdir("d", 0o755, mt); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("d/f", 0o644, time.Time{}, writeString("f")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := r.Lstat("d"); fi.ModTime().Equal(mt) {
		t.Fatal("writing a child did not change the directory mtime; test premise broken")
	}
	if err := r.SetMeta("d", 0o711, mt); err != nil {
		t.Fatal(err)
	}
	fi, _ := r.Lstat("d")
	if !fi.ModTime().Equal(mt) || fi.Mode().Perm() != 0o711 {
		t.Errorf("after SetMeta: mode %v mtime %v", fi.Mode().Perm(), fi.ModTime())
	}
	if err := r.SetMeta(".", 0o700, mt); err != nil {
		t.Fatal(err)
	}
	if fi, _ := r.Lstat("."); !fi.ModTime().Equal(mt) {
		t.Errorf("root mtime = %v, want %v", fi.ModTime(), mt)
	}
	if err := r.SetMeta("missing", 0o644, mt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SetMeta missing = %v, want ErrNotExist", err)
	}
}

func TestReplicaRenameDirectoryTree(t *testing.T) {
	r := openTestReplica(t)
	mt := time.Unix(1_400_000_000, 7)
	_ = r.WriteFile("src/a", 0o600, mt, writeString("a"))
	_ = r.WriteFile("src/sub/b", 0o644, mt, writeString("b"))
	_ = r.Symlink("src/sub/l", "../a", mt)
	_ = r.Mkdir("src/empty", 0o755, mt)
	if err := r.Rename("src", "moved/deep/dst"); err != nil {
		t.Fatal(err)
	}
	want := []string{"moved", "moved/deep", "moved/deep/dst", "moved/deep/dst/a", "moved/deep/dst/empty",
		"moved/deep/dst/sub", "moved/deep/dst/sub/b", "moved/deep/dst/sub/l"}
	if got := listTree(t, r.Root()); !slices.Equal(got, want) {
		t.Errorf("tree after rename = %q, want %q", got, want)
	}
	if fi, _ := r.Lstat("moved/deep/dst/a"); fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mt) {
		t.Errorf("renamed file lost metadata: %v %v", fi.Mode(), fi.ModTime())
	}
	// over an existing non-empty directory
	_ = r.WriteFile("other/old", 0o644, time.Time{}, writeString("o"))
	if err := r.Rename("moved/deep/dst", "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lstat("other/old"); !errors.Is(err, fs.ErrNotExist) {
		t.Error("replaced directory kept its old entry")
	}
	if readRel(t, r, "other/sub/b") != "b" {
		t.Error("renamed tree content missing")
	}
	// a file over a file
	_ = r.WriteFile("f1", 0o644, time.Time{}, writeString("1"))
	_ = r.WriteFile("f2", 0o644, time.Time{}, writeString("2"))
	if err := r.Rename("f1", "f2"); err != nil {
		t.Fatal(err)
	}
	if readRel(t, r, "f2") != "1" {
		t.Error("file rename did not replace the destination")
	}
	// into itself and over its own parent are refused, nothing changes
	for _, pair := range [][2]string{{"other", "other/x/y"}, {"other/sub", "other"}} {
		if err := r.Rename(pair[0], pair[1]); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Rename(%q, %q) = %v, want EINVAL", pair[0], pair[1], err)
		}
	}
	if readRel(t, r, "other/sub/b") != "b" {
		t.Error("refused rename changed the tree")
	}
	if err := r.Rename("missing", "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename missing = %v, want ErrNotExist", err)
	}
}

func TestReplicaRemoveFileSymlinkTreeAndMissing(t *testing.T) {
	r := openTestReplica(t)
	outside := t.TempDir()
	_ = os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o644)
	_ = r.WriteFile("t/a/b/c", 0o644, time.Time{}, writeString("c"))
	_ = r.WriteFile("file", 0o644, time.Time{}, writeString("f"))
	_ = r.Symlink("link", outside, time.Time{})
	_ = r.Symlink("t/inner", outside, time.Time{})
	for _, rel := range []string{"t", "file", "link", "missing", "file/below-a-file", "no/such/dir"} {
		if err := r.Remove(rel); err != nil {
			t.Errorf("Remove(%q) = %v", rel, err)
		}
	}
	if got := listTree(t, r.Root()); len(got) != 0 {
		t.Errorf("tree after Remove = %q, want empty", got)
	}
	if got := listTree(t, outside); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("Remove reached through a symlink: outside = %q", got)
	}
	if err := r.Remove("."); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Remove(.) = %v, want ErrUnsafePath", err)
	}
}

func TestReplicaCleanTempEmptiesStagingAndKeepsEveryNameInTheTree(t *testing.T) {
	r := openTestReplica(t)
	// names of the tree that look like temporary files are data
	for _, rel := range []string{"d/real", TempPrefix + "123", "d/" + TempPrefix + "abc"} {
		if err := r.WriteFile(rel, 0o644, time.Time{}, writeString("r")); err != nil {
			t.Fatal(err)
		}
	}
	// a staged file left by a crash
	st, err := r.Stage("d/partial", 0o644, time.Time{}, writeString("partial"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(st.TempPath()) != r.Staging() || strings.HasPrefix(st.TempPath(), r.Root()+"/") {
		t.Fatalf("staged at %s, want inside %s and outside the tree", st.TempPath(), r.Staging())
	}
	if err := r.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	want := []string{TempPrefix + "123", "d", "d/" + TempPrefix + "abc", "d/real"}
	if got := listTree(t, r.Root()); !slices.Equal(got, want) {
		t.Errorf("tree after CleanTemp = %q, want %q", got, want)
	}
	if ents, _ := os.ReadDir(r.Staging()); len(ents) != 0 {
		t.Errorf("staging after CleanTemp holds %d entries", len(ents))
	}
}

func TestReplicaFaultsFailWritesOfChosenPathsUntilCleared(t *testing.T) {
	var f Faults
	r, err := OpenReplica(filepath.Join(t.TempDir(), "r"), WithFaults(&f))
	if err != nil {
		t.Fatal(err)
	}
	f.FailPath("full", syscall.ENOSPC)
	if err := r.WriteFile("full/a", 0o644, time.Time{}, writeString("x")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write below a failing path: %v", err)
	}
	if err := r.WriteFile("other", 0o644, time.Time{}, writeString("x")); err != nil {
		t.Fatalf("write of another path: %v", err)
	}
	f.FailWrites(syscall.EIO)
	if err := r.Mkdir("dir", 0o755, time.Time{}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("mkdir while all writes fail: %v", err)
	}
	f.Clear()
	if err := r.WriteFile("full/a", 0o644, time.Time{}, writeString("x")); err != nil {
		t.Fatalf("write after Clear: %v", err)
	}
}

func TestReplicaSyncDirAndRootAlias(t *testing.T) {
	r := openTestReplica(t)
	_ = r.Mkdir("d", 0o755, time.Time{})
	for _, rel := range []string{".", "d"} {
		if err := r.SyncDir(rel); err != nil {
			t.Errorf("SyncDir(%q) = %v", rel, err)
		}
	}
	if abs, err := r.Abs("."); err != nil || abs != r.Root() {
		t.Errorf("Abs(.) = %q, %v", abs, err)
	}
	if abs, err := r.Abs("d/x"); err != nil || abs != filepath.Join(r.Root(), "d", "x") {
		t.Errorf("Abs(d/x) = %q, %v", abs, err)
	}
	if err := r.WriteFile(".", 0o644, time.Time{}, writeString("x")); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("WriteFile(.) = %v, want ErrUnsafePath", err)
	}
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a/../../b", "a//b", `..\x`, "/abs", ".", "a/./b", "é/ü"} {
		f.Add(s)
	}
	root := "/replica/root"
	f.Fuzz(func(t *testing.T, rel string) {
		if ValidatePath(rel) != nil {
			return
		}
		if path.Clean(rel) != rel {
			t.Fatalf("accepted %q which is not clean (%q)", rel, path.Clean(rel))
		}
		abs := filepath.Join(root, filepath.FromSlash(rel))
		if !strings.HasPrefix(abs, root+"/") {
			t.Fatalf("accepted %q which resolves to %q outside %q", rel, abs, root)
		}
	})
}

func BenchmarkReplicaWriteFile4KiB(b *testing.B) {
	r := openTestReplica(b)
	data := make([]byte, 4<<10)
	mt := time.Unix(1_700_000_000, 0)
	write := func(f *os.File) error { _, err := f.Write(data); return err }
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := r.WriteFile("bench/file", 0o644, mt, write); err != nil {
			b.Fatal(err)
		}
	}
}

// With the directory cache on, every change made through the Replica is
// still seen: a directory removed, renamed or replaced by a symlink is
// checked again before the next file goes into it, and a directory removed
// from outside is made again.
func TestReplicaDirCacheSeesChangesAndRefusesSymlinks(t *testing.T) {
	r := openTestReplica(t)
	r.CacheDirs(true)
	defer r.CacheDirs(false)
	outside := t.TempDir()
	mt := time.Unix(1_000_000_000, 0)
	write := func(rel string) error { return r.WriteFile(rel, 0o644, mt, writeString(rel)) }
	stage := func(rel string) error {
		st, err := r.Stage(rel, 0o644, mt, writeString(rel))
		if err != nil {
			return err
		}
		return st.Commit()
	}
	for _, op := range []struct {
		name string
		fn   func(string) error
	}{{"WriteFile", write}, {"Stage", stage}} {
		t.Run(op.name, func(t *testing.T) {
			base := strings.ToLower(op.name)
			if err := op.fn(base + "/a/b/f1"); err != nil {
				t.Fatal(err)
			}
			if !r.knownDir(base+"/a/b") || !r.knownDir(base+"/a") {
				t.Fatalf("parents of %s/a/b/f1 not remembered", base)
			}
			// a directory replaced by a symlink through the Replica
			if err := r.Remove(base + "/a"); err != nil {
				t.Fatal(err)
			}
			if err := r.Symlink(base+"/a", outside, mt); err != nil {
				t.Fatal(err)
			}
			if err := op.fn(base + "/a/b/f2"); !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("write under a symlink that replaced a remembered directory: err = %v, want ErrUnsafePath", err)
			}
			if got := listTree(t, outside); len(got) != 0 {
				t.Fatalf("written outside the root: %q", got)
			}
			// a directory moved away through the Replica, a symlink put
			// in its place from outside: the move forgot it
			if err := op.fn(base + "/c/d/f1"); err != nil {
				t.Fatal(err)
			}
			if err := r.Rename(base+"/c", base+"/e"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(r.Root(), base, "c")); err != nil {
				t.Fatal(err)
			}
			if err := op.fn(base + "/c/d/f2"); !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("write under the old name of a renamed directory: err = %v, want ErrUnsafePath", err)
			}
			if err := op.fn(base + "/e/d/f2"); err != nil {
				t.Fatal(err)
			}
			// a remembered directory removed from outside is made again
			if err := os.RemoveAll(filepath.Join(r.Root(), base, "e")); err != nil {
				t.Fatal(err)
			}
			if err := op.fn(base + "/e/d/f3"); err != nil {
				t.Fatalf("write after the directory was removed from outside: %v", err)
			}
			if got := readRel(t, r, base+"/e/d/f3"); got != base+"/e/d/f3" {
				t.Errorf("%s/e/d/f3 = %q", base, got)
			}
			if got := listTree(t, outside); len(got) != 0 {
				t.Fatalf("written outside the root: %q", got)
			}
		})
	}
	r.CacheDirs(false)
	if r.knownDir("writefile/e/d") {
		t.Error("CacheDirs(false) kept remembered directories")
	}
}

func TestReplicaRemoveExceptRemovesWhatKeepRefusesWholeDirectories(t *testing.T) {
	r := openTestReplica(t)
	for _, p := range []string{"keep.txt", "gone.txt", "dir/a", "dir/b", "kept/x"} {
		if err := os.MkdirAll(filepath.Join(r.Root(), filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.Root(), p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var asked []string
	n, err := r.RemoveExcept(func(rel string, typ fs.FileMode) bool {
		asked = append(asked, rel)
		return rel == "keep.txt" || rel == "kept" || rel == "kept/x"
	})
	if err != nil || n != 2 {
		t.Fatalf("RemoveExcept: %d removed, %v; want 2 (gone.txt, dir)", n, err)
	}
	if slices.Contains(asked, "dir/a") {
		t.Error("asked about a path below a directory already refused")
	}
	for p, want := range map[string]bool{"keep.txt": true, "kept/x": true, "gone.txt": false, "dir": false} {
		_, err := os.Lstat(filepath.Join(r.Root(), p))
		if (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
		}
	}
}
