package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/agent"
	"github.com/vigil-mesh/vigil/node/config"
)

// cloneConfig copies cfg deeply enough that changing the copy's lists
// leaves the running node's config alone.
func cloneConfig(cfg *config.Config) *config.Config {
	cp := *cfg
	cp.Node.Listen = slices.Clone(cfg.Node.Listen)
	cp.Peers = slices.Clone(cfg.Peers)
	for i := range cp.Peers {
		cp.Peers[i].Addrs = slices.Clone(cp.Peers[i].Addrs)
	}
	cp.Folders = slices.Clone(cfg.Folders)
	for i := range cp.Folders {
		cp.Folders[i].BackupTo = slices.Clone(cp.Folders[i].BackupTo)
		cp.Folders[i].Ignore = slices.Clone(cp.Folders[i].Ignore)
	}
	cp.BackupFor = slices.Clone(cfg.BackupFor)
	for i := range cp.BackupFor {
		cp.BackupFor[i].Folders = slices.Clone(cp.BackupFor[i].Folders)
	}
	return &cp
}

// reload applies to the running node its config changed by edit, as a
// reload of an edited vigil.yaml does.
func (tn *testNode) reload(edit func(*config.Config)) ReloadReport {
	tn.t.Helper()
	cfg := cloneConfig(tn.cfg)
	edit(cfg)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		tn.t.Fatalf("edited config of %s: %v", tn.name, err)
	}
	rep, err := tn.n.Apply(context.Background(), cfg)
	if err != nil {
		tn.t.Fatalf("reload %s: %v (%+v)", tn.name, err, rep)
	}
	tn.cfg = cfg
	return rep
}

func agentOf(tn *testNode, folder string) *agent.Agent {
	agents, _ := tn.n.roles()
	for _, a := range agents {
		if a.ID() == folder {
			return a
		}
	}
	return nil
}

// A folder added to a running node (and the backup_for entry added to its
// backup) is protected and replicated without a restart, and the folder
// that was there goes on undisturbed (same agent, same journal).
func TestReloadAddsAFolderWithoutDisturbingTheOthers(t *testing.T) {
	docs, photos := t.TempDir(), t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", docs, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	writeFile(t, filepath.Join(docs, "a"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(photos, "p.jpg"), []byte("jpeg"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	before := agentOf(lap, "docs")

	rep := nas.reload(func(cfg *config.Config) {
		cfg.BackupFor = append(cfg.BackupFor, config.BackupForConfig{Peer: "laptop", Folders: []string{"photos"}})
	})
	if !slices.Equal(rep.Added, []string{"replica laptop/photos"}) || len(rep.Changed)+len(rep.Removed) != 0 {
		t.Fatalf("nas reload report: %+v", rep)
	}
	rep = lap.reload(func(cfg *config.Config) {
		cfg.Folders = append(cfg.Folders, config.FolderConfig{ID: "photos", Path: photos, BackupTo: []string{"nas"}})
	})
	if !slices.Equal(rep.Added, []string{"folder photos"}) || len(rep.Changed)+len(rep.Removed) != 0 {
		t.Fatalf("laptop reload report: %+v", rep)
	}
	if agentOf(lap, "docs") != before {
		t.Fatal("the docs agent was rebuilt by a reload that did not change it")
	}
	writeFile(t, filepath.Join(docs, "b"), []byte("b"), 0o644)
	writeFile(t, filepath.Join(photos, "q.jpg"), []byte("jpeg2"), 0o644)
	lap.waitSynced(30 * time.Second)
	nas.waitSynced(30 * time.Second)
	requireSame(t, docs, nas.replicaDir(lap, "docs"))
	requireSame(t, photos, nas.replicaDir(lap, "photos"))
	if len(lap.n.Lag().Pairs) != 2 || len(nas.n.Lag().Pairs) != 2 {
		t.Fatalf("lag pairs: laptop %+v, nas %+v", lap.n.Lag().Pairs, nas.n.Lag().Pairs)
	}
}

