package mesh

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// runMesh runs m.Run until t's cleanup, which waits for it to return.
func runMesh(t testing.TB, m *Mesh) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// listing returns the allow-list entry naming m, with its listen
// addresses.
func listing(m *Mesh, name string) Peer {
	return Peer{Name: name, ID: m.ID(), Addrs: m.Addrs()}
}

// status returns m's PeerStatus of id.
func status(t testing.TB, m *Mesh, id peer.ID) PeerStatus {
	t.Helper()
	for _, st := range m.Peers() {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("%s is not in Peers()", id)
	return PeerStatus{}
}

// exchangeFrame opens a ProtoSync stream from m to p, served by
// echoFrames, and checks one round trip.
func exchangeFrame(t *testing.T, m *Mesh, p peer.ID) {
	t.Helper()
	s, err := m.Open(ctxTimeout(t, 10*time.Second), p, ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := WriteFrame(s, 1, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := ReadFrame(bufio.NewReader(s), 1<<10)
	if err != nil || typ != 2 || string(payload) != "hi" {
		t.Fatalf("echo = (%d, %q, %v), want (2, %q, nil)", typ, payload, err, "hi")
	}
}

func TestSetPeersAddedPeerIsDialedAndExchangesStreamsAndTopics(t *testing.T) {
	ka, _ := newKey(t)
	kc, _ := newKey(t)
	a := startMesh(t, Config{Key: ka, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0")})
	c := startMesh(t, Config{Key: kc, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0")})
	echoFrames(a)
	runMesh(t, a)
	runMesh(t, c)
	if _, err := c.Open(ctxTimeout(t, 10*time.Second), a.ID(), ProtoSync); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Open before the peer is listed: err = %v, want ErrNotAllowed", err)
	}

	// c learns of a without an address (a will dial it), a learns of c
	// with its address: a's running Run dials it.
	if err := c.SetPeers([]Peer{{Name: "a", ID: a.ID()}}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPeers([]Peer{listing(c, "c")}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), c.ID()); err != nil {
		t.Fatalf("Run did not dial the added peer: %v", err)
	}
	if err := c.WaitConnected(ctxTimeout(t, 10*time.Second), a.ID()); err != nil {
		t.Fatal(err)
	}
	if st := status(t, a, c.ID()); st.Name != "c" || !st.Connected || st.Problem != "" {
		t.Fatalf("a's status of c = %+v, want c connected without problem", st)
	}
	exchangeFrame(t, c, a.ID())

	st, cts := joinAll(t, a, "docs", c)
	if err := st.Publish(context.Background(), []byte("record 1")); err != nil {
		t.Fatal(err)
	}
	got, err := cts[0].Next(ctxTimeout(t, 10*time.Second))
	if err != nil || string(got) != "record 1" {
		t.Fatalf("added member received (%q, %v), want %q", got, err, "record 1")
	}
}

func TestSetPeersRemovedPeerIsDisconnectedRefusedAndNotRedialed(t *testing.T) {
	_, ghost := newKey(t) // listed by a, never reachable
	logs := &logRecorder{}
	ms := cluster(t, 2, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Peers = append(cfg.Peers, Peer{Name: "ghost", ID: ghost})
			cfg.Logger = slog.New(logs)
		}
	})
	a, b := ms[0], ms[1]
	echoFrames(a)
	echoFrames(b)
	runMesh(t, a)
	runMesh(t, b)
	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), b.ID()); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- a.WaitConnected(context.Background(), ghost) }()

	if err := a.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	// A connection that passed the gater before SetPeers may be added
	// while SetPeers closes the others: it is closed as it is added.
	eventually(t, 5*time.Second, "a to hold no connection to the removed peer", func() bool {
		return len(a.Host().Network().ConnsToPeer(b.ID())) == 0
	})
	eventually(t, 5*time.Second, "b to see the connection closed", func() bool { return !b.Connected(a.ID()) })
	select {
	case err := <-waitErr:
		if !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("WaitConnected of a peer removed meanwhile = %v, want ErrNotAllowed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitConnected still waits for a peer removed from the allow-list")
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := a.Open(ctx, b.ID(), ProtoSync); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("a opening to the removed peer: err = %v, want ErrNotAllowed", err)
	}
	if err := a.WaitConnected(ctx, b.ID()); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("WaitConnected(removed) = %v, want ErrNotAllowed", err)
	}
	// b knows a serves ProtoSync, so its Open negotiates lazily and may
	// return before a's gater closes the connection: the stream must not
	// carry a frame.
	if s, err := b.Open(ctx, a.ID(), ProtoSync); err == nil {
		s.SetDeadline(time.Now().Add(10 * time.Second))
		WriteFrame(s, 1, []byte("hi"))
		if _, _, err := ReadFrame(bufio.NewReader(s), 1<<10); err == nil {
			t.Fatal("the removed peer exchanged a frame with a")
		}
		s.Reset()
	}
	if len(a.Peers()) != 0 || a.PeerName(b.ID()) != "" {
		t.Fatalf("a still reports the removed peer: %+v", a.Peers())
	}

	// Run stopped the dial loops of the peers removed.
	eventually(t, 5*time.Second, "the dial loops to stop", func() bool { return a.dialLoops.Load() == 0 })
	// b still lists a and keeps redialing; a refuses each time. Had a's
	// dial loop survived, it would have redialed b (at once, then after
	// 100 ms, ...) several times by the third refusal, each time failing
	// on a's own gater. (Gossipsub may still try to open a stream to b
	// once, on the connection it just saw: a's gater refuses that dial
	// too, before any packet is sent.)
	inbound := a.met.gaterRefused.WithLabelValues("inbound")
	eventually(t, 20*time.Second, "a to refuse three redials of b", func() bool {
		return metricValue(t, inbound) >= 3
	})
	if n := logs.count(slog.LevelDebug, "dial failed", "peer", b.ID().String()); n != 0 {
		t.Fatalf("a's dial loop redialed the removed peer %d times", n)
	}
	if n := len(a.Host().Network().ConnsToPeer(b.ID())); n != 0 {
		t.Fatalf("a holds %d connections to the removed peer", n)
	}
	if got := metricValue(t, a.met.connected); got != 0 {
		t.Fatalf("connected_peers = %v after the only peer was removed, want 0", got)
	}
}

