package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/replica"
	"github.com/vigil-mesh/vigil/node/restore"
)

// data is what restore, verify and history read of a running replica.
func (n *Node) data(r *replica.Replica) *restore.Replica {
	return &restore.Replica{DB: n.db, History: r.History(), Root: r.Root(), Source: r.Source().String(),
		SourceName: r.SourceName(), Folder: r.Folder(), Rows: r.Rows(), DataDir: n.config().DataPath(),
		Log:      n.log.With("subsystem", "restore", "source", r.SourceName(), "folder", r.Folder()),
		Retained: r.Retention() > 0, Live: r}
}

// replicasOf returns the running replicas of source (ID or name) and
// folder ("" matches any); ErrNoReplica when one was named and none matches.
func (n *Node) replicasOf(source, folder string) ([]*replica.Replica, error) {
	var out []*replica.Replica
	_, replicas := n.roles()
	for _, r := range replicas {
		if (source == "" || restore.MatchSource(source, r.Source().String(), r.SourceName())) && (folder == "" || r.Folder() == folder) {
			out = append(out, r)
		}
	}
	if len(out) == 0 && (source != "" || folder != "") {
		return nil, restore.NoReplica(source, folder, n.config().File)
	}
	return out, nil
}

// findReplica returns the running replica of folder from source.
func (n *Node) findReplica(source, folder string) (*replica.Replica, error) {
	_, replicas := n.roles()
	for _, r := range replicas {
		if restore.MatchSource(source, r.Source().String(), r.SourceName()) && r.Folder() == folder {
			return r, nil
		}
	}
	return nil, restore.NoReplica(source, folder, n.config().File)
}

// Restore writes the state of a replica held by this running node into
// req.To (see restore.Restore).
func (n *Node) Restore(ctx context.Context, req restore.RestoreRequest, progress func(done, total int64)) (restore.RestoreResult, error) {
	r, err := n.findReplica(req.Source, req.Folder)
	if err != nil {
		return restore.RestoreResult{}, err
	}
	return restore.Restore(ctx, n.data(r), req, progress)
}

// Verify checks the replicas this running node holds (all of them when
// source and folder are empty); see restore.Verify. The newest report of
// each replica is kept for status (LastVerify).
func (n *Node) Verify(ctx context.Context, source, folder string) ([]restore.VerifyReport, error) {
	reps, err := n.replicasOf(source, folder)
	if err != nil {
		return nil, err
	}
	out := make([]restore.VerifyReport, 0, len(reps))
	for _, r := range reps {
		rep, err := restore.Verify(ctx, n.data(r))
		if err != nil {
			return out, err
		}
		n.verifyMu.Lock()
		n.lastVerify[r] = &rep
		n.verifyMu.Unlock()
		out = append(out, rep)
	}
	return out, nil
}

func (n *Node) verifyReport(r *replica.Replica) *restore.VerifyReport {
	n.verifyMu.Lock()
	defer n.verifyMu.Unlock()
	return n.lastVerify[r]
}

// History returns the versions of path p (oldest first) of a replica this
// running node holds.
func (n *Node) History(source, folder, p string) ([]history.Version, error) {
	r, err := n.findReplica(source, folder)
	if err != nil {
		return nil, err
	}
	return restore.History(n.data(r), p)
}

// The control endpoint serves the node's restore points.
var _ control.PointsBackend = (*Node)(nil)

// Points lists the restore points of a replica this running node holds
// (see restore.Points).
func (n *Node) Points(source, folder string, since time.Time, limit int) (restore.PointsReport, error) {
	r, err := n.findReplica(source, folder)
	if err != nil {
		return restore.PointsReport{}, err
	}
	return restore.Points(n.data(r), since, limit)
}

