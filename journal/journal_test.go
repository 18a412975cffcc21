package journal

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func openT(t *testing.T, dir string, opts ...Option) *Journal {
	t.Helper()
	j, err := Open(dir, append([]Option{WithLogger(discardLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func closeT(t *testing.T, j *Journal) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// segmentFiles returns the base seqs of the segment files in dir.
func segmentFiles(t *testing.T, dir string) []uint64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []uint64
	for _, de := range des {
		if b, ok := parseSegmentName(de.Name()); ok {
			bases = append(bases, b)
		}
	}
	return bases
}

func diskSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, b := range segmentFiles(t, dir) {
		st, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%020d.seg", b)))
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

func segName(dir string, base uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", base))
}

func TestNewJournalCreatesDirAndFirstSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	j := openT(t, dir)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", st.Mode().Perm())
	}
	data, err := os.ReadFile(segName(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{'V', 'G', 'L', 'J', 1, 0, 0, 0}; !bytes.Equal(data, want) {
		t.Fatalf("new segment holds % x, want % x", data, want)
	}
	if j.Size() != 8 {
		t.Fatalf("Size = %d, want 8", j.Size())
	}
}

func TestFrameLayoutIsByteExact(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	info, err := j.Append([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	closeT(t, j)
	data, err := os.ReadFile(segName(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{'V', 'G', 'L', 'J', 1, 0, 0, 0,
		5, 0, 0, 0, // length
		0, 0, 0, 0, // crc, filled below
		1, 0, 0, 0, 0, 0, 0, 0, // seq
		0, 0, 0, 0, 0, 0, 0, 0, // time, filled below
		'h', 'e', 'l', 'l', 'o', 0, 0, 0}
	ns := uint64(info.Time.UnixNano())
	for i := range 8 {
		want[24+i] = byte(ns >> (8 * i))
	}
	crc := crc32.Checksum(want[16:37], crc32.MakeTable(crc32.Castagnoli)) // seq, time, payload
	for i := range 4 {
		want[12+i] = byte(crc >> (8 * i))
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("segment bytes\n% x\nwant\n% x", data, want)
	}
}

func TestReopenAcrossSegmentRolloverKeepsAllRecords(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(1024))
	appendN(t, j, 100)
	closeT(t, j)

	bases := segmentFiles(t, dir)
	if len(bases) < 10 {
		t.Fatalf("%d segments for 100 records of up to 300 bytes with 1 KiB segments", len(bases))
	}
	// Every segment is named after the seq of its first record.
	j = openT(t, dir, WithSegmentSize(1024))
	for _, b := range bases[:len(bases)-1] {
		recs := readAll(t, j, b)
		if recs[0].Seq != b {
			t.Fatalf("segment %d starts with seq %d", b, recs[0].Seq)
		}
	}
	if j.First() != 1 || j.Last() != 100 {
		t.Fatalf("after reopen First, Last = %d, %d; want 1, 100", j.First(), j.Last())
	}
	checkRecords(t, readAll(t, j, 1), 1, 100)
	if j.Size() != diskSize(t, dir) {
		t.Fatalf("Size = %d, files hold %d bytes", j.Size(), diskSize(t, dir))
	}
	appendN(t, j, 5)
	closeT(t, j)
	j = openT(t, dir, WithSegmentSize(1024))
	checkRecords(t, readAll(t, j, 1), 1, 105)
}

func TestGroupCommitSharesFsyncsAcrossConcurrentAppenders(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	const writers, each = 8, 25
	// Hold the first fsync until every writer has written its first
	// record, so the writers are known to queue behind it.
	var once sync.Once
	j.syncFile = func(f *os.File) error {
		once.Do(func() {
			deadline := time.Now().Add(10 * time.Second)
			for {
				j.mu.Lock()
				n := j.written
				j.mu.Unlock()
				if n >= writers || time.Now().After(deadline) {
					return
				}
				time.Sleep(time.Millisecond) // polling a condition with a deadline
			}
		})
		return f.Sync()
	}
	fsyncs0 := j.fsyncs.Load()
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	errc := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				info, err := j.Append(fmt.Appendf(nil, "w%d-%d", w, i))
				if err != nil {
					errc <- err
					return
				}
				// Durable on return: Last already covers it.
				if j.Last() < info.Seq {
					errc <- fmt.Errorf("Append returned seq %d but Last is %d", info.Seq, j.Last())
					return
				}
				seqs <- info.Seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	var got []uint64
	for s := range seqs {
		got = append(got, s)
	}
	slices.Sort(got)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("seqs not unique and consecutive: position %d holds %d", i, s)
		}
	}
	fsyncs := j.fsyncs.Load() - fsyncs0
	if fsyncs >= writers*each {
		t.Fatalf("%d fsyncs for %d appends: no group commit", fsyncs, writers*each)
	}
	t.Logf("%d appends, %d fsyncs", writers*each, fsyncs)
	closeT(t, j)
	j = openT(t, dir)
	if j.Last() != writers*each {
		t.Fatalf("after reopen Last = %d, want %d", j.Last(), writers*each)
	}
}

func TestSyncAlwaysFsyncsOncePerAppend(t *testing.T) {
	j := openT(t, t.TempDir(), WithSync(SyncAlways))
	before := j.fsyncs.Load()
	appendN(t, j, 7)
	if _, err := j.AppendBatch([][]byte{payloadFor(8), payloadFor(9)}); err != nil {
		t.Fatal(err)
	}
	if n := j.fsyncs.Load() - before; n != 8 {
		t.Fatalf("%d fsyncs for 7 appends and 1 batch, want 8", n)
	}
}

func TestSyncNoneNeverFsyncsUntilClose(t *testing.T) {
	j := openT(t, t.TempDir(), WithSync(SyncNone), WithSegmentSize(512))
	appendN(t, j, 20)
	if n := j.fsyncs.Load(); n != 0 {
		t.Fatalf("%d fsyncs with SyncNone", n)
	}
	closeT(t, j)
	if n := j.fsyncs.Load(); n != 1 {
		t.Fatalf("%d fsyncs after Close, want 1", n)
	}
}

// tornTail appends 5 records of 100 bytes and returns the journal's
// directory, its segment file and the offset of the last frame.
func tornTail(t *testing.T) (dir, seg string, lastFrame int64) {
	dir = t.TempDir()
	j := openT(t, dir)
	for seq := uint64(1); seq <= 5; seq++ {
		if _, err := j.Append(bytes.Repeat([]byte{byte(seq)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, j)
	return dir, segName(dir, 1), 8 + 4*frameSize(100)
}

func TestOpenRepairsTornTail(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(t *testing.T, seg string, lastFrame int64) (cut int64)
		wantLast uint64
	}{{
		name: "last frame truncated in the middle",
		damage: func(t *testing.T, seg string, lastFrame int64) int64 {
			if err := os.Truncate(seg, lastFrame+60); err != nil {
				t.Fatal(err)
			}
			return lastFrame
		},
		wantLast: 4,
	}, {
		name: "byte flipped in the last frame",
		damage: func(t *testing.T, seg string, lastFrame int64) int64 {
			flipByte(t, seg, lastFrame+50)
			return lastFrame
		},
		wantLast: 4,
	}, {
		name: "zeros appended after the last frame",
		damage: func(t *testing.T, seg string, lastFrame int64) int64 {
			end := lastFrame + frameSize(100)
			f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			return end
		},
		wantLast: 5,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, seg, lastFrame := tornTail(t)
			cut := tt.damage(t, seg, lastFrame)
			damaged, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			j, err := Open(dir, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatalf("Open of a torn tail: %v", err)
			}
			defer j.Close()
			if j.Last() != tt.wantLast {
				t.Fatalf("Last = %d, want %d", j.Last(), tt.wantLast)
			}
			for _, r := range readAll(t, j, 1) {
				if !bytes.Equal(r.Payload, bytes.Repeat([]byte{byte(r.Seq)}, 100)) {
					t.Fatalf("record %d damaged", r.Seq)
				}
			}
			broken, err := os.ReadFile(seg + ".broken")
			if err != nil {
				t.Fatalf(".broken file: %v", err)
			}
			if !bytes.Equal(broken, damaged[cut:]) {
				t.Fatalf(".broken holds %d bytes, want the %d bytes cut at offset %d", len(broken), len(damaged)-int(cut), cut)
			}
			if st, _ := os.Stat(seg); st.Size() != cut {
				t.Fatalf("segment is %d bytes after repair, want %d", st.Size(), cut)
			}
			if !strings.Contains(logs.String(), seg) || !strings.Contains(logs.String(), fmt.Sprintf("offset=%d", cut)) {
				t.Fatalf("warning does not name file and offset: %s", logs.String())
			}
			info, err := j.Append([]byte("next"))
			if err != nil || info.Seq != tt.wantLast+1 {
				t.Fatalf("Append after repair = %+v, %v; want seq %d", info, err, tt.wantLast+1)
			}
			closeT(t, j)
			j = openT(t, dir)
			if j.Last() != tt.wantLast+1 {
				t.Fatalf("second reopen: Last = %d, want %d", j.Last(), tt.wantLast+1)
			}
			if _, err := os.Stat(seg + ".broken.1"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a clean reopen produced another broken file: %v", err)
			}
		})
	}
}

func TestSecondRepairKeepsFirstBrokenFile(t *testing.T) {
	dir, seg, lastFrame := tornTail(t)
	flipByte(t, seg, lastFrame+30)
	j := openT(t, dir)
	closeT(t, j)
	first, _ := os.ReadFile(seg + ".broken")
	flipByte(t, seg, lastFrame-frameSize(100)+30) // now the (new) last frame, seq 4
	j = openT(t, dir)
	if j.Last() != 3 {
		t.Fatalf("Last = %d, want 3", j.Last())
	}
	again, _ := os.ReadFile(seg + ".broken")
	second, err := os.ReadFile(seg + ".broken.1")
	if err != nil || !bytes.Equal(again, first) || int64(len(second)) != frameSize(100) {
		t.Fatalf("broken files: first kept %v, second %d bytes, err %v", bytes.Equal(again, first), len(second), err)
	}
}

func TestCorruptOlderSegmentFailsOpenNamingFile(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(1024))
	appendN(t, j, 30)
	closeT(t, j)
	bases := segmentFiles(t, dir)
	if len(bases) < 3 {
		t.Fatalf("only %d segments", len(bases))
	}
	bad := segName(dir, bases[1])
	second := 8 + frameSize(len(payloadFor(bases[1])))
	flipByte(t, bad, second+frameHeaderSize) // payload of its second frame
	_, err := Open(dir, WithLogger(discardLogger()))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != bad || ce.Offset != second {
		t.Fatalf("error %v does not name %s at offset %d", err, bad, second)
	}
	if !strings.Contains(err.Error(), bad) {
		t.Fatalf("message %q does not name the file", err)
	}
	if _, err := os.Stat(bad + ".broken"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a non-last segment was repaired instead of reported")
	}
}

func TestMissingMiddleSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(1024))
	appendN(t, j, 30)
	closeT(t, j)
	bases := segmentFiles(t, dir)
	if err := os.Remove(segName(dir, bases[1])); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, WithLogger(discardLogger()))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != segName(dir, bases[2]) {
		t.Fatalf("Open with a missing segment = %v, want a CorruptError naming %s", err, segName(dir, bases[2]))
	}
}

func TestBadSegmentHeaderFailsOpen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 3)
	closeT(t, j)
	flipByte(t, segName(dir, 1), 1)
	_, err := Open(dir, WithLogger(discardLogger()))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Offset != 0 || !errors.Is(err, errBadMagic) {
		t.Fatalf("Open with bad magic = %v", err)
	}
}

func TestReadDetectsCorruptionAfterOpen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 5)
	off := 8 + frameSize(len(payloadFor(1))) + frameSize(len(payloadFor(2)))
	flipByte(t, segName(dir, 1), off+frameHeaderSize+1)
	err := j.Read(1, func(Record) error { return nil })
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Offset != off || !errors.Is(err, errChecksum) {
		t.Fatalf("Read over a flipped byte = %v, want checksum CorruptError at %d", err, off)
	}
}

