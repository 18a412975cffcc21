package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/vigil-mesh/vigil/mesh"
)

// Hub is an in-memory network: the nodes that Join it reach each other
// (when each lists the other as a peer) without sockets. Streams are
// buffered pipes; pubsub messages are delivered to the members that joined
// the topic, in order, and dropped when a member's queue is full or the
// drop hook says so. Partition cuts the link between two nodes (open
// streams are reset, publishes do not arrive, Open fails) until Heal.
type Hub struct {
	mu    sync.Mutex
	nodes map[peer.ID]*MemNet
	cut   map[[2]peer.ID]bool
	drop  func(from, to peer.ID, topic string) bool
}

// NewHub returns an empty in-memory network.
func NewHub() *Hub {
	return &Hub{nodes: make(map[peer.ID]*MemNet), cut: make(map[[2]peer.ID]bool)}
}

// ErrUnreachable is returned by Open when the peer is not connected.
var ErrUnreachable = errors.New("transport: peer not connected")

// errClosed is returned after Close.
var errClosed = errors.New("transport: network closed")

// topicQueue is how many pubsub messages a member buffers.
const topicQueue = 1024

func linkKey(a, b peer.ID) [2]peer.ID {
	if a > b {
		a, b = b, a
	}
	return [2]peer.ID{a, b}
}

// Join adds node id to the hub; peers maps the IDs it may talk to (its
// allow-list) to their names. The node is connected to every peer that
// has joined and lists it in turn.
func (h *Hub) Join(id peer.ID, peers map[peer.ID]string) *MemNet {
	n := &MemNet{hub: h, id: id, peers: maps.Clone(peers), handlers: make(map[protocol.ID]Handler),
		topics: make(map[string]*memTopic), streams: make(map[*memStream]peer.ID), onConnect: make(map[int]func(peer.ID)),
		changed: make(chan struct{}), closed: make(chan struct{})}
	h.mu.Lock()
	if old := h.nodes[id]; old != nil {
		h.mu.Unlock()
		panic(fmt.Sprintf("transport: node %s joined twice", id))
	}
	h.nodes[id] = n
	var up []*MemNet
	for _, o := range h.nodes {
		if o != n && h.linkedLocked(n, o) {
			up = append(up, o)
		}
	}
	h.mu.Unlock()
	for _, o := range up {
		o.connected(id)
		n.connected(o.id)
	}
	return n
}

// linkedLocked reports whether a and b are connected.
func (h *Hub) linkedLocked(a, b *MemNet) bool {
	if a == nil || b == nil || a.isClosed() || b.isClosed() || h.cut[linkKey(a.id, b.id)] {
		return false
	}
	_, ab := a.peers[b.id]
	_, ba := b.peers[a.id]
	return ab && ba
}

// peer returns the name of p in n's allow-list and whether it is there.
func (n *MemNet) peer(p peer.ID) (string, bool) {
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	name, ok := n.peers[p]
	return name, ok
}

// problem says why n is not connected to p (named name), like the mesh
// does: the hub knows whether p runs and lists n.
func (h *Hub) problem(n *MemNet, p peer.ID, name string) (problem string, misconfigured bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.nodes[p]
	switch {
	case o == nil || o.isClosed():
		return fmt.Sprintf("nothing listens for %s (not running)", name), false
	case h.cut[linkKey(n.id, p)]:
		return fmt.Sprintf("no route to %s (partitioned)", name), false
	}
	if _, ok := o.peers[n.id]; !ok {
		return fmt.Sprintf("%s closed the connection right after the handshake: it probably does not list this node (%s) in its peers", name, n.id), true
	}
	return "", false
}

// SetPeers replaces n's allow-list: links to peers no longer listed are
// cut (their streams reset), links that now exist come up.
func (n *MemNet) SetPeers(peers []mesh.Peer) error {
	set := make(map[peer.ID]string, len(peers))
	for _, p := range peers {
		if p.ID == n.id {
			return fmt.Errorf("transport: peer %q is this node itself", p.Name)
		}
		if _, dup := set[p.ID]; dup {
			return fmt.Errorf("transport: duplicate peer %s", p.ID)
		}
		set[p.ID] = p.Name
	}
	h := n.hub
	h.mu.Lock()
	before := make(map[*MemNet]bool)
	for _, o := range h.nodes {
		if o != n {
			before[o] = h.linkedLocked(n, o)
		}
	}
	n.peers = set
	var up, down []*MemNet
	for o, was := range before {
		switch now := h.linkedLocked(n, o); {
		case now && !was:
			up = append(up, o)
		case was && !now:
			down = append(down, o)
		}
	}
	h.mu.Unlock()
	for _, o := range down {
		n.resetStreams(o.id)
		o.resetStreams(n.id)
		n.notify()
		o.notify()
	}
	for _, o := range up {
		o.connected(n.id)
		n.connected(o.id)
	}
	return nil
}

