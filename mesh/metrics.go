package mesh

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/metrics"
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
	bandwidth    *bandwidthCollector

	reg prometheus.Registerer
}

func newMetrics(bw *metrics.BandwidthCounter) *meshMetrics {
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
		bandwidth: &bandwidthCollector{
			bw: bw,
			total: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "stream_bytes_total"),
				"Bytes sent (direction=out) and received (direction=in) on streams, by protocol; throughput is rate() of it.",
				[]string{"protocol", "direction"}, nil),
		},
	}
}

func (mm *meshMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{mm.connected, mm.published, mm.received, mm.rejected, mm.dropped, mm.gaterRefused, mm.bandwidth}
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
