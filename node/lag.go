package node

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/agent"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/replica"
	"github.com/vigil-mesh/vigil/node/wire"
)

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
func (n *Node) Lag() control.LagReport {
	now := time.Now()
	rep := control.LagReport{Node: n.id.String(), Time: now.UTC(), Pairs: []control.LagPair{}}
	agents, replicas := n.roles()
	name := n.config().Node.Name
	for _, a := range agents {
		fs := a.Status()
		head, total := fs.JournalLast, fs.Bytes
		folderErrs := agentErrors(fs.Problems)
		scan := scanReport(fs.Scan, now)
		for _, st := range fs.Backups {
			b := st.Peer
			p := control.LagPair{Source: n.id.String(), SourceName: name, Folder: a.ID(),
				Target: b.String(), TargetName: n.peerName(b), HeadSeq: head}
			p.Errors = append(slices.Clone(folderErrs), ackErrors(st.Errors)...)
			if c, refused := n.consent.Refusal(b, a.ID(), st.AckedAt); refused {
				p.Errors = append(p.Errors, control.ErrorReport{Error: c.Reason, Since: c.Since.UTC()})
			}
			p.MoreErrors = int(st.MoreErrors)
			p.SourceScan = scan
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
			_, bytes, oldest := a.Pending(p.AppliedSeq)
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
			if synced {
				p.PendingPaths = int(st.Pending)
			}
			switch {
			case !n.net.Connected(b):
				p.State = control.StateOffline
				p.OfflineSince = timePtr(st.AckedAt)
			case !synced:
				p.State = control.StateBaseline
			case p.LagSeq > 0 || p.PendingPaths > 0:
				p.State = control.StateCatchingUp
			default:
				p.State = control.StateLive
			}
			rep.Pairs = append(rep.Pairs, p)
		}
	}
	for _, r := range replicas {
		rep.Pairs = append(rep.Pairs, n.replicaPair(r, now))
	}
	n.explainOffline(rep.Pairs, now)
	for i := range rep.Pairs {
		p := &rep.Pairs[i]
		if p.State != control.StateBaseline {
			continue
		}
		if rate, ok := n.rates.Rate(pairKey(p.Source, p.Folder, p.Target)); ok && rate > 0 {
			p.BaselineBytesPerSecond = rate
			eta := float64(max(p.BaselineTotalBytes-p.BaselineDoneBytes, 0)) / rate
			p.BaselineETASeconds = &eta
		}
	}
	return rep
}

// scanReport is the report of a scan under way (nil: none).
func scanReport(sc *agent.ScanStatus, now time.Time) *control.ScanReport {
	if sc == nil {
		return nil
	}
	r := &control.ScanReport{First: sc.First, Started: sc.Started.UTC(), Files: sc.Files, Bytes: sc.Bytes,
		FoundFiles: sc.FoundFiles, FoundBytes: sc.FoundBytes, Listed: sc.Listed}
	if el := now.Sub(sc.Started).Seconds(); el > 0 {
		r.BytesPerSecond = float64(sc.Bytes) / el
	}
	if sc.Listed && r.BytesPerSecond > 0 {
		eta := float64(max(sc.FoundBytes-sc.Bytes, 0)) / r.BytesPerSecond
		r.ETASeconds = &eta
	}
	return r
}

// Sync captures every change the watchers have pending (so that changes
// made before the call are counted) and lets each replica handle what it
// has received.
func (n *Node) Sync(ctx context.Context) error {
	agents, replicas := n.roles()
	for _, a := range agents {
		if _, err := a.Sync(ctx); err != nil {
			return err
		}
	}
	for _, r := range replicas {
		if err := r.Sync(ctx); err != nil {
			return err
		}
	}
	return nil
}

// errorGrace is how long WaitSynced lets errors stand before it gives up:
// long enough for a backup's next acknowledgement to say that a failure it
// reported was retried and is gone.
const errorGrace = 2 * time.Second

