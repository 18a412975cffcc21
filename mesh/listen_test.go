package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/multiformats/go-multiaddr"
)

// newMeshErr runs New with a fresh key listening on listen and returns its
// error; a mesh that starts anyway is closed.
func newMeshErr(t *testing.T, listen ...multiaddr.Multiaddr) error {
	t.Helper()
	key, _ := newKey(t)
	m, err := New(context.Background(), Config{Key: key, Listen: listen, Logger: testLogger})
	if err == nil {
		m.Close()
	}
	return err
}

// requireAddrInUse fails t unless err is a *ListenError for addr caused by
// EADDRINUSE whose message names addr.
func requireAddrInUse(t *testing.T, err error, addr multiaddr.Multiaddr) {
	t.Helper()
	var le *ListenError
	if !errors.As(err, &le) {
		t.Fatalf("New = %v, want a *ListenError for %s", err, addr)
	}
	if !le.Addr.Equal(addr) {
		t.Errorf("ListenError.Addr = %s, want %s", le.Addr, addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %v does not wrap EADDRINUSE", err)
	}
	if msg := err.Error(); !strings.Contains(msg, addr.String()) || !strings.Contains(msg, "address already in use") || strings.Contains(msg, "\n") {
		t.Errorf("error = %q, want one line naming %s and \"address already in use\"", msg, addr)
	}
}

func TestNewRefusesTCPPortAnotherProgramListensOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := maddrs(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port))[0]
	requireAddrInUse(t, newMeshErr(t, addr), addr)
}

func TestTwoMeshesCannotShareATCPPort(t *testing.T) {
	key, _ := newKey(t)
	first := startMesh(t, Config{Key: key, Listen: maddrs(t, "/ip4/127.0.0.1/tcp/0")})
	taken := first.Addrs()[0]
	requireAddrInUse(t, newMeshErr(t, taken), taken)
}

func TestNewRefusesUDPPortInUseForQUIC(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := maddrs(t, fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", pc.LocalAddr().(*net.UDPAddr).Port))[0]
	requireAddrInUse(t, newMeshErr(t, addr), addr)
}

// libp2p alone starts when any one listen address works; the mesh must not
// run deaf on the others.
func TestNewFailsWhenOneOfSeveralListenAddressesIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := maddrs(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port))[0]
	free := maddrs(t, "/ip4/127.0.0.1/udp/0/quic-v1")[0]
	requireAddrInUse(t, newMeshErr(t, free, taken), taken)
}
