package mesh

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"
)

// allowList is one version of the allow-list. A published version is
// never modified: SetPeers publishes a new one (Mesh.allow) and then
// closes the old one's replaced channel. Readers take a consistent
// snapshot with one atomic load; Run, the event loop and WaitConnected
// wait on replaced to learn of a change.
type allowList struct {
	peers    []Peer                  // in the order given to New or SetPeers
	byID     map[peer.ID]allowedPeer //
	replaced chan struct{}           // closed once a newer version is published
}

// allowedPeer is one peer of an allowList version.
type allowedPeer struct {
	Peer
	dial *dialState
}

// dialState is what the dial loop of one peer shares with the rest of the
// mesh. It lasts while the peer stays listed with the same addresses: a
// version of the allow-list that adds the peer or changes its addresses
// gives it a new dialState, so Run starts a new dial loop (dialing at
// once, with a fresh backoff) and a problem found by the old loop, which
// names an old address, goes with the old state.
type dialState struct {
	kick chan struct{} // wakes the dial loop on a connectedness change; buffered 1

	mu      sync.Mutex
	problem string // why the last attempt failed; "" while connected or before any attempt
	misconf bool   // problem comes from a config, not from the network
}

// setProblem records p and reports whether it differs from the previous
// one.
func (d *dialState) setProblem(p string, misconfigured bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.problem == p {
		return false
	}
	d.problem, d.misconf = p, misconfigured && p != ""
	return true
}

func (d *dialState) getProblem() (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.problem, d.misconf
}

// newAllowList builds the version of the allow-list holding peers (already
// validated), keeping prev's dialState for each peer that prev lists with
// the same addresses. prev may be nil.
func newAllowList(peers []Peer, prev *allowList) *allowList {
	al := &allowList{
		peers:    make([]Peer, len(peers)),
		byID:     make(map[peer.ID]allowedPeer, len(peers)),
		replaced: make(chan struct{}),
	}
	for i, p := range peers {
		p.Addrs = slices.Clone(p.Addrs)
		al.peers[i] = p
		var ds *dialState
		if prev != nil {
			if old, ok := prev.byID[p.ID]; ok && sameAddrs(old.Addrs, p.Addrs) {
				ds = old.dial
			}
		}
		if ds == nil {
			ds = &dialState{kick: make(chan struct{}, 1)}
		}
		al.byID[p.ID] = allowedPeer{Peer: p, dial: ds}
	}
	return al
}

// sameAddrs reports whether a and b hold the same addresses, in any order.
func sameAddrs(a, b []multiaddr.Multiaddr) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[string]int, len(a))
	for _, x := range a {
		set[string(x.Bytes())]++
	}
	for _, x := range b {
		k := string(x.Bytes())
		if set[k] == 0 {
			return false
		}
		set[k]--
	}
	return true
}

// lookup returns id's entry in the current allow-list.
func (m *Mesh) lookup(id peer.ID) (allowedPeer, bool) {
	p, ok := m.allow.Load().byID[id]
	return p, ok
}

// listed returns id's entry in the current allow-list, or a Peer with
// only the ID when id is not listed.
func (m *Mesh) listed(id peer.ID) Peer {
	if p, ok := m.lookup(id); ok {
		return p.Peer
	}
	return Peer{ID: id}
}

// allowed reports whether id is in the current allow-list.
func (m *Mesh) allowed(id peer.ID) bool {
	_, ok := m.lookup(id)
	return ok
}

// displayName is how messages for the user name a peer: its configured
// name, or its ID when it has none.
func displayName(p Peer) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID.String()
}

// SetPeers replaces the allow-list of the mesh, e.g. when the config is
// reloaded. peers is checked like Config.Peers; when it is invalid, SetPeers
// returns an error wrapping ErrInvalidConfig and nothing changes. Peers()
// then lists peers in the order given here. Once SetPeers returns:
//
//   - a peer added is admitted by the gater and, while Run is running,
//     dialed at once;
//   - a peer removed is refused by the gater, Open, WaitConnected and the
//     folder topics (its messages are no longer accepted, though member
//     lists still name it), Run stops dialing it, and its open connections
//     are closed;
//   - a peer whose addresses changed has its peerstore addresses replaced
//     by the new ones, permanently (the old ones, and those it announced,
//     are forgotten), and Run redials it at once if it is not connected;
//   - a renamed peer carries its new name in PeerName, Peers, logs and
//     metric labels.
//
// The resource manager's limits stay as New sized them (see the package
// documentation). SetPeers returns ErrClosed once the mesh is closed.
func (m *Mesh) SetPeers(peers []Peer) error {
	if err := validatePeers(m.self, peers); err != nil {
		return err
	}
	m.setMu.Lock()
	defer m.setMu.Unlock()
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	old := m.allow.Load()
	al := newAllowList(peers, old)
	ps := m.host.Peerstore()
	for _, p := range al.peers {
		prev, ok := old.byID[p.ID]
		switch {
		case !ok:
			m.log.Info("peer added to the allow-list", "peer", p.ID, "name", p.Name, "addrs", p.Addrs)
		case prev.dial != al.byID[p.ID].dial:
			m.log.Info("peer addresses changed", "peer", p.ID, "name", p.Name, "addrs", p.Addrs, "old_addrs", prev.Addrs)
		default:
			if prev.Name != p.Name {
				m.log.Info("peer renamed", "peer", p.ID, "name", p.Name, "old_name", prev.Name)
			}
			continue
		}
		// Before publishing, so that the dial loop Run starts for it
		// dials the new addresses.
		ps.ClearAddrs(p.ID)
		ps.AddAddrs(p.ID, p.Addrs, peerstore.PermanentAddrTTL)
	}
	m.allow.Store(al)
	close(old.replaced)
	m.met.resources.setPeers(al.peers)
	for _, p := range old.peers {
		if _, ok := al.byID[p.ID]; ok {
			continue
		}
		m.log.Info("peer removed from the allow-list", "peer", p.ID, "name", p.Name)
		ps.ClearAddrs(p.ID)
		// A connection that passed the gater before the new list was
		// published may still be added after this: the event loop closes
		// it then.
		if err := m.host.Network().ClosePeer(p.ID); err != nil {
			m.log.Debug("closing the connections of a removed peer", "peer", p.ID, "err", err)
		}
	}
	return nil
}
