package node

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
)

// Consent: a folder is backed up only when both sides agree, the source
// naming the backup in backup_to and the backup naming the source's folder
// in backup_for. A source asks each backup, once connected (and again
// every consentRecheck while one refuses), over a hello stream; a refusal
// shows in the source's lag and status with the backup's reason, and the
// backup lists the folders it was asked for and does not keep.

// consentRecheck is how often a source asks again a backup that refused
// a folder (a reload of the backup is seen at its next ack anyway);
// consentRetry how often it asks again a backup that did not answer.
const (
	consentRecheck = 30 * time.Second
	consentRetry   = 2 * time.Second
)

// helloTimeout bounds one hello exchange.
const helloTimeout = 10 * time.Second

type consentKey struct {
	peer   peer.ID
	folder string
}

// consentState is what a backup answered about a folder.
type consentState struct {
	accepted bool
	reason   string
	since    time.Time // when this answer was first given
}

// consents holds both sides' view: the answers this node got as a source,
// and the requests this node refused as a backup.
type consents struct {
	mu         sync.Mutex
	answers    map[consentKey]consentState // as a source, by backup and folder
	unanswered map[peer.ID]int             // as a source: backups whose last hellos failed, how many in a row
	asked      map[peer.ID]time.Time       // as a source: when each backup was last asked
	refused    map[consentKey]time.Time    // as a backup, by source and folder: since
}

func newConsents() *consents {
	return &consents{answers: make(map[consentKey]consentState), unanswered: make(map[peer.ID]int),
		asked: make(map[peer.ID]time.Time), refused: make(map[consentKey]time.Time)}
}

// asking records an attempt to ask p at now, and whether it got an answer.
func (c *consents) asking(p peer.ID, now time.Time, answered bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked[p] = now
	if answered {
		delete(c.unanswered, p)
	} else {
		c.unanswered[p]++
	}
}

// refusal returns the reason backup refused folder, if it did and has not
// acknowledged anything since (an ack after the refusal means a reload of
// the backup accepted it).
func (c *consents) refusal(backup peer.ID, folder string, ackedAt time.Time) (consentState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.answers[consentKey{backup, folder}]
	if !ok || st.accepted || ackedAt.After(st.since) {
		return consentState{}, false
	}
	return st, true
}

// note records backup's answer about a folder.
func (c *consents) note(backup peer.ID, a wire.Consent, now time.Time) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := consentKey{backup, a.Folder}
	old, ok := c.answers[k]
	if ok && old.accepted == a.Accepted && old.reason == a.Reason {
		return false
	}
	c.answers[k] = consentState{accepted: a.Accepted, reason: a.Reason, since: now}
	return true
}

// due lists the backups to ask again at now: those whose last hello got
// no answer (after a delay doubling from consentRetry up to
// consentRecheck), and those that refused a folder consentRecheck ago.
func (c *consents) due(now time.Time) []peer.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []peer.ID
	for p, fails := range c.unanswered {
		wait := min(consentRetry<<min(fails-1, 4), consentRecheck)
		if now.Sub(c.asked[p]) >= wait {
			out = append(out, p)
		}
	}
	for k, st := range c.answers {
		if !st.accepted && !slices.Contains(out, k.peer) && now.Sub(c.asked[k.peer]) >= consentRecheck {
			out = append(out, k.peer)
		}
	}
	return out
}

// startConsent asks every backup as it connects, and those that refused
// again every consentRecheck, until ctx ends.
func (n *Node) startConsent(ctx context.Context, wg *sync.WaitGroup) {
	cancel := n.net.OnConnect(func(p peer.ID) { n.askConsent(ctx, p) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		// peers connected before the callback was registered
		for _, p := range n.net.Peers() {
			if p.Connected {
				n.askConsent(ctx, p.ID)
			}
		}
		t := time.NewTicker(consentRetry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for _, p := range n.consent.due(now) {
					if n.net.Connected(p) {
						n.askConsent(ctx, p)
					}
				}
			}
		}
	}()
}

// foldersBackedUpBy lists the folders this node protects with p as a
// designated backup.
func (n *Node) foldersBackedUpBy(p peer.ID) []string {
	agents, _ := n.roles()
	var out []string
	for _, a := range agents {
		if slices.Contains(a.Backups(), p) {
			out = append(out, a.ID())
		}
	}
	return out
}

