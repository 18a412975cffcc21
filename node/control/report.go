package control

import (
	"time"

	"github.com/vigil-mesh/vigil/node/restore"
)

// Pair states, as reported by lag.
const (
	StateBaseline   = "baseline"
	StateCatchingUp = "catching-up"
	StateLive       = "live"
	StateOffline    = "offline"
)

// LagReport is the answer to `vigil lag --json` (see the contract).
type LagReport struct {
	Node   string    `json:"node"`
	Time   time.Time `json:"time"`
	Pairs  []LagPair `json:"pairs"`
	Synced *bool     `json:"synced,omitempty"` // set by a wait-synced request
}

// LagPair is the replication lag of one (source, folder, backup) pair.
type LagPair struct {
	Source             string  `json:"source"`
	SourceName         string  `json:"source_name"`
	Folder             string  `json:"folder"`
	Target             string  `json:"target"`
	TargetName         string  `json:"target_name"`
	State              string  `json:"state"`
	HeadSeq            uint64  `json:"head_seq"`
	AppliedSeq         uint64  `json:"applied_seq"`
	LagSeq             uint64  `json:"lag_seq"`
	LagBytes           int64   `json:"lag_bytes"`
	LagSeconds         float64 `json:"lag_seconds"`
	BaselineDoneBytes  int64   `json:"baseline_done_bytes"`
	BaselineTotalBytes int64   `json:"baseline_total_bytes"`
	// BaselineBytesPerSecond is the baseline's rate over the last ~10 s,
	// and BaselineETASeconds the time left at that rate; absent until
	// known (state baseline only).
	BaselineBytesPerSecond float64    `json:"baseline_bytes_per_second,omitempty"`
	BaselineETASeconds     *float64   `json:"baseline_eta_seconds,omitempty"`
	LastApplied            *time.Time `json:"last_applied"`
	OfflineSince           *time.Time `json:"offline_since,omitempty"` // last time the backup was heard from
	// OfflineReason says why the other side is not connected, when known
	// (nothing listens at its address, its peer ID does not match, it
	// does not list this node...).
	OfflineReason string `json:"offline_reason,omitempty"`
	// Errors is what keeps changes of this pair from being backed up: paths
	// the source cannot read or the backup cannot write, a journal that
	// cannot be written, a backup whose disk is full. Never null.
	Errors []ErrorReport `json:"errors"`
	// MoreErrors counts errors left out of Errors to keep reports small.
	MoreErrors int `json:"more_errors,omitempty"`
	// PendingPaths counts paths the backup is still bringing to the
	// source's state because the source could not send their bytes when
	// asked (the file changed again there): the pair is catching-up until
	// they are written, and each becomes an error if that takes long.
	PendingPaths int `json:"pending_paths,omitempty"`
	// SourceScan is the source's scan of the whole folder under way, when
	// this node is the source and scans (absent otherwise). During the
	// first scan the baseline cannot start: this is its progress.
	SourceScan *ScanReport `json:"source_scan,omitempty"`
}

// ScanReport is the progress of a source's scan of a whole folder: the
// walk lists the files while they are read (hashed, or found unchanged).
type ScanReport struct {
	First      bool      `json:"first"` // the folder's first scan
	Started    time.Time `json:"started"`
	Files      int64     `json:"files"`       // regular files read so far
	Bytes      int64     `json:"bytes"`       // their bytes
	FoundFiles int64     `json:"found_files"` // regular files the walk found so far
	FoundBytes int64     `json:"found_bytes"` // their sizes
	Listed     bool      `json:"listed"`      // the walk is over: found_* are the totals
	// BytesPerSecond is the rate since the scan started; ETASeconds the
	// time left at that rate, once the walk is over.
	BytesPerSecond float64  `json:"bytes_per_second"`
	ETASeconds     *float64 `json:"eta_seconds,omitempty"`
}

// ErrorReport is one failure that keeps a change from being backed up.
type ErrorReport struct {
	Path  string    `json:"path,omitempty"` // empty: not about one path
	Error string    `json:"error"`
	Since time.Time `json:"since"`
}