func TestOpenRemovesUnfinishedSegment(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 3)
	closeT(t, j)
	tmp := segName(dir, 4) + ".tmp"
	if err := os.WriteFile(tmp, []byte("VGL"), 0o600); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp segment still there: %v", err)
	}
	if j.Last() != 3 {
		t.Fatalf("Last = %d, want 3", j.Last())
	}
}

func TestCompactDeletesOnlyWholeSegmentsBelowBefore(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithSegmentSize(1024))
	appendN(t, j, 60)
	bases := segmentFiles(t, dir)
	before := bases[3] + 1 // segment 3 holds seqs below and at/above before
	if err := j.Compact(before); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, dir); !slices.Equal(got, bases[3:]) {
		t.Fatalf("segments %v after Compact(%d), want %v", got, before, bases[3:])
	}
	if j.First() != bases[3] {
		t.Fatalf("First = %d, want %d", j.First(), bases[3])
	}
	if j.Size() != diskSize(t, dir) {
		t.Fatalf("Size = %d, files hold %d", j.Size(), diskSize(t, dir))
	}
	closeT(t, j)
	j = openT(t, dir, WithSegmentSize(1024))
	if j.First() != bases[3] || j.Last() != 60 {
		t.Fatalf("after reopen First, Last = %d, %d", j.First(), j.Last())
	}
}

func TestCompactEverythingKeepsNextSeqAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	// Tiny segments: every record fills one, so the active one is empty.
	j := openT(t, dir, WithSegmentSize(1))
	appendN(t, j, 10)
	if err := j.Compact(11); err != nil {
		t.Fatal(err)
	}
	if j.First() != 11 || j.Last() != 10 {
		t.Fatalf("First, Last = %d, %d; want 11, 10", j.First(), j.Last())
	}
	if got := segmentFiles(t, dir); !slices.Equal(got, []uint64{11}) {
		t.Fatalf("segments %v, want only the empty active one (11)", got)
	}
	if j.Size() != 8 {
		t.Fatalf("Size = %d, want 8", j.Size())
	}
	closeT(t, j)
	j = openT(t, dir, WithSegmentSize(1))
	if j.First() != 11 || j.Last() != 10 {
		t.Fatalf("after reopen First, Last = %d, %d; want 11, 10", j.First(), j.Last())
	}
	if got := segmentFiles(t, dir); !slices.Equal(got, []uint64{11}) {
		t.Fatalf("segments %v after reopen, want only 11", got)
	}
	if info, err := j.Append(payloadFor(11)); err != nil || info.Seq != 11 {
		t.Fatalf("Append = %+v, %v; want seq 11", info, err)
	}
	closeT(t, j)
	j = openT(t, dir, WithSegmentSize(1))
	if j.First() != 11 || j.Last() != 11 {
		t.Fatalf("after second reopen First, Last = %d, %d; want 11, 11", j.First(), j.Last())
	}
	checkRecords(t, readAll(t, j, 11), 11, 11)
	if got := segmentFiles(t, dir); !slices.Equal(got, []uint64{11, 12}) {
		t.Fatalf("segments %v, want [11 12]", got)
	}
}

