package journal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is the clock of the recovery rate limit in these tests: time
// moves only when the test says so.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// openFaulty opens a journal whose I/O fails as the returned Faults say
// and whose recovery rate limit runs on the returned clock.
func openFaulty(t *testing.T, dir string, opts ...Option) (*Journal, *Faults, *fakeClock) {
	t.Helper()
	fa := &Faults{}
	j := openT(t, dir, append(opts, WithFaults(fa))...)
	clk := newFakeClock()
	j.now = clk.Now
	return j, fa, clk
}

func lostPayload(i int) []byte { return fmt.Appendf(nil, "lost-%d", i) }

// requireNotWritable asserts that err reports a journal that is not
// writable because of cause.
func requireNotWritable(t *testing.T, what string, err, cause error) {
	t.Helper()
	if !errors.Is(err, ErrNotWritable) || !errors.Is(err, cause) {
		t.Fatalf("%s = %v, want ErrNotWritable wrapping %v", what, err, cause)
	}
	if !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("%s: message %q does not say the journal is not writable", what, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// filesWithSuffix lists the names in dir ending in suffix.
func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), suffix) {
			names = append(names, de.Name())
		}
	}
	return names
}

// waitUntil polls cond, which observes a state another goroutine reaches
// without signalling it (a goroutine blocked inside the journal).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWriteENOSPCFailsAppendsUntilSpaceIsBackThenSeqsContinue(t *testing.T) {
	for _, p := range []SyncPolicy{SyncGroup, SyncAlways, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			j, fa, clk := openFaulty(t, dir, WithSync(p), WithSegmentSize(1024))
			appendN(t, j, 10)
			fa.FailWrites(syscall.ENOSPC)
			_, err := j.Append(lostPayload(1))
			requireNotWritable(t, "Append on a full disk", err, syscall.ENOSPC)
			_, err = j.AppendBatch([][]byte{lostPayload(2), lostPayload(3)})
			requireNotWritable(t, "AppendBatch on a full disk", err, syscall.ENOSPC)
			clk.Advance(time.Minute)
			_, err = j.Append(lostPayload(4)) // a recovery attempt, which fails too
			requireNotWritable(t, "Append after a failed recovery", err, syscall.ENOSPC)
			if j.Last() != 10 {
				t.Fatalf("Last = %d while the disk is full, want 10", j.Last())
			}

			fa.Clear()
			clk.Advance(maxRecoveryBackoff)
			info, err := j.Append(payloadFor(11))
			if err != nil || info.Seq != 11 {
				t.Fatalf("Append once space is back = %+v, %v; want seq 11", info, err)
			}
			appendN(t, j, 5)
			checkRecords(t, readAll(t, j, 1), 1, 16) // every seq holds its own payload: none of the lost ones
			if bases := segmentFiles(t, dir); !slices.Contains(bases, 11) {
				t.Fatalf("segments %v: recovery did not start a segment named 11", bases)
			}
			if j.Size() != diskSize(t, dir) {
				t.Fatalf("Size = %d, files hold %d", j.Size(), diskSize(t, dir))
			}
			closeT(t, j)
			j = openT(t, dir, WithSync(p), WithSegmentSize(1024))
			checkRecords(t, readAll(t, j, 1), 1, 16)
			if broken := filesWithSuffix(t, dir, brokenExt); len(broken) != 0 {
				t.Fatalf("reopen found torn data to cut off: %v", broken)
			}
		})
	}
}