// askConsent asks p whether it backs up the folders this node names it a
// backup of, and records the answers. A peer that does not speak the
// hello protocol, or cannot be reached, leaves the answers as they were.
func (n *Node) askConsent(ctx context.Context, p peer.ID) {
	folders := n.foldersBackedUpBy(p)
	if len(folders) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	answered := false
	defer func() { n.consent.asking(p, time.Now(), answered) }()
	s, err := n.net.Open(ctx, p, mesh.ProtoHello)
	if err != nil {
		n.log.Debug("hello", "peer", p.String(), "name", n.peerName(p), "err", err)
		return
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(helloTimeout))
	w := bufio.NewWriter(s)
	if err := mesh.WriteFrame(w, wire.HelloReq, wire.EncodeHelloReq(folders)); err != nil || w.Flush() != nil {
		return
	}
	s.CloseWrite()
	typ, body, err := mesh.ReadFrame(bufio.NewReader(s), wire.MaxHelloFrame)
	if err != nil || typ != wire.HelloReply {
		n.log.Debug("hello reply", "peer", p.String(), "type", typ, "err", err)
		return
	}
	answered = true
	answers, err := wire.DecodeHelloReply(body)
	if err != nil {
		n.log.Warn("bad hello reply", "peer", p.String(), "name", n.peerName(p), "err", err)
		return
	}
	now := time.Now()
	for _, a := range answers {
		if !slices.Contains(folders, a.Folder) {
			continue
		}
		if n.consent.note(p, a, now) && !a.Accepted {
			n.log.Warn("backup does not keep this folder", "peer", p.String(), "name", n.peerName(p),
				"folder", a.Folder, "reason", a.Reason)
		}
	}
}

// handleHello answers a source's hello from this node's config.
func (n *Node) handleHello(from peer.ID, s transport.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(helloTimeout))
	typ, body, err := mesh.ReadFrame(bufio.NewReader(s), wire.MaxHelloFrame)
	if err != nil || typ != wire.HelloReq {
		s.Reset()
		return
	}
	folders, err := wire.DecodeHelloReq(body)
	if err != nil {
		n.log.Debug("bad hello", "peer", from.String(), "err", err)
		s.Reset()
		return
	}
	cfg := n.config()
	now := time.Now()
	answers := make([]wire.Consent, 0, len(folders))
	n.consent.mu.Lock()
	for _, f := range folders {
		a := consentOf(cfg, from, f)
		k := consentKey{from, f}
		if a.Accepted {
			delete(n.consent.refused, k)
		} else if _, ok := n.consent.refused[k]; !ok && len(n.consent.refused) < 4096 {
			n.consent.refused[k] = now
			n.log.Warn("a peer asks this node to back up a folder it has no backup_for entry for",
				"peer", from.String(), "name", n.peerName(from), "folder", f)
		}
		answers = append(answers, a)
	}
	n.consent.mu.Unlock()
	w := bufio.NewWriter(s)
	if mesh.WriteFrame(w, wire.HelloReply, wire.EncodeHelloReply(answers)) == nil {
		w.Flush()
	}
}

// consentOf says whether cfg keeps folder of source, and why not.
func consentOf(cfg *config.Config, source peer.ID, folder string) wire.Consent {
	pc, ok := cfg.PeerByID(source)
	if !ok { // cannot be: the mesh admits only configured peers
		return wire.Consent{Folder: folder, Reason: fmt.Sprintf("%s does not list this peer in its peers", cfg.Node.Name)}
	}
	for _, bf := range cfg.BackupFor {
		if bf.Peer == pc.Name && slices.Contains(bf.Folders, folder) {
			return wire.Consent{Folder: folder, Accepted: true}
		}
	}
	return wire.Consent{Folder: folder, Reason: fmt.Sprintf(
		"%s has no backup_for entry for %s/%s: add %q to the folders of its backup_for entry for peer %q (%s), then run `vigil reload` there",
		cfg.Node.Name, pc.Name, folder, folder, pc.Name, cfg.File)}
}

// refusedRequests lists, for status, the folders peers asked this node to
// back up and it does not keep (dropping those a reload accepted since).
func (n *Node) refusedRequests() []control.RefusedFolder {
	cfg := n.config()
	n.consent.mu.Lock()
	defer n.consent.mu.Unlock()
	out := []control.RefusedFolder{}
	for k, since := range n.consent.refused {
		if consentOf(cfg, k.peer, k.folder).Accepted {
			delete(n.consent.refused, k)
			continue
		}
		out = append(out, control.RefusedFolder{Source: k.peer.String(), SourceName: n.peerName(k.peer),
			Folder: k.folder, Since: since.UTC()})
	}
	slices.SortFunc(out, func(a, b control.RefusedFolder) int {
		return cmp.Or(cmp.Compare(a.SourceName, b.SourceName), cmp.Compare(a.Folder, b.Folder))
	})
	return out
}
