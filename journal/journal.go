package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// segment describes one segment file.
type segment struct {
	base       uint64 // seq of its first record; also its file name
	path       string
	size       int64  // bytes in the file (header + frames)
	count      uint64 // records in it
	maxPayload int64  // largest payload in it (bounds allocations in Read)
}

// entry is the in-memory index of one record.
type entry struct {
	off   int64  // offset of the frame in its segment
	size  uint32 // payload length
	nanos int64  // append time, unix nanoseconds
	cum   int64  // payload bytes of all records up to and including this one
}

// Journal is a durable append-only log of opaque records stored as
// segment files in one directory (format: see the package documentation).
// All methods are safe for concurrent use.
type Journal struct {
	dir      string
	opts     options
	log      *slog.Logger
	m        *metrics
	faults   *Faults              // nil unless WithFaults
	syncFile func(*os.File) error // fsync; replaced in tests
	now      func() time.Time     // clock of the recovery rate limit; replaced in tests
	fsyncs   atomic.Int64         // fsync calls on segment files

	compactMu sync.Mutex // serialises Compact
	syncMu    sync.Mutex // held while a group commit fsyncs, and by Close; taken before mu

	mu       sync.Mutex
	segs     []*segment // ordered by base; the last one is active
	active   *os.File   // write handle of the active segment
	retired  []*os.File // write handles of former active segments (already synced), closed by the next group commit
	index    []entry    // index[i] describes seq first+i, up to written
	first    uint64     // first retained seq
	written  uint64     // last seq written to the active segment
	durable  uint64     // last seq durable per policy; Last()
	cumTotal int64      // entry.cum of seq written
	size     int64      // bytes of segment files
	gen      *generation
	skip     uint64    // seq of a SkipTo not yet done (0: none); the journal is failed meanwhile
	retryAt  time.Time // no recovery attempt before this time
	backoff  time.Duration
	closed   bool
	notify   chan struct{} // closed and replaced whenever durable grows
}

// generation is the run of appends between two recoveries (or skips).
// Appenders keep the generation they wrote in, so that one whose record
// was cut off by a recovery learns it even if its seq was meanwhile
// given to another record.
type generation struct {
	err    error  // why the journal is not writable; nil while it is
	sealed bool   // no record of this generation becomes durable any more
	final  uint64 // once sealed: durable at that moment; later seqs of this generation are lost
}

// outcome tells an appender whose last record is end what became of it,
// once the generation it wrote in is sealed (done false before).
func (g *generation) outcome(end uint64) (done bool, err error) {
	switch {
	case !g.sealed:
		return false, nil
	case end <= g.final:
		return true, nil
	case g.err != nil:
		return true, g.err
	}
	return true, fmt.Errorf("%w: record dropped before it was durable", ErrNotWritable)
}

// Open opens the journal in dir, creating dir (mode 0700) and a first
// segment if needed. Every segment is scanned to rebuild the index; a torn
// tail of the last segment is moved to "<segment>.broken" and cut off (a
// warning is logged); a bad frame anywhere else fails with a *CorruptError.
func Open(dir string, opts ...Option) (*Journal, error) {
	o := options{
		segmentSize:   DefaultSegmentSize,
		maxRecordSize: DefaultMaxRecordSize,
		sync:          SyncGroup,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	m, err := newMetrics(o.registerer, o.constLabels)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		dir:      dir,
		opts:     o,
		log:      o.logger.With("subsystem", "journal", "dir", dir),
		m:        m,
		faults:   o.faults,
		syncFile: (*os.File).Sync,
		now:      time.Now,
		gen:      &generation{},
		notify:   make(chan struct{}),
	}
	if err := j.load(); err != nil {
		if j.active != nil {
			j.active.Close()
		}
		m.unregister()
		return nil, err
	}
	j.durable = j.written
	if s := j.segs[len(j.segs)-1]; s.size > o.segmentSize && s.count > 0 {
		j.rollLocked()
		if err := j.gen.err; err != nil {
			j.active.Close()
			m.unregister()
			return nil, err
		}
	}
	j.updateGaugesLocked()
	return j, nil
}

