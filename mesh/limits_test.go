package mesh

import (
	"bufio"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/prometheus/client_golang/prometheus"
)

func TestDefaultLimitsBoundOurProtocolsPerPeer(t *testing.T) {
	got := Limits{}.resourceLimits(3).ToPartialLimitConfig()
	check := func(what string, l rcmgr.ResourceLimits, in, out rcmgr.LimitVal) {
		t.Helper()
		if l.StreamsInbound != in || l.StreamsOutbound != out {
			t.Errorf("%s: streams in/out = %v/%v, want %v/%v", what, l.StreamsInbound, l.StreamsOutbound, in, out)
		}
	}
	check("sync per peer", got.ProtocolPeer[ProtoSync], 32, 32)
	check("ack per peer", got.ProtocolPeer[ProtoAck], 8, 8)
	check("hello per peer", got.ProtocolPeer[ProtoHello], 4, 4)
	check("any protocol per peer", got.PeerDefault, 64, 64)
	if m := got.PeerDefault.Memory; m != 64<<20 {
		t.Errorf("peer memory = %v, want 64 MiB", m)
	}
	// libp2p's limits for its own protocols are there too.
	if l := got.ProtocolPeer[identify.ID]; l.StreamsInbound != 16 {
		t.Errorf("identify per peer: streams in = %v, want libp2p's 16", l.StreamsInbound)
	}
	// Nothing is unlimited: the whole node, the streams in negotiation and
	// the protocols of all peers together are bounded too.
	for what, l := range map[string]rcmgr.ResourceLimits{
		"system": got.System, "transient": got.Transient,
		"sync, all peers": got.Protocol[ProtoSync], "ack, all peers": got.Protocol[ProtoAck],
		"hello, all peers": got.Protocol[ProtoHello],
	} {
		if l.StreamsInbound == rcmgr.Unlimited || l.StreamsInbound == rcmgr.DefaultLimit ||
			int(l.StreamsInbound) >= math.MaxInt/2 || l.Memory == rcmgr.Unlimited64 {
			t.Errorf("%s: not bounded: %+v", what, l)
		}
	}

	// Explicit limits replace the defaults; PeerStreams follows them.
	got = Limits{SyncStreams: 100, AckStreams: 50}.resourceLimits(3).ToPartialLimitConfig()
	check("sync per peer, raised", got.ProtocolPeer[ProtoSync], 100, 100)
	check("ack per peer, raised", got.ProtocolPeer[ProtoAck], 50, 50)
	check("any protocol per peer, raised", got.PeerDefault, 174, 174)
	// All peers together may use their full limits at once.
	if l := got.Protocol[ProtoSync]; int(l.StreamsInbound) < 300 {
		t.Errorf("sync, all peers: streams in = %v, want >= 3 peers x 100", l.StreamsInbound)
	}
}

func TestConfigValidateRejectsNegativeLimits(t *testing.T) {
	key, _ := newKey(t)
	for _, l := range []Limits{{SyncStreams: -1}, {AckStreams: -1}, {PeerStreams: -1}, {PeerMemory: -1}} {
		cfg := Config{Key: key, Limits: l}
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want ErrInvalidConfig", l, err)
		}
	}
}

// greet serves proto on m: it sends a frame of type 1 on every stream it
// accepts, then reads until the stream ends.
func greet(m *Mesh, proto protocol.ID) {
	m.Handle(proto, func(_ peer.ID, s network.Stream) {
		if err := WriteFrame(s, 1, []byte("hello")); err != nil {
			s.Reset()
			return
		}
		r := bufio.NewReader(s)
		for {
			if _, _, err := ReadFrame(r, 1<<10); err != nil {
				s.Close()
				return
			}
		}
	})
}

// openGreeted opens a proto stream from m to p and reads its greeting.
func openGreeted(t *testing.T, m *Mesh, p peer.ID, proto protocol.ID) (network.Stream, error) {
	t.Helper()
	s, err := m.Open(ctxTimeout(t, 10*time.Second), p, proto)
	if err != nil {
		return nil, err
	}
	typ, payload, err := ReadFrame(bufio.NewReader(s), 1<<10)
	if err != nil {
		s.Reset()
		return nil, err
	}
	if typ != 1 || string(payload) != "hello" {
		s.Reset()
		t.Fatalf("greeting = (%d, %q)", typ, payload)
	}
	return s, nil
}

// isLimitReset reports whether err is a stream reset by the remote
// resource manager.
func isLimitReset(err error) bool {
	var se *network.StreamError
	return errors.As(err, &se) && se.Remote && se.ErrorCode == network.StreamResourceLimitExceeded
}

