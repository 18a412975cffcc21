package node

import "github.com/prometheus/client_golang/prometheus"

// metrics are the node's Prometheus series (namespace vigil, subsystem
// node). Per-pair lag series are produced at scrape time by lagCollector.
type metrics struct {
	changes        *prometheus.CounterVec
	captureErrors  *prometheus.CounterVec
	captureLatency *prometheus.HistogramVec
	chunksSent     prometheus.Counter
	bytesSent      prometheus.Counter
	chunksFetched  prometheus.Counter
	bytesFetched   prometheus.Counter
	recordsApplied prometheus.Counter
	applyLatency   prometheus.Histogram
	baselineDone   *prometheus.GaugeVec
	baselineTotal  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "vigil", "node"
	m := &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "changes_captured_total", Help: "Changes captured into the journal, by folder and operation."}, []string{"folder", "op"}),
		captureErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "capture_errors_total", Help: "Captures that could not be journaled (retried by a rescan)."}, []string{"folder"}),
		captureLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "capture_seconds", Help: "Time from a settled batch of paths to its records being durable and published.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"folder"}),
		chunksSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "chunks_sent_total", Help: "Chunks served to backups over streams."}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "chunk_bytes_sent_total", Help: "Chunk bytes served to backups over streams."}),
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
	}
	if reg != nil {
		reg.MustRegister(m.changes, m.captureErrors, m.captureLatency, m.chunksSent, m.bytesSent,
			m.chunksFetched, m.bytesFetched, m.recordsApplied, m.applyLatency, m.baselineDone, m.baselineTotal)
	}
	return m
}

// lagCollector exports the lag of every pair at scrape time.
type lagCollector struct {
	n                    *Node
	seq, bytes, seconds  *prometheus.Desc
	head, applied, state *prometheus.Desc
}

func newLagCollector(n *Node) *lagCollector {
	labels := []string{"source", "folder", "target"}
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("vigil", "lag", name), help, append(labels, extra...), nil)
	}
	return &lagCollector{n: n,
		seq:     d("seq", "Records the target has not applied (durably acknowledged)."),
		bytes:   d("bytes", "Bytes the target has not applied."),
		seconds: d("seconds", "Age of the oldest change the target has not applied."),
		head:    d("head_seq", "Newest journal seq of the pair's source."),
		applied: d("applied_seq", "Journal seq the target has durably applied."),
		state:   d("state", "1 for the pair's current state.", "state"),
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.seq, c.bytes, c.seconds, c.head, c.applied, c.state} {
		ch <- d
	}
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.n.Lag().Pairs {
		l := []string{p.SourceName, p.Folder, p.TargetName}
		ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(p.LagSeq), l...)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(p.LagBytes), l...)
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, p.LagSeconds, l...)
		ch <- prometheus.MustNewConstMetric(c.head, prometheus.GaugeValue, float64(p.HeadSeq), l...)
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(p.AppliedSeq), l...)
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, append(l, p.State)...)
	}
}