// PointsOffline is Points for a node that is not running.
func PointsOffline(cfg *config.Config, source, folder string, since time.Time, limit int) (restore.PointsReport, error) {
	if source == "" || folder == "" {
		return restore.PointsReport{}, restore.UserError(restore.ErrBadRequest, "points: source and folder are required")
	}
	var rep restore.PointsReport
	err := eachOffline(cfg, nil, source, folder, func(d *restore.Replica) (err error) {
		rep, err = restore.Points(d, since, limit)
		return err
	})
	return rep, err
}

// Specs lists the replicas cfg says this node keeps.
func Specs(cfg *config.Config) ([]restore.Spec, error) {
	var out []restore.Spec
	for _, bf := range cfg.BackupFor {
		pc, ok := cfg.PeerByName(bf.Peer)
		if !ok {
			continue
		}
		id, err := pc.PeerID()
		if err != nil {
			return nil, err
		}
		for _, f := range bf.Folders {
			out = append(out, restore.Spec{Source: id.String(), SourceName: pc.Name, Folder: f, Retention: bf.Retention.D()})
		}
	}
	return out, nil
}

// eachOffline calls fn for each replica of source/folder that cfg names,
// with the data directory opened offline (the node must not be running);
// they log to log (nil: nowhere).
func eachOffline(cfg *config.Config, log *slog.Logger, source, folder string, fn func(*restore.Replica) error) error {
	specs, err := Specs(cfg)
	if err != nil {
		return err
	}
	specs, err = restore.Select(specs, source, folder, cfg.File)
	if err != nil {
		return err
	}
	return restore.EachOffline(cfg.DataPath(), specs, log, fn)
}

// RestoreOffline is Restore for a node that is not running: it opens the
// data directory's index itself (and fails with store.ErrLocked if a node
// holds it). When ctx ends, the restore is undone. It logs to log (nil:
// nowhere).
func RestoreOffline(ctx context.Context, cfg *config.Config, log *slog.Logger, req restore.RestoreRequest, progress func(done, total int64)) (restore.RestoreResult, error) {
	if req.Source == "" || req.Folder == "" {
		return restore.RestoreResult{}, restore.UserError(restore.ErrBadRequest, "restore: source and folder are required")
	}
	var res restore.RestoreResult
	err := eachOffline(cfg, log, req.Source, req.Folder, func(d *restore.Replica) (err error) {
		res, err = restore.Restore(ctx, d, req, progress)
		return err
	})
	return res, err
}

// VerifyOffline is the local part of Verify (against this node's own
// records) for a node that is not running.
func VerifyOffline(cfg *config.Config, source, folder string) ([]restore.VerifyReport, error) {
	var out []restore.VerifyReport
	err := eachOffline(cfg, nil, source, folder, func(d *restore.Replica) error {
		rep, err := restore.Verify(context.Background(), d)
		if err == nil {
			out = append(out, rep)
		}
		return err
	})
	return out, err
}

// HistoryOffline is History for a node that is not running.
func HistoryOffline(cfg *config.Config, source, folder, p string) ([]history.Version, error) {
	if source == "" || folder == "" {
		return nil, restore.UserError(restore.ErrBadRequest, "history: source and folder are required")
	}
	var vs []history.Version
	err := eachOffline(cfg, nil, source, folder, func(d *restore.Replica) (err error) {
		vs, err = restore.History(d, p)
		return err
	})
	return vs, err
}

