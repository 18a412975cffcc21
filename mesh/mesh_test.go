package mesh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// echoFrames serves ProtoSync on m: it answers each frame with the same frame,
// type+1.
func echoFrames(m *Mesh) {
	m.Handle(ProtoSync, func(_ peer.ID, s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		for {
			typ, payload, err := ReadFrame(r, 1<<20)
			if err != nil {
				return
			}
			if err := WriteFrame(s, typ+1, payload); err != nil {
				s.Reset()
				return
			}
		}
	})
}

func TestTwoMeshesExchangeFramesOverTLSStream(t *testing.T) {
	// Both listen on TCP and QUIC: the stream must still use TCP+TLS.
	ms := cluster(t, 2, func(i int, cfg *Config) {
		cfg.Listen = maddrs(t, "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
	})
	a, b := ms[0], ms[1]
	echoFrames(a)

	s, err := b.Open(ctxTimeout(t, 10*time.Second), a.ID(), ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Conn().ConnState().Security; got != "/tls/1.0.0" {
		t.Errorf("security = %q, want /tls/1.0.0", got)
	}
	if got := s.Conn().ConnState().Transport; got != "tcp" {
		t.Errorf("transport = %q, want tcp", got)
	}
	if err := WriteFrame(s, 10, []byte("snapshot please")); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := ReadFrame(bufio.NewReader(s), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if typ != 11 || string(payload) != "snapshot please" {
		t.Fatalf("got frame (%d, %q), want (11, %q)", typ, payload, "snapshot please")
	}

	// connected means identified too: that completes asynchronously
	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), b.ID()); err != nil {
		t.Fatalf("a does not see b connected after a stream exchange: %v", err)
	}
	if err := b.WaitConnected(ctxTimeout(t, 10*time.Second), a.ID()); err != nil {
		t.Fatalf("b does not see a connected after a stream exchange: %v", err)
	}
	if got := a.PeerName(b.ID()); got != "n1" {
		t.Errorf("PeerName = %q, want n1", got)
	}
	st := b.Peers()
	if len(st) != 1 || st[0].ID != a.ID() || st[0].Name != "n0" || !st[0].Connected || len(st[0].Addrs) == 0 {
		t.Fatalf("Peers() = %+v, want n0 connected with its remote address", st)
	}
}

func TestQUICOnlyMeshesExchangeFrames(t *testing.T) {
	ms := cluster(t, 2, func(i int, cfg *Config) {
		cfg.Listen = maddrs(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	})
	a, b := ms[0], ms[1]
	echoFrames(a)
	s, err := b.Open(ctxTimeout(t, 10*time.Second), a.ID(), ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Conn().ConnState().Transport; got != "quic-v1" {
		t.Errorf("transport = %q, want quic-v1", got)
	}
	if err := WriteFrame(s, 1, []byte("ack 42")); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := ReadFrame(bufio.NewReader(s), 1<<20)
	if err != nil || typ != 2 || string(payload) != "ack 42" {
		t.Fatalf("got (%d, %q, %v), want (2, %q, nil)", typ, payload, err, "ack 42")
	}
}

func TestGaterRefusesPeerNotInAllowList(t *testing.T) {
	// n0 and n1 list each other; n2 lists n0, but n0 does not list n2.
	ms := cluster(t, 3, dropPeers(map[int][]string{0: {"n2"}, 1: {"n2"}}))
	a, b, c := ms[0], ms[1], ms[2]
	echoFrames(a)

	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.Open(ctx, a.ID(), ProtoSync); err == nil {
		t.Fatal("a peer outside n0's allow-list opened a stream to it")
	}
	if slices.Contains(a.Host().Network().Peers(), c.ID()) {
		t.Fatal("n0 holds a connection to a peer outside its allow-list")
	}
	// With TLS 1.3 the dialer finishes its handshake before n0 checks it,
	// so it may see a connection for a moment: n0's refusal closes it.
	eventually(t, 5*time.Second, "the refused dialer's connection to close", func() bool {
		return !c.Connected(a.ID())
	})
	// And n0 refuses to dial it, without touching the network.
	_, err := a.Open(ctx, c.ID(), ProtoSync)
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("n0 opening to unlisted peer: err = %v, want ErrNotAllowed", err)
	}
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Peer != c.ID() {
		t.Fatalf("err = %v, want a *PeerError naming the peer", err)
	}
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: c.ID(), Addrs: c.Addrs()}); err == nil {
		t.Fatal("libp2p dial to an unlisted peer was not gated")
	}

	// A listed peer gets through.
	s, err := b.Open(ctx, a.ID(), ProtoSync)
	if err != nil {
		t.Fatalf("listed peer: %v", err)
	}
	s.Close()
	if slices.Contains(a.Host().Network().Peers(), c.ID()) {
		t.Fatal("n0 connected to the unlisted peer")
	}
	if got := metricValue(t, a.met.gaterRefused.WithLabelValues("inbound")); got < 1 {
		t.Fatalf("gater_refused_total{direction=inbound} = %v, want >= 1", got)
	}
}

