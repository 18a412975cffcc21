package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

// Stream protocols. See the package documentation for what they carry.
const (
	ProtoSync  protocol.ID = "/vigil/sync/1.0.0"
	ProtoAck   protocol.ID = "/vigil/ack/1.0.0"
	ProtoHello protocol.ID = "/vigil/hello/1.0.0"
)

// Mesh is one node's libp2p host restricted to its allow-list, with the
// gossipsub router for folder topics. Create it with New, keep its peers
// connected with Run, stop it with Close.
type Mesh struct {
	cfg   Config
	self  peer.ID
	log   *slog.Logger
	host  host.Host
	ps    *pubsub.PubSub
	met   *meshMetrics
	graft *graftSet // our gossipsub mesh per topic

	allow     atomic.Pointer[allowList] // the allow-list, replaced whole by SetPeers
	setMu     sync.Mutex                // serialises SetPeers
	dialLoops atomic.Int32              // running dial loops (keepConnected)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	running   bool
	onConnect []func(peer.ID)
	changed   chan struct{} // closed and replaced on every connectedness change of a configured peer
	topics    map[string]*Topic
	wg        sync.WaitGroup // event loop, Run, OnConnect callbacks, stream handlers; Add only under mu while !closed

	tmu     sync.RWMutex
	members map[string]map[peer.ID]struct{} // topic name -> peers allowed on it (peer filter, validator)

	closeOnce sync.Once
	closeErr  error
}

// New starts a libp2p host listening on cfg.Listen and a gossipsub router
// on it. ctx is used only while constructing; the mesh lives until Close.
// Peers are not dialed until Run is called (or Open needs them).
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	self, _ := peer.IDFromPrivateKey(cfg.Key) // checked by Validate
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mesh{
		cfg:     cfg,
		self:    self,
		log:     cfg.Logger.With("subsystem", "mesh"),
		ctx:     mctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		topics:  make(map[string]*Topic),
		members: make(map[string]map[peer.ID]struct{}),
		graft:   newGraftSet(),
	}
	m.allow.Store(newAllowList(cfg.Peers, nil))
	bw := metrics.NewBandwidthCounter()
	m.met = newMetrics(bw, cfg.Peers)

	rm, err := newResourceManager(cfg, m.met)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mesh: resource manager: %w", err)
	}
	h, err := newHost(cfg, &gater{m: m}, bw, rm) // closes rm on failure
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mesh: libp2p host: %w", err)
	}
	m.host = h
	m.met.resources.attach(rm, h.Network())
	fail := func(err error) (*Mesh, error) {
		cancel()
		h.Close()
		return nil, err
	}
	if err := listen(h, cfg.Listen); err != nil {
		return fail(err)
	}
	for _, p := range m.allow.Load().peers {
		h.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.PermanentAddrTTL)
	}

	// Every connection added, not only a peer's first: one that passed the
	// gater before SetPeers removed its peer may be added beside another
	// while SetPeers closes them, leaving the peer connected throughout.
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if p := c.RemotePeer(); !m.allowed(p) {
			m.closeStranger(p)
		}
	}})
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(event.EvtPeerIdentificationCompleted)}, eventbus.BufSize(256))
	if err != nil {
		return fail(fmt.Errorf("mesh: subscribe to connection events: %w", err))
	}
	// Gossipsub keeps every message it delivered for HistoryLength
	// heartbeats (1 s each) to answer IWANTs: a source flooding its topic
	// makes each member hold that many seconds of it. Lost messages are
	// pulled over streams anyway, so a short history does.
	params := pubsub.DefaultGossipSubParams()
	params.HistoryLength, params.HistoryGossip = 2, 1
	m.ps, err = pubsub.NewGossipSub(mctx, h,
		pubsub.WithGossipSubParams(params),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerFilter(m.peerFilter),
		pubsub.WithFloodPublish(false), // flood publishing would bypass the peer filter
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(MaxMessageSize+rpcOverhead),
		pubsub.WithRawTracer(&pubsubTracer{met: m.met, graft: m.graft}),
		// gossipsub's own warnings are about its connection-manager tags,
		// which this host does not use: keep its errors only
		pubsub.WithLogger(slog.New(minLevel{m.log.Handler(), slog.LevelError}).With("component", "pubsub")),
	)
	if err != nil {
		sub.Close()
		return fail(fmt.Errorf("mesh: gossipsub: %w", err))
	}
	if err := m.met.register(cfg.Registerer); err != nil {
		sub.Close()
		return fail(fmt.Errorf("mesh: register metrics: %w", err))
	}
	m.wg.Add(1)
	go m.eventLoop(sub)
	m.log.Debug("mesh started", "peer", self, "addrs", h.Addrs())
	return m, nil
}

