package node

import (
	"context"
	"time"
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
	Source             string     `json:"source"`
	SourceName         string     `json:"source_name"`
	Folder             string     `json:"folder"`
	Target             string     `json:"target"`
	TargetName         string     `json:"target_name"`
	State              string     `json:"state"`
	HeadSeq            uint64     `json:"head_seq"`
	AppliedSeq         uint64     `json:"applied_seq"`
	LagSeq             uint64     `json:"lag_seq"`
	LagBytes           int64      `json:"lag_bytes"`
	LagSeconds         float64    `json:"lag_seconds"`
	BaselineDoneBytes  int64      `json:"baseline_done_bytes"`
	BaselineTotalBytes int64      `json:"baseline_total_bytes"`
	LastApplied        *time.Time `json:"last_applied"`
	OfflineSince       *time.Time `json:"offline_since,omitempty"` // last time the backup was heard from
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Lag reports every pair this node knows: one per designated backup of
// each folder it protects (from the backups' durable acknowledgements) and
// one per replica it holds.
func (n *Node) Lag() LagReport {
	now := time.Now()
	rep := LagReport{Node: n.id.String(), Time: now.UTC(), Pairs: []LagPair{}}
	for _, a := range n.agents {
		head := a.j.Last()
		a.mu.RLock()
		total := a.files.bytes
		for _, b := range a.backups {
			st := *a.acks[b]
			p := LagPair{Source: n.id.String(), SourceName: n.cfg.Node.Name, Folder: a.id,
				Target: b.String(), TargetName: n.peerName(b), HeadSeq: head}
			synced := !st.AckedAt.IsZero() && !st.Baseline && !st.Reset
			if synced {
				p.AppliedSeq = min(st.Applied, head)
				p.BaselineDoneBytes, p.BaselineTotalBytes = total, total
				if st.TotalBytes > 0 {
					p.BaselineDoneBytes, p.BaselineTotalBytes = st.TotalBytes, st.TotalBytes
				}
			} else {
				p.BaselineDoneBytes, p.BaselineTotalBytes = st.DoneBytes, st.TotalBytes
				if p.BaselineTotalBytes == 0 {
					p.BaselineTotalBytes = total
				}
			}
			p.LagSeq = head - p.AppliedSeq
			cnt, bytes, oldest := a.j.Pending(p.AppliedSeq)
			_ = cnt
			p.LagBytes = bytes
			if !synced {
				p.LagBytes += max(p.BaselineTotalBytes-p.BaselineDoneBytes, 0)
			}
			if p.LagSeq > 0 || !synced {
				switch {
				case !oldest.IsZero():
					p.LagSeconds = now.Sub(oldest).Seconds()
				case !st.AckedAt.IsZero():
					p.LagSeconds = now.Sub(st.AckedAt).Seconds()
				}
			}
			p.LastApplied = timePtr(st.AppliedAt)
			switch {
			case !n.mesh.Connected(b):
				p.State = StateOffline
				p.OfflineSince = timePtr(st.AckedAt)
			case !synced:
				p.State = StateBaseline
			case p.LagSeq > 0:
				p.State = StateCatchingUp
			default:
				p.State = StateLive
			}
			rep.Pairs = append(rep.Pairs, p)
		}
		a.mu.RUnlock()
	}
	for _, r := range n.replicas {
		st := r.status()
		p := LagPair{Source: r.source.String(), SourceName: r.sourceName, Folder: r.folder,
			Target: n.id.String(), TargetName: n.cfg.Node.Name,
			HeadSeq: max(st.Head, st.Applied), AppliedSeq: st.Applied,
			BaselineDoneBytes: st.DoneBytes, BaselineTotalBytes: st.TotalBytes,
			LastApplied: timePtr(st.AppliedAt)}
		if st.BaselineOK && st.TotalBytes == 0 {
			p.BaselineDoneBytes, p.BaselineTotalBytes = st.Bytes, st.Bytes
		}
		p.LagSeq = p.HeadSeq - p.AppliedSeq
		if !st.BaselineOK {
			p.LagBytes = max(st.TotalBytes-st.DoneBytes, 0)
		}
		if p.LagSeq > 0 {
			switch {
			case !st.OldestTime.IsZero():
				p.LagSeconds = now.Sub(st.OldestTime).Seconds()
			case !st.BehindSince.IsZero():
				p.LagSeconds = now.Sub(st.BehindSince).Seconds()
			}
		}
		switch {
		case !n.mesh.Connected(r.source):
			p.State = StateOffline
		case !st.BaselineOK:
			p.State = StateBaseline
		case p.LagSeq > 0:
			p.State = StateCatchingUp
		default:
			p.State = StateLive
		}
		rep.Pairs = append(rep.Pairs, p)
	}
	return rep
}

// Sync captures every change the watchers have pending (so that changes
// made before the call are counted) and lets each replica handle what it
// has received.
func (n *Node) Sync(ctx context.Context) error {
	for _, a := range n.agents {
		if _, err := a.sync(ctx); err != nil {
			return err
		}
	}
	for _, r := range n.replicas {
		if err := r.sync(ctx); err != nil {
			return err
		}
	}
	return nil
}

// WaitSynced syncs, then waits until every pair is live with nothing to
// apply, or ctx ends. It returns the last report and whether it synced.
func (n *Node) WaitSynced(ctx context.Context) (LagReport, bool) {
	if err := n.Sync(ctx); err != nil {
		return n.Lag(), false
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		rep := n.Lag()
		if allSynced(rep) {
			return rep, true
		}
		select {
		case <-ctx.Done():
			return n.Lag(), false
		case <-t.C:
		}
	}
}

func allSynced(rep LagReport) bool {
	for _, p := range rep.Pairs {
		if p.State != StateLive || p.LagSeq != 0 {
			return false
		}
	}
	return true
}
