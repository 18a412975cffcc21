package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// waitProblem waits until m reports want as the problem of id.
func waitProblem(t *testing.T, m *Mesh, id peer.ID, d time.Duration, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(d)
	for {
		if got = status(t, m, id).Problem; got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("problem after %v = %q, want %q", d, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedPort returns a loopback TCP address nothing listens on.
func closedPort(t *testing.T) multiaddr.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return a
}

// silentPort returns a loopback TCP address where connection attempts get
// no answer: a listener with a backlog of 0 whose accept queue is held full
// by one connection never accepted, so the kernel drops further SYNs.
func silentPort(t *testing.T) multiaddr.Multiaddr {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := manet.FromNetAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// lonely starts a mesh listing only peers, and runs it.
func lonely(t *testing.T, logger *slog.Logger, peers ...Peer) *Mesh {
	t.Helper()
	key, _ := newKey(t)
	m := startMesh(t, Config{Key: key, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0"), Peers: peers, Logger: logger})
	runMesh(t, m)
	return m
}

func TestProblemNamesTheActualPeerOnIDMismatch(t *testing.T) {
	ms := cluster(t, 1, nil)
	other := ms[0] // listens where we expect the configured peer
	_, configured := newKey(t)
	m := lonely(t, nil, Peer{Name: "typo", ID: configured, Addrs: other.Addrs()})
	want := fmt.Sprintf("peer at %s identifies as %s, not the configured %s", other.Addrs()[0], other.ID(), configured)
	waitProblem(t, m, configured, 10*time.Second, want)
	if !status(t, m, configured).Misconfigured {
		t.Error("a peer ID mismatch is not reported as a misconfiguration")
	}
}

func TestProblemSaysNothingListensAndIsLoggedOnce(t *testing.T) {
	logs := &logRecorder{}
	_, id := newKey(t)
	addr := closedPort(t)
	m := lonely(t, slog.New(logs), Peer{Name: "gone", ID: id, Addrs: []multiaddr.Multiaddr{addr}})
	want := "nothing listens at " + addr.String() + " (connection refused)"
	waitProblem(t, m, id, 10*time.Second, want)
	if status(t, m, id).Misconfigured {
		t.Error("a refused connection is reported as a misconfiguration")
	}

	// Each attempt fails the same way: the problem is logged at Info once,
	// not at every retry.
	eventually(t, 10*time.Second, "three failed dials", func() bool {
		return logs.count(slog.LevelDebug, "dial failed", "peer", id.String()) >= 3
	})
	if got := logs.problems(slog.LevelInfo, "peer", id.String()); len(got) != 1 || got[0] != want {
		t.Fatalf("Info logs of the problem = %q, want once %q", got, want)
	}
}

func TestProblemSaysDialTimedOut(t *testing.T) {
	_, id := newKey(t)
	addr := silentPort(t)
	m := lonely(t, nil, Peer{Name: "mute", ID: id, Addrs: []multiaddr.Multiaddr{addr}})
	// libp2p gives up on a loopback address after 5 s.
	waitProblem(t, m, id, 30*time.Second, "no answer from mute at "+addr.String()+" (dial timed out)")
}

func TestProblemNoAddressUntilThePeerDials(t *testing.T) {
	kb, idb := newKey(t)
	ka, _ := newKey(t)
	a := startMesh(t, Config{Key: ka, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0"), Peers: []Peer{{Name: "b", ID: idb}}})
	if p := status(t, a, idb).Problem; p != "" {
		t.Fatalf("problem before any attempt: %q", p)
	}
	runMesh(t, a)
	waitProblem(t, a, idb, 10*time.Second, "no address configured for b; waiting for it to dial this node")

	b := startMesh(t, Config{Key: kb, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0"), Peers: []Peer{listing(a, "a")}})
	runMesh(t, b)
	if err := a.WaitConnected(ctxTimeout(t, 10*time.Second), idb); err != nil {
		t.Fatal(err)
	}
	d, _ := a.lookup(idb)
	eventually(t, 5*time.Second, "the problem to be cleared on connect", func() bool { p, _ := d.dial.getProblem(); return p == "" })
	if st := status(t, a, idb); !st.Connected || st.Problem != "" {
		t.Fatalf("status = %+v, want connected without problem", st)
	}
}

func TestProblemPeerThatDoesNotListUsClosesAfterHandshake(t *testing.T) {
	// n1 does not list n0; n0 lists n1 and dials it.
	ms := cluster(t, 2, dropPeers(map[int][]string{1: {"n0"}}))
	a, b := ms[0], ms[1]
	runMesh(t, a)
	want := fmt.Sprintf("n1 closed the connection right after the handshake: it probably does not list this node (%s) in its peers", a.ID())
	waitProblem(t, a, b.ID(), 20*time.Second, want)
	if !status(t, a, b.ID()).Misconfigured {
		t.Error("a peer that does not list us is not reported as a misconfiguration")
	}

	// Once n1 lists n0, n0's next attempt connects and the problem goes.
	if err := b.SetPeers([]Peer{{Name: "n0", ID: a.ID()}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitConnected(ctxTimeout(t, 20*time.Second), b.ID()); err != nil {
		t.Fatal(err)
	}
	d, _ := a.lookup(b.ID())
	eventually(t, 5*time.Second, "the problem to be cleared on connect", func() bool { p, _ := d.dial.getProblem(); return p == "" })
}

func TestProblemClassifiesNoRouteTimeoutAndPicksTheMostTellingAddress(t *testing.T) {
	// Built from errors, without dialing: these addresses are never
	// contacted.
	_, id := newKey(t)
	_, actual := newKey(t)
	tcp := maddrs(t, "/ip4/192.0.2.7/tcp/7400")[0]
	quic := maddrs(t, "/ip4/192.0.2.7/udp/7400/quic-v1")[0]
	p := Peer{Name: "far", ID: id, Addrs: []multiaddr.Multiaddr{tcp, quic}}
	sysErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp4", Err: os.NewSyscallError("connect", errno)}
	}
	timeout := fmt.Errorf("handshake: %w", context.DeadlineExceeded)
	cases := []struct {
		name string
		errs []swarm.TransportError
		want string
	}{
		{"no route", []swarm.TransportError{{Address: tcp, Cause: sysErr(syscall.EHOSTUNREACH)}},
			"no route to /ip4/192.0.2.7/tcp/7400 for far (host or network unreachable)"},
		{"network unreachable", []swarm.TransportError{{Address: tcp, Cause: sysErr(syscall.ENETUNREACH)}},
			"no route to /ip4/192.0.2.7/tcp/7400 for far (host or network unreachable)"},
		{"refused beats timeout", []swarm.TransportError{
			{Address: quic, Cause: timeout}, {Address: tcp, Cause: sysErr(syscall.ECONNREFUSED)}},
			"nothing listens at /ip4/192.0.2.7/tcp/7400 (connection refused)"},
		{"both time out", []swarm.TransportError{{Address: tcp, Cause: timeout}, {Address: quic, Cause: timeout}},
			"no answer from far at /ip4/192.0.2.7/tcp/7400, /ip4/192.0.2.7/udp/7400/quic-v1 (dial timed out)"},
		{"mismatch beats refused", []swarm.TransportError{
			{Address: tcp, Cause: sysErr(syscall.ECONNREFUSED)},
			{Address: quic, Cause: fmt.Errorf("security: %w", sec.ErrPeerIDMismatch{Expected: id, Actual: actual})}},
			fmt.Sprintf("peer at %s identifies as %s, not the configured %s", quic, actual, id)},
		{"mismatch without a usable actual id", []swarm.TransportError{
			{Address: tcp, Cause: sec.ErrPeerIDMismatch{Expected: id, Actual: peer.ID("(not determined: bad key)")}}},
			fmt.Sprintf("peer at %s identifies as a different peer, not the configured %s", tcp, id)},
		{"other", []swarm.TransportError{{Address: tcp, Cause: errors.New("failed to negotiate security protocol: EOF\nmore")}},
			"dial far at /ip4/192.0.2.7/tcp/7400 failed: failed to negotiate security protocol: EOF"},
	}
	for _, c := range cases {
		if got := addrProblem(p, c.errs); got != c.want {
			t.Errorf("%s: problem = %q, want %q", c.name, got, c.want)
		}
	}

	// The whole dial ran out of time before any address answered.
	key, _ := newKey(t)
	m := startMesh(t, Config{Key: key, Peers: []Peer{p}})
	got := m.dialProblem(id, fmt.Errorf("failed to dial: %w", context.DeadlineExceeded))
	if want := "no answer from far at /ip4/192.0.2.7/tcp/7400, /ip4/192.0.2.7/udp/7400/quic-v1 (dial timed out)"; got != want {
		t.Errorf("dial timeout: problem = %q, want %q", got, want)
	}
}
