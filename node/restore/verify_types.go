package restore

import "time"

// VerifyProblem is one difference found by verify.
type VerifyProblem struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // "differs", "missing", "extra", "history-chunk", "history-missing", "differs-from-source"
	Detail string `json:"detail,omitempty"`
	// history-missing: the version (seq and source time) of Path whose
	// content cannot be restored, and the first chunk found nowhere intact.
	Seq  *uint64    `json:"seq,omitempty"`
	Time *time.Time `json:"time,omitempty"`
	// history-missing and history-chunk: the chunk at fault.
	Chunk string `json:"chunk,omitempty"`
}

// VerifyReport is the result of verifying one replica (and its history
// chunks), by `vigil verify` or by the background scrub.
type VerifyReport struct {
	Source          string          `json:"source"`
	SourceName      string          `json:"source_name"`
	Folder          string          `json:"folder"`
	Time            time.Time       `json:"time"`
	Against         string          `json:"against"` // "source" (its current Merkle roots) or "local" (this node's records)
	Files           int             `json:"files"`
	Bytes           int64           `json:"bytes"`
	HistoryChunks   int             `json:"history_chunks"`
	HistoryVersions int             `json:"history_versions"` // version rows whose content was checked
	Problems        []VerifyProblem `json:"problems"`
	OK              bool            `json:"ok"`
}