// runScrub verifies every replica every scrub_interval (0: never) and logs
// the problems found; the reports are in the status (LastVerify).
func (n *Node) runScrub(ctx context.Context) error {
	log := n.log.With("subsystem", "scrub")
	last := time.Now()
	for {
		// a reload may change the interval or the replicas
		n.mu.RLock()
		every, reloaded := n.cfg.Node.ScrubInterval.D(), n.reloaded
		n.mu.RUnlock()
		var due <-chan time.Time
		var t *time.Timer
		if every > 0 {
			t = time.NewTimer(time.Until(last.Add(every)))
			due = t.C
		}
		fired := false
		select {
		case <-ctx.Done():
		case <-reloaded:
		case <-due:
			fired = true
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		if !fired {
			continue
		}
		last = time.Now()
		_, replicas := n.roles()
		for _, r := range replicas {
			// verify, and repair from the source what is wrong when it is
			// online (else the problems stay in the report until the next
			// scrub or `vigil repair`)
			rr, err := n.repairReplica(ctx, r, true)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				log.Error("scrub", "source", r.SourceName(), "folder", r.Folder(), "err", err)
			}
			for _, p := range rr.Before.Problems {
				log.Warn("scrub found a problem", "source", rr.SourceName, "folder", rr.Folder,
					"kind", p.Kind, "path", p.Path, "detail", p.Detail)
			}
			switch {
			case rr.Before.OK:
				log.Info("scrub ok", "source", rr.SourceName, "folder", rr.Folder, "files", rr.Before.Files,
					"bytes", rr.Before.Bytes, "history_chunks", rr.Before.HistoryChunks)
			case err == nil && rr.After.OK:
				log.Info("scrub repaired the replica from the source", "source", rr.SourceName, "folder", rr.Folder,
					"problems", len(rr.Before.Problems))
			}
		}
	}
}

// RepairReport is what `vigil repair` did to one replica: what verify found
// before, and what it finds after the repair.
type RepairReport = control.RepairReport

// Repair verifies the replicas this running node holds (all when source
// and folder are empty) and brings what verify found wrong back to the
// source's current state: damaged and missing files fetched again, extra
// ones removed, damaged history chunks fetched again or dropped. It needs
// each source online; then it verifies again.
func (n *Node) Repair(ctx context.Context, source, folder string) ([]control.RepairReport, error) {
	reps, err := n.replicasOf(source, folder)
	if err != nil {
		return nil, err
	}
	var out []control.RepairReport
	for _, r := range reps {
		rr, err := n.repairReplica(ctx, r, false)
		out = append(out, rr)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// repairReplica verifies r and repairs what verify found; with auto (the
// scrub) only when the source is online.
func (n *Node) repairReplica(ctx context.Context, r *replica.Replica, auto bool) (control.RepairReport, error) {
	rr := control.RepairReport{Source: r.Source().String(), SourceName: r.SourceName(), Folder: r.Folder()}
	before, err := restore.Verify(ctx, n.data(r))
	if err != nil {
		return rr, err
	}
	rr.Before, rr.After = before, before
	n.verifyMu.Lock()
	n.lastVerify[r] = &before
	n.verifyMu.Unlock()
	fix := fixOf(before)
	if fix.empty() || (auto && !n.net.Connected(r.Source())) {
		return rr, nil
	}
	if err := r.Repair(ctx, fix.Fix); err != nil {
		return rr, fmt.Errorf("node: repair %s/%s: %w", r.SourceName(), r.Folder(), err)
	}
	after, err := restore.Verify(ctx, n.data(r))
	if err != nil {
		return rr, err
	}
	rr.After = after
	n.verifyMu.Lock()
	n.lastVerify[r] = &after
	n.verifyMu.Unlock()
	return rr, nil
}

type fixPlan struct{ replica.Fix }

func (f fixPlan) empty() bool {
	return len(f.Damaged)+len(f.Missing)+len(f.Extra)+len(f.HistoryChunks) == 0
}

// fixOf turns verify's problems into what repair does about them.
func fixOf(rep restore.VerifyReport) fixPlan {
	var f fixPlan
	for _, p := range rep.Problems {
		switch p.Kind {
		case "differs":
			f.Damaged = append(f.Damaged, p.Path)
		case "missing", "differs-from-source":
			f.Missing = append(f.Missing, p.Path)
		case "extra":
			f.Extra = append(f.Extra, p.Path)
		case "history-chunk":
			if c, err := cid.Decode(p.Chunk); err == nil {
				f.HistoryChunks = append(f.HistoryChunks, c)
			}
		}
	}
	return f
}
