package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/agent"
	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/replica"
	"github.com/vigil-mesh/vigil/node/restore"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/watch"
	"github.com/vigil-mesh/vigil/store"
)

// Option configures a Node.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	registerer  prometheus.Registerer
	gatherer    prometheus.Gatherer
	dropInbound func(topic string) bool
	onBaseline  func(BaselineEvent)
	network     func(id peer.ID) (transport.Network, error)
	journal     func(folder string, j journal.Log) journal.Log
	stageFiles  int   // tests: baseline commit groups
	stageBytes  int64 // tests
	// tests: faults and faster retries of problems
	readFaults    *baseline.Faults
	replicaFaults *store.Faults
	problemRetry  time.Duration
}

// WithLogger sets the node's logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegistry makes the node register its metrics on r (and serve them
// from the metrics endpoint). By default the node uses a registry of its own.
func WithRegistry(r *prometheus.Registry) Option {
	return func(o *options) { o.registerer, o.gatherer = r, r }
}

// WithDropInbound installs a test hook that drops inbound pubsub messages
// for which drop returns true, to exercise gap repair (libp2p mesh only).
func WithDropInbound(drop func(topic string) bool) Option {
	return func(o *options) { o.dropInbound = drop }
}

// WithNetwork makes the node use the network join returns (given the
// node's peer ID) instead of a libp2p mesh: tests run many nodes in one
// process on a transport.Hub.
func WithNetwork(join func(id peer.ID) (transport.Network, error)) Option {
	return func(o *options) { o.network = join }
}

// WithJournal lets a test wrap each folder's journal (e.g. in a
// journal.Faulty that fails on command).
func WithJournal(wrap func(folder string, j journal.Log) journal.Log) Option {
	return func(o *options) { o.journal = wrap }
}

// BaselineEvent reports progress of a replica's baseline on a target.
type BaselineEvent = replica.BaselineEvent

// WithBaselineProgress calls fn as baselines progress on this node as a
// target (from the replica's goroutine: fn must not block).
func WithBaselineProgress(fn func(BaselineEvent)) Option {
	return func(o *options) { o.onBaseline = fn }
}

// Node is one vigil node: agents for the folders it protects, replicas for
// the folders it keeps for others, the network, and the control endpoint.
type Node struct {
	cfg  *config.Config
	opts options
	log  *slog.Logger
	id   peer.ID
	net  transport.Network
	db   *store.DB
	srv  *agent.Server

	agents   []*agent.Agent
	replicas []*replica.Replica

	started time.Time

	verifyMu   sync.Mutex // guards lastVerify
	lastVerify map[*replica.Replica]*restore.VerifyReport

	closeOnce sync.Once
	runMu     sync.Mutex // guards cancel
	cancel    context.CancelFunc
	done      chan struct{}
}

// New opens the node's data directory and key and builds its network,
// agents and replicas. Nothing runs until Run.
func New(cfg *config.Config, opts ...Option) (*Node, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.registerer == nil {
		r := prometheus.NewRegistry()
		o.registerer, o.gatherer = r, r
	}
	n := &Node{cfg: cfg, opts: o, log: o.logger, done: make(chan struct{}), started: time.Now(),
		lastVerify: make(map[*replica.Replica]*restore.VerifyReport)}

	key, id, err := mesh.LoadKey(cfg.IdentityPath())
	if err != nil {
		return nil, err
	}
	n.id = id
	dataDir := cfg.DataPath()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data_dir %s: %w", dataDir, err)
	}
	n.db, err = store.OpenDB(IndexPath(cfg))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.closeParts()
		}
	}()
	if o.network != nil {
		n.net, err = o.network(id)
	} else {
		n.net, err = newMesh(cfg, key, id, o)
	}
	if err != nil {
		return nil, err
	}
	am := agent.NewMetrics(o.registerer)
	rm := replica.NewMetrics(o.registerer)
	for i := range cfg.Folders {
		a, err := n.newAgent(&cfg.Folders[i], am)
		if err != nil {
			return nil, err
		}
		n.agents = append(n.agents, a)
	}
	for _, bf := range cfg.BackupFor {
		pc, _ := cfg.PeerByName(bf.Peer)
		src, err := peer.Decode(pc.ID)
		if err != nil {
			return nil, fmt.Errorf("node: backup_for peer %q: %w", bf.Peer, err)
		}
		for _, f := range bf.Folders {
			r, err := replica.New(replica.Config{Source: src, SourceName: bf.Peer, Folder: f,
				Retention: bf.Retention.D(), DataDir: dataDir, DB: n.db, Net: n.net, Logger: n.log,
				Metrics: rm, OnBaseline: o.onBaseline, StageFiles: o.stageFiles, StageBytes: o.stageBytes,
				ProblemRetry: o.problemRetry, Faults: o.replicaFaults})
			if err != nil {
				return nil, err
			}
			n.replicas = append(n.replicas, r)
		}
	}
	n.srv = agent.NewServer(id, n.agentFor, n.log, am, n.peerName)
	n.net.Handle(mesh.ProtoSync, n.srv.HandleSync)
	n.net.Handle(mesh.ProtoAck, n.srv.HandleAck)
	ok = true
	return n, nil
}

