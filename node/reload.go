package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/control"
)

// WithConfigLoader gives the node the function that reads its config file
// again: Reload calls it (SIGHUP, `vigil reload`).
func WithConfigLoader(load func() (*config.Config, error)) Option {
	return func(o *options) { o.loadConfig = load }
}

// ErrReloadRefused wraps the reason a new config was not applied; the node
// goes on with the config it runs.
var ErrReloadRefused = control.ErrReloadRefused

// ReloadReport says what a reload changed.
type ReloadReport = control.ReloadReport

// Reload reads the config file again and applies it (see Apply). An
// invalid file is refused: nothing changes.
func (n *Node) Reload(ctx context.Context) (ReloadReport, error) {
	if n.opts.loadConfig == nil {
		return ReloadReport{}, fmt.Errorf("%w: this node was not started from a config file", ErrReloadRefused)
	}
	cfg, err := n.opts.loadConfig()
	if err != nil {
		return ReloadReport{}, fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	return n.Apply(ctx, cfg)
}

// Apply makes the running node follow cfg (validated by the caller)
// without a restart: the allow-list of peers is replaced, folders and
// replicas that were added start, those removed stop (their data stays on
// disk), and those whose entry changed (path, backups, ignore patterns,
// retention, or the node settings agents use) are rebuilt; the others go
// on undisturbed. The listen, control and metrics addresses take effect at
// the next start (listed in NeedsRestart); a new data_dir is refused.
// Parts that could not be built are listed in Errors (and the error
// returned): they are tried again by the next reload.
func (n *Node) Apply(ctx context.Context, cfg *config.Config) (ReloadReport, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	n.runMu.Lock()
	stopping := n.runCtx != nil && n.runCtx.Err() != nil
	n.runMu.Unlock()
	if stopping {
		return ReloadReport{}, fmt.Errorf("%w: the node is stopping", ErrReloadRefused)
	}
	rep := ReloadReport{Added: []string{}, Removed: []string{}, Changed: []string{}}
	old := n.config()
	if cfg.DataPath() != old.DataPath() {
		return rep, fmt.Errorf("%w: node.data_dir changed from %s to %s: the data directory moves only with the node stopped (stop it, move the directory, start it)",
			ErrReloadRefused, old.DataPath(), cfg.DataPath())
	}
	peers, err := meshPeers(cfg, n.id)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	diffPeers(old, cfg, &rep)
	// From here requests wait for the parts of the new config (see
	// agentFor): a peer the new config adds may connect, and ask for a
	// folder, as soon as it is allowed.
	n.mu.Lock()
	n.building = true
	n.mu.Unlock()
	if peersChanged(&rep) {
		if err := n.net.SetPeers(peers); err != nil {
			n.mu.Lock()
			n.settleLocked()
			n.mu.Unlock()
			return rep, fmt.Errorf("%w: %w", ErrReloadRefused, err)
		}
	}
	if !slices.Equal(old.Node.Listen, cfg.Node.Listen) {
		rep.NeedsRestart = append(rep.NeedsRestart, "node.listen")
	}
	if old.Node.Control != cfg.Node.Control {
		rep.NeedsRestart = append(rep.NeedsRestart, "node.control")
	}
	if old.Node.Metrics != cfg.Node.Metrics {
		rep.NeedsRestart = append(rep.NeedsRestart, "node.metrics")
	}
	if cfg.Node.Name != old.Node.Name {
		rep.Changed = append(rep.Changed, "node.name")
	}
	if cfg.Node.ScrubInterval != old.Node.ScrubInterval {
		rep.Changed = append(rep.Changed, "node.scrub_interval")
	}

	// The parts that go or change stop first: a rebuilt folder needs its
	// journal and topic free.
	want := wantedParts(cfg)
	wanted := make(map[string]partWant, len(want))
	for _, w := range want {
		wanted[w.key] = w
	}
	n.mu.Lock()
	n.building = true
	running := make(map[string]*part, len(n.parts))
	var keep, stop []*part
	for _, p := range n.parts {
		if w, ok := wanted[p.key]; ok && w.spec == p.spec {
			keep = append(keep, p)
			running[p.key] = p
		} else {
			stop = append(stop, p)
		}
	}
	n.setPartsLocked(keep)
	n.mu.Unlock()
	stopped := make(map[string]bool, len(stop))
	var errs []error
	for _, p := range stop {
		stopped[p.key] = true
		if err := n.stopPart(p); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", p.name(), err))
		}
		if _, ok := wanted[p.key]; !ok {
			rep.Removed = append(rep.Removed, p.name())
		}
	}
	var next, started []*part
	for _, w := range want {
		if p := running[w.key]; p != nil {
			next = append(next, p)
			continue
		}
		p, err := n.build(cfg, w)
		if err != nil {
			n.log.Error("reload: could not start", "part", w.name(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", w.name(), err))
			continue
		}
		next = append(next, p)
		started = append(started, p)
		if stopped[w.key] {
			rep.Changed = append(rep.Changed, w.name())
		} else {
			rep.Added = append(rep.Added, w.name())
		}
	}
	n.mu.Lock()
	n.cfg = cfg
	n.setPartsLocked(next)
	n.settleLocked()
	close(n.reloaded)
	n.reloaded = make(chan struct{})
	n.mu.Unlock()
	for _, p := range started {
		n.startPart(p)
		if p.agent != nil {
			n.askBackupsOf(p)
		}
	}
	for _, err := range errs {
		rep.Errors = append(rep.Errors, err.Error())
	}
	n.log.Info("config reloaded", "added", rep.Added, "removed", rep.Removed, "changed", rep.Changed,
		"needs_restart", rep.NeedsRestart, "errors", len(rep.Errors))
	if len(errs) > 0 {
		return rep, fmt.Errorf("node: reload: %w", errors.Join(errs...))
	}
	return rep, nil
}

// name is how a reload report names the part.
func (w partWant) name() string {
	if w.folder != nil {
		return "folder " + w.folder.ID
	}
	return "replica " + w.backupFor.Peer + "/" + w.folderName
}

// name is how a reload report names p, by the config it was built from.
func (p *part) name() string {
	if p.agent != nil {
		return "folder " + p.agent.ID()
	}
	return "replica " + p.rep.SourceName() + "/" + p.rep.Folder()
}

func peersChanged(rep *ReloadReport) bool {
	isPeer := func(s string) bool { return strings.HasPrefix(s, "peer ") }
	return slices.ContainsFunc(rep.Added, isPeer) || slices.ContainsFunc(rep.Removed, isPeer) || slices.ContainsFunc(rep.Changed, isPeer)
}

// diffPeers lists the peers added, removed and changed from old to cfg.
func diffPeers(old, cfg *config.Config, rep *ReloadReport) {
	was := make(map[string]config.PeerConfig, len(old.Peers))
	for _, p := range old.Peers {
		was[p.ID] = p
	}
	for _, p := range cfg.Peers {
		o, ok := was[p.ID]
		switch {
		case !ok:
			rep.Added = append(rep.Added, "peer "+p.Name)
		case o.Name != p.Name || !slices.Equal(o.Addrs, p.Addrs):
			rep.Changed = append(rep.Changed, "peer "+p.Name)
		}
		delete(was, p.ID)
	}
	for _, p := range old.Peers {
		if _, gone := was[p.ID]; gone {
			rep.Removed = append(rep.Removed, "peer "+p.Name)
		}
	}
}

// askBackupsOf asks the connected backups of a folder that a reload
// started whether they keep it.
func (n *Node) askBackupsOf(p *part) {
	n.runMu.Lock()
	ctx := n.runCtx
	n.runMu.Unlock()
	if ctx == nil {
		return
	}
	var wg sync.WaitGroup
	for _, b := range p.agent.Backups() {
		if n.net.Connected(b) {
			wg.Go(func() { n.askConsent(ctx, b) })
		}
	}
	wg.Wait()
}
