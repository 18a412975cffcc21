package baseline

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type tree struct {
	t    *testing.T
	root string
}

func (tr tree) file(rel string, data []byte, mode fs.FileMode) {
	tr.t.Helper()
	p := filepath.Join(tr.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not filtered by umask
		tr.t.Fatal(err)
	}
}

func (tr tree) dir(rel string, mode fs.FileMode) {
	tr.t.Helper()
	p := filepath.Join(tr.root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr tree) symlink(target, rel string) {
	tr.t.Helper()
	if err := os.Symlink(target, filepath.Join(tr.root, rel)); err != nil {
		tr.t.Fatal(err)
	}
}

// logBuffer collects log output of a test; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func buildTree(t *testing.T) (tree, []byte) {
	tr := tree{t: t, root: t.TempDir()}
	big := pseudoRandom(20, 300<<10)
	tr.file("big.bin", big, 0o640)
	tr.file("empty.txt", nil, 0o600)
	tr.file("run.sh", []byte("#!/bin/sh\n"), 0o755|fs.ModeSetuid)
	tr.file("a/b/c/deep.txt", []byte("deep"), 0o644)
	tr.dir("emptydir", 0o700)
	tr.dir("shared", 0o777|fs.ModeSticky)
	tr.symlink("a/b/c/deep.txt", "rel-link")
	tr.symlink("does/not/exist", "dangling")
	tr.symlink("/etc/hostname", "abs-link")
	tr.symlink("a", "dir-link")
	tr.file("junk.tmp", []byte("ignored"), 0o644)
	tr.file("a/junk.tmp", []byte("ignored"), 0o644)
	tr.file(".cache/blob", []byte("ignored"), 0o644)
	tr.file("build", []byte("a file, so not matched by build/"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(tr.root, "a/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(tr.root, ".cache/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return tr, big
}

func TestScanTree(t *testing.T) {
	tr, big := buildTree(t)
	ignore, err := NewMatcher([]string{"*.tmp", ".cache/", "build/"})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	var mu sync.Mutex
	var progFiles int
	var progBytes int64
	var asked []string
	entries, err := Scan(context.Background(), tr.root, ScanOptions{
		Ignore:  ignore,
		Workers: 2,
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		Reuse: func(rel string) (*Entry, bool) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, rel)
			return nil, false
		},
		Progress: func(files int, bytes int64) {
			mu.Lock()
			defer mu.Unlock()
			progFiles, progBytes = max(progFiles, files), max(progBytes, bytes)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	byPath := map[string]Entry{}
	for _, e := range entries {
		paths = append(paths, e.Path)
		byPath[e.Path] = e
	}
	want := []string{"a", "a/b", "a/b/c", "a/b/c/deep.txt", "abs-link", "big.bin", "build", "dangling", "dir-link", "empty.txt", "emptydir", "rel-link", "run.sh", "shared"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths:\n got  %q\n want %q", paths, want)
	}

	checks := []struct {
		path   string
		kind   Kind
		mode   fs.FileMode
		size   int64
		target string
	}{
		{"a/b", KindDir, 0o755, 0, ""},
		{"emptydir", KindDir, 0o700, 0, ""},
		{"shared", KindDir, 0o777 | fs.ModeSticky, 0, ""},
		{"big.bin", KindFile, 0o640, int64(len(big)), ""},
		{"empty.txt", KindFile, 0o600, 0, ""},
		{"run.sh", KindFile, 0o755 | fs.ModeSetuid, 10, ""},
		{"rel-link", KindSymlink, 0, 14, "a/b/c/deep.txt"},
		{"dangling", KindSymlink, 0, 14, "does/not/exist"},
		{"abs-link", KindSymlink, 0, 13, "/etc/hostname"},
		{"dir-link", KindSymlink, 0, 1, "a"},
	}
	for _, c := range checks {
		e := byPath[c.path]
		if e.Kind != c.kind || e.Size != c.size || e.Target != c.target || (c.kind != KindSymlink && e.Mode != c.mode) {
			t.Errorf("%s: got kind %s mode %v size %d target %q, want %s %v %d %q", c.path, e.Kind, e.Mode, e.Size, e.Target, c.kind, c.mode, c.size, c.target)
		}
		if e.MTime.IsZero() || e.Inode == 0 {
			t.Errorf("%s: mtime or inode missing", c.path)
		}
	}
	if e := byPath["big.bin"]; !ContentRoot(e.Chunks).Equals(ContentRoot(chunkAll(t, big))) || sumSizes(e.Chunks) != e.Size {
		t.Error("big.bin: chunks differ from chunking its bytes")
	}
	if e := byPath["empty.txt"]; len(e.Chunks) != 0 {
		t.Errorf("empty file has %d chunks", len(e.Chunks))
	}
	if n := strings.Count(logs.String(), "skipping special file"); n != 1 || !strings.Contains(logs.String(), "a/fifo") {
		t.Errorf("want one log line for a/fifo (and none from the ignored .cache/), got:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "subsystem=baseline") {
		t.Error("log lines lack the subsystem attribute")
	}
	slices.Sort(asked)
	if want := []string{"a/b/c/deep.txt", "big.bin", "build", "empty.txt", "run.sh"}; !slices.Equal(asked, want) {
		t.Errorf("Reuse asked for %q, want the regular files %q", asked, want)
	}
	wantBytes := int64(len(big)) + 4 + 10 + int64(len("a file, so not matched by build/"))
	if progFiles != 5 || progBytes != wantBytes {
		t.Errorf("progress ended at %d files, %d bytes; want 5, %d", progFiles, progBytes, wantBytes)
	}
}

func TestScanReusesUnchangedFiles(t *testing.T) {
	tr, big := buildTree(t)
	first, err := Scan(context.Background(), tr.root, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prev := map[string]*Entry{}
	for i := range first {
		prev[first[i].Path] = &first[i]
	}
	// A marker chunk list that only reuse can produce.
	marker := []Chunk{{CID: ChunkCID([]byte("marker")), Size: uint32(len(big))}}
	prev["big.bin"].Chunks = marker

	var calls int
	var mu sync.Mutex
	reuse := func(rel string) (*Entry, bool) {
		mu.Lock()
		calls++
		mu.Unlock()
		e, ok := prev[rel]
		return e, ok
	}
	find := func(entries []Entry, p string) Entry {
		for _, e := range entries {
			if e.Path == p {
				return e
			}
		}
		t.Fatalf("%s missing", p)
		return Entry{}
	}
	second, err := Scan(context.Background(), tr.root, ScanOptions{Reuse: reuse})
	if err != nil {
		t.Fatal(err)
	}
	if got := find(second, "big.bin"); !slices.EqualFunc(got.Chunks, marker, chunkEqual) {
		t.Fatal("unchanged big.bin was rehashed instead of reusing its previous chunks")
	}
	if calls != 8 { // no ignore patterns: every regular file, .cache/blob and *.tmp included
		t.Errorf("Reuse called %d times, want 8 (once per regular file)", calls)
	}

	// Same size, new mtime: rehashed.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(tr.root, "big.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	third, err := Scan(context.Background(), tr.root, ScanOptions{Reuse: reuse})
	if err != nil {
		t.Fatal(err)
	}
	got := find(third, "big.bin")
	if slices.EqualFunc(got.Chunks, marker, chunkEqual) || !ContentRoot(got.Chunks).Equals(ContentRoot(chunkAll(t, big))) {
		t.Fatal("big.bin with a new mtime was not rehashed")
	}

	// Stat reuses prev the same way.
	e, err := Stat(tr.root, "big.bin", &Entry{Kind: KindFile, Size: got.Size, MTime: got.MTime, Inode: got.Inode, Dev: got.Dev, Chunks: marker}, nil)
	if err != nil || !slices.EqualFunc(e.Chunks, marker, chunkEqual) {
		t.Fatalf("Stat did not reuse prev (err %v)", err)
	}
	e, err = Stat(tr.root, "big.bin", &Entry{Kind: KindFile, Size: got.Size, MTime: got.MTime, Inode: got.Inode + 1, Dev: got.Dev, Chunks: marker}, nil)
	if err != nil || slices.EqualFunc(e.Chunks, marker, chunkEqual) {
		t.Fatalf("Stat reused prev with another inode (err %v)", err)
	}
}

func TestScanSkipsPathsThatVanish(t *testing.T) {
	tr := tree{t: t, root: t.TempDir()}
	tr.file("a-first", []byte("1"), 0o644)
	tr.file("b-victim", []byte("2"), 0o644)
	tr.file("z-dir/inner", []byte("3"), 0o644)
	// Reuse runs after the lstat of each file and before it is read: delete
	// the file being looked at, and a directory not yet reached.
	reuse := func(rel string) (*Entry, bool) {
		switch rel {
		case "a-first":
			if err := os.RemoveAll(filepath.Join(tr.root, "z-dir")); err != nil {
				t.Error(err)
			}
		case "b-victim":
			if err := os.Remove(filepath.Join(tr.root, rel)); err != nil {
				t.Error(err)
			}
		}
		return nil, false
	}
	entries, err := Scan(context.Background(), tr.root, ScanOptions{Reuse: reuse, Workers: 1})
	if err != nil {
		t.Fatalf("vanishing paths made the scan fail: %v", err)
	}
	if len(entries) != 1 || entries[0].Path != "a-first" {
		t.Fatalf("entries = %+v, want only a-first", entries)
	}
}

func TestScanErrors(t *testing.T) {
	if _, err := Scan(context.Background(), filepath.Join(t.TempDir(), "missing"), ScanOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: err = %v", err)
	}
	tr, _ := buildTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, tr.root, ScanOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if os.Geteuid() == 0 {
		t.Log("running as root: permission errors cannot be provoked")
		return
	}
	p := filepath.Join(tr.root, "a/b/c/deep.txt")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Scan(context.Background(), tr.root, ScanOptions{})
	var pe *PathError
	if !errors.As(err, &pe) || pe.Path != "a/b/c/deep.txt" || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("unreadable file: err = %v, want a PathError naming a/b/c/deep.txt", err)
	}
}

func TestScanFollowsSymlinkedRoot(t *testing.T) {
	tr, _ := buildTree(t)
	link := filepath.Join(t.TempDir(), "folder")
	if err := os.Symlink(tr.root, link); err != nil {
		t.Fatal(err)
	}
	a, err := Scan(context.Background(), tr.root, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Scan(context.Background(), link, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !SnapshotRoot(a).Equals(SnapshotRoot(b)) {
		t.Fatal("scanning through a symlink to the folder gave another snapshot")
	}
}

func TestStat(t *testing.T) {
	tr, big := buildTree(t)
	ignore, _ := NewMatcher([]string{"*.tmp", ".cache/"})
	e, err := Stat(tr.root, "big.bin", nil, ignore)
	if err != nil || e.Kind != KindFile || e.Size != int64(len(big)) || !ContentRoot(e.Chunks).Equals(ContentRoot(chunkAll(t, big))) {
		t.Fatalf("big.bin: %+v, %v", e.Path, err)
	}
	if e, err := Stat(tr.root, "dangling", nil, ignore); err != nil || e.Kind != KindSymlink || e.Target != "does/not/exist" {
		t.Fatalf("dangling: %+v, %v", e, err)
	}
	if e, err := Stat(tr.root, "a/b", nil, ignore); err != nil || e.Kind != KindDir {
		t.Fatalf("a/b: %+v, %v", e, err)
	}
	for rel, want := range map[string]error{
		"gone":             fs.ErrNotExist,
		"a/gone":           fs.ErrNotExist,
		"dir-link/b":       fs.ErrNotExist, // below a symlink: not part of the folder
		"big.bin/x":        fs.ErrNotExist,
		"junk.tmp":         ErrIgnored,
		".cache/blob":      ErrIgnored,
		"a/fifo":           ErrSpecialFile,
		"../escape":        ErrBadPath,
		"/etc/passwd":      ErrBadPath,
		"a//b":             ErrBadPath,
		"abs-link/../x":    ErrBadPath,
		"a/b/c/deep.txt/.": ErrBadPath,
	} {
		if _, err := Stat(tr.root, rel, nil, ignore); !errors.Is(err, want) {
			t.Errorf("Stat(%q): err = %v, want %v", rel, err, want)
		}
	}
}