func TestPeerCannotOpenMoreStreamsOfAProtocolThanItsLimit(t *testing.T) {
	for _, tc := range []struct {
		proto protocol.ID
		lim   Limits
		n     int
	}{
		{ProtoSync, Limits{SyncStreams: 3}, 3},
		{ProtoAck, Limits{AckStreams: 2}, 2},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			// n0 serves with tight limits; n1 tries to take more than its
			// share; n2 behaves.
			ms := cluster(t, 3, func(i int, cfg *Config) {
				if i == 0 {
					cfg.Limits = tc.lim
					cfg.Registerer = reg
				}
			})
			srv, greedy, polite := ms[0], ms[1], ms[2]
			greet(srv, tc.proto)
			connect(t, greedy, srv)
			connect(t, polite, srv)

			var held []network.Stream
			for i := range tc.n {
				s, err := openGreeted(t, greedy, srv.ID(), tc.proto)
				if err != nil {
					t.Fatalf("stream %d of %d: %v", i+1, tc.n, err)
				}
				held = append(held, s)
			}
			for i := range 2 {
				s, err := openGreeted(t, greedy, srv.ID(), tc.proto)
				if err == nil {
					s.Reset()
					t.Fatalf("stream %d beyond the limit of %d was served", i+1, tc.n)
				}
				if !isLimitReset(err) {
					t.Fatalf("stream %d beyond the limit: err = %v, want a reset for the resource limit", i+1, err)
				}
			}
			// The other peer's streams count on its own.
			for i := range tc.n {
				s, err := openGreeted(t, polite, srv.ID(), tc.proto)
				if err != nil {
					t.Fatalf("well-behaved peer, stream %d of %d: %v", i+1, tc.n, err)
				}
				defer s.Close()
			}
			if got := metricValue(t, srv.met.streamsRefused.WithLabelValues(string(tc.proto))); got < 2 {
				t.Errorf("streams_refused_total{protocol=%s} = %v, want >= 2", tc.proto, got)
			}
			if got := gaugeWithLabels(t, reg, "vigil_mesh_peer_streams", "peer", "n1", "direction", "in"); got < float64(tc.n) {
				t.Errorf("vigil_mesh_peer_streams{peer=n1,direction=in} = %v, want >= %d", got, tc.n)
			}

			// A closed stream frees its slot (once both ends have closed it).
			held[0].Close()
			eventually(t, 10*time.Second, "a freed slot to admit a new stream", func() bool {
				s, err := openGreeted(t, greedy, srv.ID(), tc.proto)
				if err != nil {
					return false
				}
				held[0] = s
				return true
			})
			for _, s := range held {
				s.Close()
			}
		})
	}
}

func TestPeerCannotHoldMoreUnnegotiatedStreamsThanPeerStreams(t *testing.T) {
	const limit = 8
	ms := cluster(t, 3, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Limits = Limits{PeerStreams: limit}
		}
	})
	srv, greedy, polite := ms[0], ms[1], ms[2]
	greet(srv, ProtoSync)
	connect(t, greedy, srv)
	connect(t, polite, srv)

	// Raw streams that never negotiate a protocol: each would wait in
	// negotiation (10 s) holding a stream of the peer's.
	for i := range limit + 5 {
		s, err := greedy.Host().Network().NewStream(ctxTimeout(t, 10*time.Second), srv.ID())
		if err != nil {
			t.Fatalf("raw stream %d: %v", i, err)
		}
		defer s.Reset()
	}
	eventually(t, 10*time.Second, "the streams beyond the peer's limit to be refused", func() bool {
		return metricValue(t, srv.met.streamsRefused.WithLabelValues("")) >= 5
	})
	var st network.ScopeStat
	srv.Host().Network().ResourceManager().ViewPeer(greedy.ID(), func(s network.PeerScope) error {
		st = s.Stat()
		return nil
	})
	if st.NumStreamsInbound > limit {
		t.Fatalf("greedy peer holds %d inbound streams, limit %d", st.NumStreamsInbound, limit)
	}
	s, err := openGreeted(t, polite, srv.ID(), ProtoSync)
	if err != nil {
		t.Fatalf("well-behaved peer: %v", err)
	}
	s.Close()
}

// gaugeWithLabels returns the value of the gauge name with the given
// label pairs gathered from reg, failing t if there is none.
func gaugeWithLabels(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v gathered", name, labels)
	return 0
}
