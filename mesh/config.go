package mesh

import (
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Peer is one entry of the allow-list: a peer this node admits and dials.
type Peer struct {
	Name  string                // display name from the config; may be empty
	ID    peer.ID               //
	Addrs []multiaddr.Multiaddr // where to dial it; may be empty when the peer only dials us
}

// Config configures a Mesh.
type Config struct {
	// Key is the node's identity (see LoadKey). Required.
	Key crypto.PrivKey
	// Listen lists the addresses to listen on: TCP and/or QUIC, e.g.
	// /ip4/127.0.0.1/tcp/0 and /ip4/127.0.0.1/udp/0/quic-v1. Empty: the
	// node only dials out.
	Listen []multiaddr.Multiaddr
	// Peers is the allow-list: the only peers admitted by the connection
	// gater and the peers that Run keeps connected. Mesh.SetPeers
	// replaces it on a running mesh.
	Peers []Peer
	// Logger receives the mesh's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the mesh's Prometheus collectors
	// (unregistered again by Close). Nil: metrics are kept but not
	// registered.
	Registerer prometheus.Registerer
	// Limits bounds the streams and memory each peer can take on this
	// node (see Limits); the zero value takes the defaults.
	Limits Limits
	// DropInbound, when set, is consulted for every pubsub message
	// delivered to a Topic subscriber and drops it when it returns true.
	// Test hook only; nil in production.
	DropInbound func(topic string) bool
}

// Validate reports the first problem of c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	if c.Key == nil {
		return fmt.Errorf("%w: no key", ErrInvalidConfig)
	}
	self, err := peer.IDFromPrivateKey(c.Key)
	if err != nil {
		return fmt.Errorf("%w: key: %v", ErrInvalidConfig, err)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	return validatePeers(self, c.Peers)
}

// validatePeers reports the first problem of an allow-list for the node
// self, wrapping ErrInvalidConfig: an invalid or duplicate ID, the node
// itself, a duplicate name. Config.Validate and Mesh.SetPeers use it.
func validatePeers(self peer.ID, peers []Peer) error {
	ids := make(map[peer.ID]bool, len(peers))
	names := make(map[string]bool, len(peers))
	for i, p := range peers {
		if err := p.ID.Validate(); err != nil {
			return fmt.Errorf("%w: peers[%d] (%q): id: %v", ErrInvalidConfig, i, p.Name, err)
		}
		if p.ID == self {
			return fmt.Errorf("%w: peers[%d] (%q): is this node itself", ErrInvalidConfig, i, p.Name)
		}
		if ids[p.ID] {
			return fmt.Errorf("%w: peers[%d] (%q): duplicate id %s", ErrInvalidConfig, i, p.Name, p.ID)
		}
		ids[p.ID] = true
		if p.Name != "" {
			if names[p.Name] {
				return fmt.Errorf("%w: peers[%d]: duplicate name %q", ErrInvalidConfig, i, p.Name)
			}
			names[p.Name] = true
		}
	}
	return nil
}
