package journal

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrCompacted reports a read of records that were removed by Compact.
	ErrCompacted = errors.New("journal: records compacted")
	// ErrNotFound reports a sequence number that was never appended.
	ErrNotFound = errors.New("journal: record not found")
	// ErrCorrupt reports a segment that cannot be decoded. It is carried by
	// a *CorruptError naming the file and offset.
	ErrCorrupt = errors.New("journal: corrupt segment")
	// ErrTooLarge reports a payload above the maximum record size.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrEmptyRecord reports an empty payload: a record holds at least one byte.
	ErrEmptyRecord = errors.New("journal: empty record")
	// ErrClosed reports a call on a closed journal.
	ErrClosed = errors.New("journal: closed")
	// ErrNotWritable reports an append refused or lost because a write or
	// fsync failed; the error also wraps that cause (e.g. syscall.ENOSPC).
	// It is temporary: a later append tries to recover.
	ErrNotWritable = errors.New("journal: not writable")
)

// CorruptError names the segment file and byte offset of a frame (or
// header) that failed to decode. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	Path   string // segment file
	Offset int64  // byte offset of the bad frame or header in Path
	Err    error  // what is wrong (short frame, checksum mismatch, ...)
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: corrupt segment %s at offset %d: %v", e.Path, e.Offset, e.Err)
}

// Unwrap returns ErrCorrupt and the underlying reason.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Record is one journal record as read back.
type Record struct {
	Seq     uint64
	Time    time.Time
	Payload []byte // owned by the caller
}

// RecordInfo describes a record without its payload.
type RecordInfo struct {
	Seq  uint64
	Time time.Time
	Size int64 // payload length in bytes
}

// Log is the journal seen by its users: an append-only sequence of opaque
// records numbered 1, 2, 3, ... that can be read from any retained
// sequence number and compacted from the front. *Journal (on disk) and
// *Mem (in memory, for tests) implement it.
type Log interface {
	// Append stores one record, stamped with the current time, and
	// returns its sequence number. The record is durable on return
	// according to the sync policy. An error wrapping ErrNotWritable
	// means the record was not stored and a later call may succeed.
	// Safe for concurrent use.
	Append(payload []byte) (RecordInfo, error)
	// AppendBatch stores records with consecutive sequence numbers,
	// made durable together.
	AppendBatch(payloads [][]byte) ([]RecordInfo, error)
	// First is the first retained sequence number; Last()+1 when nothing
	// is retained.
	First() uint64
	// Last is the last appended (and durable) sequence number, 0 when
	// nothing was ever appended.
	Last() uint64
	// Read calls fn for every record from from to Last() (as of the
	// call). from 0 means from 1. A from below First() fails with
	// ErrCompacted; a from above Last() reads nothing. An error of fn
	// stops the read and is returned as is.
	Read(from uint64, fn func(Record) error) error
	// Info describes one retained record.
	Info(seq uint64) (RecordInfo, error)
	// Pending counts the retained records with seq > after: how many,
	// their total payload bytes and the time of the oldest (zero when
	// none).
	Pending(after uint64) (n uint64, bytes int64, oldest time.Time)
	// Wait returns nil once Last() > after, or ctx.Err().
	Wait(ctx context.Context, after uint64) error
	// Compact drops records with seq < before (an implementation may
	// keep some of them, see Journal.Compact).
	Compact(before uint64) error
	// SkipTo makes next the seq of the next record, so that seqs issued
	// for records that were lost are never given to other records. If
	// next <= Last()+1 it does nothing; otherwise every retained record
	// is dropped, First() becomes next and Last() next-1, and reads from
	// below next fail with ErrCompacted.
	SkipTo(next uint64) error
	// Err is nil while appends can succeed; otherwise why they fail
	// (errors.Is ErrNotWritable after a failed write, ErrClosed after
	// Close). For status reporting: it does not try to recover.
	Err() error
	// Size is the storage used, in bytes.
	Size() int64
	// Close releases the log; further calls return ErrClosed.
	Close() error
}

var (
	_ Log = (*Journal)(nil)
	_ Log = (*Mem)(nil)
	_ Log = (*Faulty)(nil)
)
