// Package journal is the durable append-only change log of one protected
// folder on its source node: opaque records numbered 1, 2, 3, ... that
// backups read from any retained sequence number, and that are deleted
// segment by segment once every backup acknowledged them.
//
// Log is the interface its users depend on. Journal implements it on
// disk; Mem implements it in memory for tests of other packages, and
// Faulty wraps any Log to fail its appends on command. WithFaults makes a
// Journal's own writes and fsyncs fail, for tests of its recovery.
//
// # Directory
//
// One directory per (source node, folder). It holds segment files named
// "%020d.seg", the decimal seq of the segment's first record (or, for a
// segment without records, the seq its first record will get), zero
// padded to 20 digits. Records of one segment are consecutive and a
// segment starts where the previous one ends, so the names alone give
// the seq range of every file. Other files:
//
//   - "%020d.seg.tmp": a segment being created; removed by Open.
//   - "%020d.seg.broken" (then "%020d.seg.broken.1", ".2", ...): the
//     torn tail that Open cut off that segment, kept for inspection and
//     never read again (Compact leaves it too).
//   - "%020d.skip": an empty marker written by SkipTo (see Skipping
//     seqs); its name is the seq the skip leads to.
//
// All integers are little endian.
//
// # Segment file
//
//	offset  size  field
//	0       4     magic "VGLJ" (0x56 0x47 0x4c 0x4a)
//	4       4     u32 format version, 1
//	8       ...   frames, back to back
//
// # Frame
//
// Each frame starts at an offset that is a multiple of 8:
//
//	offset  size  field
//	0       4     u32 payload length n, 1 <= n <= 2^30 (MaxRecordSizeLimit)
//	4       4     u32 CRC-32C (Castagnoli) of bytes 8 .. 24+n (seq, time, payload)
//	8       8     u64 seq
//	16      8     i64 append time, nanoseconds since the Unix epoch (UTC)
//	24      n     payload
//	24+n    p     zero padding, p = (8 - n%8) % 8
//
// A frame is 24 + n + p bytes. The first frame of a segment carries the
// seq of the file name and each next frame the previous seq + 1.
//
// # Writing and durability
//
// A record is written with one write(2) at the end of the active (last)
// segment. Append returns, and the record becomes visible to Last, Read,
// Info, Pending and Wait, once it is durable according to the SyncPolicy:
// SyncGroup fsyncs before returning, with concurrent appenders sharing one
// fsync (group commit); SyncAlways fsyncs once per call; SyncNone never
// fsyncs except in Close. A sequence number is therefore never shown to a
// reader before it is on stable storage, and so never reused for another
// payload after a crash.
//
// When the active segment exceeds the segment size (default 64 MiB) it is
// fsynced and a new segment named after the next seq is created: written
// as "<name>.tmp" with its header, fsynced, renamed, and the directory
// fsynced. Only the last segment can thus end in a partial frame, and
// only the last segment can hold records that are not yet durable.
//
// # Failure and recovery
//
// When a write or an fsync fails (ENOSPC, EIO, ...) the journal is
// failed: the records written since the last successful fsync are lost.
// Their appenders, and every later one, get an error wrapping
// ErrNotWritable and the cause; Last does not move and Err reports the
// failure. An appender remembers the generation (the run of appends
// between two recoveries) it wrote in, so it learns that its record was
// lost even if its seq has meanwhile been given to another record.
//
// While failed, an Append first tries to recover, at most once per
// backoff: 100 ms after the failure, doubling after each failed attempt
// up to 1 s; earlier it fails at once. Recovery, holding off group
// commits:
//
//  1. truncates the active segment, through a new file handle, to the
//     end of the last durable frame, and fsyncs it (skipped when no
//     durable record is in that segment);
//  2. creates a new segment named after the last durable seq + 1 as
//     above (temp file, header, fsync, rename, directory fsync). When
//     the active segment held no durable record it has that same name
//     and is replaced;
//  3. closes the old file handle: after a failed fsync what its cached
//     pages hold is unknown, so it is never written or fsynced again;
//  4. drops the lost records from the index; the next record gets the
//     last durable seq + 1.
//
// Every step can be repeated, so a failed attempt leaves the journal
// failed and consistent on disk, and the next attempt starts over. A
// crash at any point leaves segments that Open accepts. Once step 1 is
// done the lost records are gone from the disk too; a crash before it
// may leave some of them whole in the segment, and Open keeps those (as
// with any append that a crash interrupts, an appender that got an error
// cannot know whether its record survives a crash). The failure is
// logged once at ERROR and the recovery once at INFO; Close does not
// recover.
//
// # Skipping seqs
//
// SkipTo(next), for next > Last()+1, drops every retained record so that
// the next record gets seq next: the source uses it when records it had
// issued were lost from the disk, so that their seqs are never given to
// other records. Records written but not yet durable are first fsynced.
// Then:
//
//  1. the empty file "<next>.skip" is created and fsynced, and the
//     directory fsynced: from here on the skip is decided;
//  2. an empty segment named next is created as above and becomes the
//     active one; First() is next, Last() next-1;
//  3. the older segments are deleted and the directory fsynced;
//  4. the marker is deleted and the directory fsynced.
//
// If step 1 or 2 fails the journal is failed, and recovery carries out
// the skip, so no record gets a seq below next. Later failures leave
// files that Open deletes.
//
// # Recovery (Open)
//
// If the directory holds "*.skip" markers, Open first finishes the
// interrupted skip to the highest one, n: it deletes the segments named
// below n, creates the empty segment n unless a segment named n or above
// remains, deletes the markers and fsyncs the directory.
//
// Open then scans every segment, checks each frame (length, CRC, seq) and
// builds an in-memory index: per seq the segment, frame offset, payload
// size, time and a running sum of payload sizes (so Pending is O(1)). At
// the first bad frame of the last segment (short frame, zero or oversized
// length, CRC mismatch, seq out of order) the bytes from that frame to the
// end of the file are copied to "<segment>.broken" (fsynced), the segment
// is truncated to the end of the last good frame (fsynced), and a warning
// names the file and offset. A bad segment header, a bad frame in any
// other segment, or a segment that does not start where the previous one
// ended fails Open with a *CorruptError (errors.Is ErrCorrupt) naming the
// file and offset.
//
// # Compaction
//
// Compact(before) deletes, oldest first, the segment files all of whose
// records have seq < before, then fsyncs the directory. The active segment
// is never deleted: its name keeps the next seq known even when no record
// is retained, so seqs keep increasing across compaction and restarts.
//
// # Reading
//
// Read looks up the start offset under the lock, then reads the segment
// files through its own file handles, checking every frame again, so it
// does not hold up appends. A segment deleted by a concurrent Compact
// yields ErrCompacted.
//
// # Metrics
//
// With WithRegisterer: vigil_journal_appends_total,
// vigil_journal_appended_bytes_total, vigil_journal_fsync_duration_seconds
// (histogram), vigil_journal_disk_bytes, vigil_journal_records_retained,
// vigil_journal_failures_total, vigil_journal_recovery_attempts_total and
// vigil_journal_recoveries_total (failures minus recoveries is 1 while
// the journal is failed).
package journal