func TestSetPeersChangedAddressIsRedialedThere(t *testing.T) {
	ka, ida := newKey(t)
	kb, idb := newKey(t)
	tcp := maddrs(t, "/ip4/127.0.0.1/tcp/0")
	b := startMesh(t, Config{Key: kb, Listen: tcp, Peers: []Peer{{Name: "a", ID: ida}}})
	a := startMesh(t, Config{Key: ka, Listen: tcp, Peers: []Peer{{Name: "b", ID: idb, Addrs: b.Addrs()}}})
	runMesh(t, a) // b has no Run: only a dials
	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), idb); err != nil {
		t.Fatal(err)
	}

	// b moves to another port.
	old := b.Addrs()[0]
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := startMesh(t, Config{Key: kb, Listen: tcp, Peers: []Peer{{Name: "a", ID: ida}}})
	moved := b2.Addrs()[0]
	if moved.Equal(old) {
		t.Fatalf("the restarted node got the same address %s", old)
	}
	want := "nothing listens at " + old.String() + " (connection refused)"
	eventually(t, 10*time.Second, "a to fail at the old address", func() bool {
		return status(t, a, idb).Problem == want
	})

	if err := a.SetPeers([]Peer{{Name: "b", ID: idb, Addrs: b2.Addrs()}}); err != nil {
		t.Fatal(err)
	}
	if p := status(t, a, idb).Problem; p != "" {
		t.Errorf("problem at the old address still reported after the change: %q", p)
	}
	for _, ad := range a.Host().Peerstore().Addrs(idb) {
		if ad.Equal(old) {
			t.Errorf("peerstore still holds the old address %s", old)
		}
	}
	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), idb); err != nil {
		t.Fatalf("not redialed at the new address: %v", err)
	}
	conns := a.Host().Network().ConnsToPeer(idb)
	if len(conns) == 0 || !conns[0].RemoteMultiaddr().Equal(moved) {
		t.Fatalf("connected to %v, want %s", conns, moved)
	}
	if st := status(t, a, idb); st.Problem != "" {
		t.Fatalf("problem after connecting: %q", st.Problem)
	}
}

func TestSetPeersInvalidListLeavesOldListInPlace(t *testing.T) {
	ms := cluster(t, 2, nil)
	a, b := ms[0], ms[1]
	echoFrames(b)
	_, other := newKey(t)
	cases := map[string][]Peer{
		"self":           {{Name: "x", ID: other}, {Name: "me", ID: a.ID()}},
		"duplicate id":   {{Name: "x", ID: other}, {Name: "y", ID: other}},
		"duplicate name": {{Name: "x", ID: other}, {Name: "x", ID: b.ID()}},
		"empty id":       {{Name: "x", ID: other}, {Name: "y"}},
	}
	for name, peers := range cases {
		if err := a.SetPeers(peers); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	st := a.Peers()
	if len(st) != 1 || st[0].ID != b.ID() || st[0].Name != "n1" {
		t.Fatalf("Peers() after refused lists = %+v, want only n1", st)
	}
	if err := a.WaitConnected(ctxTimeout(t, time.Second), other); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("a peer of a refused list is admitted: err = %v", err)
	}
	exchangeFrame(t, a, b.ID())
}

