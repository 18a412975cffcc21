package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/wire"
	"github.com/vigil-mesh/vigil/store"
)

// Files is the persisted set of entries of one folder (on its source) or
// one replica (on a backup): one bbolt row per path, key = path, value =
// the entry (baseline entry codec with the source-local inode and device).
type Files struct{ bucket []string }

// Put saves e.
func (f Files) Put(tx *store.Tx, e *baseline.Entry) error {
	return tx.Put(f.bucket, []byte(e.Path), baseline.AppendEntryLocal(nil, e))
}

// Delete removes the row of p.
func (f Files) Delete(tx *store.Tx, p string) error { return tx.Delete(f.bucket, []byte(p)) }

// Sync saves the entries of the dirty paths as t holds them (deleting the
// rows of paths t no longer has).
func (f Files) Sync(tx *store.Tx, t *Tree, dirty map[string]bool) error {
	// in key order: bbolt inserts into a leaf that grows until the commit,
	// cheaply only at its end
	for _, p := range slices.Sorted(maps.Keys(dirty)) {
		if e := t.Get(p); e != nil {
			if err := f.Put(tx, e); err != nil {
				return err
			}
		} else if err := f.Delete(tx, p); err != nil {
			return err
		}
	}
	return nil
}

// Load calls fn for every saved entry, in path order. A row that does not
// decode fails with a *RowError naming the path.
func (f Files) Load(tx *store.Tx, fn func(*baseline.Entry) error) error {
	return tx.ForEach(f.bucket, func(k, v []byte) error {
		e, err := DecodeEntry(k, v)
		if err != nil {
			return err
		}
		return fn(e)
	})
}

// LoadTree reads every saved entry into a new tree and chunk location index.
func (f Files) LoadTree(tx *store.Tx) (*Tree, Locs, error) {
	t, l := NewTree(), make(Locs)
	err := f.Load(tx, func(e *baseline.Entry) error {
		t.Put(e)
		l.Add(e)
		return nil
	})
	return t, l, err
}

// Has reports whether p has a row.
func (f Files) Has(tx *store.Tx, p string) bool { return tx.Get(f.bucket, []byte(p)) != nil }

// HasBelow reports whether some path below directory p has a row.
func (f Files) HasBelow(tx *store.Tx, p string) bool {
	found := false
	tx.Seek(f.bucket, []byte(p+"/"), func(k, v []byte) error { found = true; return errStop })
	return found
}

var errStop = errors.New("stop")

// RowError is a persisted row that cannot be decoded.
type RowError struct {
	Key string
	Err error
}