// newHost builds the libp2p host; the host owns rm (closing the host
// closes it). It listens on nothing: see listen.
func newHost(cfg Config, g connmgr.ConnectionGater, bw metrics.Reporter, rm network.ResourceManager) (host.Host, error) {
	h, err := libp2p.New(
		libp2p.Identity(cfg.Key),
		libp2p.NoListenAddrs, // see listen
		// Without SO_REUSEPORT, so that a port another process (another
		// node) listens on is refused instead of shared with it: two
		// listeners on one port would each get a random half of the
		// connections.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		// TLS first: it is the faster of the two for bulk streams.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, bulkYamux()),
		libp2p.ConnectionGater(g),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.BandwidthReporter(bw),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirstRanker)),
		libp2p.Ping(true),
		libp2p.UserAgent("vigil"),
	)
	if err != nil {
		rm.Close() // libp2p closes it only on some failures; closing twice is harmless
		return nil, err
	}
	return h, nil
}

// ListenError reports a listen address the mesh could not listen on.
type ListenError struct {
	Addr multiaddr.Multiaddr
	Err  error
}

func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("mesh: listen on %s: address already in use (by another program or another vigil node)", e.Addr)
	}
	return fmt.Sprintf("mesh: listen on %s: %v", e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// listen makes h listen on each address of addrs, failing on the first one
// it cannot listen on. libp2p's own Listen succeeds when any one address
// works, which would leave a node silently deaf on the others, and its
// error does not say which address failed.
func listen(h host.Host, addrs []multiaddr.Multiaddr) error {
	sw, ok := h.Network().(*swarm.Swarm)
	for _, a := range addrs {
		var err error
		if ok {
			err = sw.AddListenAddr(a)
		} else {
			err = h.Network().Listen(a)
		}
		if err != nil {
			return &ListenError{Addr: a, Err: err}
		}
	}
	return nil
}

// quicFallbackDelay is how long a dial waits for TCP before also trying
// QUIC addresses.
const quicFallbackDelay = 300 * time.Millisecond

// tcpFirstRanker dials TCP addresses at once and the others (QUIC) after
// quicFallbackDelay: TCP+TLS carries bulk streams about three times faster
// than QUIC, and libp2p's default ranker prefers QUIC.
func tcpFirstRanker(addrs []multiaddr.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		d := quicFallbackDelay
		if _, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			d = 0
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

// Close stops the dial loop, closes every topic, the gossipsub router and
// the host (and so every connection and stream), then waits for the
// mesh's goroutines, running stream handlers and OnConnect callbacks to
// return. It is idempotent.
func (m *Mesh) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.cancel() // stops Run, the event loop, gossipsub and every Topic
		err := m.host.Close()
		m.wg.Wait()
		m.met.unregister()
		if err != nil {
			m.closeErr = fmt.Errorf("mesh: close host: %w", err)
		}
	})
	return m.closeErr
}

// track registers one more goroutine that Close must wait for; it reports
// false once the mesh is closed.
func (m *Mesh) track() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	return true
}

// ID returns this node's peer ID.
func (m *Mesh) ID() peer.ID { return m.self }

// Addrs returns the addresses other peers can dial: the listen addresses
// with the actual ports (when port 0 was asked) and unspecified IPs
// expanded to the interface addresses.
func (m *Mesh) Addrs() []multiaddr.Multiaddr { return m.host.Addrs() }

// Host returns the underlying libp2p host.
func (m *Mesh) Host() host.Host { return m.host }

// PeerName returns the configured name of id, or "".
func (m *Mesh) PeerName(id peer.ID) string {
	p, _ := m.lookup(id)
	return p.Name
}

