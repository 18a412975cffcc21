package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// This file is the one test suite of the Log interface, run against every
// implementation.

func TestJournalLogSuite(t *testing.T) {
	for _, p := range []SyncPolicy{SyncGroup, SyncAlways, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			runLogSuite(t, func(t *testing.T) Log {
				// Small segments so that every test crosses segment boundaries.
				j, err := Open(t.TempDir(), WithSync(p), WithSegmentSize(512), WithLogger(discardLogger()))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { j.Close() })
				return j
			})
		})
	}
}

func TestMemLogSuite(t *testing.T) {
	runLogSuite(t, func(t *testing.T) Log {
		m := NewMem()
		t.Cleanup(func() { m.Close() })
		return m
	})
}

// Faulty, told nothing, must behave as the Log it wraps.
func TestFaultyLogSuite(t *testing.T) {
	t.Run("Mem", func(t *testing.T) {
		runLogSuite(t, func(t *testing.T) Log {
			f := NewFaulty(NewMem())
			t.Cleanup(func() { f.Close() })
			return f
		})
	})
	t.Run("Journal", func(t *testing.T) {
		runLogSuite(t, func(t *testing.T) Log {
			j, err := Open(t.TempDir(), WithSegmentSize(512), WithLogger(discardLogger()))
			if err != nil {
				t.Fatal(err)
			}
			f := NewFaulty(j)
			t.Cleanup(func() { f.Close() })
			return f
		})
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// payloadFor returns a distinct payload for seq, 1..300 bytes long.
func payloadFor(seq uint64) []byte {
	n := int(seq*37%300) + 1
	p := bytes.Repeat([]byte{byte(seq)}, n)
	copy(p, fmt.Sprintf("r%d:", seq))
	return p
}

func appendN(t *testing.T, l Log, n int) []RecordInfo {
	t.Helper()
	var infos []RecordInfo
	for range n {
		info, err := l.Append(payloadFor(l.Last() + 1))
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	return infos
}

func readAll(t *testing.T, l Log, from uint64) []Record {
	t.Helper()
	var recs []Record
	if err := l.Read(from, func(r Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatalf("Read(%d): %v", from, err)
	}
	return recs
}

// checkRecords asserts that recs are exactly seqs from..to with the
// payloads of payloadFor.
func checkRecords(t *testing.T, recs []Record, from, to uint64) {
	t.Helper()
	if want := int(to - from + 1); len(recs) != want {
		t.Fatalf("read %d records, want %d (%d..%d)", len(recs), want, from, to)
	}
	for i, r := range recs {
		seq := from + uint64(i)
		if r.Seq != seq {
			t.Fatalf("record %d has seq %d, want %d", i, r.Seq, seq)
		}
		if !bytes.Equal(r.Payload, payloadFor(seq)) {
			t.Fatalf("record %d: payload %q, want %q", seq, r.Payload, payloadFor(seq))
		}
	}
}

func runLogSuite(t *testing.T, newLog func(t *testing.T) Log) {
	t.Run("NewLogIsEmpty", func(t *testing.T) {
		l := newLog(t)
		if l.First() != 1 || l.Last() != 0 {
			t.Fatalf("First, Last = %d, %d; want 1, 0", l.First(), l.Last())
		}
		if recs := readAll(t, l, 0); len(recs) != 0 {
			t.Fatalf("read %d records from an empty log", len(recs))
		}
		for _, seq := range []uint64{0, 1} {
			if _, err := l.Info(seq); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Info(%d) = %v, want ErrNotFound", seq, err)
			}
		}
		if n, b, oldest := l.Pending(0); n != 0 || b != 0 || !oldest.IsZero() {
			t.Fatalf("Pending(0) = %d, %d, %v; want nothing", n, b, oldest)
		}
	})

	t.Run("AppendAssignsConsecutiveSeqsAndReadReturnsThem", func(t *testing.T) {
		l := newLog(t)
		size0 := l.Size()
		before := time.Now()
		infos := appendN(t, l, 40)
		after := time.Now()
		for i, info := range infos {
			seq := uint64(i + 1)
			if info.Seq != seq || info.Size != int64(len(payloadFor(seq))) {
				t.Fatalf("append %d: info %+v, want seq %d size %d", i, info, seq, len(payloadFor(seq)))
			}
			if info.Time.Before(before.Truncate(time.Microsecond)) || info.Time.After(after) {
				t.Fatalf("append %d: time %v not within [%v, %v]", i, info.Time, before, after)
			}
		}
		if l.First() != 1 || l.Last() != 40 {
			t.Fatalf("First, Last = %d, %d; want 1, 40", l.First(), l.Last())
		}
		recs := readAll(t, l, 1)
		checkRecords(t, recs, 1, 40)
		for i, r := range recs {
			if !r.Time.Equal(infos[i].Time) {
				t.Fatalf("record %d: time %v, append said %v", r.Seq, r.Time, infos[i].Time)
			}
		}
		if l.Size() <= size0 {
			t.Fatalf("Size %d did not grow from %d", l.Size(), size0)
		}
	})

	t.Run("ReadFromMiddleAndPastLast", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 25)
		checkRecords(t, readAll(t, l, 17), 17, 25)
		checkRecords(t, readAll(t, l, 25), 25, 25)
		if recs := readAll(t, l, 26); len(recs) != 0 {
			t.Fatalf("Read(Last+1) returned %d records", len(recs))
		}
		if recs := readAll(t, l, 1000); len(recs) != 0 {
			t.Fatalf("Read(1000) returned %d records", len(recs))
		}
	})

	t.Run("ReadStopsAtCallbackErrorAndReturnsIt", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 10)
		stop := errors.New("stop here")
		calls := 0
		err := l.Read(2, func(r Record) error {
			calls++
			if r.Seq == 4 {
				return stop
			}
			return nil
		})
		if err != stop {
			t.Fatalf("Read returned %v, want the callback's error unchanged", err)
		}
		if calls != 3 {
			t.Fatalf("callback ran %d times, want 3", calls)
		}
	})

	t.Run("ReadStopsAtLastAsOfTheCall", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 5)
		var seen []uint64
		err := l.Read(1, func(r Record) error {
			seen = append(seen, r.Seq)
			_, err := l.Append(payloadFor(l.Last() + 1)) // appends do not wait for the reader
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 5 || seen[4] != 5 {
			t.Fatalf("read seqs %v, want 1..5", seen)
		}
		if l.Last() != 10 {
			t.Fatalf("Last = %d, want 10", l.Last())
		}
		checkRecords(t, readAll(t, l, 1), 1, 10)
	})

	t.Run("AppendBatchGivesConsecutiveSeqsAndOneTime", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 2)
		batch := [][]byte{payloadFor(3), payloadFor(4), payloadFor(5), payloadFor(6), payloadFor(7)}
		infos, err := l.AppendBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 5 {
			t.Fatalf("%d infos for 5 payloads", len(infos))
		}
		for i, info := range infos {
			if info.Seq != uint64(3+i) || !info.Time.Equal(infos[0].Time) || info.Size != int64(len(batch[i])) {
				t.Fatalf("info %d = %+v", i, info)
			}
		}
		checkRecords(t, readAll(t, l, 1), 1, 7)
		if infos, err := l.AppendBatch(nil); err != nil || len(infos) != 0 || l.Last() != 7 {
			t.Fatalf("empty batch: %v, %v, Last %d", infos, err, l.Last())
		}
	})

	t.Run("RejectsEmptyAndTooLargePayloadsWithoutAppending", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 3)
		if _, err := l.Append(nil); !errors.Is(err, ErrEmptyRecord) {
			t.Fatalf("Append(nil) = %v, want ErrEmptyRecord", err)
		}
		big := make([]byte, DefaultMaxRecordSize+1)
		if _, err := l.Append(big); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Append(64 MiB + 1) = %v, want ErrTooLarge", err)
		}
		if _, err := l.AppendBatch([][]byte{payloadFor(4), {}}); !errors.Is(err, ErrEmptyRecord) {
			t.Fatalf("AppendBatch with an empty payload = %v, want ErrEmptyRecord", err)
		}
		if l.Last() != 3 {
			t.Fatalf("Last = %d after rejected appends, want 3", l.Last())
		}
		appendN(t, l, 1)
		checkRecords(t, readAll(t, l, 1), 1, 4)
	})

	t.Run("PayloadsAreCopied", func(t *testing.T) {
		l := newLog(t)
		p := []byte("original")
		if _, err := l.Append(p); err != nil {
			t.Fatal(err)
		}
		copy(p, "CHANGED!")
		recs := readAll(t, l, 1)
		if string(recs[0].Payload) != "original" {
			t.Fatalf("stored payload changed with the caller's slice: %q", recs[0].Payload)
		}
		copy(recs[0].Payload, "CHANGED!")
		if recs := readAll(t, l, 1); string(recs[0].Payload) != "original" {
			t.Fatalf("stored payload changed with a read payload: %q", recs[0].Payload)
		}
	})

	t.Run("InfoAndPendingMatchAppends", func(t *testing.T) {
		l := newLog(t)
		infos := appendN(t, l, 30)
		for _, seq := range []uint64{1, 2, 15, 30} {
			got, err := l.Info(seq)
			if err != nil {
				t.Fatal(err)
			}
			if want := infos[seq-1]; got.Seq != want.Seq || got.Size != want.Size || !got.Time.Equal(want.Time) {
				t.Fatalf("Info(%d) = %+v, want %+v", seq, got, want)
			}
		}
		if _, err := l.Info(31); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Info(Last+1) = %v, want ErrNotFound", err)
		}
		for _, after := range []uint64{0, 1, 10, 29, 30, 31} {
			var wantN uint64
			var wantBytes int64
			var wantOldest time.Time
			for _, info := range infos {
				if info.Seq > after {
					if wantN == 0 {
						wantOldest = info.Time
					}
					wantN++
					wantBytes += info.Size
				}
			}
			n, b, oldest := l.Pending(after)
			if n != wantN || b != wantBytes || !oldest.Equal(wantOldest) {
				t.Fatalf("Pending(%d) = %d, %d, %v; want %d, %d, %v", after, n, b, oldest, wantN, wantBytes, wantOldest)
			}
		}
	})

	t.Run("WaitReturnsOnceLastPassesAfter", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 3)
		ctx := context.Background()
		if err := l.Wait(ctx, 2); err != nil {
			t.Fatalf("Wait(2) with Last 3 = %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Wait(ctx, 3) }()
		select {
		case err := <-done:
			t.Fatalf("Wait(3) returned %v before seq 4 existed", err)
		default:
		}
		appendN(t, l, 1)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Wait(3) = %v after seq 4", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Wait(3) did not return after seq 4 was appended")
		}
	})

	t.Run("WaitHonoursContext", func(t *testing.T) {
		l := newLog(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := l.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with expiring ctx = %v, want DeadlineExceeded", err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		if err := l.Wait(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait with cancelled ctx = %v, want Canceled", err)
		}
	})

	t.Run("CompactKeepsSeqContinuity", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 40)
		size := l.Size()
		if err := l.Compact(30); err != nil {
			t.Fatal(err)
		}
		first := l.First()
		if first <= 1 || first > 30 {
			t.Fatalf("First = %d after Compact(30) of 40 records, want 2..30", first)
		}
		if l.Size() >= size {
			t.Fatalf("Size %d did not shrink from %d", l.Size(), size)
		}
		if err := l.Read(first-1, func(Record) error { return nil }); !errors.Is(err, ErrCompacted) {
			t.Fatalf("Read(First-1) = %v, want ErrCompacted", err)
		}
		if err := l.Read(1, func(Record) error { return nil }); !errors.Is(err, ErrCompacted) {
			t.Fatalf("Read(1) = %v, want ErrCompacted", err)
		}
		if _, err := l.Info(first - 1); !errors.Is(err, ErrCompacted) {
			t.Fatalf("Info(First-1) = %v, want ErrCompacted", err)
		}
		checkRecords(t, readAll(t, l, first), first, 40)
		if n, _, _ := l.Pending(0); n != 40-first+1 {
			t.Fatalf("Pending(0) = %d records, want %d", n, 40-first+1)
		}
		if err := l.Compact(5); err != nil || l.First() != first {
			t.Fatalf("Compact below First: err %v, First %d -> %d", err, first, l.First())
		}
		info, err := l.Append(payloadFor(41))
		if err != nil || info.Seq != 41 {
			t.Fatalf("Append after Compact = %+v, %v; want seq 41", info, err)
		}
		if err := l.Compact(l.Last() + 1); err != nil {
			t.Fatal(err)
		}
		if l.First() > l.Last()+1 || l.Last() != 41 {
			t.Fatalf("after Compact(Last+1): First %d, Last %d", l.First(), l.Last())
		}
		if info, err := l.Append(payloadFor(42)); err != nil || info.Seq != 42 {
			t.Fatalf("Append after compacting everything = %+v, %v; want seq 42", info, err)
		}
		checkRecords(t, readAll(t, l, l.First()), l.First(), 42)
	})

	t.Run("SkipToAtOrBelowNextSeqDoesNothing", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 12)
		for _, next := range []uint64{0, 1, 5, 12, 13} {
			if err := l.SkipTo(next); err != nil {
				t.Fatalf("SkipTo(%d): %v", next, err)
			}
			if l.First() != 1 || l.Last() != 12 {
				t.Fatalf("SkipTo(%d) with Last 12: First, Last = %d, %d; want 1, 12", next, l.First(), l.Last())
			}
		}
		checkRecords(t, readAll(t, l, 1), 1, 12)
		if info, err := l.Append(payloadFor(13)); err != nil || info.Seq != 13 {
			t.Fatalf("Append = %+v, %v; want seq 13", info, err)
		}
	})

	t.Run("SkipToDropsRetainedRecordsAndContinuesAtNext", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 12)
		size := l.Size()
		waitErr := make(chan error, 1)
		go func() { waitErr <- l.Wait(context.Background(), 12) }()
		if err := l.SkipTo(40); err != nil {
			t.Fatal(err)
		}
		if l.First() != 40 || l.Last() != 39 {
			t.Fatalf("after SkipTo(40): First, Last = %d, %d; want 40, 39", l.First(), l.Last())
		}
		select {
		case err := <-waitErr:
			if err != nil {
				t.Fatalf("Wait(12) = %v after SkipTo(40)", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Wait(12) did not return after SkipTo(40) moved Last to 39")
		}
		for _, from := range []uint64{1, 12, 13, 39} {
			if err := l.Read(from, func(Record) error { return nil }); !errors.Is(err, ErrCompacted) {
				t.Fatalf("Read(%d) after SkipTo(40) = %v, want ErrCompacted", from, err)
			}
			if _, err := l.Info(from); !errors.Is(err, ErrCompacted) {
				t.Fatalf("Info(%d) after SkipTo(40) = %v, want ErrCompacted", from, err)
			}
		}
		if recs := readAll(t, l, 40); len(recs) != 0 {
			t.Fatalf("Read(40) returned %d records before any append", len(recs))
		}
		if _, err := l.Info(40); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Info(40) = %v, want ErrNotFound", err)
		}
		for _, after := range []uint64{0, 12, 39} {
			if n, b, oldest := l.Pending(after); n != 0 || b != 0 || !oldest.IsZero() {
				t.Fatalf("Pending(%d) = %d, %d, %v after SkipTo; want nothing", after, n, b, oldest)
			}
		}
		if l.Size() >= size {
			t.Fatalf("Size %d did not shrink from %d", l.Size(), size)
		}
		if err := l.Compact(40); err != nil || l.First() != 40 {
			t.Fatalf("Compact(40): %v, First %d", err, l.First())
		}
		infos := appendN(t, l, 6)
		if infos[0].Seq != 40 || infos[5].Seq != 45 {
			t.Fatalf("appends after SkipTo(40) got seqs %d..%d, want 40..45", infos[0].Seq, infos[5].Seq)
		}
		checkRecords(t, readAll(t, l, 40), 40, 45)
		if n, _, oldest := l.Pending(39); n != 6 || !oldest.Equal(infos[0].Time) {
			t.Fatalf("Pending(39) = %d records, oldest %v; want 6, %v", n, oldest, infos[0].Time)
		}
		if err := l.SkipTo(46); err != nil || l.First() != 40 || l.Last() != 45 {
			t.Fatalf("SkipTo(Last+1): %v, First %d, Last %d", err, l.First(), l.Last())
		}
		if err := l.Compact(46); err != nil {
			t.Fatal(err)
		}
		if err := l.Err(); err != nil {
			t.Fatalf("Err = %v after skips and compaction", err)
		}
	})

	t.Run("ErrIsNilWhileWritable", func(t *testing.T) {
		l := newLog(t)
		if err := l.Err(); err != nil {
			t.Fatalf("Err of a new log = %v", err)
		}
		appendN(t, l, 3)
		if err := l.Err(); err != nil {
			t.Fatalf("Err after appends = %v", err)
		}
	})

	t.Run("ConcurrentAppendsAndReadsSeeEveryRecordOnce", func(t *testing.T) {
		l := newLog(t)
		const writers, each = 4, 30
		var wg sync.WaitGroup
		errc := make(chan error, writers+1)
		stop := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := l.Append(fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		var rwg sync.WaitGroup
		rwg.Add(1)
		go func() { // a reader racing the writers: prefixes are always consecutive
			defer rwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var next uint64 = 1
				if err := l.Read(1, func(r Record) error {
					if r.Seq != next {
						return fmt.Errorf("read seq %d, want %d", r.Seq, next)
					}
					next++
					return nil
				}); err != nil {
					errc <- err
					return
				}
			}
		}()
		wg.Wait()
		close(stop)
		rwg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if l.Last() != writers*each {
			t.Fatalf("Last = %d, want %d", l.Last(), writers*each)
		}
		seen := map[string]bool{}
		for _, r := range readAll(t, l, 1) {
			if seen[string(r.Payload)] {
				t.Fatalf("payload %q read twice", r.Payload)
			}
			seen[string(r.Payload)] = true
		}
		if len(seen) != writers*each {
			t.Fatalf("read %d distinct payloads, want %d", len(seen), writers*each)
		}
	})

	t.Run("ClosedLogReturnsErrClosed", func(t *testing.T) {
		l := newLog(t)
		appendN(t, l, 2)
		waitErr := make(chan error, 1)
		go func() { waitErr <- l.Wait(context.Background(), 100) }()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-waitErr:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("pending Wait = %v after Close, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Wait did not return after Close")
		}
		checks := map[string]error{
			"Close":   l.Close(),
			"Read":    l.Read(1, func(Record) error { return nil }),
			"Compact": l.Compact(2),
			"Wait":    l.Wait(context.Background(), 0),
			"SkipTo":  l.SkipTo(100),
			"Err":     l.Err(),
		}
		_, checks["Append"] = l.Append([]byte("x"))
		_, checks["AppendBatch"] = l.AppendBatch([][]byte{[]byte("x")})
		_, checks["Info"] = l.Info(1)
		for name, err := range checks {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		}
		if l.Last() != 2 {
			t.Fatalf("Last after Close = %d, want 2", l.Last())
		}
	})
}