// A folder removed from the config stops being protected: it leaves lag,
// later changes are not captured, and its replica stays on the backup.
func TestReloadRemovesAFolderAndKeepsItsData(t *testing.T) {
	docs, photos := t.TempDir(), t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", docs, "nas")
	c.protect("laptop", "photos", photos, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	writeFile(t, filepath.Join(photos, "p.jpg"), []byte("jpeg"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	rep := lap.reload(func(cfg *config.Config) { cfg.Folders = cfg.Folders[:1] })
	if !slices.Equal(rep.Removed, []string{"folder photos"}) {
		t.Fatalf("report: %+v", rep)
	}
	rep = nas.reload(func(cfg *config.Config) { cfg.BackupFor = cfg.BackupFor[:1] })
	if !slices.Equal(rep.Removed, []string{"replica laptop/photos"}) {
		t.Fatalf("report: %+v", rep)
	}
	for _, p := range append(lap.n.Lag().Pairs, nas.n.Lag().Pairs...) {
		if p.Folder == "photos" {
			t.Fatalf("photos still in lag after its removal: %+v", p)
		}
	}
	if _, err := os.Stat(filepath.Join(nas.replicaDir(lap, "photos"), "p.jpg")); err != nil {
		t.Fatalf("the replica of a folder removed from backup_for is gone: %v", err)
	}
	writeFile(t, filepath.Join(docs, "a"), []byte("a"), 0o644)
	lap.waitSynced(30 * time.Second)
	requireSame(t, docs, nas.replicaDir(lap, "docs"))
}

// A peer added by a reload is connected and can back up a folder; ignore
// patterns changed by a reload apply at once.
func TestReloadAddsAPeerAndChangesIgnorePatterns(t *testing.T) {
	docs := t.TempDir()
	c := newCluster(t, "laptop", "nas", "nas2")
	c.protect("laptop", "docs", docs, "nas")
	lap, nas, nas2 := c.nodes["laptop"], c.nodes["nas"], c.nodes["nas2"]
	lap.cfg.Peers = slices.DeleteFunc(lap.cfg.Peers, func(p config.PeerConfig) bool { return p.Name == "nas2" })
	var nas2Peer config.PeerConfig
	for _, p := range cloneConfig(nas.cfg).Peers {
		if p.Name == "nas2" {
			nas2Peer = p
		}
	}
	lap.cfg.Folders[0].Ignore = []string{"*.tmp"}
	writeFile(t, filepath.Join(docs, "a"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(docs, "build.tmp"), []byte("tmp"), 0o644)
	lap.start()
	nas.start()
	nas2.start()
	lap.waitSynced(30 * time.Second)
	if _, err := os.Stat(filepath.Join(nas.replicaDir(lap, "docs"), "build.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an ignored file was replicated: %v", err)
	}
	if lap.n.net.Connected(nas2.id) {
		t.Fatal("laptop connected to a peer it does not list")
	}

	nas2.reload(func(cfg *config.Config) {
		cfg.BackupFor = append(cfg.BackupFor, config.BackupForConfig{Peer: "laptop", Folders: []string{"docs"}})
	})
	rep := lap.reload(func(cfg *config.Config) {
		cfg.Peers = append(cfg.Peers, nas2Peer)
		cfg.Folders[0].BackupTo = []string{"nas", "nas2"}
		cfg.Folders[0].Ignore = nil
	})
	if !slices.Equal(rep.Added, []string{"peer nas2"}) || !slices.Equal(rep.Changed, []string{"folder docs"}) {
		t.Fatalf("report: %+v", rep)
	}
	lap.waitSynced(30 * time.Second)
	pairs := lap.n.Lag().Pairs
	if len(pairs) != 2 {
		t.Fatalf("want a pair per backup, got %+v", pairs)
	}
	requireSame(t, docs, nas.replicaDir(lap, "docs"))
	requireSame(t, docs, nas2.replicaDir(lap, "docs"))
	if _, err := os.Stat(filepath.Join(nas2.replicaDir(lap, "docs"), "build.tmp")); err != nil {
		t.Fatalf("a file no longer ignored was not replicated: %v", err)
	}
}

// An invalid config is refused and the node goes on with the one it runs;
// a new data_dir is refused too.
func TestReloadRefusesAnInvalidConfigAndKeepsTheRunningOne(t *testing.T) {
	docs := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", docs, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	bad := errors.New("vigil.yaml:7: folders[0].path: no such directory")
	lap.opts = append(lap.opts, WithConfigLoader(func() (*config.Config, error) { return nil, bad }))
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	_, err := lap.n.Reload(context.Background())
	if !errors.Is(err, ErrReloadRefused) || !strings.Contains(err.Error(), "folders[0].path") {
		t.Fatalf("reload of an invalid config: %v", err)
	}
	moved := cloneConfig(lap.cfg)
	moved.Node.DataDir = filepath.Join(t.TempDir(), "elsewhere")
	if _, err := lap.n.Apply(context.Background(), moved); !errors.Is(err, ErrReloadRefused) || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("reload moving data_dir: %v", err)
	}
	if lap.n.config() != lap.cfg {
		t.Fatal("a refused reload replaced the running config")
	}
	writeFile(t, filepath.Join(docs, "a"), []byte("a"), 0o644)
	lap.waitSynced(30 * time.Second)
	requireSame(t, docs, nas.replicaDir(lap, "docs"))
}

// A backup that has no backup_for entry for a folder says so: the source's
// lag and status name the reason, wait-synced gives up at once with it,
// the backup's status lists the folder it was asked for, and adding the
// entry by a reload of the backup clears it all.
func TestBackupWithoutBackupForEntryIsExplainedOnBothSides(t *testing.T) {
	docs := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.cfg.Folders = append(lap.cfg.Folders, config.FolderConfig{ID: "docs", Path: docs, BackupTo: []string{"nas"}})
	writeFile(t, filepath.Join(docs, "a"), []byte("a"), 0o644)
	lap.start()
	nas.start()
	rep := waitNotSynced(t, lap, 30*time.Second, "", "nas has no backup_for entry for laptop/docs")
	if !strings.Contains(rep.Pairs[0].Errors[0].Error, "vigil reload") {
		t.Errorf("the reason does not say how to fix it: %q", rep.Pairs[0].Errors[0].Error)
	}
	st := lap.n.Status()
	if len(st.Folders[0].Errors) == 0 || !strings.Contains(st.Folders[0].Errors[0].Error, "no backup_for entry") {
		t.Fatalf("laptop status folder errors: %+v", st.Folders[0].Errors)
	}
	refused := nas.n.Status().RefusedFolders
	if len(refused) != 1 || refused[0].SourceName != "laptop" || refused[0].Folder != "docs" {
		t.Fatalf("nas status refused_folders: %+v", refused)
	}

	nas.reload(func(cfg *config.Config) {
		cfg.BackupFor = append(cfg.BackupFor, config.BackupForConfig{Peer: "laptop", Folders: []string{"docs"}})
	})
	lap.waitSynced(30 * time.Second)
	requireSame(t, docs, nas.replicaDir(lap, "docs"))
	if r := nas.n.Status().RefusedFolders; len(r) != 0 {
		t.Fatalf("nas still lists refused folders after accepting them: %+v", r)
	}
	if errs := lap.n.Status().Folders[0].Errors; len(errs) != 0 {
		t.Fatalf("laptop folder errors after the backup accepted: %+v", errs)
	}
}

// A backup that does not list the source among its peers refuses the
// connection: the source's lag says so as an error of the pair (waiting
// will not fix it), and the peer's problem is in status.
func TestBackupThatDoesNotListTheSourceIsExplained(t *testing.T) {
	docs := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", docs, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	nas.cfg.Peers = nil
	nas.cfg.BackupFor = nil
	lap.start()
	nas.start()
	rep := waitNotSynced(t, lap, 30*time.Second, "", "does not list this node ("+lap.id.String()+")")
	if p := rep.Pairs[0]; p.State != "offline" || !strings.Contains(p.OfflineReason, "nas closed the connection") {
		t.Fatalf("pair: %+v", p)
	}
	st := lap.n.Status()
	if len(st.Peers) != 1 || !st.Peers[0].Misconfigured || !strings.Contains(st.Peers[0].Problem, "does not list this node") {
		t.Fatalf("status peers: %+v", st.Peers)
	}
}

// A peer asking for a folder while the node builds its parts (at start or
// in a reload) waits for the folder's agent instead of being told the
// folder is not served here: that answer would block its replica.
func TestAgentLookupWaitsWhileThePartsAreBuilt(t *testing.T) {
	docs := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", docs, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	a := agentOf(lap, "docs")
	if a == nil {
		t.Fatal("no agent for docs")
	}
	n := lap.n
	n.mu.Lock()
	parts := n.parts
	n.building = true
	n.setPartsLocked(nil) // the folder's part is being rebuilt
	n.mu.Unlock()

	got := make(chan *agent.Agent, 1)
	go func() { got <- n.agentFor(context.Background(), "docs", nas.id) }()

	n.mu.Lock()
	n.setPartsLocked(parts)
	n.settleLocked()
	n.mu.Unlock()
	if g := <-got; g != a {
		t.Fatalf("lookup during a build returned %p, want the folder's agent %p", g, a)
	}
	if g := n.agentFor(context.Background(), "other", nas.id); g != nil {
		t.Fatal("a folder not protected here was found")
	}
}

// A reload that adds a backup to a folder allows the new peer before the
// folder's agent is rebuilt: the peer's requests wait for the new agent
// instead of being told that it is not a designated backup (which held
// its baseline back for seconds and failed a wait-synced).
func TestAgentLookupDuringAReloadWaitsForTheBackupItAdds(t *testing.T) {
	docs := t.TempDir()
	c := newCluster(t, "laptop", "nas", "nas2")
	c.protect("laptop", "docs", docs, "nas")
	lap, nas, nas2 := c.nodes["laptop"], c.nodes["nas"], c.nodes["nas2"]
	lap.start()
	a := agentOf(lap, "docs")
	n := lap.n
	n.mu.Lock()
	n.building = true // a reload under way: docs still has its old backups
	n.mu.Unlock()
	if g := n.agentFor(context.Background(), "docs", nas.id); g != a {
		t.Fatalf("lookup for a backup the folder lists returned %p, want %p at once", g, a)
	}
	got := make(chan *agent.Agent, 1)
	go func() { got <- n.agentFor(context.Background(), "docs", nas2.id) }()
	waitFor(t, 10*time.Second, "the lookup for nas2 to wait for the reload", func() bool {
		return n.lookupsWaiting.Load() == 1
	})
	select {
	case g := <-got:
		t.Fatalf("lookup for nas2 returned %p before the reload was done", g)
	default:
	}
	n.mu.Lock()
	n.settleLocked()
	n.mu.Unlock()
	if g := <-got; g != a {
		t.Fatalf("lookup after the reload returned %p, want the folder's agent %p", g, a)
	}
}
