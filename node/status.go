package node

import (
	"path/filepath"
	"time"

	"github.com/vigil-mesh/vigil/node/agent"
	"github.com/vigil-mesh/vigil/node/control"
)

// Status reports the node's peers, folders and replicas.
func (n *Node) Status() control.StatusReport {
	agents, replicas := n.roles()
	s := control.StatusReport{ID: n.id.String(), Name: n.config().Node.Name, Started: n.started.UTC(),
		Peers: []control.PeerReport{}, Folders: []control.FolderReport{}, Replicas: []control.ReplicaReport{}}
	for _, a := range n.net.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	for _, p := range n.net.Peers() {
		pr := control.PeerReport{ID: p.ID.String(), Name: p.Name, Connected: p.Connected,
			RTTMillis: float64(p.RTT.Microseconds()) / 1000, Addrs: []string{}, Problem: p.Problem, Misconfigured: p.Misconfigured}
		for _, a := range p.Addrs {
			pr.Addrs = append(pr.Addrs, a.String())
		}
		s.Peers = append(s.Peers, pr)
	}
	for _, a := range agents {
		st := a.Status()
		fr := control.FolderReport{ID: a.ID(), Path: a.Root(), Entries: st.Entries, Bytes: st.Bytes,
			BackupTo: n.backupNames(a), JournalFirst: st.JournalFirst, JournalLast: st.JournalLast,
			JournalBytes: st.JournalBytes, Errors: agentErrors(st.Problems), Scan: scanReport(st.Scan, time.Now())}
		for _, b := range st.Backups {
			if c, refused := n.consent.Refusal(b.Peer, a.ID(), b.AckedAt); refused {
				fr.Errors = append(fr.Errors, control.ErrorReport{Error: c.Reason, Since: c.Since.UTC()})
			}
		}
		s.JournalBytes += fr.JournalBytes
		s.Folders = append(s.Folders, fr)
	}
	for _, r := range replicas {
		st := r.Status()
		rr := control.ReplicaReport{Source: r.Source().String(), SourceName: r.SourceName(), Folder: r.Folder(),
			Path: filepath.Clean(r.Root()), State: n.replicaPair(r, n.started).State, Files: st.Files, Bytes: st.Bytes,
			AppliedSeq: st.Applied, HeadSeq: max(st.Head, st.Applied), BaselineDoneBytes: st.DoneBytes,
			BaselineTotalBytes: st.TotalBytes, ChunksFetched: r.FetchedChunks(), LastError: st.LastError,
			RetentionHours: r.Retention().Hours(), LastVerify: n.verifyReport(r), Errors: replicaErrors(st.Problems)}
		rr.HistoryBytes, _ = r.History().Chunks.Size()
		s.Replicas = append(s.Replicas, rr)
	}
	s.RefusedFolders = n.refusedRequests()
	return s
}

// backupNames are the names of a's designated backups.
func (n *Node) backupNames(a *agent.Agent) []string {
	var out []string
	for _, b := range a.Backups() {
		out = append(out, n.peerName(b))
	}
	return out
}