func TestRunReconnectsRestartedPeer(t *testing.T) {
	ms := cluster(t, 2, nil)
	a, b := ms[0], ms[1]
	var connects atomic.Int32
	a.OnConnect(func(id peer.ID) {
		if id == b.ID() {
			connects.Add(1)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), b.ID()); err != nil {
		t.Fatalf("Run did not connect: %v", err)
	}
	eventually(t, 5*time.Second, "first OnConnect", func() bool { return connects.Load() == 1 })
	eventually(t, 5*time.Second, "Run's ping to measure the RTT", func() bool { return a.Peers()[0].RTT > 0 })

	// Restart b: same key and port, and no Run of its own, so only a's
	// dial loop can bring the connection back.
	key := b.cfg.Key
	var listen []string
	for _, ad := range b.Addrs() {
		listen = append(listen, ad.String())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a to see b gone", func() bool { return !a.Connected(b.ID()) })

	b2 := startMesh(t, Config{
		Key:    key,
		Listen: maddrs(t, listen...),
		Peers:  []Peer{{Name: "n0", ID: a.ID()}},
	})
	start := time.Now()
	eventually(t, 5*time.Second, "a to reconnect to the restarted peer", func() bool {
		return a.Connected(b2.ID()) && b2.Connected(a.ID())
	})
	t.Logf("reconnected %v after the restart", time.Since(start).Round(time.Millisecond))
	eventually(t, 5*time.Second, "second OnConnect", func() bool { return connects.Load() == 2 })
	if got := metricValue(t, a.met.connected); got != 1 {
		t.Fatalf("connected_peers = %v, want 1", got)
	}
}

func TestWaitConnectedRefusesUnlistedPeerAndHonoursContext(t *testing.T) {
	ms := cluster(t, 2, nil)
	_, stranger := newKey(t)
	if err := ms[0].WaitConnected(context.Background(), stranger); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("unlisted peer: err = %v, want ErrNotAllowed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ms[0].WaitConnected(ctx, ms[1].ID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no Run, no dial: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestCloseIsIdempotentAndStopsRun(t *testing.T) {
	ms := cluster(t, 2, nil)
	done := make(chan error, 1)
	go func() { done <- ms[0].Run(context.Background()) }()
	if err := ms[0].WaitConnected(ctxTimeout(t, 10*time.Second), ms[1].ID()); err != nil {
		t.Fatal(err)
	}
	if err := ms[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms[0].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running after Close")
	}
	if _, err := ms[0].Open(context.Background(), ms[1].ID(), ProtoSync); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Close: err = %v, want ErrClosed", err)
	}
}

func TestConfigValidateRejectsBadAllowList(t *testing.T) {
	key, self := newKey(t)
	_, other := newKey(t)
	cases := map[string]Config{
		"no key":         {},
		"self as peer":   {Key: key, Peers: []Peer{{Name: "me", ID: self}}},
		"duplicate id":   {Key: key, Peers: []Peer{{Name: "a", ID: other}, {Name: "b", ID: other}}},
		"duplicate name": {Key: key, Peers: []Peer{{Name: "a", ID: other}, {Name: "a", ID: self}}},
		"empty id":       {Key: key, Peers: []Peer{{Name: "a"}}},
	}
	for name, cfg := range cases {
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestMetricsRegisterAndCountStreamBytes(t *testing.T) {
	reg := prometheus.NewRegistry()
	ms := cluster(t, 2, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Registerer = reg
		}
	})
	a, b := ms[0], ms[1]
	echoFrames(a)
	s, err := b.Open(ctxTimeout(t, 10*time.Second), a.ID(), ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("z"), 100_000)
	if err := WriteFrame(s, 1, payload); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFrame(bufio.NewReader(s), 1<<20); err != nil {
		t.Fatal(err)
	}
	s.Close()

	find := func() (inBytes float64, names []string) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			names = append(names, mf.GetName())
			if mf.GetName() != "vigil_mesh_stream_bytes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var proto, dir string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "protocol":
						proto = l.GetValue()
					case "direction":
						dir = l.GetValue()
					}
				}
				if proto == string(ProtoSync) && dir == "in" {
					inBytes = m.GetCounter().GetValue()
				}
			}
		}
		return inBytes, names
	}
	// libp2p's meters publish their totals once a second.
	var names []string
	eventually(t, 5*time.Second, "stream_bytes_total{protocol=/vigil/sync/1.0.0,direction=in} >= payload", func() bool {
		var got float64
		got, names = find()
		return got >= float64(len(payload))
	})
	for _, want := range []string{"vigil_mesh_connected_peers", "vigil_mesh_pubsub_messages_published_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s not registered (have %s)", want, strings.Join(names, ", "))
		}
	}
	// Close unregisters, so a new mesh can use the same registry.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	key, _ := newKey(t)
	startMesh(t, Config{Key: key, Registerer: reg})
}