func TestFailedFsyncCutsOffUnsyncedRecordsAndRecovers(t *testing.T) {
	for _, p := range []SyncPolicy{SyncGroup, SyncAlways} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			j, fa, clk := openFaulty(t, dir, WithSync(p))
			appendN(t, j, 5)
			seg := segName(dir, 1)
			durableEnd := fileSize(t, seg)
			fa.FailSyncs(syscall.EIO)
			_, err := j.AppendBatch([][]byte{lostPayload(1), lostPayload(2)})
			requireNotWritable(t, "AppendBatch with a failing fsync", err, syscall.EIO)
			// The frames are whole in the file: only recovery keeps a
			// reopen from reading them back.
			if got, want := fileSize(t, seg), durableEnd+frameSize(len(lostPayload(1)))+frameSize(len(lostPayload(2))); got != want {
				t.Fatalf("segment is %d bytes after the failed fsync, want %d (the unsynced frames)", got, want)
			}
			if j.Last() != 5 {
				t.Fatalf("Last = %d: records whose fsync failed became visible", j.Last())
			}

			fa.Clear()
			_, err = j.Append(lostPayload(3)) // within the backoff: no attempt yet
			requireNotWritable(t, "Append right after the failure", err, syscall.EIO)
			clk.Advance(minRecoveryBackoff)
			info, err := j.Append(payloadFor(6))
			if err != nil || info.Seq != 6 {
				t.Fatalf("Append after the backoff = %+v, %v; want seq 6", info, err)
			}
			if got := fileSize(t, seg); got != durableEnd {
				t.Fatalf("old segment is %d bytes after recovery, want %d (cut at the durable end)", got, durableEnd)
			}
			if bases := segmentFiles(t, dir); !slices.Equal(bases, []uint64{1, 6}) {
				t.Fatalf("segments %v after recovery, want [1 6]", bases)
			}
			appendN(t, j, 2)
			checkRecords(t, readAll(t, j, 1), 1, 8)
			closeT(t, j)
			j = openT(t, dir, WithSync(p))
			checkRecords(t, readAll(t, j, 1), 1, 8)
			if broken := filesWithSuffix(t, dir, brokenExt); len(broken) != 0 {
				t.Fatalf("reopen found torn data to cut off: %v", broken)
			}
		})
	}
}

func TestFailedFsyncOfASegmentWithoutDurableRecordsReplacesIt(t *testing.T) {
	dir := t.TempDir()
	j, fa, clk := openFaulty(t, dir)
	fa.FailSyncs(syscall.EIO)
	_, err := j.Append(lostPayload(1))
	requireNotWritable(t, "first Append with a failing fsync", err, syscall.EIO)
	fa.Clear()
	clk.Advance(minRecoveryBackoff)
	appendN(t, j, 3)
	if bases := segmentFiles(t, dir); !slices.Equal(bases, []uint64{1}) {
		t.Fatalf("segments %v, want [1]", bases)
	}
	closeT(t, j)
	j = openT(t, dir)
	checkRecords(t, readAll(t, j, 1), 1, 3)
}

func TestTornWriteIsCutOffByRecovery(t *testing.T) {
	dir := t.TempDir()
	j, fa, clk := openFaulty(t, dir)
	appendN(t, j, 3)
	seg := segName(dir, 1)
	durableEnd := fileSize(t, seg)
	batch := [][]byte{lostPayload(1), lostPayload(2), lostPayload(3)}
	keep := int(frameSize(len(batch[0]))) + 10 // one whole frame and a bit of the next
	fa.TearNextWrite(keep, syscall.EIO)
	fa.FailWrites(syscall.EIO) // so that the truncation right after the torn write fails too
	_, err := j.AppendBatch(batch)
	requireNotWritable(t, "torn AppendBatch", err, syscall.EIO)
	if got := fileSize(t, seg); got != durableEnd+int64(keep) {
		t.Fatalf("segment is %d bytes after the torn write, want %d", got, durableEnd+int64(keep))
	}

	fa.Clear()
	clk.Advance(minRecoveryBackoff)
	if info, err := j.Append(payloadFor(4)); err != nil || info.Seq != 4 {
		t.Fatalf("Append after recovery = %+v, %v; want seq 4", info, err)
	}
	if got := fileSize(t, seg); got != durableEnd {
		t.Fatalf("old segment is %d bytes after recovery, want %d", got, durableEnd)
	}
	checkRecords(t, readAll(t, j, 1), 1, 4)
	closeT(t, j)
	j = openT(t, dir)
	checkRecords(t, readAll(t, j, 1), 1, 4)
	if broken := filesWithSuffix(t, dir, brokenExt); len(broken) != 0 {
		t.Fatalf("reopen found torn data to cut off: %v", broken)
	}
}

