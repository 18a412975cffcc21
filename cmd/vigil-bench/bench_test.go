package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-mesh/vigil/node/config"
)

func TestPercentileUsesNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
}

func TestParseRsyncStatsReadsSentAndReceivedWithSeparators(t *testing.T) {
	out := `Number of files: 1 (reg: 1)
Total file size: 268,435,456 bytes
Literal data: 4,096 bytes
Total bytes sent: 15,432
Total bytes received: 1,234,567

sent 15,432 bytes  received 1,234,567 bytes  2.00 bytes/sec
`
	sent, recv, err := parseRsyncStats(out)
	if err != nil {
		t.Fatal(err)
	}
	if sent != 15432 || recv != 1234567 {
		t.Fatalf("got sent=%d received=%d, want 15432 and 1234567", sent, recv)
	}
	if _, _, err := parseRsyncStats("sent 1 bytes"); err == nil {
		t.Fatal("output without --stats lines: want an error")
	}
}

func TestParseStreamBytesSumsByProtocolAndDirection(t *testing.T) {
	text := `# HELP vigil_mesh_stream_bytes_total Bytes sent
# TYPE vigil_mesh_stream_bytes_total counter
vigil_mesh_stream_bytes_total{direction="in",protocol="/meshsub/1.2.0"} 1500
vigil_mesh_stream_bytes_total{direction="out",protocol="/meshsub/1.2.0"} 2.5e+06
vigil_mesh_stream_bytes_total{direction="out",protocol="/vigil/sync/1"} 100
vigil_mesh_stream_bytes_per_second{direction="out",protocol="/vigil/sync/1"} 7
vigil_node_chunk_bytes_sent_total 99
`
	before, err := parseStreamBytes(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if before["/meshsub/1.2.0 out"] != 2.5e6 || before["/meshsub/1.2.0 in"] != 1500 || before["/vigil/sync/1 out"] != 100 {
		t.Fatalf("parsed %v", before)
	}
	if len(before) != 3 {
		t.Fatalf("parsed %d series, want 3 (rate and other metrics ignored): %v", len(before), before)
	}
	after := streamBytes{"/meshsub/1.2.0 in": 1600, "/meshsub/1.2.0 out": 2.5e6, "/vigil/sync/1 out": 4196}
	d, total := after.sub(before)
	if total != 100+4096 || len(d) != 2 {
		t.Fatalf("delta %v total %v, want two series summing to 4196", d, total)
	}
}

// The vigil.yaml the benchmark writes must be accepted by the node's
// config rules, decoded as strictly as cmd/vigil does.
func TestConfigYAMLIsAValidNodeConfig(t *testing.T) {
	home := t.TempDir()
	folder := t.TempDir()
	src := &vnode{name: "src", home: home, id: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", listen: "/ip4/127.0.0.1/tcp/4101"}
	dst := &vnode{name: "dst", home: t.TempDir(), id: "12D3KooWHvVpJ6FLNyRCC3QxTWA7hD8GXVB6CErkdWdhNzi93DAn", listen: "/ip4/127.0.0.1/tcp/4102"}
	for _, n := range []*vnode{src, dst} {
		n.cfg.Node = benchNodeSection{Name: n.name, Listen: []string{n.listen}, DataDir: "data", Control: "vigil.sock", Metrics: "127.0.0.1:9464"}
	}
	pairNodes(src, dst, "data", folder)
	for _, n := range []*vnode{src, dst} {
		b, err := n.configYAML()
		if err != nil {
			t.Fatal(err)
		}
		var cfg config.Config
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%s config does not decode: %v\n%s", n.name, err, b)
		}
		cfg.Home, cfg.File = n.home, filepath.Join(n.home, "vigil.yaml")
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s config invalid: %v\n%s", n.name, err, b)
		}
		if n == src && (len(cfg.Folders) != 1 || cfg.Folders[0].BackupTo[0] != "dst") {
			t.Fatalf("source config lost its folder: %+v", cfg.Folders)
		}
		if n == dst && (len(cfg.BackupFor) != 1 || cfg.BackupFor[0].Peer != "src") {
			t.Fatalf("target config lost its backup_for: %+v", cfg.BackupFor)
		}
	}
}

