package agent

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/node/wire"
)

// BackupStatus is what the source knows of one designated backup, from
// its durable acknowledgements.
type BackupStatus struct {
	Peer       peer.ID
	Applied    uint64
	AppliedAt  time.Time // when the backup applied Applied
	AckedAt    time.Time // when it last acknowledged (zero: never)
	Baseline   bool      // still in its baseline
	DoneBytes  int64     // baseline progress it reported
	TotalBytes int64
	Reset      bool // told to re-baseline: its position was compacted away
	// Errors is what the backup said it cannot apply (a path it cannot
	// write, or its disk full); MoreErrors counts those left out.
	Errors     []wire.AckError
	MoreErrors uint64
	// Pending counts paths the backup is still bringing to the folder's
	// state (it could not get their bytes yet): not synced.
	Pending uint64
}

// Status is a protected folder's state, for lag and status reports.
type Status struct {
	Entries      int
	Bytes        int64
	JournalFirst uint64
	JournalLast  uint64
	JournalBytes int64
	Backups      []BackupStatus // in the order of Config.Backups
	// Problems keep changes of this folder from reaching any backup.
	Problems []Problem
	// Scan is the progress of the scan of the whole folder under way (nil:
	// none).
	Scan *ScanStatus
}

// ScanStatus is the progress of a scan of the whole folder: files listed
// by the walk and files read (hashed, or known unchanged) so far.
type ScanStatus struct {
	First      bool // the first scan: the backups' baseline waits for it
	Started    time.Time
	Files      int64 // regular files read so far
	Bytes      int64 // their bytes
	FoundFiles int64 // regular files the walk found so far
	FoundBytes int64 // their sizes
	Listed     bool  // the walk is over: FoundFiles and FoundBytes are the totals
}

// scanProgress is the scan under way, apart from a.mu: the capture
// goroutine updates it while it holds a.mu for long stretches.
type scanProgress struct {
	mu  sync.Mutex
	cur *ScanStatus
}

func (p *scanProgress) start(first bool) {
	p.mu.Lock()
	p.cur = &ScanStatus{First: first, Started: time.Now()}
	p.mu.Unlock()
}

func (p *scanProgress) end() {
	p.mu.Lock()
	p.cur = nil
	p.mu.Unlock()
}

func (p *scanProgress) read(files int, bytes int64) {
	p.mu.Lock()
	if p.cur != nil {
		p.cur.Files, p.cur.Bytes = int64(files), bytes
	}
	p.mu.Unlock()
}

func (p *scanProgress) found(files int, bytes int64, complete bool) {
	p.mu.Lock()
	if p.cur != nil {
		p.cur.FoundFiles, p.cur.FoundBytes, p.cur.Listed = int64(files), bytes, complete
	}
	p.mu.Unlock()
}

func (p *scanProgress) get() *ScanStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return nil
	}
	c := *p.cur
	return &c
}

// Status returns the folder's current state.
func (a *Agent) Status() Status {
	scan := a.scan.get()
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := Status{Scan: scan, Entries: a.files.Len(), Bytes: a.files.Bytes(),
		JournalFirst: a.j.First(), JournalLast: a.j.Last(), JournalBytes: a.j.Size(), Problems: a.problemList()}
	for _, b := range a.backups {
		s := a.acks[b]
		st.Backups = append(st.Backups, BackupStatus{Peer: b, Applied: s.Applied, AppliedAt: s.AppliedAt, AckedAt: s.AckedAt,
			Baseline: s.Baseline, DoneBytes: s.DoneBytes, TotalBytes: s.TotalBytes, Reset: s.Reset,
			Errors: s.Errors, MoreErrors: s.MoreErrors, Pending: s.Pending})
	}
	return st
}

// Pending describes the journal records after seq after: how many, their
// bytes, and the time of the oldest (zero when none).
func (a *Agent) Pending(after uint64) (n uint64, bytes int64, oldest time.Time) {
	return a.j.Pending(after)
}
