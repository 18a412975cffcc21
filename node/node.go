package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/internal/rate"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/agent"
	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/consent"
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
	loadConfig    func() (*config.Config, error)
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
	opts options
	log  *slog.Logger
	id   peer.ID
	net  transport.Network
	db   *store.DB
	srv  *agent.Server
	am   *agent.Metrics
	rm   *replica.Metrics

	started time.Time

	// mu guards the config and the roles built from it, which a reload
	// replaces; readers take a snapshot (config, roles).
	mu       sync.RWMutex
	cfg      *config.Config
	parts    []*part // in config order: folders, then replicas
	agents   []*agent.Agent
	replicas []*replica.Replica
	reloaded chan struct{} // closed and replaced by every reload
	// building: New or a reload is building parts; settled is closed
	// and replaced when it is done (see agentFor).
	building bool
	settled  chan struct{}
	// lookupsWaiting counts the requests waiting in agentFor
	lookupsWaiting atomic.Int32
	reloadMu       sync.Mutex // one reload at a time

	consent *consent.Book
	rates   *rate.Meters

	verifyMu   sync.Mutex // guards lastVerify
	lastVerify map[*replica.Replica]*restore.VerifyReport

	closeOnce sync.Once
	runMu     sync.Mutex // guards cancel, runCtx, runErr and the parts' cancel and done
	cancel    context.CancelFunc
	runCtx    context.Context // the context parts run under; set by Run
	runErr    error           // the first part that failed
	partsWG   sync.WaitGroup
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
		reloaded: make(chan struct{}), building: true, settled: make(chan struct{}), consent: consent.New(), rates: rate.New(rateWindow), lastVerify: make(map[*replica.Replica]*restore.VerifyReport)}

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
	n.am = agent.NewMetrics(o.registerer)
	n.rm = replica.NewMetrics(o.registerer)
	// Handlers first: peers may connect as soon as the network exists.
	n.srv = agent.NewServer(id, n.agentFor, n.log, n.am, n.peerName)
	n.net.Handle(mesh.ProtoSync, n.srv.HandleSync)
	n.net.Handle(mesh.ProtoAck, n.srv.HandleAck)
	n.net.Handle(mesh.ProtoHello, n.handleHello)
	var parts []*part
	for _, w := range wantedParts(cfg) {
		p, err := n.build(cfg, w)
		if err != nil {
			for _, p := range parts {
				p.close()
			}
			return nil, err
		}
		parts = append(parts, p)
	}
	n.mu.Lock()
	n.setPartsLocked(parts)
	n.settleLocked()
	n.mu.Unlock()
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
	peers, err := meshPeers(cfg, id)
	if err != nil {
		return nil, err
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

// newAgent wires the agent of folder fc of cfg: its journal, watcher and
// topic.
func (n *Node) newAgent(cfg *config.Config, fc *config.FolderConfig) (*agent.Agent, transport.Topic, error) {
	root := fc.AbsPath(cfg.Home)
	rules, rulesErr := agent.NewRules(root, fc.Ignore)
	if rules == nil {
		return nil, nil, fmt.Errorf("node: folder %q: %w", fc.ID, rulesErr)
	}
	var backups []peer.ID
	for _, name := range fc.BackupTo {
		pc, _ := cfg.PeerByName(name)
		pid, err := peer.Decode(pc.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("node: folder %q: backup %q: %w", fc.ID, name, err)
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
	_, statErr := os.Stat(jdir)
	jr, err := journal.Open(jdir, journal.WithSync(sync), journal.WithLogger(log), journal.WithSegmentSize(seg),
		journal.WithRegisterer(n.opts.registerer, map[string]string{"folder": fc.ID}))
	if err != nil {
		return nil, nil, fmt.Errorf("node: folder %q: journal %s: %w", fc.ID, jdir, err)
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
		return nil, nil, fmt.Errorf("node: folder %q: watch %s: %w", fc.ID, root, err)
	}
	topic, err := n.net.JoinFolder(n.id, fc.ID, backups)
	if err != nil {
		j.Close()
		return nil, nil, fmt.Errorf("node: folder %q: %w", fc.ID, err)
	}
	a, err := agent.New(agent.Config{Folder: fc.ID, Root: root, Rules: rules, Backups: backups,
		Journal: j, JournalExisted: statErr == nil, DB: n.db, Watcher: w, Topic: topic, JournalMaxBytes: cfg.Node.JournalMaxBytes,
		Logger: n.log, Metrics: n.am, PeerName: n.peerName, ProblemRetry: n.opts.problemRetry, ReadFaults: n.opts.readFaults})
	if err != nil {
		topic.Close()
		j.Close()
		return nil, nil, err
	}
	if rulesErr != nil {
		// the folder is protected with the config's patterns meanwhile
		a.ReportIgnoreFile(rulesErr)
	}
	return a, topic, nil
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
	n.runCtx = ctx
	n.runMu.Unlock()
	defer close(n.done)
	defer n.partsWG.Wait()
	defer cancel()
	defer n.srv.Stop()
	g, gctx := errgroup.WithContext(ctx)
	cfg := n.config()
	network, addr := cfg.ControlAddr()
	if err := control.Serve(gctx, g, network, addr, n); err != nil {
		return err
	}
	if err := n.startMetrics(gctx, g); err != nil {
		cancel()
		g.Wait()
		return err
	}
	g.Go(func() error { return n.net.Run(gctx) })
	g.Go(func() error { return n.runScrub(gctx) })
	g.Go(func() error { return n.sampleRates(gctx) })
	g.Go(func() error {
		<-gctx.Done() // a failing part cancels ctx and sets runErr
		n.runMu.Lock()
		defer n.runMu.Unlock()
		return n.runErr
	})
	n.mu.RLock()
	parts := n.parts
	n.mu.RUnlock()
	for _, p := range parts {
		n.startPart(p)
	}
	var consentWG sync.WaitGroup
	defer consentWG.Wait()
	n.startConsent(ctx, &consentWG)
	agents, replicas := n.roles()
	n.log.Info("node running", "peer", n.id.String(), "name", cfg.Node.Name,
		"addrs", fmt.Sprint(n.net.Addrs()), "folders", len(agents), "replicas", len(replicas))
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// failRun stops the node because a part failed with err.
func (n *Node) failRun(err error) {
	n.runMu.Lock()
	if n.runErr == nil {
		n.runErr = err
	}
	cancel := n.cancel
	n.runMu.Unlock()
	cancel()
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
	n.mu.RLock()
	parts := n.parts
	n.mu.RUnlock()
	for _, p := range parts {
		err = errors.Join(err, p.close())
	}
	if n.srv != nil {
		n.srv.Stop()
	}
	if n.net != nil {
		err = errors.Join(err, n.net.Close())
	}
	return errors.Join(err, n.db.Close())
}

func (n *Node) agentFor(ctx context.Context, folder string, from peer.ID) *agent.Agent {
	// While the node starts or reloads, a folder's agent may not be built
	// yet, or not yet rebuilt with a backup the new config adds, although
	// peers can already ask for it: wait for it (a moment) rather than
	// answer that the folder is not served to them.
	ctx, cancel := context.WithTimeout(ctx, agentWait)
	defer cancel()
	for {
		n.mu.RLock()
		building, settled := n.building, n.settled
		var found *agent.Agent
		for _, a := range n.agents {
			if a.ID() == folder {
				found = a
				break
			}
		}
		n.mu.RUnlock()
		if !building || (found != nil && slices.Contains(found.Backups(), from)) {
			return found
		}
		n.lookupsWaiting.Add(1)
		select {
		case <-settled:
		case <-ctx.Done():
		}
		n.lookupsWaiting.Add(-1)
		if ctx.Err() != nil {
			return found
		}
	}
}

// agentWait bounds how long a request waits for its folder's agent while
// the node starts or reloads.
const agentWait = time.Minute

// settleLocked ends a time of building parts (n.mu held).
func (n *Node) settleLocked() {
	n.building = false
	close(n.settled)
	n.settled = make(chan struct{})
}

func (n *Node) peerName(id peer.ID) string {
	if id == n.id {
		return n.config().Node.Name
	}
	return n.net.PeerName(id)
}
