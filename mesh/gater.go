package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// gater admits only the peers of the allow-list (its current version,
// see SetPeers): outbound dials are refused before any packet is sent,
// inbound connections right after the security handshake has
// authenticated the remote peer (before a muxer is negotiated, so no
// stream can exist). A connection whose peer SetPeers removes during its
// upgrade is refused once upgraded.
type gater struct {
	m *Mesh

	mu     sync.Mutex
	logged map[peer.ID]time.Time // last Info log of a refusal, per peer
}

// refusalLogEvery limits the Info log of refused connections to one per
// peer per period (a misconfigured peer redials every few seconds).
const refusalLogEvery = time.Minute

func (g *gater) shouldLog(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if last, ok := g.logged[p]; ok && now.Sub(last) < refusalLogEvery {
		return false
	}
	if g.logged == nil || len(g.logged) > 1000 {
		g.logged = make(map[peer.ID]time.Time)
	}
	g.logged[p] = now
	return true
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func (g *gater) InterceptPeerDial(p peer.ID) bool {
	if g.m.allowed(p) {
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
	if g.m.allowed(p) {
		return true
	}
	label := "inbound"
	if dir == network.DirOutbound {
		label = "outbound"
	}
	g.m.met.gaterRefused.WithLabelValues(label).Inc()
	if g.shouldLog(p) {
		g.m.log.Info("refused connection with peer not in the allow-list",
			"peer", p, "remote_addr", addrs.RemoteMultiaddr(), "direction", label)
	}
	return false
}

func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.m.allowed(c.RemotePeer()), 0
}