func TestSetPeersRenameShowsInPeersLogsAndMetricLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	logs := &logRecorder{}
	ms := cluster(t, 3, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Registerer = reg
			cfg.Logger = slog.New(logs)
		}
	})
	a, b, c := ms[0], ms[1], ms[2]
	connect(t, a, b)

	// Same peers and addresses (none configured), new names and order.
	if err := a.SetPeers([]Peer{{Name: "carol", ID: c.ID()}, {Name: "bob", ID: b.ID()}}); err != nil {
		t.Fatal(err)
	}
	st := a.Peers()
	if len(st) != 2 || st[0].ID != c.ID() || st[0].Name != "carol" || st[1].ID != b.ID() || st[1].Name != "bob" {
		t.Fatalf("Peers() = %+v, want carol then bob, in the order given", st)
	}
	if !st[1].Connected {
		t.Fatal("renaming a peer dropped its connection")
	}
	if got := a.PeerName(b.ID()); got != "bob" {
		t.Fatalf("PeerName = %q, want bob", got)
	}
	if n := logs.count(slog.LevelInfo, "peer renamed", "name", "bob"); n != 1 {
		t.Fatalf("%d Info logs of the rename, want 1", n)
	}

	labels := func() []string {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			if mf.GetName() != "vigil_mesh_peer_memory_bytes" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "peer" {
						out = append(out, l.GetValue())
					}
				}
			}
		}
		return out
	}
	if got := labels(); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("peer labels of vigil_mesh_peer_memory_bytes = %q, want [bob]", got)
	}
}

func TestTopicRejectsMessagesOfPeerRemovedFromAllowList(t *testing.T) {
	ms := cluster(t, 2, nil)
	src, bak := ms[0], ms[1]
	connect(t, bak, src)
	st, bts := joinAll(t, src, "docs", bak)
	if err := st.Publish(context.Background(), []byte("before")); err != nil {
		t.Fatal(err)
	}
	if got, err := bts[0].Next(ctxTimeout(t, 10*time.Second)); err != nil || string(got) != "before" {
		t.Fatalf("Next = (%q, %v), want %q", got, err, "before")
	}

	name := TopicName(src.ID(), "docs")
	validate := bak.folderValidator(name, src.ID())
	msg := &pubsub.Message{Message: &pb.Message{From: []byte(src.ID()), Data: []byte("after")}}
	if err := bak.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if bak.peerFilter(src.ID(), name) {
		t.Error("the gossipsub peer filter admits a source no longer in the allow-list")
	}
	if got := validate(context.Background(), src.ID(), msg); got != pubsub.ValidationReject {
		t.Errorf("validator result for a message of a removed source = %v, want reject", got)
	}

	// Listed again, it is a member again (the member list was kept).
	if err := bak.SetPeers([]Peer{{Name: "n0", ID: src.ID()}}); err != nil {
		t.Fatal(err)
	}
	if !bak.peerFilter(src.ID(), name) {
		t.Error("the peer filter refuses the source once listed again")
	}
	if got := validate(context.Background(), src.ID(), msg); got != pubsub.ValidationAccept {
		t.Errorf("validator result once listed again = %v, want accept", got)
	}
}

func TestSetPeersConcurrentWithReadersAndRun(t *testing.T) {
	ms := cluster(t, 2, nil)
	a, b := ms[0], ms[1]
	echoFrames(a)
	echoFrames(b)
	runMesh(t, a)
	runMesh(t, b)
	lists := [][]Peer{
		{{Name: "n1", ID: b.ID()}},
		{{Name: "renamed", ID: b.ID()}},
		nil,
		{listing(b, "n1")},
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops atomic.Int64 // calls made by the readers
	reader := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f()
				ops.Add(1)
			}
		}()
	}
	reader(func() {
		a.Peers()
		a.PeerName(b.ID())
	})
	reader(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if s, err := a.Open(ctx, b.ID(), ProtoSync); err == nil {
			s.Close()
		}
		a.WaitConnected(ctx, b.ID())
	})
	reader(func() {
		if tp, err := a.JoinFolder(a.ID(), "docs", []peer.ID{b.ID()}); err == nil {
			tp.Publish(context.Background(), []byte("x"))
		}
	})
	// Each version of the list stays until the readers made a few calls
	// with it.
	for i := range 80 {
		if err := a.SetPeers(lists[i%len(lists)]); err != nil {
			t.Fatal(err)
		}
		from := ops.Load()
		eventually(t, 10*time.Second, "the readers to use the new list", func() bool { return ops.Load() >= from+3 })
	}
	close(stop)
	wg.Wait()

	if err := a.SetPeers(lists[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConnected(ctxTimeout(t, 15*time.Second), b.ID()); err != nil {
		t.Fatalf("not reconnected after the churn: %v", err)
	}
	exchangeFrame(t, a, b.ID())
}

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// count returns how many records of level with message msg have the
// attribute key whose value prints as val.
func (r *logRecorder) count(level slog.Level, msg, key, val string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level != level || rec.Message != msg {
			continue
		}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key && a.Value.String() == val {
				n++
				return false
			}
			return true
		})
	}
	return n
}

// problems returns the "problem" attributes of the records of level that
// have the attribute key whose value prints as val.
func (r *logRecorder) problems(level slog.Level, key, val string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Level != level {
			continue
		}
		match, problem := false, ""
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case key:
				match = match || a.Value.String() == val
			case "problem":
				problem = a.Value.String()
			}
			return true
		})
		if match && problem != "" {
			out = append(out, problem)
		}
	}
	return out
}