func (j *Journal) segPath(base uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d%s", base, segmentExt))
}

// parseSegmentName returns the base seq of a segment file name.
func parseSegmentName(name string) (uint64, bool) { return parseSeqName(name, segmentExt) }

// parseSeqName returns the seq of a file name made of 20 digits and ext.
func parseSeqName(name, ext string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ext)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// load scans the directory and rebuilds segs and index.
func (j *Journal) load() error {
	des, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: open: %w", err)
	}
	var bases, skips []uint64
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, segmentExt+tmpExt) {
			// A segment whose creation did not complete.
			if err := os.Remove(filepath.Join(j.dir, name)); err != nil {
				return fmt.Errorf("journal: open: %w", err)
			}
			continue
		}
		if base, ok := parseSegmentName(name); ok && de.Type().IsRegular() {
			bases = append(bases, base)
		}
		if next, ok := parseSeqName(name, skipExt); ok {
			skips = append(skips, next)
		}
	}
	slices.Sort(bases)
	if len(skips) > 0 {
		if bases, err = j.finishSkip(bases, skips); err != nil {
			return err
		}
	}
	if len(bases) == 0 {
		f, _, err := j.createSegment(1)
		if err != nil {
			return err
		}
		j.active = f
		j.segs = []*segment{{base: 1, path: j.segPath(1), size: segmentHeaderSize}}
		j.first, j.written, j.size = 1, 0, segmentHeaderSize
		return nil
	}
	for i, base := range bases {
		path := j.segPath(base)
		if base == 0 {
			return &CorruptError{Path: path, Offset: 0, Err: errors.New("segment named seq 0")}
		}
		if i == 0 {
			j.first, j.written = base, base-1
		} else if base != j.written+1 {
			return &CorruptError{Path: path, Offset: 0,
				Err: fmt.Errorf("segment starts at seq %d, want %d", base, j.written+1)}
		}
		seg, err := j.scan(path, base, i == len(bases)-1)
		if err != nil {
			return err
		}
		j.segs = append(j.segs, seg)
		j.size += seg.size
	}
	return nil
}

// scan reads one segment, appends its records to the index and, for the
// last segment, repairs a torn tail and keeps the file open as active.
func (j *Journal) scan(path string, base uint64, last bool) (*segment, error) {
	flag := os.O_RDONLY
	if last {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	fileSize := st.Size()
	br := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, segmentHeaderSize)
	n, err := io.ReadFull(br, hdr)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("journal: read %s: %w", path, err)
	}
	if err := checkSegmentHeader(hdr[:n]); err != nil {
		return nil, &CorruptError{Path: path, Offset: 0, Err: err}
	}
	seg := &segment{base: base, path: path, size: segmentHeaderSize}
	d := newFrameDecoder(br)
	for {
		off := seg.size
		want := base + seg.count
		h, _, err := d.next(MaxRecordSizeLimit, max(0, fileSize-off-frameHeaderSize), false)
		if err == io.EOF {
			break
		}
		if err == nil && h.seq != want {
			err = fmt.Errorf("%w: seq %d, want %d", errSeq, h.seq, want)
		}
		if err != nil {
			if !isFrameError(err) {
				return nil, fmt.Errorf("journal: read %s: %w", path, err)
			}
			if !last {
				return nil, &CorruptError{Path: path, Offset: off, Err: err}
			}
			if err := j.repair(f, path, off, fileSize, err); err != nil {
				return nil, err
			}
			break
		}
		j.cumTotal += int64(h.length)
		j.index = append(j.index, entry{off: off, size: h.length, nanos: h.nanos, cum: j.cumTotal})
		seg.count++
		seg.size += frameSize(int(h.length))
		seg.maxPayload = max(seg.maxPayload, int64(h.length))
	}
	j.written = base + seg.count - 1
	if last {
		keep = true
		j.active = f
	}
	return seg, nil
}

