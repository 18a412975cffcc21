package replica

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the backup-side series, shared by a node's replicas. Names
// keep the vigil_node_ prefix dashboards know.
type Metrics struct {
	chunksFetched  prometheus.Counter
	bytesFetched   prometheus.Counter
	recordsApplied prometheus.Counter
	applyLatency   prometheus.Histogram
	baselineDone   *prometheus.GaugeVec
	baselineTotal  *prometheus.GaugeVec
	damaged        prometheus.Counter
	pendingDropped prometheus.Counter
}

// NewMetrics makes the series and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "vigil", "node"
	m := &Metrics{
		chunksFetched: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "chunks_fetched_total", Help: "Chunks fetched from sources over streams (verified)."}),
		bytesFetched: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "chunk_bytes_fetched_total", Help: "Chunk bytes fetched from sources over streams."}),
		recordsApplied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_applied_total", Help: "Journal records applied to replicas."}),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "apply_seconds", Help: "Time to apply and commit one batch of records to a replica.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		baselineDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "baseline_done_bytes", Help: "Bytes of the current baseline already in the replica."}, []string{"source", "folder"}),
		baselineTotal: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "baseline_total_bytes", Help: "Bytes of the current baseline's snapshot."}, []string{"source", "folder"}),
		damaged: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "replica_damage_found_total", Help: "Replica files found not to match their index (repaired from the source)."}),
		pendingDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_out_of_order_dropped_total", Help: "Records that arrived out of order and found the buffer full (pulled again later)."}),
	}
	if reg != nil {
		reg.MustRegister(m.chunksFetched, m.bytesFetched, m.recordsApplied, m.applyLatency, m.baselineDone, m.baselineTotal,
			m.damaged, m.pendingDropped)
	}
	return m
}
