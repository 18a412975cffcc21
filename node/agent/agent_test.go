package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/node/watch"
	"github.com/vigil-mesh/vigil/node/wire"
	"github.com/vigil-mesh/vigil/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// published collects what an agent publishes.
type published struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (p *published) Publish(_ context.Context, b []byte) error {
	p.mu.Lock()
	p.msgs = append(p.msgs, append([]byte(nil), b...))
	p.mu.Unlock()
	return nil
}

// harness runs one agent on a temporary folder with an in-memory journal
// that fails on command: no network, no node.
type harness struct {
	t      *testing.T
	root   string
	j      *journal.Faulty
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with the agent's config changed by set.
func newHarnessWith(t *testing.T, set func(*Config)) *harness {
	t.Helper()
	root, data := t.TempDir(), t.TempDir()
	db, err := store.OpenDB(filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := watch.New(root, watch.Options{MarkerDir: filepath.Join(data, "marker"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, root: root, j: journal.NewFaulty(journal.NewMem()), done: make(chan error, 1)}
	cfg := Config{Folder: "docs", Root: root, Journal: h.j, DB: db, Watcher: w, Topic: &published{},
		Logger: slog.New(slog.DiscardHandler)}
	if set != nil {
		set(&cfg)
	}
	h.a, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
		h.a.Close()
		db.Close()
	})
	return h
}

func (h *harness) write(rel, data string) {
	h.t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) sync() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.a.Sync(ctx)
}

// journaled returns the paths of the put records in the journal.
func (h *harness) journaled() map[string]bool {
	h.t.Helper()
	out := make(map[string]bool)
	err := h.j.Read(h.j.First(), func(r journal.Record) error {
		c, err := wire.DecodeChange(r.Payload)
		if err != nil {
			return err
		}
		for _, m := range c.Changes() { // a group holds several
			if m.Op == wire.OpPut {
				out[m.Path] = true
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func TestFailedJournalAppendKeepsChangesPendingAndSyncSaysSo(t *testing.T) {
	h := newHarness(t)
	h.write("before.txt", "b")
	if _, err := h.sync(); err != nil {
		t.Fatal(err)
	}
	h.j.Fail(syscall.ENOSPC)
	h.write("during-1.txt", "1")
	h.write("dir/during-2.txt", "2")
	_, err := h.sync()
	if !errors.Is(err, ErrNotCaptured) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync while the journal fails: %v, want ErrNotCaptured wrapping ENOSPC", err)
	}
	st := h.a.Status()
	if len(st.Problems) != 1 || st.Problems[0].Path != "" || st.Problems[0].Since.IsZero() {
		t.Fatalf("status problems while the journal fails: %+v", st.Problems)
	}
	if h.journaled()["during-1.txt"] {
		t.Fatal("a change is in the journal although every append failed")
	}

	h.j.Heal()
	head, err := h.sync()
	if err != nil {
		t.Fatalf("Sync after the journal heals: %v", err)
	}
	got := h.journaled()
	for _, p := range []string{"during-1.txt", "dir", "dir/during-2.txt"} {
		if !got[p] {
			t.Errorf("%s is not journaled after the recovery (journal has %v)", p, got)
		}
	}
	if head != h.j.Last() || len(h.a.Status().Problems) != 0 {
		t.Fatalf("after recovery: head %d (journal %d), problems %+v", head, h.j.Last(), h.a.Status().Problems)
	}
	if h.j.Failures() == 0 {
		t.Fatal("the journal was never asked to append while failing")
	}
}

// TestNewIndexWithAnOldJournalMakesTheBackupsRebaseline: an index that is
// new while the folder's journal is not (lost or rebuilt) skips a seq, so
// every backup finds the records it needs gone and takes a new baseline
// that holds what changed while the index was missing.
func TestNewIndexWithAnOldJournalMakesTheBackupsRebaseline(t *testing.T) {
	var j journal.Log
	h := newHarnessWith(t, func(c *Config) {
		for range 3 {
			if _, err := c.Journal.Append([]byte("old record")); err != nil {
				t.Fatal(err)
			}
		}
		c.JournalExisted = true
		j = c.Journal
	})
	if j.First() != 5 || j.Last() != 4 {
		t.Fatalf("journal after a new index: first %d last %d, want first 5 (seqs 1-4 gone)", j.First(), j.Last())
	}
	if _, err := h.sync(); err != nil { // the first scan
		t.Fatal(err)
	}
	h.write("a.txt", "after")
	seq, err := h.sync()
	if err != nil {
		t.Fatal(err)
	}
	if seq < 5 {
		t.Fatalf("a change after the skip has seq %d, want >= 5", seq)
	}
}

// TestNewFolderKeepsSeqOne: a folder protected for the first time has no
// skip; its first record is seq 1.
func TestNewFolderKeepsSeqOne(t *testing.T) {
	h := newHarness(t)
	if h.j.First() != 1 || h.j.Last() != 0 {
		t.Fatalf("new folder's journal: first %d last %d", h.j.First(), h.j.Last())
	}
	if _, err := h.sync(); err != nil { // the first scan
		t.Fatal(err)
	}
	h.write("a.txt", "first")
	seq, err := h.sync()
	if err != nil {
		t.Fatal(err)
	}
	if seq != 1 {
		t.Fatalf("first change of a new folder has seq %d, want 1", seq)
	}
}

// TestScanProgressIsInStatus: while the first scan runs, Status tells how
// many files the walk found (and whether it is over) and how many were
// read; once the scan is done there is no scan in the status.
func TestScanProgressIsInStatus(t *testing.T) {
	faults := &baseline.Faults{}
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	faults.DuringRead("a/f5.txt", func() {
		once.Do(func() {
			close(reached)
			<-release
		})
	})
	h := newHarnessWith(t, func(c *Config) {
		for i := range 10 {
			p := filepath.Join(c.Root, "a", fmt.Sprintf("f%d.txt", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, 100), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.ReadFaults = faults
	})
	<-reached
	deadline := time.Now().Add(20 * time.Second)
	var sc *ScanStatus
	for {
		sc = h.a.Status().Scan
		if sc != nil && sc.Listed && sc.Files == 9 {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("scan status while one file is being read: %+v", sc)
		}
		runtime.Gosched()
	}
	if !sc.First || sc.FoundFiles != 10 || sc.FoundBytes != 1000 || sc.Bytes != 900 || sc.Started.IsZero() {
		close(release)
		t.Fatalf("scan status: %+v", sc)
	}
	close(release)
	if _, err := h.sync(); err != nil {
		t.Fatal(err)
	}
	if sc := h.a.Status().Scan; sc != nil {
		t.Fatalf("a scan in the status after it ended: %+v", sc)
	}
}

// TestStopDuringTheFirstScanEndsItAndItIsMadeAgain: a stop during the
// first scan ends Run without writing an index that claims a scan.
func TestStopDuringTheFirstScanEndsItAndItIsMadeAgain(t *testing.T) {
	faults := &baseline.Faults{}
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	faults.DuringRead("f3.txt", func() {
		once.Do(func() {
			close(reached)
			<-release
		})
	})
	h := newHarnessWith(t, func(c *Config) {
		for i := range 8 {
			if err := os.WriteFile(filepath.Join(c.Root, fmt.Sprintf("f%d.txt", i)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.ReadFaults = faults
	})
	<-reached
	if h.a.Status().Scan == nil { // the status answers during the scan
		t.Error("no scan in the status while it runs")
	}
	h.cancel()
	close(release)
	if err := <-h.done; err != nil {
		t.Fatalf("Run after a stop during the scan: %v", err)
	}
	h.done <- nil // for the cleanup
	var scanned bool
	if err := h.a.db.View(func(tx *store.Tx) error {
		scanned = h.a.rows.Meta(tx).Scanned
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if scanned {
		t.Fatal("the index claims a first scan that was stopped")
	}
}
