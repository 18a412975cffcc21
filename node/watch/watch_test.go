package watch

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchWait bounds every wait for an expected batch.
const watchWait = 5 * time.Second

type watchRecv struct {
	at time.Time
	b  Batch
}

// watchHarness runs a Watcher; the test goroutine itself consumes Batches.
type watchHarness struct {
	t       *testing.T
	root    string
	w       *Watcher
	ctx     context.Context
	batches []watchRecv
}

func watchStart(t *testing.T, root string, opts Options, prep func(*Watcher)) *watchHarness {
	t.Helper()
	w, err := New(root, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if prep != nil {
		prep(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(watchWait):
			t.Errorf("Run did not return after cancel")
		}
	})
	select {
	case <-w.Ready():
	case <-time.After(watchWait):
		t.Fatalf("watcher not ready")
	}
	return &watchHarness{t: t, root: root, w: w, ctx: ctx}
}

// waitPaths receives batches until every path in want appeared in a batch
// received during this call; it returns those batches.
func (h *watchHarness) waitPaths(want ...string) []watchRecv {
	h.t.Helper()
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	start := len(h.batches)
	missing := make(map[string]bool)
	for _, p := range want {
		missing[p] = true
	}
	for len(missing) > 0 {
		select {
		case b, ok := <-h.w.Batches():
			if !ok {
				h.t.Fatalf("Batches closed while waiting for %v", want)
			}
			h.batches = append(h.batches, watchRecv{at: time.Now(), b: b})
			for _, p := range b.Paths {
				delete(missing, p)
			}
		case <-deadline.C:
			h.t.Fatalf("paths %v not emitted within %v; got %v", watchKeys(missing), watchWait, watchBatchPaths(h.batches[start:]))
		}
	}
	return h.batches[start:]
}

// flush calls Flush while consuming batches and returns the batches
// received before Flush returned.
func (h *watchHarness) flush() []watchRecv {
	h.t.Helper()
	start := len(h.batches)
	ctx, cancel := context.WithTimeout(h.ctx, watchWait)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- h.w.Flush(ctx) }()
	for {
		select {
		case b := <-h.w.Batches():
			h.batches = append(h.batches, watchRecv{at: time.Now(), b: b})
		case err := <-errc:
			if err != nil {
				h.t.Fatalf("Flush: %v", err)
			}
			return h.batches[start:]
		}
	}
}

func watchBatchPaths(rs []watchRecv) []string {
	set := make(map[string]bool)
	for _, r := range rs {
		for _, p := range r.b.Paths {
			set[p] = true
		}
	}
	return watchKeys(set)
}

func watchKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func watchCount(rs []watchRecv, p string) int {
	n := 0
	for _, r := range rs {
		if slices.Contains(r.b.Paths, p) {
			n++
		}
	}
	return n
}

func watchWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func watchMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// watchLogBuf is a log sink safe for concurrent use.
type watchLogBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *watchLogBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *watchLogBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *watchLogBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// watchTestIgnore ignores "*.tmp" files and directories named "skip".
type watchTestIgnore struct{}

func (watchTestIgnore) Match(rel string, isDir bool) bool {
	base := filepath.Base(rel)
	return strings.HasSuffix(base, ".tmp") || (isDir && base == "skip")
}

func TestWatcherEmitsCreatedModifiedAndDeletedFile(t *testing.T) {
	root := t.TempDir()
	h := watchStart(t, root, Options{}, nil)
	f := filepath.Join(root, "f.txt")

	watchWrite(t, f, "one")
	h.waitPaths("f.txt")

	fh, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("two"); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	h.waitPaths("f.txt")

	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	h.waitPaths("f.txt")
}

func TestWatcherStartupEmitsNothing(t *testing.T) {
	root := t.TempDir()
	watchMkdir(t, filepath.Join(root, "d", "e"))
	watchWrite(t, filepath.Join(root, "d", "e", "x"), "x")
	watchWrite(t, filepath.Join(root, "y"), "y")
	h := watchStart(t, root, Options{}, nil)
	if got := h.flush(); len(got) != 0 {
		t.Fatalf("start-up emitted %v, want nothing", got)
	}
}