func TestRecoveryAttemptsAreRateLimitedWithBackoffButHappen(t *testing.T) {
	reg := prometheus.NewRegistry()
	j, fa, clk := openFaulty(t, t.TempDir(), WithRegisterer(reg, prometheus.Labels{"folder": "docs"}))
	appendN(t, j, 2)
	fa.FailWrites(syscall.ENOSPC)
	if _, err := j.Append(lostPayload(1)); err == nil {
		t.Fatal("Append on a full disk succeeded")
	}
	steps := []struct {
		advance  time.Duration
		attempts float64 // recovery attempts so far, after an Append
	}{
		{0, 0},
		{99 * time.Millisecond, 0},
		{1 * time.Millisecond, 1}, // 100 ms after the failure
		{0, 1},
		{199 * time.Millisecond, 1},
		{1 * time.Millisecond, 2}, // 200 ms after the first attempt
		{399 * time.Millisecond, 2},
		{1 * time.Millisecond, 3}, // 400 ms after the second
		{800 * time.Millisecond, 4},
		{999 * time.Millisecond, 4},
		{1 * time.Millisecond, 5}, // 1 s, the cap
		{time.Second, 6},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		_, err := j.Append(lostPayload(i + 2))
		requireNotWritable(t, fmt.Sprintf("step %d: Append", i), err, syscall.ENOSPC)
		if got := gather(t, reg)["vigil_journal_recovery_attempts_total"]; got != s.attempts {
			t.Fatalf("step %d: %v recovery attempts, want %v", i, got, s.attempts)
		}
	}
	fa.Clear()
	clk.Advance(maxRecoveryBackoff)
	if info, err := j.Append(payloadFor(3)); err != nil || info.Seq != 3 {
		t.Fatalf("Append once space is back = %+v, %v; want seq 3", info, err)
	}
	got := gather(t, reg)
	if got["vigil_journal_recovery_attempts_total"] != 7 || got["vigil_journal_failures_total"] != 1 ||
		got["vigil_journal_recoveries_total"] != 1 {
		t.Fatalf("metrics after recovery: %v", got)
	}
}

func TestFailureAndRecoveryAreLoggedOnceEach(t *testing.T) {
	var logs bytes.Buffer
	j, fa, clk := openFaulty(t, t.TempDir(), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	appendN(t, j, 2)
	fa.FailSyncs(syscall.EIO)
	for range 5 {
		j.Append(lostPayload(1))
		clk.Advance(maxRecoveryBackoff) // every other Append attempts a recovery, which fails
	}
	fa.Clear()
	appendN(t, j, 3)
	nErr, nInfo := strings.Count(logs.String(), "level=ERROR"), strings.Count(logs.String(), "level=INFO")
	if nErr != 1 || nInfo != 1 {
		t.Fatalf("%d ERROR and %d INFO lines, want one of each:\n%s", nErr, nInfo, logs.String())
	}
	if !strings.Contains(logs.String(), "input/output error") || !strings.Contains(logs.String(), "writable again") {
		t.Fatalf("log does not name the failure and the recovery:\n%s", logs.String())
	}
}

func TestErrReportsTheFailureUntilAnAppendRecovers(t *testing.T) {
	j, fa, clk := openFaulty(t, t.TempDir())
	appendN(t, j, 2)
	fa.FailSyncs(syscall.EIO)
	if _, err := j.Append(lostPayload(1)); err == nil {
		t.Fatal("Append with a failing fsync succeeded")
	}
	requireNotWritable(t, "Err", j.Err(), syscall.EIO)
	fa.Clear()
	clk.Advance(time.Minute)
	requireNotWritable(t, "Err before any append", j.Err(), syscall.EIO) // Err itself does not recover
	appendN(t, j, 1)
	if err := j.Err(); err != nil {
		t.Fatalf("Err after recovery = %v", err)
	}
	closeT(t, j)
	if err := j.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err after Close = %v, want ErrClosed", err)
	}
}

// A group commit's fsync fails while another appender's record waits for
// the next one: that record is lost too, and its appender is told so,
// whether it looks before or after recovery gave its seq to another
// record.
func TestAppenderWaitingBehindAFailedGroupCommitFails(t *testing.T) {
	dir := t.TempDir()
	j, _, clk := openFaulty(t, dir)
	appendN(t, j, 3)
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	j.syncFile = func(f *os.File) error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
			return syscall.EIO
		}
		return f.Sync()
	}
	errA := make(chan error, 1)
	go func() {
		_, err := j.Append(lostPayload(1)) // seq 4; its fsync blocks, then fails
		errA <- err
	}()
	<-started
	type result struct {
		info RecordInfo
		err  error
	}
	resB := make(chan result, 1)
	go func() {
		info, err := j.Append(lostPayload(2)) // seq 5, waits for the next group commit
		resB <- result{info, err}
	}()
	waitUntil(t, "the second appender wrote seq 5", func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.written == 5
	})
	close(release)
	requireNotWritable(t, "Append whose fsync failed", <-errA, syscall.EIO)

	clk.Advance(minRecoveryBackoff)
	infos, err := j.AppendBatch([][]byte{payloadFor(4), payloadFor(5)}) // reuses seqs 4 and 5
	if err != nil || infos[0].Seq != 4 {
		t.Fatalf("AppendBatch after recovery = %+v, %v; want seqs 4, 5", infos, err)
	}
	b := <-resB
	requireNotWritable(t, fmt.Sprintf("Append waiting behind the failed fsync (told seq %d)", b.info.Seq), b.err, syscall.EIO)
	checkRecords(t, readAll(t, j, 1), 1, 5)
	closeT(t, j)
	j = openT(t, dir)
	checkRecords(t, readAll(t, j, 1), 1, 5)
}

