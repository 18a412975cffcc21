package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Failure, recovery and SkipTo of the on-disk journal. Lock order:
// compactMu, syncMu, mu. Recovery and SkipTo hold syncMu so that no group
// commit is fsyncing the file handle they close.

const (
	// minRecoveryBackoff is the wait after a failure before the first
	// recovery attempt; it doubles after each failed attempt up to
	// maxRecoveryBackoff.
	minRecoveryBackoff = 100 * time.Millisecond
	maxRecoveryBackoff = time.Second
)

// fail stops appends after a failed write or fsync. The records written
// since the last durable one are lost: their appenders get the error, and
// recovery cuts them off. Only the first failure of a generation counts.
func (j *Journal) fail(err error) {
	if j.gen.err != nil {
		return
	}
	j.gen.err = fmt.Errorf("%w: %w", ErrNotWritable, err)
	j.gen.sealed, j.gen.final = true, j.durable
	j.backoff = minRecoveryBackoff
	j.retryAt = j.now().Add(j.backoff)
	j.m.failures.Inc()
	j.log.Error("journal: not writable, appends fail until it recovers",
		"err", err, "last_durable_seq", j.durable)
}

// Err returns nil while the journal is writable; after a failed write or
// fsync the failure (errors.Is ErrNotWritable and the cause) until an
// append recovers; ErrClosed after Close. It does not try to recover.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	return j.gen.err
}

// tryRecover is called by an appender that found the journal failed. It
// recovers unless another appender already did or the last attempt is too
// recent. nil means the journal is writable.
func (j *Journal) tryRecover() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if j.gen.err == nil {
		return nil
	}
	now := j.now()
	if now.Before(j.retryAt) {
		return j.gen.err
	}
	j.m.recoveryAttempts.Inc()
	if err := j.recoverLocked(); err != nil {
		j.backoff = min(2*j.backoff, maxRecoveryBackoff)
		j.retryAt = now.Add(j.backoff)
		j.log.Debug("journal: recovery attempt failed", "err", err, "retry_in", j.backoff)
		return j.gen.err
	}
	return nil
}

// recoverLocked makes the failed journal writable again: the records
// written after the last durable one are cut off the active segment, and
// appends go on in a new segment named after the next seq, through a new
// file handle (after a failed fsync, what the old handle's pages hold is
// unknown). A step that fails leaves nothing the next attempt trips over:
// each one can be repeated. The caller holds syncMu and mu.
func (j *Journal) recoverLocked() error {
	if j.skip != 0 {
		return j.skipLocked()
	}
	// Only the active segment can hold records that are not durable:
	// a segment is fsynced before the next one is started.
	d := j.durable
	seg := j.segs[len(j.segs)-1]
	cut := seg.size
	if j.written > d {
		cut = j.index[d+1-j.first].off
	}
	keep := seg.base <= d // the active segment holds durable records
	if keep {
		if err := j.truncateFile(seg.path, cut); err != nil {
			return fmt.Errorf("journal: recover: %w", err)
		}
	}
	// Without durable records the active segment is named d+1 too and is
	// replaced by the new, empty file.
	f, _, err := j.createSegment(d + 1)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("journal: recover: %w", err)
	}
	lost := j.written - d
	j.closeActiveLocked()
	if keep {
		j.size -= seg.size - cut
		seg.size, seg.count = cut, d+1-seg.base
	} else {
		j.size -= seg.size
		j.segs = j.segs[:len(j.segs)-1]
	}
	if lost > 0 {
		e := j.index[d+1-j.first]
		j.cumTotal = e.cum - int64(e.size)
		j.index = j.index[:d+1-j.first]
	}
	j.written = d
	j.startSegmentLocked(f, d+1)
	j.newGenerationLocked("lost_records", lost, "next_seq", d+1)
	return nil
}