// WaitSynced syncs, then waits until every pair is live with nothing to
// apply, or ctx ends. It returns the last report and whether it synced. It
// gives up early (within errorGrace), with the report naming them, when a
// change cannot be backed up: the capture failed, or a pair reports errors
// (a path that cannot be read or written, a journal or disk that cannot be
// written). Sync has tried each of them again first.
func (n *Node) WaitSynced(ctx context.Context) (control.LagReport, bool) {
	if err := n.Sync(ctx); err != nil {
		rep := n.Lag()
		var ue *agent.UnsettledError
		if errors.As(err, &ue) {
			n.reportUnsettled(&rep, ue)
		}
		return rep, false
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var erring time.Time // since when every report had errors
	for {
		rep := n.Lag()
		if allSynced(rep) {
			return rep, true
		}
		switch {
		case !hasErrors(rep):
			erring = time.Time{}
		case erring.IsZero():
			erring = time.Now()
		case time.Since(erring) >= errorGrace:
			return rep, false
		}
		select {
		case <-ctx.Done():
			return n.Lag(), false
		case <-t.C:
		}
	}
}

// reportUnsettled adds the paths a Sync found changing on every read to
// the errors of their folder's pairs.
func (n *Node) reportUnsettled(rep *control.LagReport, ue *agent.UnsettledError) {
	now := time.Now().UTC()
	for i := range rep.Pairs {
		p := &rep.Pairs[i]
		if p.Source != rep.Node || p.Folder != ue.Folder {
			continue
		}
		for i, path := range ue.Paths {
			if i == maxUnsettledReported {
				p.MoreErrors += len(ue.Paths) - i
				break
			}
			p.Errors = append(p.Errors, control.ErrorReport{Path: path, Error: ue.Message(), Since: now})
		}
	}
}

// maxUnsettledReported bounds the paths reportUnsettled names per pair
// (the rest are counted in MoreErrors).
const maxUnsettledReported = 20

// explainOffline says why the other side of each offline pair is not
// connected, when the network knows; a reason that comes from a config (a
// peer ID that does not match, a peer that does not list this node) is an
// error of the pair: it will not go away by waiting.
func (n *Node) explainOffline(pairs []control.LagPair, now time.Time) {
	var peers map[string]mesh.PeerStatus
	for i := range pairs {
		p := &pairs[i]
		if p.State != control.StateOffline {
			continue
		}
		if peers == nil {
			peers = make(map[string]mesh.PeerStatus)
			for _, st := range n.net.Peers() {
				peers[st.ID.String()] = st
			}
		}
		other := p.Target
		if other == n.id.String() {
			other = p.Source
		}
		st := peers[other]
		if st.Problem == "" {
			continue
		}
		p.OfflineReason = st.Problem
		if st.Misconfigured {
			since := now
			if p.OfflineSince != nil {
				since = *p.OfflineSince
			}
			p.Errors = append(p.Errors, control.ErrorReport{Error: "cannot connect: " + st.Problem, Since: since.UTC()})
		}
	}
}

func allSynced(rep control.LagReport) bool {
	for _, p := range rep.Pairs {
		if p.State != control.StateLive || p.LagSeq != 0 || p.PendingPaths > 0 || len(p.Errors) > 0 || p.MoreErrors > 0 {
			return false
		}
	}
	return true
}

// replicaPair is the lag of a replica this node holds.
func (n *Node) replicaPair(r *replica.Replica, now time.Time) control.LagPair {
	st := r.Status()
	p := control.LagPair{Source: r.Source().String(), SourceName: r.SourceName(), Folder: r.Folder(),
		Target: n.id.String(), TargetName: n.config().Node.Name,
		HeadSeq: max(st.Head, st.Applied), AppliedSeq: st.Applied,
		BaselineDoneBytes: st.DoneBytes, BaselineTotalBytes: st.TotalBytes,
		LastApplied: timePtr(st.AppliedAt), Errors: replicaErrors(st.Problems), PendingPaths: st.Unsent}
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
	case !n.net.Connected(r.Source()):
		p.State = control.StateOffline
	case !st.BaselineOK:
		p.State = control.StateBaseline
	case p.LagSeq > 0 || p.PendingPaths > 0:
		p.State = control.StateCatchingUp
	default:
		p.State = control.StateLive
	}
	return p
}

func hasErrors(rep control.LagReport) bool {
	for _, p := range rep.Pairs {
		if len(p.Errors) > 0 || p.MoreErrors > 0 {
			return true
		}
	}
	return false
}

func agentErrors(ps []agent.Problem) []control.ErrorReport {
	out := make([]control.ErrorReport, 0, len(ps))
	for _, p := range ps {
		out = append(out, control.ErrorReport{Path: p.Path, Error: p.Err, Since: p.Since.UTC()})
	}
	return out
}

func replicaErrors(ps []replica.Problem) []control.ErrorReport {
	out := make([]control.ErrorReport, 0, len(ps))
	for _, p := range ps {
		out = append(out, control.ErrorReport{Path: p.Path, Error: p.Err, Since: p.Since.UTC()})
	}
	return out
}

func ackErrors(es []wire.AckError) []control.ErrorReport {
	out := make([]control.ErrorReport, 0, len(es))
	for _, e := range es {
		out = append(out, control.ErrorReport{Path: e.Path, Error: e.Err, Since: e.Since.UTC()})
	}
	return out
}