// Writers append without pause while writes and fsyncs keep failing and
// healing: every append that succeeded is read back at its seq, no append
// that failed is, and seqs stay consecutive, before and after a reopen.
func TestConcurrentAppendsThroughRepeatedFailuresKeepOnlySucceededRecords(t *testing.T) {
	for _, p := range []SyncPolicy{SyncGroup, SyncAlways} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			j, fa, clk := openFaulty(t, dir, WithSync(p), WithSegmentSize(2048))
			const writers = 4
			var (
				stop     atomic.Bool
				oks      atomic.Int64
				fails    atomic.Int64
				wg       sync.WaitGroup
				mu       sync.Mutex
				stored   = map[uint64]string{} // seq -> payload of a succeeded append
				rejected = map[string]bool{}
				errc     = make(chan error, writers)
			)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; !stop.Load(); i++ {
						p := fmt.Sprintf("w%d-%d", w, i)
						info, err := j.Append([]byte(p))
						mu.Lock()
						if err == nil {
							stored[info.Seq] = p
							oks.Add(1)
						} else {
							rejected[p] = true
							fails.Add(1)
						}
						mu.Unlock()
						if err != nil && !errors.Is(err, ErrNotWritable) {
							errc <- err
							return
						}
					}
				}()
			}
			faults := []func(){
				func() { fa.FailSyncs(syscall.EIO) },
				func() { fa.FailWrites(syscall.ENOSPC) },
				func() {
					// The torn write may hit a segment header (a roll, which
					// then does not happen); the failing fsync fails an append anyway.
					fa.TearNextWrite(13, syscall.EIO)
					fa.FailSyncs(syscall.EIO)
				},
			}
			for round := range 9 {
				f0, o0 := fails.Load(), oks.Load()
				faults[round%len(faults)]()
				waitUntil(t, "an append failed", func() bool { return fails.Load() > f0 })
				fa.Clear()
				clk.Advance(maxRecoveryBackoff)
				waitUntil(t, "appends succeed again", func() bool { return oks.Load() > o0+20 })
			}
			stop.Store(true)
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			check := func(l Log) {
				t.Helper()
				next := uint64(1)
				if err := l.Read(1, func(r Record) error {
					if r.Seq != next {
						return fmt.Errorf("read seq %d, want %d", r.Seq, next)
					}
					next++
					if rejected[string(r.Payload)] {
						return fmt.Errorf("seq %d holds %q, whose append failed", r.Seq, r.Payload)
					}
					if want, ok := stored[r.Seq]; !ok || want != string(r.Payload) {
						return fmt.Errorf("seq %d holds %q, its append returned %q", r.Seq, r.Payload, want)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if int(next-1) != len(stored) {
					t.Fatalf("read %d records, %d appends succeeded", next-1, len(stored))
				}
			}
			check(j)
			t.Logf("%d appends succeeded, %d failed, %d faults injected", len(stored), len(rejected), fa.Injected())
			closeT(t, j)
			check(openT(t, dir, WithSync(p), WithSegmentSize(2048)))
		})
	}
}

