package node

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestBuildOfNamesVersionRevisionAndModifiedTree(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/vigil-mesh/vigil", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "32a99bde3b3bd91dcbdba79ad1c70f6907157e84"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := BuildOf(bi)
	want := Build{Version: "v1.2.3", Commit: "32a99bde3b3bd91dcbdba79ad1c70f6907157e84-dirty", GoVersion: "go1.26.8"}
	if got != want {
		t.Errorf("modified tree: BuildOf = %+v, want %+v", got, want)
	}

	bi.Settings[2].Value = "false"
	if got := BuildOf(bi).Commit; got != "32a99bde3b3bd91dcbdba79ad1c70f6907157e84" {
		t.Errorf("clean tree: commit = %q, want the bare revision", got)
	}
}

func TestBuildOfSaysDevelAndUnknownWithoutStampedInformation(t *testing.T) {
	want := Build{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	if got := BuildOf(nil); got != want {
		t.Errorf("no build information: BuildOf = %+v, want %+v", got, want)
	}
	bi := &debug.BuildInfo{GoVersion: runtime.Version(), Main: debug.Module{Path: "github.com/vigil-mesh/vigil", Version: "(devel)"}}
	if got := BuildOf(bi); got != want {
		t.Errorf("build without VCS stamp: BuildOf = %+v, want %+v", got, want)
	}
}

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
	b := ReadBuild()
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
