package watch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Take returns every changed path, settled or not, and the watcher then
// no longer holds them; Requeue gives a path back, and it settles again.
func TestWatcherTakeReturnsUnsettledPathsAndRequeueGivesThemBack(t *testing.T) {
	root := t.TempDir()
	// nothing settles by itself during the test
	h := watchStart(t, root, Options{Quiet: time.Minute, MaxDelay: time.Minute, Logger: slog.New(slog.DiscardHandler),
		MarkerDir: filepath.Join(t.TempDir(), "marker")}, nil)
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(root, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchWait)
	defer cancel()
	b, err := h.w.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(b.Paths, "a") || !slices.Contains(b.Paths, "b") {
		t.Fatalf("Take returned %v, want a and b (written before it, not settled)", b.Paths)
	}
	// taken: a Flush has nothing left to deliver
	if got := h.flush(); len(got) != 0 {
		t.Fatalf("after Take, Flush delivered %v", watchBatchPaths(got))
	}
	again, err := h.w.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Paths) != 0 {
		t.Fatalf("a second Take with no change returned %v", again.Paths)
	}
	h.w.Requeue([]string{"a"})
	got := h.flush()
	if ps := watchBatchPaths(got); !slices.Equal(ps, []string{"a"}) {
		t.Fatalf("after Requeue(a), Flush delivered %v, want [a]", ps)
	}
}