// The interleaving that the test above may or may not hit, step by step:
// an appender whose record was lost looks at its group commit only after
// recovery has given its seq to a durable record.
func TestAppenderLearnsItsRecordWasLostAfterItsSeqWasReused(t *testing.T) {
	j, fa, clk := openFaulty(t, t.TempDir())
	appendN(t, j, 3)
	fa.FailSyncs(syscall.EIO)
	if _, err := j.Append(lostPayload(1)); err == nil {
		t.Fatal("Append with a failing fsync succeeded")
	}
	j.mu.Lock()
	lostGen := j.gen // the generation seq 4 was written in
	j.mu.Unlock()
	fa.Clear()
	clk.Advance(minRecoveryBackoff)
	infos, err := j.AppendBatch([][]byte{payloadFor(4), payloadFor(5)})
	if err != nil || infos[1].Seq != 5 || j.Last() != 5 {
		t.Fatalf("AppendBatch after recovery = %+v, %v; want seqs 4, 5 durable", infos, err)
	}
	// An appender of the failed generation that wrote up to seq 4 or 5.
	for _, end := range []uint64{4, 5} {
		requireNotWritable(t, fmt.Sprintf("group commit of lost seq %d", end), j.groupCommit(lostGen, end), syscall.EIO)
	}
	if err := j.groupCommit(lostGen, 3); err != nil {
		t.Fatalf("group commit of seq 3, durable before the failure = %v", err)
	}
}

func TestSkipToLeavesOneEmptySegmentAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(1024))
	appendN(t, j, 30)
	if len(segmentFiles(t, dir)) < 3 {
		t.Fatal("want several segments before the skip")
	}
	if err := j.SkipTo(100); err != nil {
		t.Fatal(err)
	}
	if bases := segmentFiles(t, dir); !slices.Equal(bases, []uint64{100}) {
		t.Fatalf("segments %v after SkipTo(100), want [100]", bases)
	}
	if got := fileSize(t, segName(dir, 100)); got != segmentHeaderSize || j.Size() != segmentHeaderSize {
		t.Fatalf("segment 100 is %d bytes, Size %d; want the header only", got, j.Size())
	}
	if m := filesWithSuffix(t, dir, skipExt); len(m) != 0 {
		t.Fatalf("skip markers left: %v", m)
	}
	closeT(t, j)
	j = openT(t, dir, WithSegmentSize(1024))
	if j.First() != 100 || j.Last() != 99 {
		t.Fatalf("after reopen First, Last = %d, %d; want 100, 99", j.First(), j.Last())
	}
	if err := j.Read(99, func(Record) error { return nil }); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Read(99) after reopen = %v, want ErrCompacted", err)
	}
	if info, err := j.Append(payloadFor(100)); err != nil || info.Seq != 100 {
		t.Fatalf("Append after reopen = %+v, %v; want seq 100", info, err)
	}
	closeT(t, j)
	j = openT(t, dir, WithSegmentSize(1024))
	checkRecords(t, readAll(t, j, 100), 100, 100)
}

func TestOpenFinishesAnInterruptedSkip(t *testing.T) {
	marker := func(t *testing.T, dir string, next uint64) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.skip", next)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		crash       func(t *testing.T, dir string) // leaves the directory as a crash during SkipTo(50) would
		first, last uint64
		segments    []uint64
	}{{
		name: "after the marker",
		crash: func(t *testing.T, dir string) {
			marker(t, dir, 50)
		},
		first: 50, last: 49, segments: []uint64{50},
	}, {
		name: "after the new segment",
		crash: func(t *testing.T, dir string) {
			marker(t, dir, 50)
			if err := os.WriteFile(segName(dir, 50), segmentHeader(), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		first: 50, last: 49, segments: []uint64{50},
	}, {
		name: "before the marker was removed, records appended since",
		crash: func(t *testing.T, dir string) {
			j := openT(t, dir, WithSegmentSize(1024))
			if err := j.SkipTo(50); err != nil {
				t.Fatal(err)
			}
			appendN(t, j, 3)
			closeT(t, j)
			marker(t, dir, 50)
		},
		first: 50, last: 52, segments: []uint64{50},
	}, {
		name: "marker left and the skip's segment since compacted",
		crash: func(t *testing.T, dir string) {
			j := openT(t, dir, WithSegmentSize(1))
			if err := j.SkipTo(50); err != nil {
				t.Fatal(err)
			}
			appendN(t, j, 5) // one segment each
			if err := j.Compact(55); err != nil {
				t.Fatal(err)
			}
			closeT(t, j)
			marker(t, dir, 50)
			marker(t, dir, 20) // an older one
		},
		first: 55, last: 54, segments: []uint64{55},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, WithSegmentSize(1024))
			appendN(t, j, 30)
			closeT(t, j)
			tt.crash(t, dir)
			j = openT(t, dir, WithSegmentSize(1024))
			if j.First() != tt.first || j.Last() != tt.last {
				t.Fatalf("First, Last = %d, %d; want %d, %d", j.First(), j.Last(), tt.first, tt.last)
			}
			if bases := segmentFiles(t, dir); !slices.Equal(bases, tt.segments) {
				t.Fatalf("segments %v, want %v", bases, tt.segments)
			}
			if m := filesWithSuffix(t, dir, skipExt); len(m) != 0 {
				t.Fatalf("skip markers left: %v", m)
			}
			if tt.last >= tt.first {
				checkRecords(t, readAll(t, j, tt.first), tt.first, tt.last)
			}
			if info, err := j.Append(payloadFor(tt.last + 1)); err != nil || info.Seq != tt.last+1 {
				t.Fatalf("Append = %+v, %v; want seq %d", info, err, tt.last+1)
			}
		})
	}
}