// IndexPath is where the node of cfg keeps its index database,
// DATA_DIR/index.db: what New opens, and what `vigil repair
// --rebuild-index` sets aside.
func IndexPath(cfg *config.Config) string { return filepath.Join(cfg.DataPath(), "index.db") }

// newMesh builds the libp2p mesh of the config.
func newMesh(cfg *config.Config, key crypto.PrivKey, id peer.ID, o options) (transport.Network, error) {
	listen, err := cfg.ListenAddrs()
	if err != nil {
		return nil, err
	}
	var peers []mesh.Peer
	for i, p := range cfg.Peers {
		pid, err := peer.Decode(p.ID)
		if err != nil {
			return nil, fmt.Errorf("node: peers[%d].id: %w", i, err)
		}
		if pid == id {
			return nil, fmt.Errorf("node: peers[%d] (%s) is this node itself", i, p.Name)
		}
		mp := mesh.Peer{Name: p.Name, ID: pid}
		for _, a := range p.Addrs {
			ma, err := multiaddr.NewMultiaddr(a)
			if err != nil {
				return nil, fmt.Errorf("node: peers[%d].addrs: %w", i, err)
			}
			mp.Addrs = append(mp.Addrs, ma)
		}
		peers = append(peers, mp)
	}
	m, err := mesh.New(context.Background(), mesh.Config{
		Key:         key,
		Listen:      listen,
		Peers:       peers,
		Logger:      o.logger,
		Registerer:  o.registerer,
		DropInbound: o.dropInbound,
		Limits:      streamLimits(cfg),
	})
	if err != nil {
		return nil, err
	}
	return transport.FromMesh(m), nil
}

// streamLimits sizes the per-peer stream limits to the folders this node
// shares with one peer: a backup keeps an ack stream per folder and opens a
// few sync streams per folder it is catching up.
func streamLimits(cfg *config.Config) mesh.Limits {
	shared := make(map[string]int) // peer name -> folders shared with it
	for _, f := range cfg.Folders {
		for _, b := range f.BackupTo {
			shared[b]++
		}
	}
	for _, bf := range cfg.BackupFor {
		shared[bf.Peer] += len(bf.Folders)
	}
	most := 0
	for _, n := range shared {
		most = max(most, n)
	}
	return mesh.Limits{SyncStreams: max(32, 4*most+8), AckStreams: max(8, most+4)}
}