// StatusReport is the answer to `vigil status --json`.
type StatusReport struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Addrs        []string        `json:"addrs"`
	Started      time.Time       `json:"started"`
	Peers        []PeerReport    `json:"peers"`
	Folders      []FolderReport  `json:"folders"`
	Replicas     []ReplicaReport `json:"replicas"`
	JournalBytes int64           `json:"journal_bytes"`
	// RefusedFolders are folders peers name this node a backup of that
	// it has no backup_for entry for.
	RefusedFolders []RefusedFolder `json:"refused_folders,omitempty"`
}

// PeerReport is one configured peer.
type PeerReport struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Connected bool     `json:"connected"`
	Addrs     []string `json:"addrs"`
	RTTMillis float64  `json:"rtt_ms"`
	// Problem says why the peer is not connected, when known (a peer ID
	// that does not match, a peer that does not list this node, nothing
	// listening at its address...); Misconfigured says it comes from a
	// config and will not go away by waiting.
	Problem       string `json:"problem,omitempty"`
	Misconfigured bool   `json:"misconfigured,omitempty"`
}

// FolderReport is one protected folder.
type FolderReport struct {
	ID           string   `json:"id"`
	Path         string   `json:"path"`
	Entries      int      `json:"entries"`
	Bytes        int64    `json:"bytes"`
	BackupTo     []string `json:"backup_to"`
	JournalFirst uint64   `json:"journal_first_seq"`
	JournalLast  uint64   `json:"journal_last_seq"`
	JournalBytes int64    `json:"journal_bytes"`
	// Errors keep changes of this folder from reaching any backup. Never null.
	Errors []ErrorReport `json:"errors"`
	// Scan is the scan of the whole folder under way (absent: none).
	Scan *ScanReport `json:"scan,omitempty"`
}

// ReplicaReport is one replica held for another node.
type ReplicaReport struct {
	Source             string                `json:"source"`
	SourceName         string                `json:"source_name"`
	Folder             string                `json:"folder"`
	Path               string                `json:"path"`
	State              string                `json:"state"`
	Files              int                   `json:"files"`
	Bytes              int64                 `json:"bytes"`
	AppliedSeq         uint64                `json:"applied_seq"`
	HeadSeq            uint64                `json:"head_seq"`
	BaselineDoneBytes  int64                 `json:"baseline_done_bytes"`
	BaselineTotalBytes int64                 `json:"baseline_total_bytes"`
	ChunksFetched      int64                 `json:"chunks_fetched"`
	LastError          string                `json:"last_error,omitempty"`
	RetentionHours     float64               `json:"retention_hours"`
	HistoryBytes       int64                 `json:"history_bytes"`
	LastVerify         *restore.VerifyReport `json:"last_verify,omitempty"` // newest verify or background scrub
	// Errors keep this replica from holding the source's changes. Never null.
	Errors []ErrorReport `json:"errors"`
}

// RepairReport is what `vigil repair` did to one replica: verify before
// and after the repair.
type RepairReport struct {
	Source     string               `json:"source"`
	SourceName string               `json:"source_name"`
	Folder     string               `json:"folder"`
	Before     restore.VerifyReport `json:"before"`
	After      restore.VerifyReport `json:"after"`
}

// ReloadReport is what a config reload changed (POST /v1/reload): parts
// are named "folder ID", "replica PEER/FOLDER", "peer NAME" or a node
// setting.
type ReloadReport struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
	// NeedsRestart lists changed settings that take effect at the next
	// start (node.listen, node.control, node.metrics).
	NeedsRestart []string `json:"needs_restart,omitempty"`
	// Errors names the parts that could not be started; the next reload
	// tries them again.
	Errors []string `json:"errors,omitempty"`
}

// RefusedFolder is a folder a peer asked this node to back up (it names
// this node in backup_to) that this node has no backup_for entry for.
type RefusedFolder struct {
	Source     string    `json:"source"`
	SourceName string    `json:"source_name"`
	Folder     string    `json:"folder"`
	Since      time.Time `json:"since"`
}
