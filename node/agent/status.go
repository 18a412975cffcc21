package agent

import (
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
}

// Status returns the folder's current state.
func (a *Agent) Status() Status {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := Status{Entries: a.files.Len(), Bytes: a.files.Bytes(),
		JournalFirst: a.j.First(), JournalLast: a.j.Last(), JournalBytes: a.j.Size(), Problems: a.problemList()}
	for _, b := range a.backups {
		s := a.acks[b]
		st.Backups = append(st.Backups, BackupStatus{Peer: b, Applied: s.Applied, AppliedAt: s.AppliedAt, AckedAt: s.AckedAt,
			Baseline: s.Baseline, DoneBytes: s.DoneBytes, TotalBytes: s.TotalBytes, Reset: s.Reset,
			Errors: s.Errors, MoreErrors: s.MoreErrors})
	}
	return st
}

// Pending describes the journal records after seq after: how many, their
// bytes, and the time of the oldest (zero when none).
func (a *Agent) Pending(after uint64) (n uint64, bytes int64, oldest time.Time) {
	return a.j.Pending(after)
}