// truncateFile cuts the file at path to size through a new handle and
// makes that durable.
func (j *Journal) truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = j.truncate(f, size)
	if err == nil && j.opts.sync != SyncNone {
		err = j.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// closeActiveLocked closes the write handles of the active and retired
// segments. The caller holds syncMu, so no group commit uses them.
func (j *Journal) closeActiveLocked() {
	for _, r := range j.retired {
		r.Close()
	}
	j.retired = nil
	j.active.Close()
	j.active = nil
}

// startSegmentLocked makes f, a new empty segment named base, the active
// one.
func (j *Journal) startSegmentLocked(f *os.File, base uint64) {
	j.active = f
	j.segs = append(j.segs, &segment{base: base, path: j.segPath(base), size: segmentHeaderSize})
	j.size += segmentHeaderSize
}

// newGenerationLocked seals the current generation (its records above
// durable are lost) and starts a writable one; logged when it ends a
// failure.
func (j *Journal) newGenerationLocked(logArgs ...any) {
	old := j.gen
	if !old.sealed {
		old.sealed, old.final = true, j.durable
	}
	j.gen = &generation{}
	j.updateGaugesLocked()
	if old.err != nil {
		j.m.recoveries.Inc()
		j.log.Info("journal: writable again", append([]any{"failure", old.err.Error()}, logArgs...)...)
	}
}

// SkipTo makes next the seq of the next record, for when records the
// journal had issued were lost and their seqs must never be given to
// other records. If next <= Last()+1 it does nothing. Otherwise every
// retained record is dropped, First() becomes next and Last() next-1
// (which wakes Wait), reads from below next fail with ErrCompacted, and
// the directory holds one empty segment named next, so this survives
// Close and Open. Records written but not yet durable (appenders waiting
// for a group commit) are made durable first. If SkipTo fails, the
// journal is not writable until the skip is done (retried by later
// appends like a recovery), so no record ever gets a seq below next.
// A failed journal is writable again after a successful SkipTo.
func (j *Journal) SkipTo(next uint64) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if j.gen.err == nil && j.written > j.durable {
		if err := j.fsync(j.active); err != nil {
			j.fail(err)
		} else {
			j.setDurableLocked(j.written)
		}
	}
	if next <= j.durable+1 {
		return nil
	}
	j.skip = max(j.skip, next)
	if err := j.skipLocked(); err != nil {
		j.fail(err)
		return err
	}
	return nil
}

func (j *Journal) skipPath(next uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d%s", next, skipExt))
}

// skipLocked carries out the pending skip to j.skip. A durable marker
// file "<next>.skip" comes first (Open finishes a skip it finds
// interrupted), then the new segment named next; then the skip has
// happened, and the old segments and the marker are deleted. A failure
// before the new segment exists is retried by recovery; after it, the
// files left are the ones Open deletes. The caller holds syncMu and mu.
func (j *Journal) skipLocked() error {
	next := j.skip
	marker := j.skipPath(next)
	if err := j.writeMarker(marker); err != nil {
		return fmt.Errorf("journal: skip to %d: %w", next, err)
	}
	f, _, err := j.createSegment(next)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("journal: skip to %d: %w", next, err)
	}
	old, dropped, from := j.segs, len(j.index), j.durable+1
	j.closeActiveLocked()
	j.segs, j.index, j.size = nil, nil, 0
	j.first, j.written, j.skip = next, next-1, 0
	j.startSegmentLocked(f, next)
	j.newGenerationLocked("next_seq", next)
	j.setDurableLocked(next - 1)
	j.log.Warn("journal: skipped seqs, retained records dropped",
		"from", from, "next_seq", next, "dropped_records", dropped)

	var errs []error
	for _, s := range old {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, j.syncDir())
	}
	if errors.Join(errs...) == nil { // the marker goes only once the old segments are gone
		errs = append(errs, os.Remove(marker), j.syncDir())
	}
	if err := errors.Join(errs...); err != nil {
		j.log.Warn("journal: files left after a skip; Open deletes them", "err", err)
	}
	return nil
}

// writeMarker durably creates the empty file path.
func (j *Journal) writeMarker(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if j.opts.sync != SyncNone {
		err = j.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = j.syncDir()
	}
	return err
}

// finishSkip completes, in Open, a SkipTo that was interrupted after its
// marker was durable: the segments below the highest marker's seq are
// deleted, the segment named after it is created unless a later one
// exists, and the markers are removed. It returns the remaining segment
// bases.
func (j *Journal) finishSkip(bases, skips []uint64) ([]uint64, error) {
	next := slices.Max(skips)
	var kept []uint64
	deleted := 0
	for _, b := range bases {
		if b >= next {
			kept = append(kept, b)
			continue
		}
		if err := os.Remove(j.segPath(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("journal: open: finish skip to %d: %w", next, err)
		}
		deleted++
	}
	if len(kept) == 0 {
		f, _, err := j.createSegment(next)
		if f != nil {
			f.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("journal: open: finish skip to %d: %w", next, err)
		}
		kept = []uint64{next}
	}
	err := j.syncDir()
	for _, s := range skips {
		if err == nil {
			err = os.Remove(j.skipPath(s))
		}
	}
	if err == nil {
		err = j.syncDir()
	}
	if err != nil {
		return nil, fmt.Errorf("journal: open: finish skip to %d: %w", next, err)
	}
	j.log.Warn("journal: finished an interrupted skip", "next_seq", next, "deleted_segments", deleted)
	return kept, nil
}
