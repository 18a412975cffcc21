package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/vigil-mesh/vigil/internal/buildinfo"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// registerRuntimeMetrics registers the Go runtime and process collectors
// (go_*, process_*) and vigil_build_info on reg. A collector that is already
// registered (several nodes sharing one registry in tests, or a registry
// that already has the standard collectors) is left as it is.
func registerRuntimeMetrics(reg prometheus.Registerer) error {
	b := buildinfo.Read()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "vigil", Name: "build_info",
		Help:        "Always 1; the labels name the version, commit and Go version of the running binary.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// lagCollector exports the lag of every pair at scrape time.
type lagCollector struct {
	n                    *Node
	seq, bytes, seconds  *prometheus.Desc
	head, applied, state *prometheus.Desc
	errors               *prometheus.Desc
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
		errors:  d("errors", "Failures that keep changes of the pair from being backed up (see vigil lag)."),
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.seq, c.bytes, c.seconds, c.head, c.applied, c.state, c.errors} {
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
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.GaugeValue, float64(len(p.Errors)+p.MoreErrors), l...)
	}
}

// startMetrics serves Prometheus metrics on the `metrics:` address, if set.
func (n *Node) startMetrics(ctx context.Context, g *errgroup.Group) error {
	if n.opts.registerer != nil {
		// registered once per node
		if err := n.opts.registerer.Register(newLagCollector(n)); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
		if err := registerRuntimeMetrics(n.opts.registerer); err != nil {
			return fmt.Errorf("node: register metrics: %w", err)
		}
	}
	addr := n.config().Node.Metrics
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: metrics endpoint %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.opts.gatherer, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("node: metrics endpoint %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return nil
}