// Connected reports whether there is an open connection to id.
func (m *Mesh) Connected(id peer.ID) bool {
	if m.host.Network().Connectedness(id) != network.Connected {
		return false
	}
	// A peer whose gater refuses us still completes the TLS handshake
	// before it closes the connection: count a peer as connected only once
	// it has answered identify (its protocols are known).
	ps, err := m.host.Peerstore().GetProtocols(id)
	return err == nil && len(ps) > 0
}

// WaitConnected blocks until id is connected, ctx is done or the mesh is
// closed. It does not dial: Run or Open do. A peer outside the allow-list
// yields ErrNotAllowed, at once or as soon as SetPeers removes it.
func (m *Mesh) WaitConnected(ctx context.Context, id peer.ID) error {
	for {
		m.mu.Lock()
		changed := m.changed
		m.mu.Unlock()
		al := m.allow.Load()
		if _, ok := al.byID[id]; !ok {
			return &PeerError{Op: "wait for", Peer: id, Err: ErrNotAllowed}
		}
		if m.Connected(id) {
			return nil
		}
		select {
		case <-changed:
		case <-al.replaced:
		case <-ctx.Done():
			return &PeerError{Op: "wait for", Peer: id, Name: m.PeerName(id), Err: ctx.Err()}
		case <-m.ctx.Done():
			return ErrClosed
		}
	}
}

// OnConnect registers fn to be called each time a configured peer becomes
// connected (it had no connection before). Each call runs on a goroutine of
// its own, so fn may block briefly or call back into the mesh; Close waits
// for running calls.
func (m *Mesh) OnConnect(fn func(peer.ID)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onConnect = append(m.onConnect, fn)
}

// PeerStatus describes one configured peer.
type PeerStatus struct {
	ID        peer.ID
	Name      string
	Connected bool
	Addrs     []multiaddr.Multiaddr // remote addresses of the open connections
	RTT       time.Duration         // smoothed round-trip time (pings by Run), 0 if unknown
	// Problem says, in one line for the user, why Run's last attempt to
	// connect to the peer failed, naming the address and the peer, e.g.
	// "nothing listens at /ip4/192.0.2.7/tcp/7400 (connection refused)".
	// Empty while connected, and before any attempt since the peer was
	// listed with its current addresses.
	Problem string
	// Misconfigured says Problem comes from a config rather than the
	// network: the peer at the address has another ID, or the peer does
	// not list this node. Retrying will not fix it.
	Misconfigured bool
}

// Peers returns the status of every configured peer, in the order of the
// config (or of the last SetPeers).
func (m *Mesh) Peers() []PeerStatus {
	al := m.allow.Load()
	out := make([]PeerStatus, 0, len(al.peers))
	for _, p := range al.peers {
		st := PeerStatus{ID: p.ID, Name: p.Name, Connected: m.Connected(p.ID)}
		if !st.Connected {
			st.Problem, st.Misconfigured = al.byID[p.ID].dial.getProblem()
		}
		for _, c := range m.host.Network().ConnsToPeer(p.ID) {
			if !slices.ContainsFunc(st.Addrs, c.RemoteMultiaddr().Equal) {
				st.Addrs = append(st.Addrs, c.RemoteMultiaddr())
			}
		}
		st.RTT = m.host.Peerstore().LatencyEWMA(p.ID)
		out = append(out, st)
	}
	return out
}

// Handle sets the handler for streams of protocol proto. The handler owns
// the stream and must close or reset it. Only peers in the allow-list can
// open streams (the gater refuses the others' connections), and no more
// at once than Config.Limits allows. A handler that waits on the peer
// should read and write through IdleReader and IdleWriter. Close waits for
// running handlers, which return once their stream fails.
func (m *Mesh) Handle(proto protocol.ID, h func(peer.ID, network.Stream)) {
	m.host.SetStreamHandler(proto, func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !m.allowed(p) { // removed by SetPeers while its connection closes
			s.Reset()
			return
		}
		if !m.track() {
			s.Reset()
			return
		}
		defer m.wg.Done()
		h(p, s)
	})
}