// newAgent wires the agent of folder fc: its journal, watcher and topic.
func (n *Node) newAgent(fc *config.FolderConfig, m *agent.Metrics) (*agent.Agent, error) {
	cfg := n.cfg
	root := fc.AbsPath(cfg.Home)
	rules, rulesErr := agent.NewRules(root, fc.Ignore)
	if rules == nil {
		return nil, fmt.Errorf("node: folder %q: %w", fc.ID, rulesErr)
	}
	var backups []peer.ID
	for _, name := range fc.BackupTo {
		pc, _ := cfg.PeerByName(name)
		pid, err := peer.Decode(pc.ID)
		if err != nil {
			return nil, fmt.Errorf("node: folder %q: backup %q: %w", fc.ID, name, err)
		}
		backups = append(backups, pid)
	}
	sync := journal.SyncGroup
	switch cfg.Node.JournalSync {
	case "always":
		sync = journal.SyncAlways
	case "none":
		sync = journal.SyncNone
	}
	log := n.log.With("folder", fc.ID)
	jdir := filepath.Join(cfg.DataPath(), "journal", fc.ID)
	// Segments small enough that the size cap can drop whole segments.
	seg := min(max(cfg.Node.JournalMaxBytes/8, 4<<10), journal.DefaultSegmentSize)
	jr, err := journal.Open(jdir, journal.WithSync(sync), journal.WithLogger(log), journal.WithSegmentSize(seg),
		journal.WithRegisterer(n.opts.registerer, map[string]string{"folder": fc.ID}))
	if err != nil {
		return nil, fmt.Errorf("node: folder %q: journal %s: %w", fc.ID, jdir, err)
	}
	var j journal.Log = jr
	if n.opts.journal != nil {
		j = n.opts.journal(fc.ID, jr)
	}
	w, err := watch.New(root, watch.Options{
		Quiet: cfg.Node.QuietPeriod.D(), MaxDelay: cfg.Node.MaxDelay.D(),
		Ignore: rules, Logger: log,
		MarkerDir: filepath.Join(cfg.DataPath(), "watch", fc.ID),
	})
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("node: folder %q: watch %s: %w", fc.ID, root, err)
	}
	topic, err := n.net.JoinFolder(n.id, fc.ID, backups)
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("node: folder %q: %w", fc.ID, err)
	}
	a, err := agent.New(agent.Config{Folder: fc.ID, Root: root, Rules: rules, Backups: backups,
		Journal: j, DB: n.db, Watcher: w, Topic: topic, JournalMaxBytes: cfg.Node.JournalMaxBytes,
		Logger: n.log, Metrics: m, PeerName: n.peerName, ProblemRetry: n.opts.problemRetry, ReadFaults: n.opts.readFaults})
	if err != nil {
		j.Close()
		return nil, err
	}
	if rulesErr != nil {
		// the folder is protected with the config's patterns meanwhile
		a.ReportIgnoreFile(rulesErr)
	}
	return a, nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.id }

// Addrs are the node's listen addresses.
func (n *Node) Addrs() []multiaddr.Multiaddr { return n.net.Addrs() }

// Run runs the node until ctx is cancelled or a component fails.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	n.runMu.Lock()
	if n.cancel != nil {
		n.runMu.Unlock()
		cancel()
		return errors.New("node: Run called twice")
	}
	n.cancel = cancel
	n.runMu.Unlock()
	defer close(n.done)
	defer cancel()
	defer n.srv.Stop()
	g, ctx := errgroup.WithContext(ctx)
	network, addr := n.cfg.ControlAddr()
	if err := control.Serve(ctx, g, network, addr, n); err != nil {
		return err
	}
	if err := n.startMetrics(ctx, g); err != nil {
		cancel()
		g.Wait()
		return err
	}
	g.Go(func() error { return n.net.Run(ctx) })
	g.Go(func() error { return n.runScrub(ctx) })
	for _, a := range n.agents {
		g.Go(func() error { return a.Run(ctx) })
	}
	for _, r := range n.replicas {
		g.Go(func() error { return r.Run(ctx) })
	}
	n.log.Info("node running", "peer", n.id.String(), "name", n.cfg.Node.Name,
		"addrs", fmt.Sprint(n.net.Addrs()), "folders", len(n.agents), "replicas", len(n.replicas))
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Close stops a running node, waits for it, and releases its resources.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.runMu.Lock()
		cancel := n.cancel
		n.runMu.Unlock()
		if cancel != nil {
			cancel()
			<-n.done
		}
		err = n.closeParts()
	})
	return err
}

// closeParts closes what New opened: journals, network, database.
func (n *Node) closeParts() error {
	var err error
	for _, a := range n.agents {
		err = errors.Join(err, a.Close())
	}
	if n.srv != nil {
		n.srv.Stop()
	}
	if n.net != nil {
		err = errors.Join(err, n.net.Close())
	}
	return errors.Join(err, n.db.Close())
}

func (n *Node) agentFor(folder string) *agent.Agent {
	for _, a := range n.agents {
		if a.ID() == folder {
			return a
		}
	}
	return nil
}

func (n *Node) peerName(id peer.ID) string {
	if id == n.id {
		return n.cfg.Node.Name
	}
	return n.net.PeerName(id)
}
