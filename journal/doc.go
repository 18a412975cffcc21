// Package journal is the durable append-only change log of one protected
// folder on its source node: opaque records numbered 1, 2, 3, ... that
// backups read from any retained sequence number, and that are deleted
// segment by segment once every backup acknowledged them.
//
// Log is the interface its users depend on. Journal implements it on
// disk; Mem implements it in memory for tests of other packages.
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
// fsynced. Only the last segment can thus end in a partial frame. A
// failed write or fsync is sticky: every later Append returns it until
// the journal is reopened.
//
// # Recovery (Open)
//
// Open scans every segment, checks each frame (length, CRC, seq) and
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
// (histogram), vigil_journal_disk_bytes and vigil_journal_records_retained.
package journal
