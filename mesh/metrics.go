package mesh

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	metricsNamespace = "vigil"
	metricsSubsystem = "mesh"
)

// meshMetrics are the mesh's Prometheus collectors. They always exist;
// they are registered only when Config.Registerer is set.
type meshMetrics struct {
	connected    prometheus.Gauge
	published    prometheus.Counter
	received     prometheus.Counter
	rejected     *prometheus.CounterVec // by gossipsub reason
	dropped      *prometheus.CounterVec // by reason
	gaterRefused *prometheus.CounterVec // by direction

	streamsRefused   *prometheus.CounterVec // by protocol ("" before negotiation)
	resourcesRefused *prometheus.CounterVec // by resource: connection, memory
	resources        *resourceCollector
	bandwidth        *bandwidthCollector

	reg prometheus.Registerer
}

func newMetrics(bw *metrics.BandwidthCounter, peers []Peer) *meshMetrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	return &meshMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts(opts("connected_peers",
			"Configured peers with an open connection."))),
		published: prometheus.NewCounter(prometheus.CounterOpts(opts("pubsub_messages_published_total",
			"Messages published on folder topics by this node."))),
		received: prometheus.NewCounter(prometheus.CounterOpts(opts("pubsub_messages_received_total",
			"Messages from other peers that passed validation."))),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts(opts("pubsub_messages_rejected_total",
			"Messages from other peers rejected by signature checks or topic validators.")), []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts(opts("pubsub_messages_dropped_total",
			"Messages dropped: subscriber buffer full, outbound queue full, or the DropInbound test hook.")), []string{"reason"}),
		gaterRefused: prometheus.NewCounterVec(prometheus.CounterOpts(opts("gater_refused_total",
			"Connections refused because the peer is not in the allow-list.")), []string{"direction"}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts(opts("streams_refused_total",
			"Streams reset by the resource manager because a stream limit was reached, by protocol "+
				"(empty: refused when opened, before its protocol was negotiated).")), []string{"protocol"}),
		resourcesRefused: prometheus.NewCounterVec(prometheus.CounterOpts(opts("resources_refused_total",
			"Connections and memory reservations refused by the resource manager.")), []string{"resource"}),
		resources: newResourceCollector(peers),
		bandwidth: &bandwidthCollector{
			bw: bw,
			total: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "stream_bytes_total"),
				"Bytes sent (direction=out) and received (direction=in) on streams, by protocol; throughput is rate() of it.",
				[]string{"protocol", "direction"}, nil),
		},
	}
}

func (mm *meshMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{mm.connected, mm.published, mm.received, mm.rejected, mm.dropped, mm.gaterRefused,
		mm.streamsRefused, mm.resourcesRefused, mm.resources, mm.bandwidth}
}

// register registers every collector on reg (nil: none); on failure it
// unregisters those already registered.
func (mm *meshMetrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var done []prometheus.Collector
	for _, c := range mm.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	mm.reg = reg
	return nil
}

func (mm *meshMetrics) unregister() {
	if mm.reg == nil {
		return
	}
	for _, c := range mm.collectors() {
		mm.reg.Unregister(c)
	}
	mm.reg = nil
}

// bandwidthCollector exposes libp2p's per-protocol byte totals as a
// counter. libp2p's smoothed rates are left out: a rate is for the query to
// compute (rate(vigil_mesh_stream_bytes_total[1m])), over a window the user
// chooses, not a gauge sampled at scrape time.
type bandwidthCollector struct {
	bw    *metrics.BandwidthCounter
	total *prometheus.Desc
}

func (c *bandwidthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.total
}

func (c *bandwidthCollector) Collect(ch chan<- prometheus.Metric) {
	for proto, st := range c.bw.GetBandwidthByProtocol() {
		p := string(proto)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(st.TotalOut), p, "out")
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(st.TotalIn), p, "in")
	}
}

// resourceCollector exposes, at each scrape, what the resource manager
// accounts: streams and memory of the whole node, of the streams still in
// protocol negotiation (transient), and of each connected configured peer.
type resourceCollector struct {
	mu    sync.Mutex
	names map[peer.ID]string          // peer label: the configured name, or the ID
	rm    network.ResourceScopeViewer // nil until the host exists
	net   network.Network

	streams, memory, peerStreams, peerMemory *prometheus.Desc
}