// repair moves the bytes of f from off to its end into a .broken file
// and truncates f at off.
func (j *Journal) repair(f *os.File, path string, off, fileSize int64, reason error) error {
	broken := path + brokenExt
	for i := 1; ; i++ {
		if _, err := os.Lstat(broken); errors.Is(err, fs.ErrNotExist) {
			break
		}
		broken = fmt.Sprintf("%s%s.%d", path, brokenExt, i)
	}
	bf, err := os.OpenFile(broken, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: repair: %w", err)
	}
	_, err = io.Copy(bf, io.NewSectionReader(f, off, fileSize-off))
	if err == nil {
		err = bf.Sync()
	}
	if cerr := bf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsutil.SyncDir(j.dir)
	}
	if err == nil {
		err = f.Truncate(off)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("journal: repair %s: %w", path, err)
	}
	j.log.Warn("journal: torn tail cut off",
		"file", path, "offset", off, "reason", reason.Error(),
		"bytes", fileSize-off, "broken", broken)
	return nil
}

// createSegment durably creates the segment file for base (temp file,
// header, fsync, rename, directory fsync) and returns it open for
// writing. renamed reports whether the file exists under its final name.
func (j *Journal) createSegment(base uint64) (f *os.File, renamed bool, err error) {
	path := j.segPath(base)
	tmp := path + tmpExt
	f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("journal: create segment: %w", err)
	}
	err = j.writeAt(f, segmentHeader(), 0)
	if err == nil && j.opts.sync != SyncNone {
		err = j.fsync(f)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, false, fmt.Errorf("journal: create segment: %w", err)
	}
	if err := j.syncDir(); err != nil {
		return f, true, fmt.Errorf("journal: create segment %s: %w", path, err)
	}
	return f, true, nil
}

// syncDir fsyncs the journal's directory, unless the policy is SyncNone.
func (j *Journal) syncDir() error {
	if j.opts.sync == SyncNone {
		return nil
	}
	if err := j.faults.sync(j.dir); err != nil {
		return err
	}
	return fsutil.SyncDir(j.dir)
}

func (j *Journal) fsync(f *os.File) error {
	start := time.Now()
	err := j.faults.sync(f.Name())
	if err == nil {
		err = j.syncFile(f)
	}
	j.m.fsync.Observe(time.Since(start).Seconds())
	j.fsyncs.Add(1)
	return err
}

// writeAt writes b at off in f, or fails (possibly after writing a
// prefix of b) as the test faults say.
func (j *Journal) writeAt(f *os.File, b []byte, off int64) error {
	if j.faults.active() {
		if keep, err := j.faults.write(f.Name(), len(b)); err != nil {
			if keep > 0 {
				_, _ = f.WriteAt(b[:keep], off)
			}
			return err
		}
	}
	_, err := f.WriteAt(b, off)
	return err
}

func (j *Journal) truncate(f *os.File, size int64) error {
	if err := j.faults.truncate(f.Name()); err != nil {
		return err
	}
	return f.Truncate(size)
}

func (j *Journal) setDurableLocked(seq uint64) {
	if seq > j.durable {
		j.durable = seq
		close(j.notify)
		j.notify = make(chan struct{})
	}
}

func (j *Journal) updateGaugesLocked() {
	j.m.diskBytes.Set(float64(j.size))
	j.m.retained.Set(float64(len(j.index)))
}

// rollLocked makes the active segment durable and starts a new one named
// after the next seq. If the new file cannot be created the journal
// keeps writing to the current segment and tries again on the next
// append.
func (j *Journal) rollLocked() {
	if j.segs[len(j.segs)-1].count == 0 {
		return // an empty segment already names the next seq
	}
	if j.opts.sync != SyncNone {
		if err := j.fsync(j.active); err != nil {
			j.fail(err)
			return
		}
	}
	j.setDurableLocked(j.written)
	base := j.written + 1
	f, renamed, err := j.createSegment(base)
	if !renamed {
		j.log.Warn("journal: cannot start a new segment, continuing in the current one", "err", err)
		return
	}
	if err != nil {
		j.fail(err)
	}
	old := j.active
	j.active = f
	j.segs = append(j.segs, &segment{base: base, path: j.segPath(base), size: segmentHeaderSize})
	j.size += segmentHeaderSize
	if j.opts.sync == SyncGroup {
		// A group commit may be fsyncing old right now; it is closed by
		// the next one.
		j.retired = append(j.retired, old)
	} else {
		old.Close()
	}
}

