package node

import (
	"bufio"
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/consent"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
)

// Consent: a folder is backed up only when both sides agree, the source
// naming the backup in backup_to and the backup naming the source's folder
// in backup_for. A source asks each backup, once connected (and again
// every consent.Recheck while one refuses), over a hello stream; a refusal
// shows in the source's lag and status with the backup's reason, and the
// backup lists the folders it was asked for and does not keep.

// helloTimeout bounds one hello exchange.
const helloTimeout = 10 * time.Second

// startConsent asks every backup as it connects, and those that refused
// again every consent.Recheck, until ctx ends.
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
		t := time.NewTicker(consent.Retry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for _, p := range n.consent.Due(now) {
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
	defer func() { n.consent.Asking(p, time.Now(), answered) }()
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
		if n.consent.Note(p, a, now) && !a.Accepted {
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
	for _, f := range folders {
		answers = append(answers, consent.Of(cfg, from, f))
	}
	for _, f := range n.consent.Asked(from, answers, now) {
		n.log.Warn("a peer asks this node to back up a folder it has no backup_for entry for",
			"peer", from.String(), "name", n.peerName(from), "folder", f)
	}
	w := bufio.NewWriter(s)
	if mesh.WriteFrame(w, wire.HelloReply, wire.EncodeHelloReply(answers)) == nil {
		w.Flush()
	}
}

// refusedRequests lists, for status, the folders peers asked this node to
// back up and it does not keep (dropping those a reload accepted since).
func (n *Node) refusedRequests() []control.RefusedFolder {
	out := []control.RefusedFolder{}
	for _, r := range n.consent.Refused(n.config()) {
		out = append(out, control.RefusedFolder{Source: r.Source.String(), SourceName: n.peerName(r.Source),
			Folder: r.Folder, Since: r.Since.UTC()})
	}
	slices.SortFunc(out, func(a, b control.RefusedFolder) int {
		return cmp.Or(cmp.Compare(a.SourceName, b.SourceName), cmp.Compare(a.Folder, b.Folder))
	})
	return out
}