func newResourceCollector(peers []Peer) *resourceCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, name), help, labels, nil)
	}
	c := &resourceCollector{
		streams: desc("resource_streams",
			"Open streams accounted by the resource manager, by scope (system: all; transient: protocol not negotiated yet) and direction.",
			"scope", "direction"),
		memory: desc("resource_memory_bytes",
			"Memory reserved from the resource manager, by scope (system, transient).", "scope"),
		peerStreams: desc("peer_streams",
			"Open streams with a connected configured peer, by direction.", "peer", "direction"),
		peerMemory: desc("peer_memory_bytes",
			"Memory reserved for a connected configured peer's connections and streams.", "peer"),
	}
	c.setPeers(peers)
	return c
}

// setPeers makes the configured peers the ones reported, labelled with
// their names (SetPeers calls it with each new allow-list).
func (c *resourceCollector) setPeers(peers []Peer) {
	names := make(map[peer.ID]string, len(peers))
	for _, p := range peers {
		names[p.ID] = displayName(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = names
}

func (c *resourceCollector) attach(rm network.ResourceManager, n network.Network) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rm, c.net = rm, n
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.streams
	ch <- c.memory
	ch <- c.peerStreams
	ch <- c.peerMemory
}

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	rm, n, names := c.rm, c.net, c.names
	c.mu.Unlock()
	if rm == nil {
		return
	}
	scope := func(name string, st network.ScopeStat) {
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(st.NumStreamsInbound), name, "in")
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(st.NumStreamsOutbound), name, "out")
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(st.Memory), name)
	}
	rm.ViewSystem(func(s network.ResourceScope) error { scope("system", s.Stat()); return nil })
	rm.ViewTransient(func(s network.ResourceScope) error { scope("transient", s.Stat()); return nil })
	for id, name := range names {
		if n.Connectedness(id) != network.Connected {
			continue // viewing would create the peer's scope
		}
		rm.ViewPeer(id, func(s network.PeerScope) error {
			st := s.Stat()
			ch <- prometheus.MustNewConstMetric(c.peerStreams, prometheus.GaugeValue, float64(st.NumStreamsInbound), name, "in")
			ch <- prometheus.MustNewConstMetric(c.peerStreams, prometheus.GaugeValue, float64(st.NumStreamsOutbound), name, "out")
			ch <- prometheus.MustNewConstMetric(c.peerMemory, prometheus.GaugeValue, float64(st.Memory), name)
			return nil
		})
	}
}

// pubsubTracer counts gossipsub events into the mesh metrics and follows
// which peers are in our gossipsub mesh of each topic (see Topic.Peers).
type pubsubTracer struct {
	met   *meshMetrics
	graft *graftSet
}

var _ pubsub.RawTracer = (*pubsubTracer)(nil)

func (t *pubsubTracer) DeliverMessage(msg *pubsub.Message) {
	if !msg.Local {
		t.met.received.Inc()
	}
}

func (t *pubsubTracer) RejectMessage(msg *pubsub.Message, reason string) {
	if !msg.Local {
		t.met.rejected.WithLabelValues(reason).Inc()
	}
}

func (t *pubsubTracer) UndeliverableMessage(*pubsub.Message) {
	t.met.dropped.WithLabelValues("subscriber_full").Inc()
}

func (t *pubsubTracer) DropRPC(rpc *pubsub.RPC, _ peer.ID) {
	if n := len(rpc.GetPublish()); n > 0 {
		t.met.dropped.WithLabelValues("outbound_queue_full").Add(float64(n))
	}
}

func (t *pubsubTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *pubsubTracer) OnClosedOutboundStream(p peer.ID)                     { t.graft.removePeer(p) }
func (t *pubsubTracer) Join(string)                                          {}
func (t *pubsubTracer) Leave(topic string)                                   { t.graft.removeTopic(topic) }
func (t *pubsubTracer) Graft(p peer.ID, topic string)                        { t.graft.set(topic, p, true) }
func (t *pubsubTracer) Prune(p peer.ID, topic string)                        { t.graft.set(topic, p, false) }
func (t *pubsubTracer) ValidateMessage(*pubsub.Message)                      {}
func (t *pubsubTracer) DuplicateMessage(*pubsub.Message)                     {}
func (t *pubsubTracer) ThrottlePeer(peer.ID)                                 {}
func (t *pubsubTracer) RecvRPC(*pubsub.RPC)                                  {}
func (t *pubsubTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *pubsubTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
