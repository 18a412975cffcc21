package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/node/watch"
	"github.com/vigil-mesh/vigil/node/wire"
)

// records returns the changes of the journal's records after seq, one
// slice per record.
func (h *harness) records(after uint64) [][]*wire.Change {
	h.t.Helper()
	var out [][]*wire.Change
	err := h.j.Read(after+1, func(r journal.Record) error {
		c, err := wire.DecodeChange(r.Payload)
		if err != nil {
			return err
		}
		out = append(out, c.Changes())
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// slowWatcher makes the harness's watcher settle nothing by itself: only
// a Sync (Flush) or Take hands paths over.
func slowWatcher(t *testing.T) func(*Config) {
	return func(cfg *Config) {
		w, err := watch.New(cfg.Root, watch.Options{Quiet: time.Minute, MaxDelay: time.Minute,
			MarkerDir: filepath.Join(t.TempDir(), "marker"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Watcher = w
	}
}

func TestFilesChangedTogetherAreJournaledAsOneGroupRecord(t *testing.T) {
	h := newHarnessWith(t, slowWatcher(t))
	before, err := h.sync()
	if err != nil {
		t.Fatal(err)
	}
	h.write("app.db", strings.Repeat("d", 5000))
	h.write("app.db-wal", strings.Repeat("w", 3000))
	h.write("dir/note", "n")
	if _, err := h.sync(); err != nil {
		t.Fatal(err)
	}
	recs := h.records(before)
	if len(recs) != 1 {
		t.Fatalf("%d records for files changed together, want one group", len(recs))
	}
	var paths []string
	for _, c := range recs[0] {
		paths = append(paths, c.Op.String()+" "+c.Path)
		if c.Op == wire.OpPut && c.Entry.Kind == baseline.KindFile && len(c.Data) != len(c.Splice.Added) {
			t.Errorf("%s: %d of %d new chunks inline, want all (the bytes hashed)", c.Path, len(c.Data), len(c.Splice.Added))
		}
	}
	for _, p := range []string{"put app.db", "put app.db-wal", "put dir", "put dir/note"} {
		if !slices.Contains(paths, p) {
			t.Fatalf("the group holds %v, want %s among them", paths, p)
		}
	}
}

// A file written during every read of it is left out of the captures
// (no mixed state is journaled), becomes a problem of its path once that
// lasts, and is captured, problem cleared, once it can be read whole.
func TestFileChangedDuringEveryReadIsLeftOutThenAProblemThenCaptured(t *testing.T) {
	var faults baseline.Faults
	h := newHarnessWith(t, func(cfg *Config) {
		cfg.ReadFaults = &faults
		cfg.TornProblemAfter = 300 * time.Millisecond
	})
	before, err := h.sync()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(h.root, "busy.log")
	faults.DuringRead("busy.log", func() {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return
		}
		f.Write([]byte("x"))
		f.Close()
	})
	h.write("busy.log", "start\n")
	deadline := time.Now().Add(20 * time.Second)
	for !hasProblem(h.a.Status(), "busy.log", "changes too fast") {
		if time.Now().After(deadline) {
			t.Fatalf("no problem reported for a file torn on every read: %+v", h.a.Status().Problems)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	for _, r := range h.records(before) {
		for _, c := range r {
			if c.Path == "busy.log" {
				t.Fatalf("a state of busy.log was journaled although every read of it raced a writer: %s", c.Op)
			}
		}
	}
	retries, torn := h.a.CaptureStats()
	if retries == 0 || torn == 0 {
		t.Fatalf("capture stats: %d retries, %d torn; want both counted", retries, torn)
	}

	faults.DuringRead("busy.log", nil) // the writer stops
	h.write("busy.log", "final\n")
	if _, err := h.sync(); err != nil {
		t.Fatal(err)
	}
	if !h.journaled()["busy.log"] {
		t.Fatal("busy.log not journaled once it could be read whole")
	}
	if hasProblem(h.a.Status(), "busy.log", "") {
		t.Fatalf("problem not cleared after the file was read: %+v", h.a.Status().Problems)
	}
	t.Logf("%d reads thrown away, %d captures left the file out", retries, torn)
}

func hasProblem(st Status, path, msg string) bool {
	for _, p := range st.Problems {
		if p.Path == path && strings.Contains(p.Err, msg) {
			return true
		}
	}
	return false
}

// A change seen while a Sync's capture reads (here a lock file made and
// removed in a directory the capture had already read, as git does) is
// captured before Sync returns: the directory's new mtime is in the index
// and the journal the moment Sync answers, not after the quiet period.
func TestSyncCapturesWhatChangedDuringItsOwnCapture(t *testing.T) {
	var faults baseline.Faults
	h := newHarnessWith(t, func(cfg *Config) {
		slowWatcher(t)(cfg)
		cfg.ReadFaults = &faults
	})
	h.write("refs/heads/main", "one")
	if _, err := h.sync(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.root, "refs/heads")
	lock := filepath.Join(dir, "main.lock")
	// events for the directory itself, for the lock file and for main:
	// the next capture reads the directory first, then main
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	h.write("refs/heads/main.lock", "x")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	faults.DuringRead("refs/heads/main", func() {
		once.Do(func() {
			// after the directory was read: its mtime moves again
			if err := os.WriteFile(lock, []byte("y"), 0o644); err == nil {
				os.Remove(lock)
			}
		})
	})
	h.write("refs/heads/main", "two")
	if _, err := h.sync(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.a.mu.RLock()
	e := h.a.files.Get("refs/heads")
	h.a.mu.RUnlock()
	if e == nil || !e.MTime.Equal(fi.ModTime()) {
		t.Fatalf("after Sync the index has refs/heads %+v, the directory's mtime is %s", e, fi.ModTime())
	}
}
