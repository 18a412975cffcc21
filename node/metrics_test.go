package node

import (
	"runtime"
	"testing"

	"github.com/vigil-mesh/vigil/internal/buildinfo"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestRuntimeMetricsRegisterGoProcessAndBuildInfoOnceEach(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 { // a second node on the same registry must not fail
		if err := registerRuntimeMetrics(reg); err != nil {
			t.Fatalf("registerRuntimeMetrics: %v", err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	want := []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "vigil_build_info"}
	if runtime.GOOS == "linux" {
		want = append(want, "process_resident_memory_bytes", "process_open_fds")
	}
	for _, name := range want {
		if byName[name] == nil {
			t.Errorf("metric %s not registered", name)
		}
	}
	info := byName["vigil_build_info"]
	if info == nil {
		return
	}
	if len(info.GetMetric()) != 1 || info.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("vigil_build_info = %v, want one gauge of value 1", info.GetMetric())
	}
	b := buildinfo.Read()
	labels := map[string]string{}
	for _, l := range info.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	wantLabels := map[string]string{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion}
	if len(labels) != len(wantLabels) {
		t.Errorf("vigil_build_info labels = %v, want %v", labels, wantLabels)
	}
	for k, v := range wantLabels {
		if labels[k] != v {
			t.Errorf("vigil_build_info{%s} = %q, want %q", k, labels[k], v)
		}
	}
}