// Append stores payload as the next record, stamped with time.Now(). On
// return the record is durable according to the sync policy and visible
// to Read, Last and Wait. Payloads must be 1 byte to the maximum record
// size (ErrEmptyRecord, ErrTooLarge).
//
// A failed write or fsync fails the appends whose records were not yet
// durable with an error wrapping ErrNotWritable and the cause, and
// those records are never read. Until the journal recovers every append
// fails so; an append first tries to recover, at most once per 100 ms
// to 1 s (the wait doubles after each failed attempt).
func (j *Journal) Append(payload []byte) (RecordInfo, error) {
	infos, err := j.AppendBatch([][]byte{payload})
	if err != nil {
		return RecordInfo{}, err
	}
	return infos[0], nil
}

// AppendBatch stores payloads as records with consecutive seqs and one
// write and at most one fsync (two when the batch fills a segment). An
// empty batch does nothing.
func (j *Journal) AppendBatch(payloads [][]byte) ([]RecordInfo, error) {
	var total, payloadBytes int64
	for _, p := range payloads {
		if err := checkPayload(p, j.opts.maxRecordSize); err != nil {
			return nil, err
		}
		total += frameSize(len(p))
		payloadBytes += int64(len(p))
	}
	// Copy payloads outside the lock; seq, time and CRC are sealed under it.
	buf := make([]byte, total)
	pos := 0
	for _, p := range payloads {
		putPayload(buf[pos:], p)
		pos += int(frameSize(len(p)))
	}

	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil, ErrClosed
	}
	if j.gen.err != nil {
		j.mu.Unlock()
		if err := j.tryRecover(); err != nil {
			return nil, err
		}
		j.mu.Lock()
		if j.closed {
			j.mu.Unlock()
			return nil, ErrClosed
		}
		if err := j.gen.err; err != nil { // failed again meanwhile
			j.mu.Unlock()
			return nil, err
		}
	}
	if len(payloads) == 0 {
		j.mu.Unlock()
		return nil, nil
	}
	nanos := time.Now().UnixNano()
	first := j.written + 1
	pos = 0
	for i, p := range payloads {
		sealFrame(buf[pos:], len(p), first+uint64(i), nanos)
		pos += int(frameSize(len(p)))
	}
	seg := j.segs[len(j.segs)-1]
	if err := j.writeAt(j.active, buf, seg.size); err != nil {
		_ = j.truncate(j.active, seg.size) // best effort; recovery cuts again
		j.fail(err)
		err = j.gen.err
		j.mu.Unlock()
		return nil, err
	}
	infos := make([]RecordInfo, len(payloads))
	at := time.Unix(0, nanos)
	off := seg.size
	for i, p := range payloads {
		j.cumTotal += int64(len(p))
		j.index = append(j.index, entry{off: off, size: uint32(len(p)), nanos: nanos, cum: j.cumTotal})
		off += frameSize(len(p))
		seg.maxPayload = max(seg.maxPayload, int64(len(p)))
		infos[i] = RecordInfo{Seq: first + uint64(i), Time: at, Size: int64(len(p))}
	}
	seg.size += total
	seg.count += uint64(len(payloads))
	j.size += total
	j.written += uint64(len(payloads))
	end, gen := j.written, j.gen
	j.m.appends.Add(float64(len(payloads)))
	j.m.appendBytes.Add(float64(payloadBytes))

	var err error
	switch j.opts.sync {
	case SyncNone:
		j.setDurableLocked(end)
	case SyncAlways:
		if err = j.fsync(j.active); err != nil {
			j.fail(err)
			err = j.gen.err
		} else {
			j.setDurableLocked(end)
		}
	}
	if err == nil && seg.size > j.opts.segmentSize {
		j.rollLocked()
	}
	j.updateGaugesLocked()
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if j.opts.sync == SyncGroup {
		if err := j.groupCommit(gen, end); err != nil {
			return nil, err
		}
	}
	return infos, nil
}

