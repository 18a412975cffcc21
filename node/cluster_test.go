package node

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/replica"
	"github.com/vigil-mesh/vigil/node/transport"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/internal/treediff"
	"github.com/vigil-mesh/vigil/internal/workload"
	"github.com/vigil-mesh/vigil/mesh"
)

// testNode is one node of an in-process cluster.
type testNode struct {
	t      testing.TB
	c      *cluster
	name   string
	home   string
	id     peer.ID
	port   int
	cfg    *config.Config
	n      *Node
	cancel context.CancelFunc
	done   chan error
	opts   []Option

	lastReplicas []*replica.Replica // the replicas of the node last stopped
}

var testLogLevel = func() slog.Level {
	if os.Getenv("VIGIL_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}()

// cluster builds nodes that know each other as peers: on an in-memory
// network (transport.Hub) unless libp2p is set before they start, then on
// loopback TCP.
type cluster struct {
	t      testing.TB
	nodes  map[string]*testNode
	hub    *transport.Hub
	libp2p bool
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// shortTempDir keeps unix socket paths under the OS limit.
func shortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newCluster(t testing.TB, names ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, nodes: make(map[string]*testNode), hub: transport.NewHub()}
	for _, name := range names {
		home := shortTempDir(t)
		id, err := mesh.GenerateKey(filepath.Join(home, config.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[name] = &testNode{t: t, c: c, name: name, home: home, id: id, port: freePort(t)}
	}
	for _, tn := range c.nodes {
		tn.cfg = &config.Config{Home: tn.home, File: filepath.Join(tn.home, "vigil.yaml")}
		tn.cfg.Node.Name = tn.name
		tn.cfg.Node.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", tn.port)}
		for _, o := range c.nodes {
			if o == tn {
				continue
			}
			tn.cfg.Peers = append(tn.cfg.Peers, config.PeerConfig{Name: o.name, ID: o.id.String(),
				Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", o.port)}})
		}
	}
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			tn.stop()
		}
	})
	return c
}

// protect makes src protect dir as folder id, backed up to the targets,
// and each target consent to it.
func (c *cluster) protect(src, id, dir string, targets ...string) {
	s := c.nodes[src]
	s.cfg.Folders = append(s.cfg.Folders, config.FolderConfig{ID: id, Path: dir, BackupTo: targets})
	for _, tname := range targets {
		tn := c.nodes[tname]
		tn.cfg.BackupFor = append(tn.cfg.BackupFor, config.BackupForConfig{Peer: src, Folders: []string{id}})
	}
}

func (tn *testNode) start() {
	tn.t.Helper()
	tn.cfg.SetDefaults()
	if err := tn.cfg.Validate(); err != nil {
		tn.t.Fatalf("config of %s: %v", tn.name, err)
	}
	logger := slog.New(slog.NewTextHandler(testLogWriter{tn.t, tn.name}, &slog.HandlerOptions{Level: testLogLevel}))
	opts := []Option{WithLogger(logger)}
	if !tn.c.libp2p {
		peers := make(map[peer.ID]string)
		for _, p := range tn.cfg.Peers {
			id, err := p.PeerID()
			if err != nil {
				tn.t.Fatal(err)
			}
			peers[id] = p.Name
		}
		opts = append(opts, WithNetwork(func(id peer.ID) (transport.Network, error) { return tn.c.hub.Join(id, peers), nil }))
	}
	n, err := New(tn.cfg, append(opts, tn.opts...)...)
	if err != nil {
		tn.t.Fatalf("start %s: %v", tn.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.n, tn.cancel, tn.done = n, cancel, make(chan error, 1)
	go func() { tn.done <- n.Run(ctx) }()
}

func (tn *testNode) stop() {
	if tn.n == nil {
		return
	}
	tn.cancel()
	if err := <-tn.done; err != nil {
		tn.t.Errorf("node %s: %v", tn.name, err)
	}
	if err := tn.n.Close(); err != nil {
		tn.t.Errorf("close %s: %v", tn.name, err)
	}
	tn.lastReplicas = tn.n.replicas
	tn.n = nil
}

func (tn *testNode) replicaDir(src *testNode, folder string) string {
	return filepath.Join(tn.cfg.DataPath(), "replicas", src.id.String(), folder)
}

// waitSynced waits until every pair that n knows is live with no lag.
func (tn *testNode) waitSynced(d time.Duration) {
	tn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	rep, ok := tn.n.WaitSynced(ctx)
	if !ok {
		tn.t.Fatalf("%s not synced after %v: %+v", tn.name, d, rep.Pairs)
	}
}

type testLogWriter struct {
	t    testing.TB
	name string
}

func (w testLogWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Logf("[%s] %s", w.name, strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// treeDiff compares two trees (see treediff.Diff) and returns the
// differences found; a source that cannot be read is one.
func treeDiff(src, dst string) []string {
	d, _, err := treediff.Diff(src, dst, nil)
	if err != nil {
		d = append(d, err.Error())
	}
	return d
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireSame(t testing.TB, src, dst string) {
	t.Helper()
	if d := treeDiff(src, dst); len(d) > 0 {
		if len(d) > 20 {
			d = d[:20]
		}
		t.Fatalf("replica differs from source:\n%s", strings.Join(d, "\n"))
	}
}

func writeFile(t testing.TB, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestClusterBaselineThenLiveChanges(t *testing.T) {
	src := t.TempDir() // created first: removed after the nodes stopped
	c := newCluster(t, "laptop", "nas")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"), 0o644)
	writeFile(t, filepath.Join(src, "dir/b.bin"), bytes.Repeat([]byte("xyz"), 100000), 0o600)
	writeFile(t, filepath.Join(src, "dir/sub/c"), nil, 0o755)
	os.MkdirAll(filepath.Join(src, "empty"), 0o755)
	os.Symlink("a.txt", filepath.Join(src, "link"))
	os.Symlink("nowhere", filepath.Join(src, "dangling"))
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))

	// live changes
	writeFile(t, filepath.Join(src, "new.txt"), []byte("new file"), 0o644)
	f, _ := os.OpenFile(filepath.Join(src, "dir/b.bin"), os.O_WRONLY, 0)
	f.WriteAt([]byte("CHANGED"), 150000)
	f.Close()
	os.Remove(filepath.Join(src, "a.txt"))
	os.Rename(filepath.Join(src, "dir/sub"), filepath.Join(src, "moved"))
	os.Chmod(filepath.Join(src, "new.txt"), 0o600)
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-flow-metrics (libp2p's bandwidth counter) runs one sweeper
		// goroutine per process, started on first use and never stopped.
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	)
}

func TestClusterRandomWorkloadConvergesDespiteDroppedPubsubMessages(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var dropped atomic.Int64
	rng := rand.New(rand.NewPCG(7, 7))
	var mu sync.Mutex
	c.hub.SetDrop(func(from, to peer.ID, topic string) bool {
		mu.Lock()
		defer mu.Unlock()
		if to == nas.id && rng.IntN(3) == 0 {
			dropped.Add(1)
			return true
		}
		return false
	})
	writeFile(t, filepath.Join(src, "seed.txt"), []byte("seed"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("VIGIL_TEST_SEED"); v != "" { // to replay a failure
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("workload seed %d", seed)
	workload.Random(src, seed, 400, nil, nil)
	lap.waitSynced(60 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	if dropped.Load() == 0 {
		t.Fatal("the test hook dropped no pubsub message: gap repair was not exercised")
	}
	t.Logf("pubsub messages dropped: %d", dropped.Load())
}

func TestClusterTargetRestartResumesWithoutRefetch(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	workload.Random(src, 1, 150, nil, nil)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	nas.stop()
	workload.Random(src, 2, 150, nil, nil)
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	lap.stop()
	nas.stop()
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	if got := nas.n.Status().Replicas[0].ChunksFetched; got != 0 {
		t.Fatalf("after restarting both nodes the replica fetched %d chunks, want 0", got)
	}
}

func TestClusterChangesDuringBaselineAreAppliedAfterIt(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	rng := rand.New(rand.NewPCG(3, 3))
	big := make([]byte, 40<<20)
	for i := range big {
		big[i] = byte(rng.UintN(256))
	}
	writeFile(t, filepath.Join(src, "big.bin"), big, 0o644)
	for i := 0; i < 200; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("small/%03d", i)), big[i*1000:i*1000+5000], 0o644)
	}
	lap.start()
	waitFor(t, 10*time.Second, "laptop ready", func() bool {
		select {
		case <-lap.n.agents[0].Ready():
			return true
		default:
			return false
		}
	})
	nas.start()
	// change files while the baseline copies them, including the big one
	waitFor(t, 20*time.Second, "baseline to start", func() bool {
		return nas.n.Status().Replicas[0].BaselineTotalBytes > 0
	})
	f, err := os.OpenFile(filepath.Join(src, "big.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		f.WriteAt([]byte(fmt.Sprintf("change %d", i)), int64(i)<<21)
		writeFile(t, filepath.Join(src, fmt.Sprintf("small/%03d", i*7)), []byte(fmt.Sprintf("v%d", i)), 0o644)
		os.Remove(filepath.Join(src, fmt.Sprintf("small/%03d", 199-i)))
	}
	f.Close()
	lap.waitSynced(60 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

func TestClusterBackupBeyondJournalCapRebaselines(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.cfg.Node.JournalMaxBytes = 64 << 10
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	nas.stop()
	// far more than the cap while the backup is away
	for i := 0; i < 60; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, 8<<10+i), 0o644)
		if i%10 == 9 {
			if err := lap.n.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	lap.n.Sync(context.Background())
	waitFor(t, 20*time.Second, "journal compacted past the backup", func() bool {
		return lap.n.Status().Folders[0].JournalFirst > 2
	})
	nas.start()
	lap.waitSynced(60 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

func TestClusterAppendsToBigFileAndHiddenPrefixChangeConverge(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	rng := rand.New(rand.NewPCG(5, 5))
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	p := filepath.Join(src, "log.bin")
	writeFile(t, p, data, 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		f.Write(data[i<<16 : (i+1)<<16])
		lap.waitSynced(30 * time.Second)
		requireSame(t, src, nas.replicaDir(lap, "docs"))
	}
	f.Close()
	// a change before the appended region, made together with an append:
	// caught by the full re-chunk once the file is quiet
	g, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt([]byte("hidden change"), 1000)
	fi, _ := g.Stat()
	g.WriteAt(data[:4096], fi.Size())
	g.Close()
	waitFor(t, 20*time.Second, "replica to converge after the re-chunk", func() bool {
		return len(treeDiff(src, nas.replicaDir(lap, "docs"))) == 0
	})
}

func TestClusterBurstOfNewFilesIsWrittenInParallelAndMatches(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	writeFile(t, filepath.Join(src, "seed"), []byte("seed"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	for i := 0; i < 200; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("burst/d%d/f%03d", i%5, i)), bytes.Repeat([]byte{byte(i)}, 100+i*37), 0o640)
	}
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	if got := nas.n.replicas[0].ParallelCreates(); got == 0 {
		t.Fatal("no new file was written through the parallel create path")
	}
}

// Chunks shared by files of different commit groups of a baseline are
// fetched once and copied from the earlier group, whether that group is
// still being renamed into place or already done, for small files (kept
// in memory) and big ones (read back from the staged or renamed file).
func TestClusterBaselineSharesChunksAcrossCommitGroups(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	c.nodes["nas"].opts = append(c.nodes["nas"].opts, func(o *options) { o.stageFiles, o.stageBytes = 3, 1<<20 })
	rng := rand.New(rand.NewPCG(7, 7))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	small := [][]byte{blob(3000), blob(20000), blob(70000)}
	big := blob(600 << 10) // above smallFile: staged chunk by chunk
	for i := range 40 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d/s%02d", i%4, i)), small[i%len(small)], 0o644)
	}
	for i := range 6 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("big/b%d", i)), big, 0o600)
		// a small file made of the big one's first bytes: its chunks come
		// from a big file staged in an earlier group
		writeFile(t, filepath.Join(src, fmt.Sprintf("big/c%d", i)), big[:200<<10], 0o600)
	}
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	got := nas.n.Status().Replicas[0].ChunksFetched
	distinct := make(map[string]bool)
	for _, ents := range [][]byte{small[0], small[1], small[2], big, big[:200<<10]} {
		chunks, err := baseline.ChunkReader(context.Background(), bytes.NewReader(ents), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chunks {
			distinct[ch.CID.String()] = true
		}
	}
	if got > int64(len(distinct)) {
		t.Fatalf("fetched %d chunks, want at most the %d distinct ones", got, len(distinct))
	}
}