func TestCompareTreesFindsChangedMissingAndExtraFiles(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	write := func(root, rel, data string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "x/1", "one")
	write(b, "x/1", "one")
	write(a, "2", strings.Repeat("z", 3<<20))
	write(b, "2", strings.Repeat("z", 3<<20))
	if n, err := compareTrees(ctx, a, b); err != nil || n != 2 {
		t.Fatalf("equal trees: n=%d err=%v", n, err)
	}
	write(b, "2", strings.Repeat("z", 3<<20-1)+"y")
	if _, err := compareTrees(ctx, a, b); !errors.Is(err, errDiffer) {
		t.Fatalf("changed last byte: err=%v, want errDiffer", err)
	}
	write(b, "2", strings.Repeat("z", 3<<20))
	write(b, "extra", "e")
	if _, err := compareTrees(ctx, a, b); err == nil {
		t.Fatal("extra file in the copy: want an error")
	}
	os.Remove(filepath.Join(b, "extra"))
	os.Remove(filepath.Join(b, "x/1"))
	if _, err := compareTrees(ctx, a, b); err == nil {
		t.Fatal("missing file in the copy: want an error")
	}
}

func TestRegionIsChecksSizeAndContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := []byte("0123456789")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if !regionIs(p, 10, 4, []byte("456"), buf) {
		t.Error("matching region reported different")
	}
	if regionIs(p, 11, 4, []byte("456"), buf) {
		t.Error("wrong size accepted")
	}
	if regionIs(p, 10, 4, []byte("457"), buf) {
		t.Error("wrong content accepted")
	}
	if regionIs(filepath.Join(t.TempDir(), "missing"), 10, 0, []byte("0"), buf) {
		t.Error("missing file accepted")
	}
}

func TestGenSmallFilesMakesThreeLevelsOfAboutTwentyFiles(t *testing.T) {
	dir := t.TempDir()
	ds, err := genSmallFiles(context.Background(), dir, 0.01) // 200 files
	if err != nil {
		t.Fatal(err)
	}
	if ds.files != 200 {
		t.Fatalf("files = %d, want 200", ds.files)
	}
	if ds.bytes < 200*1024 || ds.bytes > 200*64*1024 {
		t.Fatalf("bytes = %d, outside 1-64 KiB per file", ds.bytes)
	}
	leaves, err := filepath.Glob(filepath.Join(dir, "*", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) != 10 {
		t.Fatalf("%d leaf directories at depth 3, want 10", len(leaves))
	}
	got, err := warm(context.Background(), dir)
	if err != nil || got != ds.bytes {
		t.Fatalf("warm read %d bytes (err %v), want %d", got, err, ds.bytes)
	}
}

func TestBaselineOptsRejectsACompareBinaryThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "vigil-old")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{filepath.Join(dir, "missing"), notExec, dir} {
		o := baselineOpts{dataset: "A", scale: 1, compare: bin}
		if err := o.check(); err == nil || !strings.Contains(err.Error(), "--compare") {
			t.Errorf("--compare %s: err = %v, want one naming --compare", bin, err)
		}
	}
	if err := os.Chmod(notExec, 0o755); err != nil {
		t.Fatal(err)
	}
	o := baselineOpts{dataset: "A", scale: 1, compare: notExec}
	if err := o.check(); err != nil {
		t.Errorf("--compare with an executable: %v", err)
	}
}

// Node ports stay below the ephemeral range and are never handed out twice.
func TestFreePortIsBelowTheEphemeralRangeAndUnique(t *testing.T) {
	seen := make(map[int]bool)
	for range 50 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < 20000 || p >= 32000 {
			t.Fatalf("port %d outside 20000-31999", p)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestCreateCostCreatesAndKeepsTheFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "probe")
	us, err := createCost(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	if us <= 0 {
		t.Errorf("cost %v us per file, want > 0", us)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 20 {
		t.Fatalf("probe dir holds %d entries (err %v), want 20", len(ents), err)
	}
	if _, err := createCost(dir, 1); err == nil {
		t.Error("a second probe into the same directory succeeded; files must be new")
	}
}