func checkPayload(p []byte, maxSize int) error {
	if len(p) == 0 {
		return ErrEmptyRecord
	}
	if len(p) > maxSize {
		return fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(p), maxSize)
	}
	return nil
}

// groupCommit returns once seq end, written in generation gen, is
// durable, or an error if it never will be. One caller at a time fsyncs;
// it covers everything written so far, so the callers queued behind it
// usually find their records durable and return without an fsync of
// their own.
func (j *Journal) groupCommit(gen *generation, end uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	if done, err := gen.outcome(end); done {
		j.mu.Unlock()
		return err
	}
	// gen is still the current generation: only a sealed one is replaced.
	if j.durable >= end {
		j.mu.Unlock()
		return nil
	}
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	f, target, retired := j.active, j.written, j.retired
	j.retired = nil
	j.mu.Unlock()

	err := j.fsync(f)
	for _, r := range retired {
		r.Close()
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if done, err := gen.outcome(end); done {
		// Another fsync of the file (a segment roll) failed meanwhile:
		// the success of this one proves nothing.
		return err
	}
	if err != nil {
		j.fail(err)
		return j.gen.err
	}
	j.setDurableLocked(target)
	return nil
}

// First returns the first retained seq, Last()+1 when none is retained.
func (j *Journal) First() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.first
}

// Last returns the last durable seq, 0 for a new journal.
func (j *Journal) Last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

// span is the part of one segment that a Read visits.
type span struct {
	path       string
	off        int64
	from, to   uint64
	maxPayload int64
}

// Read calls fn with the records from..Last() (Last as of the call), in
// order. It reads the segment files through its own file handles and
// holds the journal's lock only to look up where to start, so appends go
// on meanwhile. from 0 reads from 1; from < First() fails with
// ErrCompacted; from > Last() reads nothing. An error returned by fn stops
// the read and is returned unchanged. A frame that no longer decodes
// yields a *CorruptError.
func (j *Journal) Read(from uint64, fn func(Record) error) error {
	from = max(from, 1)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	if from < j.first {
		first := j.first
		j.mu.Unlock()
		return fmt.Errorf("%w: seq %d is before the first retained seq %d", ErrCompacted, from, first)
	}
	last := j.durable
	if from > last {
		j.mu.Unlock()
		return nil
	}
	k := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].base > from }) - 1
	var spans []span
	for ; k < len(j.segs) && j.segs[k].base <= last; k++ {
		s := j.segs[k]
		sp := span{path: s.path, off: segmentHeaderSize, from: s.base, to: s.base + s.count - 1, maxPayload: s.maxPayload}
		if sp.from < from {
			sp.from = from
			sp.off = j.index[from-j.first].off
		}
		sp.to = min(sp.to, last)
		spans = append(spans, sp)
	}
	j.mu.Unlock()

	for _, sp := range spans {
		if err := readSpan(sp, fn); err != nil {
			return err
		}
	}
	return nil
}

func readSpan(sp span, fn func(Record) error) error {
	f, err := os.Open(sp.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: segment %s removed during read", ErrCompacted, sp.path)
	}
	if err != nil {
		return fmt.Errorf("journal: read: %w", err)
	}
	defer f.Close()
	d := newFrameDecoder(bufio.NewReaderSize(io.NewSectionReader(f, sp.off, math.MaxInt64-sp.off), 256<<10))
	off := sp.off
	for seq := sp.from; seq <= sp.to; seq++ {
		h, payload, err := d.next(sp.maxPayload, -1, true)
		if err == io.EOF {
			err = errShortFrame
		}
		if err == nil && h.seq != seq {
			err = fmt.Errorf("%w: seq %d, want %d", errSeq, h.seq, seq)
		}
		if err != nil {
			if isFrameError(err) {
				return &CorruptError{Path: sp.path, Offset: off, Err: err}
			}
			return fmt.Errorf("journal: read %s: %w", sp.path, err)
		}
		if err := fn(Record{Seq: seq, Time: time.Unix(0, h.nanos), Payload: payload}); err != nil {
			return err
		}
		off += frameSize(len(payload))
	}
	return nil
}

