package agent

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the source-side series, shared by a node's agents (labelled
// by folder). Names keep the vigil_node_ prefix dashboards know.
type Metrics struct {
	changes        *prometheus.CounterVec
	captureErrors  *prometheus.CounterVec
	captureLatency *prometheus.HistogramVec
	chunksSent     prometheus.Counter
	bytesSent      prometheus.Counter
	// consistent capture (capture.go)
	readRetries  *prometheus.CounterVec
	tornReads    *prometheus.CounterVec
	groupRounds  *prometheus.CounterVec
	groupsUneven *prometheus.CounterVec
}

// NewMetrics makes the series and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "vigil", "node"
	m := &Metrics{
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
		readRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "capture_read_retries_total", Help: "File reads thrown away because a writer raced them, and read again."}, []string{"folder"}),
		tornReads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "capture_torn_total", Help: "Files left out of a capture because every read of them raced a writer (captured again later)."}, []string{"folder"}),
		groupRounds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "capture_group_rereads_total", Help: "Extra rounds of reads a group needed because paths changed while it was read."}, []string{"folder"}),
		groupsUneven: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "capture_groups_unsettled_total", Help: "Groups journaled without one consistent moment across their files (the files kept changing; each file is still a state it had)."}, []string{"folder"}),
	}
	if reg != nil {
		reg.MustRegister(m.changes, m.captureErrors, m.captureLatency, m.chunksSent, m.bytesSent,
			m.readRetries, m.tornReads, m.groupRounds, m.groupsUneven)
	}
	return m
}