func TestWatcherRapidWritesWithinQuietEmitOnceAfterQuiet(t *testing.T) {
	const quiet = 200 * time.Millisecond
	root := t.TempDir()
	h := watchStart(t, root, Options{Quiet: quiet, MaxDelay: time.Minute}, nil)
	f := filepath.Join(root, "f")
	// The time is taken before the last write starts: its events come
	// after that (taken after the write, the watcher could have handled
	// them before this goroutine read the clock, on a loaded machine).
	var lastWrite time.Time
	for i := range 10 {
		lastWrite = time.Now()
		watchWrite(t, f, strings.Repeat("x", i+1))
	}

	got := h.waitPaths("f")
	if d := got[len(got)-1].at.Sub(lastWrite); d < quiet {
		t.Fatalf("f emitted %v after the last write began, before the %v quiet period", d, quiet)
	}
	got = append(got, h.flush()...)
	if n := watchCount(got, "f"); n != 1 {
		t.Fatalf("f emitted in %d batches, want 1: %v", n, got)
	}
}

func TestWatcherContinuouslyWrittenFileEmittedWithinMaxDelay(t *testing.T) {
	const maxDelay = 100 * time.Millisecond
	root := t.TempDir()
	h := watchStart(t, root, Options{Quiet: 20 * time.Millisecond, MaxDelay: maxDelay}, nil)
	f := filepath.Join(root, "busy")
	fh, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()

	// The file is written every 2ms, well within the quiet period, until
	// it is emitted: only MaxDelay can emit it (with the quiet period
	// alone, waitPaths would time out). How late after MaxDelay is up to
	// the scheduler, so it is not asserted.
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := fh.WriteString("data"); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	h.waitPaths("busy")
	close(stop)
	<-writerDone
}

func TestWatcherNewNestedDirectoryIsWatchedAndItsContentsEmitted(t *testing.T) {
	root := t.TempDir()
	h := watchStart(t, root, Options{}, nil)
	watchMkdir(t, filepath.Join(root, "a", "b", "c"))
	watchWrite(t, filepath.Join(root, "a", "b", "c", "f"), "f")
	h.waitPaths("a", "a/b", "a/b/c", "a/b/c/f")

	// Only a watch on a/b/c reports this one.
	watchWrite(t, filepath.Join(root, "a", "b", "c", "g"), "g")
	h.waitPaths("a/b/c/g")
	if n := h.w.Unwatched(); n != 0 {
		t.Fatalf("Unwatched() = %d, want 0", n)
	}
}

func TestWatcherDirectoryMovedInHasItsExistingContentsEmitted(t *testing.T) {
	outside := t.TempDir()
	watchMkdir(t, filepath.Join(outside, "m", "n"))
	watchWrite(t, filepath.Join(outside, "m", "n", "old"), "o")
	root := t.TempDir()
	h := watchStart(t, root, Options{}, nil)

	// No event is ever generated for m/n/old inside root: only the walk of
	// the new directory finds it.
	if err := os.Rename(filepath.Join(outside, "m"), filepath.Join(root, "m")); err != nil {
		t.Fatal(err)
	}
	h.waitPaths("m", "m/n", "m/n/old")
	watchWrite(t, filepath.Join(root, "m", "n", "new"), "n")
	h.waitPaths("m/n/new")
}

func TestWatcherRenamedDirectoryEmitsOldAndNewPathsAndIsWatchedUnderNewName(t *testing.T) {
	root := t.TempDir()
	watchMkdir(t, filepath.Join(root, "d", "sub"))
	watchWrite(t, filepath.Join(root, "d", "sub", "x"), "x")
	h := watchStart(t, root, Options{}, nil)

	if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e")); err != nil {
		t.Fatal(err)
	}
	h.waitPaths("d", "e", "e/sub", "e/sub/x")

	watchWrite(t, filepath.Join(root, "e", "sub", "y"), "y")
	got := h.waitPaths("e/sub/y")
	got = append(got, h.flush()...)
	for _, p := range watchBatchPaths(got) {
		if strings.HasPrefix(p, "d/") {
			t.Fatalf("write after the rename reported under the old name %q", p)
		}
	}
}

// A directory moved into a new directory can be found (and watched) by the
// walk of its new parent before the event for its old path arrives; both
// paths then share one inotify watch. Dropping the old path must not leave
// the new one unwatched.
func TestWatcherDirectoryMovedIntoNewDirectoryStaysWatched(t *testing.T) {
	root := t.TempDir()
	watchMkdir(t, filepath.Join(root, "a", "x"))
	watchWrite(t, filepath.Join(root, "a", "x", "f"), "f")
	h := watchStart(t, root, Options{}, func(w *Watcher) {
		orig := w.addWatch
		w.addWatch = func(p string) error {
			err := orig(p)
			if p == filepath.Join(root, "b") {
				// the move lands between the watch on b and the walk of b
				if rerr := os.Rename(filepath.Join(root, "a", "x"), filepath.Join(root, "b", "y")); rerr != nil {
					t.Error(rerr)
				}
			}
			return err
		}
	})
	watchMkdir(t, filepath.Join(root, "b"))
	h.waitPaths("b", "b/y", "b/y/f", "a/x")
	h.flush()

	watchWrite(t, filepath.Join(root, "b", "y", "g"), "g")
	h.waitPaths("b/y/g")
}

