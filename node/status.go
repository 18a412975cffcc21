package node

import (
	"path/filepath"
	"time"
)

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
}

// PeerReport is one configured peer.
type PeerReport struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Connected bool     `json:"connected"`
	Addrs     []string `json:"addrs"`
	RTTMillis float64  `json:"rtt_ms"`
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
}

// ReplicaReport is one replica held for another node.
type ReplicaReport struct {
	Source             string        `json:"source"`
	SourceName         string        `json:"source_name"`
	Folder             string        `json:"folder"`
	Path               string        `json:"path"`
	State              string        `json:"state"`
	Files              int           `json:"files"`
	Bytes              int64         `json:"bytes"`
	AppliedSeq         uint64        `json:"applied_seq"`
	HeadSeq            uint64        `json:"head_seq"`
	BaselineDoneBytes  int64         `json:"baseline_done_bytes"`
	BaselineTotalBytes int64         `json:"baseline_total_bytes"`
	ChunksFetched      int64         `json:"chunks_fetched"`
	LastError          string        `json:"last_error,omitempty"`
	RetentionHours     float64       `json:"retention_hours"`
	HistoryBytes       int64         `json:"history_bytes"`
	LastVerify         *VerifyReport `json:"last_verify,omitempty"` // newest verify or background scrub
}

// Status reports the node's peers, folders and replicas.
func (n *Node) Status() StatusReport {
	s := StatusReport{ID: n.id.String(), Name: n.cfg.Node.Name, Started: n.started.UTC(),
		Peers: []PeerReport{}, Folders: []FolderReport{}, Replicas: []ReplicaReport{}}
	for _, a := range n.mesh.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	for _, p := range n.mesh.Peers() {
		pr := PeerReport{ID: p.ID.String(), Name: p.Name, Connected: p.Connected,
			RTTMillis: float64(p.RTT.Microseconds()) / 1000, Addrs: []string{}}
		for _, a := range p.Addrs {
			pr.Addrs = append(pr.Addrs, a.String())
		}
		s.Peers = append(s.Peers, pr)
	}
	for _, a := range n.agents {
		a.mu.RLock()
		fr := FolderReport{ID: a.id, Path: a.root, Entries: a.files.len(), Bytes: a.files.bytes,
			BackupTo: a.cfg.BackupTo, JournalFirst: a.j.First(), JournalLast: a.j.Last(), JournalBytes: a.j.Size()}
		a.mu.RUnlock()
		s.JournalBytes += fr.JournalBytes
		s.Folders = append(s.Folders, fr)
	}
	lag := n.Lag()
	for _, r := range n.replicas {
		st := r.status()
		rr := ReplicaReport{Source: r.source.String(), SourceName: r.sourceName, Folder: r.folder,
			Path: filepath.Clean(r.rep.Root()), Files: st.Files, Bytes: st.Bytes, AppliedSeq: st.Applied,
			HeadSeq: max(st.Head, st.Applied), BaselineDoneBytes: st.DoneBytes, BaselineTotalBytes: st.TotalBytes,
			ChunksFetched: r.fetchedChunks.Load(), LastError: st.LastError, RetentionHours: r.retention.Hours(),
			LastVerify: st.LastVerify}
		rr.HistoryBytes, _ = r.hist.chunks.Size()
		for _, p := range lag.Pairs {
			if p.Source == rr.Source && p.Folder == rr.Folder && p.Target == s.ID {
				rr.State = p.State
			}
		}
		s.Replicas = append(s.Replicas, rr)
	}
	return s
}