// Info describes a retained record from the in-memory index: ErrNotFound
// for 0 and seqs above Last(), ErrCompacted below First().
func (j *Journal) Info(seq uint64) (RecordInfo, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return RecordInfo{}, ErrClosed
	}
	if seq == 0 || seq > j.durable {
		return RecordInfo{}, fmt.Errorf("%w: seq %d (last %d)", ErrNotFound, seq, j.durable)
	}
	if seq < j.first {
		return RecordInfo{}, fmt.Errorf("%w: seq %d is before the first retained seq %d", ErrCompacted, seq, j.first)
	}
	e := j.index[seq-j.first]
	return RecordInfo{Seq: seq, Time: time.Unix(0, e.nanos), Size: int64(e.size)}, nil
}

// Pending reports the retained records with seq > after (up to Last()):
// their number, total payload bytes and the time of the first of them
// (zero Time if none). O(1) from a prefix sum.
func (j *Journal) Pending(after uint64) (n uint64, bytes int64, oldest time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	lo := max(after+1, j.first)
	if after == math.MaxUint64 || lo > j.durable {
		return 0, 0, time.Time{}
	}
	a, b := j.index[lo-j.first], j.index[j.durable-j.first]
	return j.durable - lo + 1, b.cum - a.cum + int64(a.size), time.Unix(0, a.nanos)
}

// Wait returns nil as soon as Last() > after, ctx.Err() if ctx ends
// first, ErrClosed if the journal is or gets closed.
func (j *Journal) Wait(ctx context.Context, after uint64) error {
	for {
		j.mu.Lock()
		if j.closed {
			j.mu.Unlock()
			return ErrClosed
		}
		if j.durable > after {
			j.mu.Unlock()
			return nil
		}
		ch := j.notify
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Compact deletes the segment files all of whose records have
// seq < before, oldest first, then fsyncs the directory. The active
// segment is never deleted, so records of it stay retained and First()
// may remain below before; seq numbering is never reset.
func (j *Journal) Compact(before uint64) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	var victims []*segment
	for len(j.segs) > 1 && j.segs[1].base <= before {
		victims = append(victims, j.segs[0])
		j.size -= j.segs[0].size
		j.segs = j.segs[1:]
	}
	if len(victims) == 0 {
		j.mu.Unlock()
		return nil
	}
	newFirst := j.segs[0].base
	drop := newFirst - j.first
	if drop > uint64(len(j.index)/2) {
		j.index = slices.Clone(j.index[drop:]) // release the dropped part
	} else {
		j.index = j.index[drop:]
	}
	j.first = newFirst
	j.updateGaugesLocked()
	j.mu.Unlock()

	// Readers holding a file open keep reading it; later opens see
	// ErrCompacted, which is what First() already says.
	var errs []error
	for _, v := range victims {
		if err := os.Remove(v.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := j.syncDir(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("journal: compact: %w", err)
	}
	return nil
}

// Size returns the bytes of segment files on disk.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// Close fsyncs the active segment (whatever the policy, unless the
// journal is failed: Close does not recover) and closes the journal.
// Waiters get ErrClosed; further calls return ErrClosed.
func (j *Journal) Close() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	j.closed = true
	var errs []error
	if j.gen.err == nil {
		if err := j.fsync(j.active); err != nil {
			errs = append(errs, err)
		} else {
			j.setDurableLocked(j.written)
		}
	}
	for _, r := range j.retired {
		r.Close()
	}
	j.retired = nil
	if err := j.active.Close(); err != nil {
		errs = append(errs, err)
	}
	close(j.notify)
	j.m.unregister()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	return nil
}
