package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// demoLeakOptions ignore what was running before the test and libp2p's
// process-wide bandwidth sweeper (as the mesh package's tests do).
func demoLeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	}
}

// demoTempParent makes a short private temporary directory the parent of
// the demo's folder (TMPDIR), so that demos run by other test processes do
// not disturb the count, and unix socket paths stay short.
func demoTempParent(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "vdt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	t.Setenv("TMPDIR", parent)
	if os.TempDir() != parent {
		t.Skipf("os.TempDir() ignores TMPDIR on %s", runtime.GOOS)
	}
	return parent
}

// demoTempDirs lists the demo folders in parent.
func demoTempDirs(t *testing.T, parent string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(parent, "vigil-demo-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// demoDirOf returns the folder the demo announced in its first line.
func demoDirOf(t *testing.T, out string) string {
	t.Helper()
	first, _, _ := strings.Cut(out, "\n")
	_, rest, ok := strings.Cut(first, " in ")
	dir, _, _ := strings.Cut(rest, " ")
	if !ok || !strings.Contains(dir, "vigil-demo-") {
		t.Fatalf("first line does not name the demo folder: %q", first)
	}
	return dir
}

// syncBuffer is a bytes.Buffer safe for concurrent use, which can call
// onWrite with everything written so far.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	onWrite func(string)
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.onWrite != nil {
		s.onWrite(s.b.String())
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDemoBothReplicasMatchAndNothingIsLeftRunningOrOnDisk(t *testing.T) {
	leak := demoLeakOptions()
	parent := demoTempParent(t)
	before := demoTempDirs(t, parent)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	start := time.Now()
	code := run(ctx, []string{"demo", "--seconds", "2"}, &stdout, &stderr)
	out := stdout.String()
	t.Logf("demo took %v", time.Since(start).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("stdout:\n%s", out)
	}
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	if n := strings.Count(out, "replica matches"); n != 2 {
		t.Errorf("%q appears %d times, want 2:\n%s", "replica matches", n, out)
	}
	for _, want := range []string{"nas: replica matches", "cloud: replica matches",
		"laptop  12D3KooW", "nas     12D3KooW", "cloud   12D3KooW",
		"both replicas are live", "laptop/docs -> nas", "laptop/docs -> cloud"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Every kind of change was made at least once.
	ops := regexp.MustCompile(`\d+ changes: [1-9]\d* create, [1-9]\d* modify, [1-9]\d* append, [1-9]\d* rename, [1-9]\d* chmod, [1-9]\d* delete\n`)
	if !ops.MatchString(out) {
		t.Errorf("output lacks a workload summary matching %s:\n%s", ops, out)
	}
	if !strings.HasSuffix(out, "cleaned up\n") {
		t.Errorf("output does not end with %q:\n%s", "cleaned up", out)
	}
	if stderr.String() != "" {
		t.Errorf("stderr not empty on success:\n%s", stderr.String())
	}
	if after := demoTempDirs(t, parent); len(before) != 0 || len(after) != 0 {
		t.Errorf("demo folders in %s before %v, after %v; want none", parent, before, after)
	}
	if dir := demoDirOf(t, out); filepath.Dir(dir) != parent {
		t.Errorf("demo folder %s is not in the temporary directory %s", dir, parent)
	} else if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("demo folder %s still there: %v", dir, err)
	}
	goleak.VerifyNone(t, leak...)
}

func TestDemoInterruptedStopsNodesAndRemovesItsFolder(t *testing.T) {
	leak := demoLeakOptions()
	parent := demoTempParent(t)
	before := demoTempDirs(t, parent)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Interrupt (as Ctrl-C does, through the context) once the live
	// workload runs with three nodes up.
	stdout := &syncBuffer{onWrite: func(s string) {
		if strings.Contains(s, "laptop/docs -> nas") {
			cancel()
		}
	}}
	var stderr syncBuffer
	start := time.Now()
	code := run(ctx, []string{"demo", "--seconds", "30"}, stdout, &stderr)
	out := stdout.String()
	t.Logf("interrupted demo took %v", time.Since(start).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("stdout:\n%s", out)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	if !strings.Contains(out, "interrupted") || !strings.HasSuffix(out, "cleaned up\n") {
		t.Errorf("output does not tell of the interruption and the cleanup:\n%s", out)
	}
	if strings.Contains(out, "replica matches") {
		t.Errorf("interrupted demo still verified:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "vigil: demo: interrupted") {
		t.Errorf("stderr lacks the interruption:\n%s", stderr.String())
	}
	if after := demoTempDirs(t, parent); len(before) != 0 || len(after) != 0 {
		t.Errorf("demo folders in %s before %v, after %v; want none", parent, before, after)
	}
	if dir := demoDirOf(t, out); filepath.Dir(dir) != parent {
		t.Errorf("demo folder %s is not in the temporary directory %s", dir, parent)
	} else if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("demo folder %s still there: %v", dir, err)
	}
	goleak.VerifyNone(t, leak...)
}

func TestDemoRejectsNegativeSecondsAsUsageError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"demo", "--seconds", "-1"}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
	}
	assertOneErrorLine(t, stderr.String(), "--seconds")
	if stdout.Len() != 0 {
		t.Errorf("stdout not empty: %q", stdout.String())
	}
}

func TestDemoSetupWritesLoadableConfigsWhereBothTargetsConsent(t *testing.T) {
	d := &demo{dir: t.TempDir()}
	if err := d.setup(); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, dn := range d.nodes {
		ids[dn.name] = dn.id.String()
	}
	for _, dn := range d.nodes {
		cfg, err := loadConfig(dn.home)
		if err != nil {
			t.Fatalf("vigil.yaml of %s: %v", dn.name, err)
		}
		if cfg.Node.Name != dn.name || len(cfg.Peers) != 2 {
			t.Errorf("%s: name %q, %d peers; want %q and 2", dn.name, cfg.Node.Name, len(cfg.Peers), dn.name)
		}
		for _, p := range cfg.Peers {
			if ids[p.Name] != p.ID || len(p.Addrs) != 1 || !strings.HasPrefix(p.Addrs[0], "/ip4/127.0.0.1/tcp/") {
				t.Errorf("%s: peer %+v does not match the demo nodes %v", dn.name, p, ids)
			}
		}
		switch dn.name {
		case "laptop":
			if len(cfg.Folders) != 1 || !slices.Equal(cfg.Folders[0].BackupTo, []string{"nas", "cloud"}) ||
				cfg.FolderPath(cfg.Folders[0]) != d.src {
				t.Errorf("laptop folders: %+v, want docs at %s to nas and cloud", cfg.Folders, d.src)
			}
		default:
			if len(cfg.BackupFor) != 1 || cfg.BackupFor[0].Peer != "laptop" ||
				!slices.Equal(cfg.BackupFor[0].Folders, []string{"docs"}) {
				t.Errorf("%s backup_for: %+v, want laptop/docs", dn.name, cfg.BackupFor)
			}
		}
	}
	st, err := demoTreeStats(d.src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes < demoBigFileSize || st.Symlinks != 1 || st.Dirs < 5 || st.Files < 5 {
		t.Errorf("sample folder: %s; want a 20 MiB file, a symlink, nested dirs", st)
	}
	if es, err := os.ReadDir(filepath.Join(d.src, "inbox")); err != nil || len(es) != 0 {
		t.Errorf("sample folder lacks the empty dir inbox: %v, %d entries", err, len(es))
	}
}

func TestDemoVerifyFailsWhenAReplicaDiffers(t *testing.T) {
	var out bytes.Buffer
	d := &demo{dir: t.TempDir(), out: &out}
	if err := d.setup(); err != nil {
		t.Fatal(err)
	}
	// nas holds an exact copy but for one file; cloud holds nothing.
	nas := filepath.Join(d.nodes[1].cfg.DataPath(), "replicas", d.nodes[0].id.String(), demoFolder)
	if err := os.MkdirAll(filepath.Dir(nas), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(nas, os.DirFS(d.src)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nas, "log.txt"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := d.verify(context.Background()) // grace 0: no second look
	if err == nil || exitCode(err) != exitFailure || !strings.Contains(err.Error(), "2 of 2 replicas differ") {
		t.Fatalf("verify = %v (exit %d), want 2 of 2 replicas differ, exit 1", err, exitCode(err))
	}
	got := out.String()
	for _, want := range []string{"nas: replica DIFFERS", "cloud: replica DIFFERS", "missing in replica: README.txt"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "replica matches") {
		t.Errorf("output claims a match:\n%s", got)
	}
}

func TestCompareTreesReportsEveryKindOfDifference(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	mt := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	write := func(root, rel, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	for _, root := range []string{src, dst} {
		write(root, "same.txt", "same", 0o644)
		write(root, "sub/content.txt", map[string]string{src: "one", dst: "two"}[root], 0o644)
		write(root, "mode.txt", "m", map[string]os.FileMode{src: 0o644, dst: 0o600}[root])
		link := filepath.Join(root, "link")
		if err := os.Symlink(map[string]string{src: "same.txt", dst: "mode.txt"}[root], link); err != nil {
			t.Fatal(err)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	write(src, "missing.txt", "x", 0o644)
	write(dst, "extra.txt", "x", 0o644)
	write(src, "mtime.txt", "t", 0o644)
	write(dst, "mtime.txt", "t", 0o644)
	later := mt.Add(time.Second)
	if err := os.Chtimes(filepath.Join(dst, "mtime.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{src, dst} { // directory mtimes equal
		for _, d := range []string{"sub", "."} {
			if err := os.Chtimes(filepath.Join(root, d), mt, mt); err != nil {
				t.Fatal(err)
			}
		}
	}

	st, diffs, err := compareTrees(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(diffs, "\n")
	for _, want := range []string{"sub/content.txt: content differs", "mode.txt: mode -rw-r--r-- in source, -rw------- in replica",
		`link: symlink to "same.txt" in source, "mode.txt" in replica`, "missing in replica: missing.txt",
		"extra in replica: extra.txt", "mtime.txt: mtime"} {
		if !strings.Contains(got, want) {
			t.Errorf("differences lack %q:\n%s", want, got)
		}
	}
	if len(diffs) != 6 {
		t.Errorf("%d differences, want 6:\n%s", len(diffs), got)
	}
	if st.Files != 5 || st.Symlinks != 1 || st.Dirs != 1 {
		t.Errorf("source stats %s, want 5 files, 1 dir, 1 symlink", st)
	}

	if _, diffs, err := compareTrees(src, src); err != nil || len(diffs) != 0 {
		t.Errorf("a tree compared with itself: %v, %v", diffs, err)
	}
}
