package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/agent"
	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/replica"
	"github.com/vigil-mesh/vigil/node/transport"
)

// part is one role the node runs for the config: the agent of a folder it
// protects or the replica of a folder it keeps. A reload starts, stops or
// rebuilds parts one by one, so that the others go on undisturbed.
type part struct {
	key  string // "folder <id>" or "replica <source name>/<folder>"
	spec string // what the part was built from: a reload rebuilds it when this changes

	agent *agent.Agent
	topic transport.Topic // the agent's folder topic
	rep   *replica.Replica

	cancel context.CancelFunc // set while running
	done   chan struct{}      // closed when its Run returned
}

func (p *part) run(ctx context.Context) error {
	if p.agent != nil {
		return p.agent.Run(ctx)
	}
	return p.rep.Run(ctx)
}

// close releases what the part holds once it stopped: the agent's topic
// and journal (a replica's topic goes with its Run).
func (p *part) close() error {
	if p.agent == nil {
		return nil
	}
	var err error
	if p.topic != nil {
		err = p.topic.Close()
	}
	return errors.Join(err, p.agent.Close())
}

// agentKey and replicaKey name parts; agentSpec and replicaSpec say what in
// the config they depend on.
func agentKey(folder string) string { return "folder " + folder }

func replicaKey(source peer.ID, folder string) string {
	return "replica " + source.String() + "/" + folder
}

// agentSpec is everything an agent is built from: its folder entry, the
// IDs of its backups and the node settings that agents use.
func agentSpec(cfg *config.Config, fc *config.FolderConfig) string {
	var ids []string
	for _, name := range fc.BackupTo {
		pc, _ := cfg.PeerByName(name)
		ids = append(ids, pc.ID)
	}
	nc := cfg.Node
	return fmt.Sprintf("%q %q %q %q %q %v %v %q %d", fc.ID, fc.AbsPath(cfg.Home), fc.BackupTo, ids, fc.Ignore,
		nc.QuietPeriod, nc.MaxDelay, nc.JournalSync, nc.JournalMaxBytes)
}

func replicaSpec(cfg *config.Config, bf *config.BackupForConfig, folder string) string {
	pc, _ := cfg.PeerByName(bf.Peer)
	return fmt.Sprintf("%q %q %q %v %q", pc.ID, bf.Peer, folder, bf.Retention, cfg.DataPath())
}

// buildAgent builds the part for folder fc of cfg.
func (n *Node) buildAgent(cfg *config.Config, fc *config.FolderConfig) (*part, error) {
	a, topic, err := n.newAgent(cfg, fc)
	if err != nil {
		return nil, err
	}
	return &part{key: agentKey(fc.ID), spec: agentSpec(cfg, fc), agent: a, topic: topic}, nil
}

// buildReplica builds the part for folder of bf in cfg.
func (n *Node) buildReplica(cfg *config.Config, bf *config.BackupForConfig, folder string) (*part, error) {
	pc, _ := cfg.PeerByName(bf.Peer)
	src, err := peer.Decode(pc.ID)
	if err != nil {
		return nil, fmt.Errorf("node: backup_for peer %q: %w", bf.Peer, err)
	}
	o := n.opts
	r, err := replica.New(replica.Config{Source: src, SourceName: bf.Peer, Folder: folder,
		Retention: bf.Retention.D(), DataDir: cfg.DataPath(), DB: n.db, Net: n.net, Logger: n.log,
		Metrics: n.rm, OnBaseline: o.onBaseline, StageFiles: o.stageFiles, StageBytes: o.stageBytes,
		ProblemRetry: o.problemRetry, Faults: o.replicaFaults})
	if err != nil {
		return nil, err
	}
	return &part{key: replicaKey(src, folder), spec: replicaSpec(cfg, bf, folder), rep: r}, nil
}

// wantedParts lists the parts cfg asks for, in config order: folders, then
// replicas.
func wantedParts(cfg *config.Config) []partWant {
	var out []partWant
	for i := range cfg.Folders {
		fc := &cfg.Folders[i]
		out = append(out, partWant{key: agentKey(fc.ID), spec: agentSpec(cfg, fc), folder: fc})
	}
	for i := range cfg.BackupFor {
		bf := &cfg.BackupFor[i]
		pc, _ := cfg.PeerByName(bf.Peer)
		src, _ := peer.Decode(pc.ID) // checked by config validation
		for _, f := range bf.Folders {
			out = append(out, partWant{key: replicaKey(src, f), spec: replicaSpec(cfg, bf, f), backupFor: bf, folderName: f})
		}
	}
	return out
}

// partWant is one part a config asks for.
type partWant struct {
	key, spec  string
	folder     *config.FolderConfig    // an agent's
	backupFor  *config.BackupForConfig // a replica's entry
	folderName string                  // a replica's folder
}

func (n *Node) build(cfg *config.Config, w partWant) (*part, error) {
	if w.folder != nil {
		return n.buildAgent(cfg, w.folder)
	}
	return n.buildReplica(cfg, w.backupFor, w.folderName)
}

// setParts installs parts as the node's roles (n.mu held).
func (n *Node) setPartsLocked(parts []*part) {
	n.parts = parts
	n.agents, n.replicas = nil, nil
	for _, p := range parts {
		if p.agent != nil {
			n.agents = append(n.agents, p.agent)
		} else {
			n.replicas = append(n.replicas, p.rep)
		}
	}
}

// roles returns the agents and replicas running now.
func (n *Node) roles() ([]*agent.Agent, []*replica.Replica) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.agents, n.replicas
}

// config returns the config the node runs with now.
func (n *Node) config() *config.Config {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.cfg
}

// startPart runs p under the node's Run (nothing when Run has not started
// yet: Run starts every part). A part failing stops the node, as any
// component does.
func (n *Node) startPart(p *part) {
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.runCtx == nil || n.runCtx.Err() != nil || p.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(n.runCtx)
	p.cancel, p.done = cancel, make(chan struct{})
	n.partsWG.Add(1)
	go func() {
		defer n.partsWG.Done()
		defer close(p.done)
		if err := p.run(ctx); err != nil && ctx.Err() == nil {
			n.failRun(fmt.Errorf("%s: %w", p.key, err))
		}
	}()
}

// stopPart stops p, waits for it and releases what it holds.
func (n *Node) stopPart(p *part) error {
	n.runMu.Lock()
	cancel, done := p.cancel, p.done
	n.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return p.close()
}

// meshPeers converts the peers of cfg for the network.
func meshPeers(cfg *config.Config, self peer.ID) ([]mesh.Peer, error) {
	var peers []mesh.Peer
	for i, p := range cfg.Peers {
		pid, err := peer.Decode(p.ID)
		if err != nil {
			return nil, fmt.Errorf("node: peers[%d].id: %w", i, err)
		}
		if pid == self {
			return nil, fmt.Errorf("node: peers[%d] (%s) is this node itself", i, p.Name)
		}
		mp := mesh.Peer{Name: p.Name, ID: pid}
		info, err := p.AddrInfo()
		if err != nil {
			return nil, fmt.Errorf("node: peers[%d].addrs: %w", i, err)
		}
		mp.Addrs = slices.Clone(info.Addrs)
		peers = append(peers, mp)
	}
	return peers, nil
}
