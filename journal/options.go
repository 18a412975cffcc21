package journal

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// SyncPolicy says when appended records are forced to stable storage.
type SyncPolicy int

const (
	// SyncGroup (default): Append returns after an fsync that covers its
	// record; concurrent Appends share one fsync (group commit).
	SyncGroup SyncPolicy = iota
	// SyncAlways: one fsync per Append (or AppendBatch) call.
	SyncAlways
	// SyncNone: no fsync except in Close; a crash may lose recent
	// records or leave a torn segment. For tests and benchmarks.
	SyncNone
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncGroup:
		return "group"
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return "unknown"
}

const (
	// DefaultSegmentSize is the size above which a new segment starts.
	DefaultSegmentSize int64 = 64 << 20
	// DefaultMaxRecordSize is the default largest payload.
	DefaultMaxRecordSize = 64 << 20
	// MaxRecordSizeLimit is the largest payload the format accepts; a frame
	// declaring more is corrupt whatever WithMaxRecordSize says.
	MaxRecordSizeLimit = 1 << 30
)

type options struct {
	segmentSize   int64
	sync          SyncPolicy
	maxRecordSize int
	logger        *slog.Logger
	registerer    prometheus.Registerer
	constLabels   prometheus.Labels
	faults        *Faults
}

// Option configures Open.
type Option func(*options)

// WithSegmentSize sets the size above which the active segment is closed
// and a new one started (default 64 MiB; n <= 0 keeps the default).
func WithSegmentSize(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.segmentSize = n
		}
	}
}

// WithSync sets the sync policy (default SyncGroup).
func WithSync(p SyncPolicy) Option {
	return func(o *options) { o.sync = p }
}

// WithMaxRecordSize sets the largest payload Append accepts (default
// 64 MiB, at most MaxRecordSizeLimit; n <= 0 keeps the default). It does
// not affect reading records already stored.
func WithMaxRecordSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxRecordSize = min(n, MaxRecordSizeLimit)
		}
	}
}

// WithLogger sets the logger (default slog.Default()); the journal adds
// subsystem=journal and dir attributes.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithRegisterer registers the journal's metrics on r with constLabels
// (which must tell journals of one process apart, e.g. source and folder).
// nil r: metrics are not registered. Close unregisters them.
func WithRegisterer(r prometheus.Registerer, constLabels prometheus.Labels) Option {
	return func(o *options) {
		o.registerer = r
		o.constLabels = constLabels
	}
}

// WithFaults makes the journal's writes, truncations and fsyncs fail when
// f says so, for tests (see Faults). nil: no faults.
func WithFaults(f *Faults) Option {
	return func(o *options) { o.faults = f }
}