// Open opens a stream of protocol proto to p, dialing p first if needed
// (libp2p's dial backoff for p is cleared first, so a peer that just came
// back is dialed at once).
func (m *Mesh) Open(ctx context.Context, p peer.ID, proto protocol.ID) (network.Stream, error) {
	if !m.allowed(p) {
		return nil, &PeerError{Op: "open " + string(proto) + " to", Peer: p, Err: ErrNotAllowed}
	}
	if m.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if !m.Connected(p) {
		m.clearDialBackoff(p)
	}
	s, err := m.host.NewStream(ctx, p, proto)
	if err != nil {
		if m.ctx.Err() != nil {
			err = errors.Join(ErrClosed, err)
		}
		return nil, &PeerError{Op: "open " + string(proto) + " to", Peer: p, Name: m.PeerName(p), Err: err}
	}
	return s, nil
}

func (m *Mesh) clearDialBackoff(p peer.ID) {
	if sw, ok := m.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// eventLoop follows the connectedness of configured peers: it keeps the
// connected-peers gauge, wakes WaitConnected callers and the peer's dialer,
// clears the peer's dial problem, and runs the OnConnect callbacks. It
// also closes any connection to a peer outside the allow-list (one that
// passed the gater just before SetPeers removed the peer).
func (m *Mesh) eventLoop(sub event.Subscription) {
	defer m.wg.Done()
	defer sub.Close()
	al := m.allow.Load()
	up := make(map[peer.ID]bool, len(al.peers))
	setGauge := func() {
		n := 0
		for _, v := range up {
			if v {
				n++
			}
		}
		m.met.connected.Set(float64(n))
	}
	update := func(id peer.ID, now bool) {
		p, ok := al.byID[id]
		if !ok || up[id] == now {
			return
		}
		up[id] = now
		setGauge()
		if now {
			p.dial.setProblem("", false)
		}
		select {
		case p.dial.kick <- struct{}{}:
		default:
		}
		m.mu.Lock()
		close(m.changed)
		m.changed = make(chan struct{})
		var fns []func(peer.ID)
		if now && !m.closed {
			fns = slices.Clone(m.onConnect)
			m.wg.Add(len(fns))
		}
		m.mu.Unlock()
		if now {
			m.log.Info("peer connected", "peer", id, "name", p.Name)
		} else {
			m.log.Info("peer disconnected", "peer", id, "name", p.Name)
		}
		for _, fn := range fns {
			go func() {
				defer m.wg.Done()
				fn(id)
			}()
		}
	}
	// follow brings up in line with the current allow-list: peers removed
	// leave the gauge; peers added, and those connected between the
	// host's start and the subscription, enter it.
	follow := func() {
		al = m.allow.Load()
		for id := range up {
			if _, ok := al.byID[id]; !ok {
				delete(up, id)
			}
		}
		setGauge()
		for _, p := range al.peers {
			update(p.ID, m.Connected(p.ID))
		}
	}
	follow()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-al.replaced:
			follow()
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			// connected = connection up and identify done (see Connected)
			switch ev := e.(type) {
			case event.EvtPeerConnectednessChanged:
				if ev.Connectedness == network.Connected && !m.allowed(ev.Peer) {
					m.closeStranger(ev.Peer)
				}
				update(ev.Peer, ev.Connectedness == network.Connected && m.Connected(ev.Peer))
			case event.EvtPeerIdentificationCompleted:
				update(ev.Peer, m.Connected(ev.Peer))
			}
		}
	}
}

// closeStranger closes the connections to p, a peer outside the
// allow-list, on a goroutine of its own: closing emits connectedness
// events, which the event loop must stay free to receive.
func (m *Mesh) closeStranger(p peer.ID) {
	if !m.track() {
		return
	}
	go func() {
		defer m.wg.Done()
		m.log.Debug("closing connection to a peer no longer in the allow-list", "peer", p)
		m.host.Network().ClosePeer(p)
	}()
}

// minLevel is a slog handler that drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// bulkYamux is yamux with every stream starting at the largest receive
// window: bulk chunk streams then run at full speed from their first
// byte instead of waiting for the window to grow (a stream buffers at
// most its window, 16 MiB, while its reader lags).
func bulkYamux() *yamux.Transport {
	tr := *yamux.DefaultTransport
	tr.InitialStreamWindowSize = tr.MaxStreamWindowSize
	return &tr
}