func TestFailedSkipToRefusesAppendsUntilRecoveryCompletesIt(t *testing.T) {
	dir := t.TempDir()
	j, fa, clk := openFaulty(t, dir)
	appendN(t, j, 5)
	fa.FailSyncs(syscall.EIO)
	if err := j.SkipTo(20); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SkipTo with a failing fsync = %v, want EIO", err)
	}
	requireNotWritable(t, "Err after a failed SkipTo", j.Err(), syscall.EIO)
	_, err := j.Append(lostPayload(1))
	requireNotWritable(t, "Append after a failed SkipTo", err, syscall.EIO)
	clk.Advance(minRecoveryBackoff)
	_, err = j.Append(lostPayload(2)) // recovery attempt: the skip fails again
	requireNotWritable(t, "Append while fsyncs still fail", err, syscall.EIO)
	if j.Last() != 5 || j.First() != 1 {
		t.Fatalf("First, Last = %d, %d while the skip is pending; want 1, 5", j.First(), j.Last())
	}

	fa.Clear()
	clk.Advance(maxRecoveryBackoff)
	if info, err := j.Append(payloadFor(20)); err != nil || info.Seq != 20 {
		t.Fatalf("Append once fsyncs work = %+v, %v; want seq 20 (the skip done first)", info, err)
	}
	if j.First() != 20 {
		t.Fatalf("First = %d, want 20", j.First())
	}
	if bases := segmentFiles(t, dir); !slices.Equal(bases, []uint64{20}) {
		t.Fatalf("segments %v, want [20]", bases)
	}
	closeT(t, j)
	j = openT(t, dir)
	if j.First() != 20 || j.Last() != 20 {
		t.Fatalf("after reopen First, Last = %d, %d; want 20, 20", j.First(), j.Last())
	}
	checkRecords(t, readAll(t, j, 20), 20, 20)
}

func TestSkipToMakesAFailedJournalWritableAtOnce(t *testing.T) {
	dir := t.TempDir()
	j, fa, _ := openFaulty(t, dir)
	appendN(t, j, 5)
	fa.FailSyncs(syscall.EIO)
	if _, err := j.Append(lostPayload(1)); err == nil {
		t.Fatal("Append with a failing fsync succeeded")
	}
	fa.Clear()
	if err := j.SkipTo(50); err != nil { // no backoff: an explicit call
		t.Fatal(err)
	}
	if err := j.Err(); err != nil {
		t.Fatalf("Err after SkipTo = %v", err)
	}
	if info, err := j.Append(payloadFor(50)); err != nil || info.Seq != 50 {
		t.Fatalf("Append = %+v, %v; want seq 50", info, err)
	}
	closeT(t, j)
	j = openT(t, dir)
	if j.First() != 50 {
		t.Fatalf("after reopen First = %d, want 50", j.First())
	}
	checkRecords(t, readAll(t, j, 50), 50, 50)
}

func TestSkipToBelowNextSeqLeavesAFailedJournalFailed(t *testing.T) {
	j, fa, _ := openFaulty(t, t.TempDir())
	appendN(t, j, 5)
	fa.FailSyncs(syscall.EIO)
	if _, err := j.Append(lostPayload(1)); err == nil {
		t.Fatal("Append with a failing fsync succeeded")
	}
	fa.Clear()
	if err := j.SkipTo(6); err != nil {
		t.Fatal(err)
	}
	requireNotWritable(t, "Err after SkipTo(Last+1)", j.Err(), syscall.EIO)
}
