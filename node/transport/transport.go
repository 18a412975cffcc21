// Package transport is the seam between a node's roles and the network:
// the streams and folder topics an agent and a replica use, as small
// interfaces. FromMesh adapts the libp2p mesh to them; Hub is an in-memory
// network on which tests wire agents to replicas with no libp2p host, and
// cut and heal links between them (Partition, Heal) or drop pubsub
// messages.
package transport

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/vigil-mesh/vigil/mesh"
)

// Stream is one bidirectional stream between two peers (a libp2p stream,
// or an in-memory pipe).
type Stream interface {
	io.Reader
	io.Writer
	// Close closes both directions; the other side reads EOF.
	Close() error
	// CloseWrite closes the writing direction only.
	CloseWrite() error
	// Reset aborts the stream in both directions.
	Reset() error
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Topic is a folder's pubsub topic: its source publishes, its designated
// backups receive. Delivery is best effort.
type Topic interface {
	Publish(ctx context.Context, data []byte) error
	Next(ctx context.Context) ([]byte, error)
	Close() error
}

// Handler serves one inbound stream; it owns the stream.
type Handler func(from peer.ID, s Stream)

// Network is what a node needs of the network.
type Network interface {
	ID() peer.ID
	Addrs() []multiaddr.Multiaddr
	// Run keeps the configured peers connected until ctx ends.
	Run(ctx context.Context) error
	Close() error
	Connected(p peer.ID) bool
	// WaitConnected returns once p is connected, or ctx's error.
	WaitConnected(ctx context.Context, p peer.ID) error
	// OnConnect registers fn, called (on a goroutine of its own) each time
	// a configured peer becomes connected, until the returned func is
	// called.
	OnConnect(fn func(peer.ID)) (cancel func())
	// SetPeers replaces the allow-list (a config reload): peers added are
	// dialed, peers removed are disconnected and refused.
	SetPeers(peers []mesh.Peer) error
	Open(ctx context.Context, p peer.ID, proto protocol.ID) (Stream, error)
	Handle(proto protocol.ID, h Handler)
	// JoinFolder joins the topic of source's folder; only members receive
	// what the source publishes on it.
	JoinFolder(source peer.ID, folder string, members []peer.ID) (Topic, error)
	PeerName(p peer.ID) string
	Peers() []mesh.PeerStatus
}

// FromMesh adapts m.
func FromMesh(m *mesh.Mesh) Network {
	n := &meshNet{Mesh: m, callbacks: make(map[int]func(peer.ID))}
	m.OnConnect(n.connected)
	return n
}

type meshNet struct {
	*mesh.Mesh

	mu        sync.Mutex
	next      int
	callbacks map[int]func(peer.ID) // OnConnect callbacks, by registration
}

// connected runs the callbacks registered now (the mesh calls it on a
// goroutine of its own).
func (m *meshNet) connected(p peer.ID) {
	m.mu.Lock()
	fns := make([]func(peer.ID), 0, len(m.callbacks))
	for _, fn := range m.callbacks {
		fns = append(fns, fn)
	}
	m.mu.Unlock()
	for _, fn := range fns {
		fn(p)
	}
}

func (m *meshNet) OnConnect(fn func(peer.ID)) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.next
	m.next++
	m.callbacks[k] = fn
	return func() {
		m.mu.Lock()
		delete(m.callbacks, k)
		m.mu.Unlock()
	}
}

var (
	_ Network = (*meshNet)(nil)
	_ Stream  = network.Stream(nil)
	_ Topic   = (*mesh.Topic)(nil)
)

func (m *meshNet) Open(ctx context.Context, p peer.ID, proto protocol.ID) (Stream, error) {
	s, err := m.Mesh.Open(ctx, p, proto)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (m *meshNet) Handle(proto protocol.ID, h Handler) {
	m.Mesh.Handle(proto, func(p peer.ID, s network.Stream) { h(p, s) })
}

func (m *meshNet) JoinFolder(source peer.ID, folder string, members []peer.ID) (Topic, error) {
	t, err := m.Mesh.JoinFolder(source, folder, members)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (m *meshNet) SetPeers(peers []mesh.Peer) error { return m.Mesh.SetPeers(peers) }
