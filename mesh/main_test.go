package mesh

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-flow-metrics (libp2p's bandwidth counter) runs one sweeper
		// goroutine per process, started on first use and never stopped.
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	)
}

var testLogger = slog.New(slog.DiscardHandler)

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

func maddrs(t testing.TB, ss ...string) []multiaddr.Multiaddr {
	t.Helper()
	out := make([]multiaddr.Multiaddr, len(ss))
	for i, s := range ss {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	return out
}

// startMesh creates a mesh that t's cleanup closes.
func startMesh(t testing.TB, cfg Config) *Mesh {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// node is one member of a test cluster.
type node struct {
	key crypto.PrivKey
	id  peer.ID
	cfg Config
}

// cluster builds n meshes listening on 127.0.0.1 (TCP, port 0) whose
// allow-lists hold every other node, named n0..n(n-1). tweak may edit a
// node's config (e.g. remove peers) before its mesh is created. Once all
// exist, each mesh's peerstore learns the listen addresses of the peers it
// lists.
func cluster(t testing.TB, n int, tweak func(i int, cfg *Config)) []*Mesh {
	t.Helper()
	nodes := make([]node, n)
	for i := range nodes {
		nodes[i].key, nodes[i].id = newKey(t)
	}
	for i := range nodes {
		cfg := Config{Key: nodes[i].key, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0"), Logger: testLogger}
		for j := range nodes {
			if j != i {
				cfg.Peers = append(cfg.Peers, Peer{Name: nodeName(j), ID: nodes[j].id})
			}
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		nodes[i].cfg = cfg
	}
	ms := make([]*Mesh, n)
	for i := range nodes {
		ms[i] = startMesh(t, nodes[i].cfg)
	}
	for _, m := range ms {
		for _, o := range ms {
			if o != m {
				m.Host().Peerstore().AddAddrs(o.ID(), o.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
	return ms
}

func nodeName(i int) string { return "n" + string(rune('0'+i)) }

// dropPeers returns a tweak for cluster that removes, from the allow-list
// of node i, the nodes named in drop[i].
func dropPeers(drop map[int][]string) func(int, *Config) {
	return func(i int, cfg *Config) {
		for _, name := range drop[i] {
			for k, p := range cfg.Peers {
				if p.Name == name {
					cfg.Peers = append(cfg.Peers[:k], cfg.Peers[k+1:]...)
					break
				}
			}
		}
	}
}

// eventually polls cond every 10 ms until it holds or d has passed.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect makes a dial b and waits until both see the connection.
func connect(t testing.TB, a, b *Mesh) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID()}); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.PeerName(b.ID()), b.PeerName(a.ID()), err)
	}
	if err := b.WaitConnected(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
}

func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric is neither counter nor gauge")
	return 0
}
