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

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-mesh/vigil/mesh"
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
}

// WithLogger sets the node's logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegistry makes the node register its metrics on r (and serve them
// from the metrics endpoint). By default the node uses a registry of its own.
func WithRegistry(r *prometheus.Registry) Option {
	return func(o *options) { o.registerer, o.gatherer = r, r }
}

// WithDropInbound installs a test hook that drops inbound pubsub messages
// for which drop returns true, to exercise gap repair.
func WithDropInbound(drop func(topic string) bool) Option {
	return func(o *options) { o.dropInbound = drop }
}

// BaselineEvent reports progress of a replica's baseline on a target.
type BaselineEvent struct {
	Source     peer.ID
	Folder     string
	DoneBytes  int64
	TotalBytes int64
	DoneFiles  int
	TotalFiles int
	Fetched    int64 // chunks fetched over the network so far
	Finished   bool
}

// WithBaselineProgress calls fn as baselines progress on this node as a
// target (from the replica's goroutine: fn must not block).
func WithBaselineProgress(fn func(BaselineEvent)) Option {
	return func(o *options) { o.onBaseline = fn }
}

// Node is one vigil node: agents for the folders it protects, replicas for
// the folders it keeps for others, the mesh, and the control endpoint.
type Node struct {
	cfg  *config.Config
	opts options
	log  *slog.Logger
	id   peer.ID
	mesh *mesh.Mesh
	db   *store.DB
	m    *metrics

	agents   []*agent
	replicas []*replica

	started time.Time

	closeOnce sync.Once
	runMu     sync.Mutex // guards cancel
	cancel    context.CancelFunc
	done      chan struct{}
}

// New opens the node's data directory and key and builds its mesh, agents
// and replicas. Nothing runs until Run.
func New(cfg *config.Config, opts ...Option) (*Node, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.registerer == nil {
		r := prometheus.NewRegistry()
		o.registerer, o.gatherer = r, r
	}
	n := &Node{cfg: cfg, opts: o, log: o.logger, done: make(chan struct{}), started: time.Now()}
	n.m = newMetrics(o.registerer)

	key, id, err := mesh.LoadKey(cfg.IdentityPath())
	if err != nil {
		return nil, err
	}
	n.id = id
	dataDir := cfg.DataPath()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data_dir %s: %w", dataDir, err)
	}
	n.db, err = store.OpenDB(filepath.Join(dataDir, "index.db"))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.db.Close()
		}
	}()

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
	n.mesh, err = mesh.New(context.Background(), mesh.Config{
		Key:         key,
		Listen:      listen,
		Peers:       peers,
		Logger:      n.log,
		Registerer:  o.registerer,
		DropInbound: o.dropInbound,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			n.mesh.Close()
		}
	}()

	for i := range cfg.Folders {
		a, err := newAgent(n, &cfg.Folders[i])
		if err != nil {
			for _, a := range n.agents {
				a.close()
			}
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
			r, err := newReplica(n, src, bf.Peer, f, time.Duration(bf.Retention))
			if err != nil {
				return nil, err
			}
			n.replicas = append(n.replicas, r)
		}
	}
	n.mesh.Handle(mesh.ProtoSync, n.handleSync)
	n.mesh.Handle(mesh.ProtoAck, n.handleAck)
	ok = true
	return n, nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.id }

// Addrs are the node's listen addresses.
func (n *Node) Addrs() []multiaddr.Multiaddr { return n.mesh.Addrs() }

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
	g, ctx := errgroup.WithContext(ctx)
	ctrl, err := n.startControl(ctx, g)
	if err != nil {
		return err
	}
	defer ctrl.Close()
	if err := n.startMetrics(ctx, g); err != nil {
		return err
	}
	g.Go(func() error { return n.mesh.Run(ctx) })
	g.Go(func() error { return n.runScrub(ctx) })
	for _, a := range n.agents {
		g.Go(func() error { return a.run(ctx) })
	}
	for _, r := range n.replicas {
		g.Go(func() error { return r.run(ctx) })
	}
	n.log.Info("node running", "peer", n.id.String(), "name", n.cfg.Node.Name,
		"addrs", fmt.Sprint(n.mesh.Addrs()), "folders", len(n.agents), "replicas", len(n.replicas))
	err = g.Wait()
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
		for _, a := range n.agents {
			err = errors.Join(err, a.close())
		}
		for _, r := range n.replicas {
			err = errors.Join(err, r.close())
		}
		err = errors.Join(err, n.mesh.Close(), n.db.Close())
	})
	return err
}

func (n *Node) agentFor(folder string) *agent {
	for _, a := range n.agents {
		if a.id == folder {
			return a
		}
	}
	return nil
}

func (n *Node) replicaFor(src peer.ID, folder string) *replica {
	for _, r := range n.replicas {
		if r.source == src && r.folder == folder {
			return r
		}
	}
	return nil
}

func (n *Node) peerName(id peer.ID) string {
	if id == n.id {
		return n.cfg.Node.Name
	}
	return n.mesh.PeerName(id)
}