func TestWatcherDeletedDirectoryIsEmittedAndRecreatedOneWatched(t *testing.T) {
	root := t.TempDir()
	watchMkdir(t, filepath.Join(root, "d", "sub"))
	watchWrite(t, filepath.Join(root, "d", "sub", "x"), "x")
	h := watchStart(t, root, Options{}, nil)

	if err := os.RemoveAll(filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	h.waitPaths("d")
	watchMkdir(t, filepath.Join(root, "d"))
	h.waitPaths("d")
	watchWrite(t, filepath.Join(root, "d", "later"), "l")
	h.waitPaths("d/later")
}

func TestWatcherIgnoreFilterSuppressesPaths(t *testing.T) {
	root := t.TempDir()
	h := watchStart(t, root, Options{Ignore: watchTestIgnore{}}, nil)
	watchWrite(t, filepath.Join(root, "a.tmp"), "t")
	watchMkdir(t, filepath.Join(root, "skip"))
	watchWrite(t, filepath.Join(root, "skip", "inner.txt"), "i")
	watchMkdir(t, filepath.Join(root, "sub"))
	watchWrite(t, filepath.Join(root, "sub", "b.tmp"), "t")
	watchWrite(t, filepath.Join(root, "sub", "c.txt"), "c")
	watchWrite(t, filepath.Join(root, "keep.txt"), "k")
	got := h.waitPaths("keep.txt", "sub", "sub/c.txt")

	// Written into the ignored directory after it was created: reported
	// only if it were (wrongly) watched.
	watchWrite(t, filepath.Join(root, "skip", "later.txt"), "l")
	watchWrite(t, filepath.Join(root, "keep2.txt"), "k")
	got = append(got, h.waitPaths("keep2.txt")...)
	got = append(got, h.flush()...)
	for _, p := range watchBatchPaths(got) {
		switch p {
		case "a.tmp", "skip", "skip/inner.txt", "skip/later.txt", "sub/b.tmp":
			t.Fatalf("ignored path %q emitted; all: %v", p, watchBatchPaths(got))
		}
	}
}

func TestWatcherPollsDirectoriesBeyondWatchLimit(t *testing.T) {
	root := t.TempDir()
	watchMkdir(t, filepath.Join(root, "sub"))
	var logs watchLogBuf
	opts := Options{PollInterval: 20 * time.Millisecond, Logger: logs.logger()}
	h := watchStart(t, root, opts, func(w *Watcher) {
		added, orig := 0, w.addWatch
		w.addWatch = func(p string) error {
			if added >= 1 {
				return syscall.ENOSPC
			}
			added++
			return orig(p)
		}
	})
	if n := h.w.Unwatched(); n != 1 {
		t.Fatalf("Unwatched() = %d after start, want 1 (sub)", n)
	}

	watchWrite(t, filepath.Join(root, "sub", "f"), "1")
	h.waitPaths("sub/f")
	watchWrite(t, filepath.Join(root, "sub", "f"), "22")
	h.waitPaths("sub/f")
	if err := os.Remove(filepath.Join(root, "sub", "f")); err != nil {
		t.Fatal(err)
	}
	h.waitPaths("sub/f")

	// A directory created later in the watched root hits the limit too.
	watchMkdir(t, filepath.Join(root, "new"))
	h.waitPaths("new")
	if n := h.w.Unwatched(); n != 2 {
		t.Fatalf("Unwatched() = %d after mkdir, want 2", n)
	}
	watchWrite(t, filepath.Join(root, "new", "g"), "g")
	h.waitPaths("new/g")

	out := logs.String()
	if n := strings.Count(out, "fs.inotify.max_user_watches=524288"); n != 1 {
		t.Fatalf("watch limit warning logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "unwatched_dirs=1") {
		t.Fatalf("warning does not give the number of unwatched dirs:\n%s", out)
	}
}

func TestWatcherInstanceLimitPollsWholeFolder(t *testing.T) {
	root := t.TempDir()
	var logs watchLogBuf
	opts := Options{PollInterval: 20 * time.Millisecond, Logger: logs.logger()}
	h := watchStart(t, root, opts, func(w *Watcher) {
		w.newFS = func() (*fsnotify.Watcher, error) { return nil, syscall.EMFILE }
	})
	if n := h.w.Unwatched(); n != 1 {
		t.Fatalf("Unwatched() = %d, want 1 (root)", n)
	}
	watchWrite(t, filepath.Join(root, "f"), "f")
	h.waitPaths("f")
	if out := logs.String(); strings.Count(out, "fs.inotify.max_user_instances") != 1 {
		t.Fatalf("instance limit warning not logged once:\n%s", out)
	}
}

func TestWatcherQueueOverflowEmitsRescanBatch(t *testing.T) {
	root := t.TempDir()
	var logs watchLogBuf
	fswc := make(chan *fsnotify.Watcher, 1)
	h := watchStart(t, root, Options{Logger: logs.logger()}, func(w *Watcher) {
		w.newFS = func() (*fsnotify.Watcher, error) {
			fw, err := fsnotify.NewWatcher()
			fswc <- fw
			return fw, err
		}
	})
	fw := <-fswc
	// The event loop receives this exactly as an overflow reported by
	// the fsnotify reader.
	select {
	case fw.Errors <- fsnotify.ErrEventOverflow:
	case <-time.After(watchWait):
		t.Fatal("overflow not received by the watcher")
	}
	select {
	case b := <-h.w.Batches():
		if !b.Rescan {
			t.Fatalf("batch after overflow = %+v, want Rescan", b)
		}
	case <-time.After(watchWait):
		t.Fatal("no batch after overflow")
	}
	if n := strings.Count(logs.String(), "overflow"); n != 1 {
		t.Fatalf("overflow warning logged %d times, want 1:\n%s", n, logs.String())
	}
	// Watching goes on after the rescan request.
	watchWrite(t, filepath.Join(root, "after"), "a")
	h.waitPaths("after")
}

func TestWatcherFlushDeliversPendingPathsBeforeReturning(t *testing.T) {
	root := t.TempDir()
	// Without Flush nothing would settle during the test. The marker
	// directory makes Flush wait for its own event, which the kernel queues
	// after every earlier one (without it Flush waits for a short idle
	// time, which a loaded machine can outlast).
	h := watchStart(t, root, Options{Quiet: time.Hour, MaxDelay: time.Hour, MarkerDir: t.TempDir()}, nil)
	watchWrite(t, filepath.Join(root, "f1"), "1")
	watchWrite(t, filepath.Join(root, "f2"), "2")
	watchMkdir(t, filepath.Join(root, "d"))
	watchWrite(t, filepath.Join(root, "d", "f3"), "3")

	got := watchBatchPaths(h.flush())
	for _, p := range []string{"f1", "f2", "d", "d/f3"} {
		if !slices.Contains(got, p) {
			t.Fatalf("Flush returned before %q was delivered; got %v", p, got)
		}
	}
	if again := h.flush(); len(again) != 0 {
		t.Fatalf("second Flush with nothing pending delivered %v", again)
	}
}

func TestWatcherFlushAfterStopReturnsErrStopped(t *testing.T) {
	w, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Ready()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := w.Flush(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("Flush after stop = %v, want ErrStopped", err)
	}
	if _, ok := <-w.Batches(); ok {
		t.Fatal("Batches not closed after Run returned")
	}
	if err := w.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

func TestNewRejectsMissingOrNonDirectoryRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	watchWrite(t, file, "x")
	for _, root := range []string{filepath.Join(dir, "missing"), file} {
		_, err := New(root, Options{})
		var we *Error
		if !errors.As(err, &we) || we.Path != root {
			t.Fatalf("New(%q) = %v, want a Error naming the root", root, err)
		}
	}
}

// An ignored file made or removed in a directory is not reported, but the
// directory is: its mtime changed, and backups keep directory mtimes.
func TestWatcherReportsTheDirectoryOfAnIgnoredFileMadeOrRemoved(t *testing.T) {
	root := t.TempDir()
	watchMkdir(t, filepath.Join(root, "sub"))
	h := watchStart(t, root, Options{Ignore: watchTestIgnore{}}, nil)
	watchWrite(t, filepath.Join(root, "sub", "x.tmp"), "t")
	got := h.waitPaths("sub")
	if err := os.Remove(filepath.Join(root, "sub", "x.tmp")); err != nil {
		t.Fatal(err)
	}
	got = append(got, h.waitPaths("sub")...)
	got = append(got, h.flush()...)
	for _, p := range watchBatchPaths(got) {
		if p == "sub/x.tmp" {
			t.Fatalf("ignored path %q emitted; all: %v", p, watchBatchPaths(got))
		}
	}
}
