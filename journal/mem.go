package journal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Mem is an in-memory Log for tests of other packages. It follows the
// Journal's semantics (seqs from 1, ErrCompacted, ErrNotFound,
// ErrTooLarge at DefaultMaxRecordSize, ErrEmptyRecord, ErrClosed), except
// that Compact drops exactly the records below before and Size counts
// the bytes a single segment file would hold.
type Mem struct {
	mu     sync.Mutex
	recs   []memRecord // recs[i] is seq first+i
	first  uint64
	last   uint64
	cum    int64 // payload bytes of all records ever appended
	size   int64
	closed bool
	notify chan struct{}
}

type memRecord struct {
	nanos   int64
	payload []byte
	cum     int64 // payload bytes up to and including this record
}

// NewMem returns an empty in-memory log.
func NewMem() *Mem {
	return &Mem{first: 1, size: segmentHeaderSize, notify: make(chan struct{})}
}

// Append implements Log.
func (m *Mem) Append(payload []byte) (RecordInfo, error) {
	infos, err := m.AppendBatch([][]byte{payload})
	if err != nil {
		return RecordInfo{}, err
	}
	return infos[0], nil
}

// AppendBatch implements Log.
func (m *Mem) AppendBatch(payloads [][]byte) ([]RecordInfo, error) {
	for _, p := range payloads {
		if err := checkPayload(p, DefaultMaxRecordSize); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if len(payloads) == 0 {
		return nil, nil
	}
	nanos := time.Now().UnixNano()
	infos := make([]RecordInfo, len(payloads))
	for i, p := range payloads {
		m.last++
		m.cum += int64(len(p))
		m.size += frameSize(len(p))
		m.recs = append(m.recs, memRecord{nanos: nanos, payload: slices.Clone(p), cum: m.cum})
		infos[i] = RecordInfo{Seq: m.last, Time: time.Unix(0, nanos), Size: int64(len(p))}
	}
	close(m.notify)
	m.notify = make(chan struct{})
	return infos, nil
}

// First implements Log.
func (m *Mem) First() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first
}

// Last implements Log.
func (m *Mem) Last() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Read implements Log. fn runs without the lock held.
func (m *Mem) Read(from uint64, fn func(Record) error) error {
	from = max(from, 1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if from < m.first {
		first := m.first
		m.mu.Unlock()
		return fmt.Errorf("%w: seq %d is before the first retained seq %d", ErrCompacted, from, first)
	}
	if from > m.last {
		m.mu.Unlock()
		return nil
	}
	recs := m.recs[from-m.first:] // never modified in place, only resliced or appended past len
	m.mu.Unlock()
	for i, r := range recs {
		rec := Record{Seq: from + uint64(i), Time: time.Unix(0, r.nanos), Payload: slices.Clone(r.payload)}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// Info implements Log.
func (m *Mem) Info(seq uint64) (RecordInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return RecordInfo{}, ErrClosed
	}
	if seq == 0 || seq > m.last {
		return RecordInfo{}, fmt.Errorf("%w: seq %d (last %d)", ErrNotFound, seq, m.last)
	}
	if seq < m.first {
		return RecordInfo{}, fmt.Errorf("%w: seq %d is before the first retained seq %d", ErrCompacted, seq, m.first)
	}
	r := m.recs[seq-m.first]
	return RecordInfo{Seq: seq, Time: time.Unix(0, r.nanos), Size: int64(len(r.payload))}, nil
}

// Pending implements Log.
func (m *Mem) Pending(after uint64) (n uint64, bytes int64, oldest time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lo := max(after+1, m.first)
	if after >= m.last || lo > m.last {
		return 0, 0, time.Time{}
	}
	a, b := m.recs[lo-m.first], m.recs[m.last-m.first]
	return m.last - lo + 1, b.cum - a.cum + int64(len(a.payload)), time.Unix(0, a.nanos)
}

// Wait implements Log.
func (m *Mem) Wait(ctx context.Context, after uint64) error {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		if m.last > after {
			m.mu.Unlock()
			return nil
		}
		ch := m.notify
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Compact drops the records with seq < before.
func (m *Mem) Compact(before uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	newFirst := min(before, m.last+1)
	if newFirst <= m.first {
		return nil
	}
	drop := newFirst - m.first
	for _, r := range m.recs[:drop] {
		m.size -= frameSize(len(r.payload))
	}
	m.recs = slices.Clone(m.recs[drop:])
	m.first = newFirst
	return nil
}

// SkipTo implements Log.
func (m *Mem) SkipTo(next uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if next <= m.last+1 {
		return nil
	}
	m.recs, m.first, m.last, m.size = nil, next, next-1, segmentHeaderSize
	close(m.notify)
	m.notify = make(chan struct{})
	return nil
}

// Err implements Log: nil, or ErrClosed after Close (a Mem never fails;
// wrap it in a Faulty for that).
func (m *Mem) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Size implements Log: segment header plus the frames of the retained
// records.
func (m *Mem) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// Close implements Log.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	close(m.notify)
	return nil
}