func (h *Hub) linked(a, b peer.ID) (*MemNet, *MemNet, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	na, nb := h.nodes[a], h.nodes[b]
	return na, nb, h.linkedLocked(na, nb)
}

// Partition cuts the link between a and b: open streams between them are
// reset, their publishes no longer arrive and Open fails until Heal.
func (h *Hub) Partition(a, b peer.ID) {
	h.mu.Lock()
	h.cut[linkKey(a, b)] = true
	na, nb := h.nodes[a], h.nodes[b]
	h.mu.Unlock()
	for _, n := range []*MemNet{na, nb} {
		if n != nil {
			other := b
			if n == nb {
				other = a
			}
			n.resetStreams(other)
			n.notify()
		}
	}
}

// Heal restores the link between a and b.
func (h *Hub) Heal(a, b peer.ID) {
	h.mu.Lock()
	delete(h.cut, linkKey(a, b))
	na, nb := h.nodes[a], h.nodes[b]
	up := h.linkedLocked(na, nb)
	h.mu.Unlock()
	if up {
		na.connected(b)
		nb.connected(a)
	}
}

// SetDrop installs a hook that drops the pubsub messages for which it
// returns true (nil: none).
func (h *Hub) SetDrop(drop func(from, to peer.ID, topic string) bool) {
	h.mu.Lock()
	h.drop = drop
	h.mu.Unlock()
}

// MemNet is one node's view of a Hub; it implements Network.
type MemNet struct {
	hub   *Hub
	id    peer.ID
	peers map[peer.ID]string // guarded by hub.mu

	mu           sync.Mutex
	handlers     map[protocol.ID]Handler
	topics       map[string]*memTopic
	streams      map[*memStream]peer.ID // open ends of this node, by remote peer
	onConnect    map[int]func(peer.ID)
	nextCallback int
	changed      chan struct{} // closed and replaced on every connection change
	closed       chan struct{}
	closeOnce    sync.Once
	wg           sync.WaitGroup // handlers and OnConnect calls
}

var _ Network = (*MemNet)(nil)

func (n *MemNet) ID() peer.ID                   { return n.id }
func (n *MemNet) Addrs() []multiaddr.Multiaddr  { return nil }
func (n *MemNet) PeerName(p peer.ID) string     { name, _ := n.peer(p); return name }
func (n *MemNet) Connected(p peer.ID) bool      { _, _, ok := n.hub.linked(n.id, p); return ok }
func (n *MemNet) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (n *MemNet) isClosed() bool {
	select {
	case <-n.closed:
		return true
	default:
		return false
	}
}