func (e *RowError) Error() string { return fmt.Sprintf("index: row %q: %v", e.Key, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// DecodeEntry decodes a Files row; the entry's path must be the key.
func DecodeEntry(k, v []byte) (*baseline.Entry, error) {
	e, n, err := baseline.DecodeEntry(v)
	if err != nil {
		return nil, &RowError{Key: string(k), Err: err}
	}
	if n != len(v) {
		return nil, &RowError{Key: string(k), Err: fmt.Errorf("%d trailing bytes", len(v)-n)}
	}
	if e.Path != string(k) {
		return nil, &RowError{Key: string(k), Err: fmt.Errorf("the row holds path %q", e.Path)}
	}
	return &e, nil
}

// AgentRows are the rows of a folder this node protects.
type AgentRows struct{ files, meta, backups []string }

// Agent returns the rows of folder.
func Agent(folder string) AgentRows {
	return AgentRows{
		files:   []string{"agent", folder, "files"},
		meta:    []string{"agent", folder, "meta"},
		backups: []string{"agent", folder, "acks"},
	}
}

// Files is the folder's index.
func (a AgentRows) Files() Files { return Files{a.files} }

// AgentMeta is the folder's saved state besides its entries.
type AgentMeta struct {
	Scanned bool   // the first scan was made: the index is the folder's snapshot
	Seq     uint64 // the journal seq the index reflects (0: not recorded)
}

// Meta reads the folder's state.
func (a AgentRows) Meta(tx *store.Tx) AgentMeta {
	return AgentMeta{Scanned: tx.Get(a.meta, []byte("scanned")) != nil, Seq: store.FromU64(tx.Get(a.meta, []byte("seq")))}
}

// PutScanned records that the first scan was made.
func (a AgentRows) PutScanned(tx *store.Tx) error {
	return tx.Put(a.meta, []byte("scanned"), []byte{1})
}

// PutSeq records the journal seq the index reflects.
func (a AgentRows) PutSeq(tx *store.Tx, seq uint64) error {
	return tx.Put(a.meta, []byte("seq"), store.U64(seq))
}

// BackupRow is what a source keeps of one backup of a folder: its durable
// position as last acknowledged.
type BackupRow struct {
	Applied   uint64
	AppliedAt time.Time
	AckedAt   time.Time
	Baseline  bool
}

// PutBackup saves the row of backup id (the peer ID's bytes).
func (a AgentRows) PutBackup(tx *store.Tx, id []byte, r BackupRow) error {
	v := binary.AppendUvarint(nil, r.Applied)
	v = wire.AppendTime(v, r.AppliedAt)
	v = wire.AppendTime(v, r.AckedAt)
	v = wire.AppendBool(v, r.Baseline)
	return tx.Put(a.backups, id, v)
}

// Backups calls fn for each saved backup row; rows that do not decode are
// skipped (the backup acknowledges again within a second).
func (a AgentRows) Backups(tx *store.Tx, fn func(id []byte, r BackupRow) error) error {
	return tx.ForEach(a.backups, func(k, v []byte) error {
		d := wire.NewDecoder(v)
		r := BackupRow{Applied: d.Uvarint(), AppliedAt: d.Time(), AckedAt: d.Time(), Baseline: d.Bool()}
		if d.Err() != nil {
			return nil
		}
		return fn(k, r)
	})
}

// ReplicaRows are the rows of a replica this node keeps for a source.
type ReplicaRows struct{ files, meta []string }

// Replica returns the rows of the replica of folder from source (a peer
// ID in its string form).
func Replica(source, folder string) ReplicaRows {
	return ReplicaRows{
		files: []string{"replica", source, folder, "files"},
		meta:  []string{"replica", source, folder, "meta"},
	}
}

// Files is the replica's index: the entries its tree holds.
func (r ReplicaRows) Files() Files { return Files{r.files} }

// ReplicaMeta is a replica's position in its source's journal.
type ReplicaMeta struct {
	Applied     uint64    // journal seq applied and durable
	AppliedAt   time.Time // when this node applied it
	RecordTime  time.Time // the source's time of record Applied
	BaselineOK  bool      // a baseline completed (records apply on top of it)
	BaselineSeq uint64    // the snapshot seq of that baseline
}

const (
	keyApplied     = "applied"
	keyAppliedAt   = "applied_at"
	keyRecordTime  = "record_time"
	keyBaselineOK  = "baseline_done"
	keyBaselineSeq = "baseline_seq"
)

func getTime(tx *store.Tx, b []string, k string) time.Time {
	if v := tx.Get(b, []byte(k)); v != nil {
		return wire.FromNanos(int64(store.FromU64(v)))
	}
	return time.Time{}
}

func putTime(tx *store.Tx, b []string, k string, t time.Time) error {
	return tx.Put(b, []byte(k), store.U64(uint64(wire.Nanos(t))))
}

// Meta reads the replica's position.
func (r ReplicaRows) Meta(tx *store.Tx) ReplicaMeta {
	return ReplicaMeta{
		Applied:     store.FromU64(tx.Get(r.meta, []byte(keyApplied))),
		AppliedAt:   getTime(tx, r.meta, keyAppliedAt),
		RecordTime:  getTime(tx, r.meta, keyRecordTime),
		BaselineOK:  tx.Get(r.meta, []byte(keyBaselineOK)) != nil,
		BaselineSeq: store.FromU64(tx.Get(r.meta, []byte(keyBaselineSeq))),
	}
}

// PutApplied saves the applied seq, when it was applied, and the source
// time of that record (zero: unknown, e.g. a snapshot).
func (r ReplicaRows) PutApplied(tx *store.Tx, seq uint64, at, recordTime time.Time) error {
	if err := tx.Put(r.meta, []byte(keyApplied), store.U64(seq)); err != nil {
		return err
	}
	if err := putTime(tx, r.meta, keyAppliedAt, at); err != nil {
		return err
	}
	if recordTime.IsZero() {
		return nil
	}
	return putTime(tx, r.meta, keyRecordTime, recordTime)
}

// PutBaselineDone records a completed baseline at snapshot seq.
func (r ReplicaRows) PutBaselineDone(tx *store.Tx, seq uint64, at time.Time) error {
	if err := r.PutApplied(tx, seq, at, time.Time{}); err != nil {
		return err
	}
	if err := tx.Put(r.meta, []byte(keyBaselineSeq), store.U64(seq)); err != nil {
		return err
	}
	return tx.Put(r.meta, []byte(keyBaselineOK), []byte{1})
}

// ClearBaselineDone makes the replica take a new baseline.
func (r ReplicaRows) ClearBaselineDone(tx *store.Tx) error {
	return tx.Delete(r.meta, []byte(keyBaselineOK))
}
