package mesh

import (
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// gater admits only the peers of the allow-list: outbound dials are
// refused before any packet is sent, inbound connections right after the
// security handshake has authenticated the remote peer (before a muxer is
// negotiated, so no stream can exist).
type gater struct{ m *Mesh }

var _ connmgr.ConnectionGater = (*gater)(nil)

func (g *gater) allowed(p peer.ID) bool {
	_, ok := g.m.peers[p]
	return ok
}

func (g *gater) InterceptPeerDial(p peer.ID) bool {
	if g.allowed(p) {
		return true
	}
	g.m.met.gaterRefused.WithLabelValues("outbound").Inc()
	g.m.log.Debug("refused dial to peer not in the allow-list", "peer", p)
	return false
}

func (g *gater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }

// InterceptAccept admits every incoming connection: the remote peer is not
// known before the security handshake.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if g.allowed(p) {
		return true
	}
	label := "inbound"
	if dir == network.DirOutbound {
		label = "outbound"
	}
	g.m.met.gaterRefused.WithLabelValues(label).Inc()
	g.m.log.Info("refused connection from peer not in the allow-list",
		"peer", p, "remote_addr", addrs.RemoteMultiaddr(), "direction", label)
	return false
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