func TestReadDuringCompactionReadsOrReportsCompacted(t *testing.T) {
	j := openT(t, t.TempDir(), WithSegmentSize(1024), WithSync(SyncNone))
	appendN(t, j, 200)
	var wg sync.WaitGroup
	wg.Add(1)
	var readErr error
	go func() {
		defer wg.Done()
		next := uint64(1)
		readErr = j.Read(1, func(r Record) error {
			if r.Seq != next || !bytes.Equal(r.Payload, payloadFor(r.Seq)) {
				return fmt.Errorf("bad record %d", r.Seq)
			}
			next++
			return nil
		})
	}()
	for b := uint64(10); b <= 200; b += 10 {
		if err := j.Compact(b); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if readErr != nil && !errors.Is(readErr, ErrCompacted) {
		t.Fatalf("Read racing Compact = %v", readErr)
	}
}

func TestMetricsAreRegisteredAndRemovedOnClose(t *testing.T) {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"folder": "docs"}
	j := openT(t, t.TempDir(), WithRegisterer(reg, labels))
	appendN(t, j, 3)
	var wantBytes int64
	for seq := uint64(1); seq <= 3; seq++ {
		wantBytes += int64(len(payloadFor(seq)))
	}
	got := gather(t, reg)
	want := map[string]float64{
		"vigil_journal_appends_total":        3,
		"vigil_journal_appended_bytes_total": float64(wantBytes),
		"vigil_journal_disk_bytes":           float64(j.Size()),
		"vigil_journal_records_retained":     3,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["vigil_journal_fsync_duration_seconds"] < 3 {
		t.Errorf("fsync histogram has %v samples, want >= 3", got["vigil_journal_fsync_duration_seconds"])
	}
	if _, err := Open(t.TempDir(), WithRegisterer(reg, labels), WithLogger(discardLogger())); err == nil {
		t.Fatal("a second journal with the same labels registered its metrics")
	}
	closeT(t, j)
	if got := gather(t, reg); len(got) != 0 {
		t.Fatalf("metrics left after Close: %v", got)
	}
	j2 := openT(t, t.TempDir(), WithRegisterer(reg, labels))
	closeT(t, j2)
}

// gather returns each metric's value (sample count for histograms).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "docs" {
				t.Fatalf("%s lacks the const label", mf.GetName())
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[mf.GetName()] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
