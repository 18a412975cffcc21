package mesh

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// graftSet mirrors gossipsub's mesh: for each topic, the peers that
// messages we publish or forward are pushed to. Gossipsub does not expose
// it; the tracer feeds it from GRAFT/PRUNE/LEAVE events and stream closes.
type graftSet struct {
	mu      sync.Mutex
	topics  map[string]map[peer.ID]struct{}
	changed chan struct{} // closed and replaced on every change
}

func newGraftSet() *graftSet {
	return &graftSet{topics: make(map[string]map[peer.ID]struct{}), changed: make(chan struct{})}
}

func (g *graftSet) notify() {
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *graftSet) set(topic string, p peer.ID, in bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := g.topics[topic]
	if in {
		if ps == nil {
			ps = make(map[peer.ID]struct{})
			g.topics[topic] = ps
		}
		ps[p] = struct{}{}
	} else {
		delete(ps, p)
	}
	g.notify()
}

func (g *graftSet) removeTopic(topic string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.topics, topic)
	g.notify()
}

func (g *graftSet) removePeer(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ps := range g.topics {
		delete(ps, p)
	}
	g.notify()
}

// peers returns the grafted peers of topic and a channel closed at the
// next change.
func (g *graftSet) peers(topic string) (map[peer.ID]struct{}, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[peer.ID]struct{}, len(g.topics[topic]))
	for p := range g.topics[topic] {
		out[p] = struct{}{}
	}
	return out, g.changed
}
