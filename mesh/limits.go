package mesh

import (
	"fmt"
	"maps"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Limits bounds what one peer can make this node hold: streams open at
// once and memory reserved by its connections. libp2p's resource manager
// enforces them; a stream beyond a limit is reset (error code
// network.StreamResourceLimitExceeded) and counted in
// vigil_mesh_streams_refused_total. A zero field takes its default.
//
// A backup opens a few ProtoSync streams per folder it is catching up
// (snapshot, chunks, journal range) and keeps one ProtoAck stream per
// folder: a node whose peers back up many folders from it raises
// SyncStreams and AckStreams accordingly.
type Limits struct {
	// SyncStreams is how many ProtoSync streams one peer may have open
	// with this node at once, in each direction. Default 32.
	SyncStreams int
	// AckStreams is how many ProtoAck streams one peer may have open with
	// this node at once, in each direction. Default 8.
	AckStreams int
	// PeerStreams is how many streams of any protocol one peer may have
	// open with this node at once, in each direction, counting those whose
	// protocol is not negotiated yet (gossipsub, identify, ping and
	// ProtoHello, whose own limit is 4, use a few). Default SyncStreams +
	// AckStreams + 24.
	PeerStreams int
	// PeerMemory bounds the memory the muxer and transports reserve for
	// one peer's connections and streams: 256 KiB per yamux stream, the
	// flow-control windows of QUIC connections. Default 64 MiB.
	PeerMemory int64
}

// Default limits.
const (
	defaultSyncStreams = 32
	defaultAckStreams  = 8
	peerStreamsSlack   = 24 // gossipsub, identify (+push), ping, hello, and streams in negotiation
	defaultPeerMemory  = 64 << 20

	// helloStreams is how many ProtoHello streams one peer may have open
	// with this node at once, in each direction: a source opens one to
	// each backup, asks, reads the answer and closes it.
	helloStreams = 4
)

func (l Limits) validate() error {
	if l.SyncStreams < 0 || l.AckStreams < 0 || l.PeerStreams < 0 || l.PeerMemory < 0 {
		return fmt.Errorf("%w: limits: negative value in %+v", ErrInvalidConfig, l)
	}
	return nil
}

// withDefaults returns l with its zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	if l.SyncStreams == 0 {
		l.SyncStreams = defaultSyncStreams
	}
	if l.AckStreams == 0 {
		l.AckStreams = defaultAckStreams
	}
	if l.PeerStreams == 0 {
		l.PeerStreams = l.SyncStreams + l.AckStreams + peerStreamsSlack
	}
	if l.PeerMemory == 0 {
		l.PeerMemory = defaultPeerMemory
	}
	return l
}

// resourceLimits builds the resource manager's limits for a node with
// npeers peers: libp2p's defaults for the system, transient and libp2p's
// own protocols (identify, ping), scaled to this machine's memory and file
// descriptors, with l's per-peer limits on top.
func (l Limits) resourceLimits(npeers int) rcmgr.ConcreteLimitConfig {
	l = l.withDefaults()
	cfg := rcmgr.DefaultLimits
	// The per-service, per-protocol and per-peer maps of the package value
	// must not be shared.
	cfg.ServiceLimits = maps.Clone(cfg.ServiceLimits)
	cfg.ServicePeerLimits = maps.Clone(cfg.ServicePeerLimits)
	cfg.ProtocolLimits = maps.Clone(cfg.ProtocolLimits)
	cfg.ProtocolPeerLimits = maps.Clone(cfg.ProtocolPeerLimits)
	cfg.PeerLimits = maps.Clone(cfg.PeerLimits)
	libp2p.SetDefaultServiceLimits(&cfg)

	// Every peer: fixed, whatever the machine.
	cfg.PeerBaseLimit.StreamsInbound = l.PeerStreams
	cfg.PeerBaseLimit.StreamsOutbound = l.PeerStreams
	cfg.PeerBaseLimit.Streams = 2 * l.PeerStreams
	cfg.PeerBaseLimit.Memory = l.PeerMemory
	cfg.PeerLimitIncrease.StreamsInbound = 0
	cfg.PeerLimitIncrease.StreamsOutbound = 0
	cfg.PeerLimitIncrease.Streams = 0
	cfg.PeerLimitIncrease.Memory = 0

	ours := func(id protocol.ID, perPeer int) {
		// One peer's streams of the protocol.
		cfg.AddProtocolPeerLimit(id, rcmgr.BaseLimit{
			StreamsInbound:  perPeer,
			StreamsOutbound: perPeer,
			Streams:         2 * perPeer,
			Memory:          l.PeerMemory,
		}, rcmgr.BaseLimitIncrease{})
		// All peers together: libp2p's default for a protocol, but never
		// less than every peer at its own limit.
		all := cfg.ProtocolBaseLimit
		all.StreamsInbound = max(all.StreamsInbound, npeers*perPeer)
		all.StreamsOutbound = max(all.StreamsOutbound, npeers*perPeer)
		all.Streams = max(all.Streams, 2*npeers*perPeer)
		cfg.AddProtocolLimit(id, all, cfg.ProtocolLimitIncrease)
	}
	ours(ProtoSync, l.SyncStreams)
	ours(ProtoAck, l.AckStreams)
	ours(ProtoHello, helloStreams)
	return cfg.AutoScale()
}

// newResourceManager returns libp2p's resource manager enforcing cfg's
// limits and counting refusals into met. libp2p's own Prometheus
// collectors stay off: they would register on the global registry.
func newResourceManager(cfg Config, met *meshMetrics) (network.ResourceManager, error) {
	limits := cfg.Limits.resourceLimits(len(cfg.Peers))
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits),
		rcmgr.WithMetricsDisabled(),
		rcmgr.WithMetrics(refusalReporter{met}),
	)
}

// refusalReporter counts the resource manager's refusals. Its methods are
// called synchronously on every reservation: the Allow ones do nothing,
// the Block ones increment a counter.
type refusalReporter struct{ met *meshMetrics }

var _ rcmgr.MetricsReporter = refusalReporter{}

func (r refusalReporter) BlockStream(peer.ID, network.Direction) {
	r.met.streamsRefused.WithLabelValues("").Inc()
}

func (r refusalReporter) BlockProtocol(proto protocol.ID) {
	r.met.streamsRefused.WithLabelValues(string(proto)).Inc()
}

func (r refusalReporter) BlockProtocolPeer(proto protocol.ID, _ peer.ID) {
	r.met.streamsRefused.WithLabelValues(string(proto)).Inc()
}

func (r refusalReporter) BlockService(svc string) {
	r.met.streamsRefused.WithLabelValues("service:" + svc).Inc()
}

func (r refusalReporter) BlockServicePeer(svc string, _ peer.ID) {
	r.met.streamsRefused.WithLabelValues("service:" + svc).Inc()
}

func (r refusalReporter) BlockConn(network.Direction, bool) {
	r.met.resourcesRefused.WithLabelValues("connection").Inc()
}

func (r refusalReporter) BlockPeer(peer.ID) {
	r.met.resourcesRefused.WithLabelValues("connection").Inc()
}

func (r refusalReporter) BlockMemory(int) {
	r.met.resourcesRefused.WithLabelValues("memory").Inc()
}

func (refusalReporter) AllowConn(network.Direction, bool)      {}
func (refusalReporter) AllowStream(peer.ID, network.Direction) {}
func (refusalReporter) AllowPeer(peer.ID)                      {}
func (refusalReporter) AllowProtocol(protocol.ID)              {}
func (refusalReporter) AllowService(string)                    {}
func (refusalReporter) AllowMemory(int)                        {}