func (n *MemNet) Peers() []mesh.PeerStatus {
	n.hub.mu.Lock()
	peers := maps.Clone(n.peers)
	n.hub.mu.Unlock()
	var out []mesh.PeerStatus
	for id, name := range peers {
		st := mesh.PeerStatus{ID: id, Name: name, Connected: n.Connected(id)}
		if !st.Connected {
			st.Problem, st.Misconfigured = n.hub.problem(n, id, name)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b mesh.PeerStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func (n *MemNet) notify() {
	n.mu.Lock()
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

// connected runs the OnConnect callbacks for p.
func (n *MemNet) connected(p peer.ID) {
	n.notify()
	n.mu.Lock()
	var fns []func(peer.ID)
	if !n.isClosed() {
		fns = slices.Collect(maps.Values(n.onConnect))
	}
	n.wg.Add(len(fns))
	n.mu.Unlock()
	for _, fn := range fns {
		go func() {
			defer n.wg.Done()
			fn(p)
		}()
	}
}

func (n *MemNet) WaitConnected(ctx context.Context, p peer.ID) error {
	if _, ok := n.peer(p); !ok {
		return fmt.Errorf("transport: wait for %s: %w", p, mesh.ErrNotAllowed)
	}
	for {
		n.mu.Lock()
		ch := n.changed
		n.mu.Unlock()
		if n.Connected(p) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closed:
			return errClosed
		}
	}
}

func (n *MemNet) OnConnect(fn func(peer.ID)) func() {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.nextCallback
	n.nextCallback++
	n.onConnect[k] = fn
	return func() {
		n.mu.Lock()
		delete(n.onConnect, k)
		n.mu.Unlock()
	}
}

func (n *MemNet) Handle(proto protocol.ID, h Handler) {
	n.mu.Lock()
	n.handlers[proto] = h
	n.mu.Unlock()
}

func (n *MemNet) track(s *memStream, remote peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed() {
		return false
	}
	n.streams[s] = remote
	s.onEnd = func() {
		n.mu.Lock()
		delete(n.streams, s)
		n.mu.Unlock()
	}
	return true
}

func (n *MemNet) resetStreams(remote peer.ID) {
	n.mu.Lock()
	var rs []*memStream
	for s, p := range n.streams {
		if p == remote || remote == "" {
			rs = append(rs, s)
		}
	}
	n.mu.Unlock()
	for _, s := range rs {
		s.Reset()
	}
}

func (n *MemNet) Open(ctx context.Context, p peer.ID, proto protocol.ID) (Stream, error) {
	if _, ok := n.peer(p); !ok {
		return nil, fmt.Errorf("transport: open %s to %s: %w", proto, p, mesh.ErrNotAllowed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, remote, ok := n.hub.linked(n.id, p)
	if !ok {
		return nil, fmt.Errorf("transport: open %s to %s: %w", proto, p, ErrUnreachable)
	}
	remote.mu.Lock()
	h := remote.handlers[proto]
	remote.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("transport: open %s to %s: protocol not supported", proto, p)
	}
	local, far := newStreamPair()
	if !n.track(local, p) {
		return nil, errClosed
	}
	if !remote.track(far, n.id) {
		local.Reset()
		return nil, fmt.Errorf("transport: open %s to %s: %w", proto, p, ErrUnreachable)
	}
	remote.wg.Add(1)
	go func() {
		defer remote.wg.Done()
		h(n.id, far)
	}()
	return local, nil
}

// Close leaves the hub: streams are reset, topics closed, and Close waits
// for the handlers and callbacks that run.
func (n *MemNet) Close() error {
	n.closeOnce.Do(func() {
		close(n.closed)
		n.resetStreams("")
		n.mu.Lock()
		ts := make([]*memTopic, 0, len(n.topics))
		for _, t := range n.topics {
			ts = append(ts, t)
		}
		n.mu.Unlock()
		for _, t := range ts {
			t.Close()
		}
		n.notify()
		h := n.hub
		h.mu.Lock()
		var others []*MemNet
		for _, o := range h.nodes {
			if o != n {
				others = append(others, o)
			}
		}
		delete(h.nodes, n.id)
		h.mu.Unlock()
		for _, o := range others {
			o.resetStreams(n.id)
			o.notify()
		}
		n.wg.Wait()
	})
	return nil
}

// memTopic is a node's membership of a folder topic.
type memTopic struct {
	n       *MemNet
	name    string
	source  peer.ID
	members []peer.ID
	q       chan []byte
	done    chan struct{}
	once    sync.Once
}

func (n *MemNet) JoinFolder(source peer.ID, folder string, members []peer.ID) (Topic, error) {
	name := mesh.TopicName(source, folder)
	t := &memTopic{n: n, name: name, source: source, members: slices.Clone(members),
		q: make(chan []byte, topicQueue), done: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed() {
		return nil, errClosed
	}
	if _, ok := n.topics[name]; ok {
		return nil, fmt.Errorf("transport: topic %s joined twice", name)
	}
	n.topics[name] = t
	return t, nil
}

// Publish delivers data on topic as if from had published it there (a
// node playing a compromised source, in tests). The node from must have
// joined the hub and the topic.
func (h *Hub) Publish(from peer.ID, topic string, data []byte) error {
	h.mu.Lock()
	n := h.nodes[from]
	h.mu.Unlock()
	if n == nil {
		return fmt.Errorf("transport: publish as %s: not on the hub", from)
	}
	n.mu.Lock()
	t := n.topics[topic]
	n.mu.Unlock()
	if t == nil {
		return fmt.Errorf("transport: publish as %s: topic %s not joined", from, topic)
	}
	return t.Publish(context.Background(), data)
}

func (t *memTopic) Publish(ctx context.Context, data []byte) error {
	n := t.n
	if t.source != n.id {
		return fmt.Errorf("transport: publish on %s: only the source publishes: %w", t.name, mesh.ErrNotAllowed)
	}
	if len(data) > mesh.MaxMessageSize {
		return fmt.Errorf("transport: publish on %s: %d bytes: %w", t.name, len(data), mesh.ErrMessageTooLarge)
	}
	select {
	case <-t.done:
		return errClosed
	default:
	}
	h := n.hub
	for _, m := range t.members {
		_, other, ok := h.linked(n.id, m)
		if !ok {
			continue
		}
		h.mu.Lock()
		drop := h.drop
		h.mu.Unlock()
		if drop != nil && drop(n.id, m, t.name) {
			continue
		}
		other.mu.Lock()
		ot := other.topics[t.name]
		other.mu.Unlock()
		if ot == nil || !slices.Contains(ot.members, n.id) {
			continue
		}
		msg := slices.Clone(data)
		select {
		case ot.q <- msg:
		case <-ot.done:
		default: // the member's queue is full: lost, as gossipsub may lose it
		}
	}
	return nil
}

func (t *memTopic) Next(ctx context.Context) ([]byte, error) {
	select {
	case m := <-t.q:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.done:
		return nil, mesh.ErrClosed
	}
}

func (t *memTopic) Close() error {
	t.once.Do(func() {
		close(t.done)
		t.n.mu.Lock()
		if t.n.topics[t.name] == t {
			delete(t.n.topics, t.name)
		}
		t.n.mu.Unlock()
	})
	return nil
}
