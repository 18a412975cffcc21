package mesh

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// Dial loop timing.
const (
	minRedial    = 100 * time.Millisecond // first redial delay after a failure or a disconnect
	maxRedial    = 10 * time.Second       // cap of the exponential backoff
	stableConn   = 10 * time.Second       // a connection that lasted this long resets the backoff
	dialTimeout  = 10 * time.Second       // one dial attempt
	pingInterval = 30 * time.Second       // RTT measurement while connected
	pingTimeout  = 5 * time.Second
)

// Run keeps every configured peer connected until ctx is done or the mesh
// is closed, then returns nil. Each peer is dialed at once, and redialed
// after a failure or a disconnect with an exponential backoff from 100 ms
// to 10 s (jittered); a connection that lasted 10 s resets the backoff.
// libp2p's own dial backoff is cleared before each attempt. A peer that
// restarts dials us itself, so it is reconnected as soon as its Run starts
// whatever our backoff. Run follows SetPeers: it dials a peer added at
// once, stops dialing a peer removed, and restarts the dial loop (at once,
// fresh backoff) of a peer whose addresses changed. It records why a
// peer's last attempt failed in PeerStatus.Problem. Run also pings
// connected peers every 30 s to keep PeerStatus.RTT current. Only one Run
// may be active at a time.
func (m *Mesh) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.running {
		m.mu.Unlock()
		return errors.New("mesh: Run is already running")
	}
	m.running = true
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()

	// One dial loop per listed peer, for the peer's current dialState: a
	// loop whose peer left the list, or whose dialState was replaced
	// (new addresses), is cancelled. A cancelled loop returns promptly,
	// and one that still runs beside its successor for a moment does no
	// harm: libp2p joins their dials, and each records problems into its
	// own dialState.
	type dialLoop struct {
		dial   *dialState
		cancel context.CancelFunc
	}
	loops := make(map[peer.ID]dialLoop)
	var wg sync.WaitGroup
	defer func() {
		for _, l := range loops {
			l.cancel()
		}
		wg.Wait()
	}()
	for {
		al := m.allow.Load()
		for id, l := range loops {
			if p, ok := al.byID[id]; !ok || p.dial != l.dial {
				l.cancel()
				delete(loops, id)
			}
		}
		for _, p := range al.peers {
			ap := al.byID[p.ID]
			if _, ok := loops[p.ID]; ok {
				continue
			}
			lctx, lcancel := context.WithCancel(ctx)
			loops[p.ID] = dialLoop{dial: ap.dial, cancel: lcancel}
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.keepConnected(lctx, p.ID, ap.dial)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-al.replaced:
		}
	}
}

// keepConnected is the dial loop of one peer, for the dialState d.
func (m *Mesh) keepConnected(ctx context.Context, id peer.ID, d *dialState) {
	m.dialLoops.Add(1)
	defer m.dialLoops.Add(-1)
	kick := d.kick
	delay := minRedial
	var wait time.Duration
	var dialed time.Time // when our last successful dial returned
	for ctx.Err() == nil {
		if !dialed.IsZero() && !m.Connected(id) && time.Since(dialed) < stableConn {
			// The connection we made did not last (the peer refused us
			// after the handshake, or dropped at once): back off as after
			// a failed dial instead of redialing at once. A connection
			// still open is only slow to identify: no problem yet.
			if m.host.Network().Connectedness(id) != network.Connected {
				m.reportProblem(ctx, id, d, m.refusedProblem(id), true)
			}
			wait, delay = jitter(delay), min(2*delay, maxRedial)
		}
		dialed = time.Time{}
		if m.Connected(id) {
			m.reportProblem(ctx, id, d, "", false)
			since := time.Now()
			m.ping(ctx, id)
			m.waitDisconnect(ctx, id, kick)
			if ctx.Err() != nil {
				return
			}
			if time.Since(since) >= stableConn {
				delay = minRedial
			}
			wait, delay = jitter(delay), min(2*delay, maxRedial)
		}
		if wait > 0 && !m.sleep(ctx, id, kick, wait) {
			return
		}
		wait = 0
		if m.Connected(id) {
			continue
		}
		if !m.current(id, d) {
			// SetPeers removed the peer (and then closed its
			// connections) or changed its addresses; Run cancels this
			// loop. A removed peer must not be redialed meanwhile.
			return
		}
		m.clearDialBackoff(id)
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err := m.host.Connect(dctx, peer.AddrInfo{ID: id})
		cancel()
		if err == nil {
			dialed = time.Now()
			// give identify a moment before judging the connection
			m.sleep(ctx, id, kick, 50*time.Millisecond)
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		if !m.current(id, d) {
			return // the dial raced with SetPeers, whose gater refused it
		}
		m.reportProblem(ctx, id, d, m.dialProblem(id, err), mismatched(err))
		wait = jitter(delay)
		m.log.Debug("dial failed", "peer", id, "name", m.PeerName(id), "err", err, "retry_in", wait)
		delay = min(2*delay, maxRedial)
	}
}

// current reports whether d is the dialState of id in the current
// allow-list.
func (m *Mesh) current(id peer.ID, d *dialState) bool {
	p, ok := m.lookup(id)
	return ok && p.dial == d
}

// reportProblem records problem as the reason id is not connected ("":
// it is), unless the dial loop's ctx is done or d is no longer id's
// dialState, and logs it at Info level when it changes.
// misconfigured says the problem comes from a config (a peer ID that does
// not match, a peer that does not list us), not from the network.
func (m *Mesh) reportProblem(ctx context.Context, id peer.ID, d *dialState, problem string, misconfigured bool) {
	if ctx.Err() != nil || !m.current(id, d) {
		return
	}
	if d.setProblem(problem, misconfigured) && problem != "" {
		m.log.Info("peer not connected", "peer", id, "name", m.PeerName(id), "problem", problem)
	}
}

// waitDisconnect returns once id has no connection left or ctx is done,
// pinging id every pingInterval meanwhile.
func (m *Mesh) waitDisconnect(ctx context.Context, id peer.ID, kick <-chan struct{}) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for m.Connected(id) {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
			m.ping(ctx, id)
		}
	}
}

// sleep waits d, or less if id gets connected meanwhile; it reports false
// when ctx is done.
func (m *Mesh) sleep(ctx context.Context, id peer.ID, kick <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-kick:
			if m.Connected(id) {
				return true
			}
		}
	}
}

// ping measures one round trip to id; libp2p records it in the
// peerstore's latency EWMA. It never dials: a peer that just went away is
// the dial loop's to redial (or not, once SetPeers removed it).
func (m *Mesh) ping(ctx context.Context, id peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ctx = network.WithNoDial(ctx, "ping")
	select {
	case r := <-ping.Ping(ctx, m.host, id):
		if r.Error != nil {
			m.log.Debug("ping failed", "peer", id, "err", r.Error)
		}
	case <-ctx.Done():
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2)
}
