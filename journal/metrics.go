package journal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are always updated; they are exported only when a Registerer
// was given.
type metrics struct {
	reg         prometheus.Registerer
	appends     prometheus.Counter
	appendBytes prometheus.Counter
	fsync       prometheus.Histogram
	diskBytes   prometheus.Gauge
	retained    prometheus.Gauge

	failures         prometheus.Counter
	recoveryAttempts prometheus.Counter
	recoveries       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, labels prometheus.Labels) (*metrics, error) {
	const ns, sub = "vigil", "journal"
	m := &metrics{
		appends: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "appends_total",
			Help: "Records appended to the journal.", ConstLabels: labels,
		}),
		appendBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "appended_bytes_total",
			Help: "Payload bytes appended to the journal.", ConstLabels: labels,
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds",
			Help:        "Latency of fsync calls on journal segment files.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 16), // 100us .. ~3.3s
		}),
		diskBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "disk_bytes",
			Help: "Bytes of journal segment files on disk.", ConstLabels: labels,
		}),
		retained: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "records_retained",
			Help: "Records retained in the journal (appended and not compacted).", ConstLabels: labels,
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "failures_total",
			Help:        "Times the journal stopped taking appends after a failed write or fsync.",
			ConstLabels: labels,
		}),
		recoveryAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "recovery_attempts_total",
			Help: "Attempts to make a failed journal writable again.", ConstLabels: labels,
		}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "recoveries_total",
			Help:        "Times a failed journal became writable again (failures_total - recoveries_total is 1 while it is failed).",
			ConstLabels: labels,
		}),
	}
	if reg == nil {
		return m, nil
	}
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("journal: register metrics: %w", err)
		}
		done = append(done, c)
	}
	m.reg = reg
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.appends, m.appendBytes, m.fsync, m.diskBytes, m.retained,
		m.failures, m.recoveryAttempts, m.recoveries}
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
	m.reg = nil
}
