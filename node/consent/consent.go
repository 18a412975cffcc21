// Package consent keeps what a node knows of consent: a folder is backed
// up only when both sides agree, the source naming the backup in backup_to
// and the backup naming the source's folder in backup_for. As a source, a
// node asks each backup (over the hello protocol) and keeps the answers;
// as a backup, it keeps the requests it refused, for status. Book is safe
// for concurrent use.
package consent

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/wire"
)

// Recheck is how often a source asks again a backup that refused a folder
// (a reload of the backup is seen at its next ack anyway); Retry how often
// it asks again a backup that did not answer, doubling up to Recheck.
const (
	Recheck = 30 * time.Second
	Retry   = 2 * time.Second
)

// maxRefused bounds the refused requests kept as a backup.
const maxRefused = 4096

type key struct {
	peer   peer.ID
	folder string
}

// State is what a backup answered about a folder.
type State struct {
	Accepted bool
	Reason   string
	Since    time.Time // when this answer was first given
}

// Book holds both sides' view: the answers this node got as a source,
// and the requests this node refused as a backup.
type Book struct {
	mu         sync.Mutex
	answers    map[key]State         // as a source, by backup and folder
	unanswered map[peer.ID]int       // as a source: backups whose last hellos failed, how many in a row
	asked      map[peer.ID]time.Time // as a source: when each backup was last asked
	refused    map[key]time.Time     // as a backup, by source and folder: since
}

// New returns an empty book.
func New() *Book {
	return &Book{answers: make(map[key]State), unanswered: make(map[peer.ID]int),
		asked: make(map[peer.ID]time.Time), refused: make(map[key]time.Time)}
}

// Asking records an attempt to ask p at now, and whether it got an answer.
func (c *Book) Asking(p peer.ID, now time.Time, answered bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked[p] = now
	if answered {
		delete(c.unanswered, p)
	} else {
		c.unanswered[p]++
	}
}

// Refusal returns the reason backup refused folder, if it did and has not
// acknowledged anything since (an ack after the refusal means a reload of
// the backup accepted it).
func (c *Book) Refusal(backup peer.ID, folder string, ackedAt time.Time) (State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.answers[key{backup, folder}]
	if !ok || st.Accepted || ackedAt.After(st.Since) {
		return State{}, false
	}
	return st, true
}

// Note records backup's answer about a folder.
func (c *Book) Note(backup peer.ID, a wire.Consent, now time.Time) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key{backup, a.Folder}
	old, ok := c.answers[k]
	if ok && old.Accepted == a.Accepted && old.Reason == a.Reason {
		return false
	}
	c.answers[k] = State{Accepted: a.Accepted, Reason: a.Reason, Since: now}
	return true
}

// Due lists the backups to ask again at now: those whose last hello got
// no answer (after a delay doubling from Retry up to
// Recheck), and those that refused a folder Recheck ago.
func (c *Book) Due(now time.Time) []peer.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []peer.ID
	for p, fails := range c.unanswered {
		wait := min(Retry<<min(fails-1, 4), Recheck)
		if now.Sub(c.asked[p]) >= wait {
			out = append(out, p)
		}
	}
	for k, st := range c.answers {
		if !st.Accepted && !slices.Contains(out, k.peer) && now.Sub(c.asked[k.peer]) >= Recheck {
			out = append(out, k.peer)
		}
	}
	return out
}

// Of says whether cfg keeps folder of source, and why not.
func Of(cfg *config.Config, source peer.ID, folder string) wire.Consent {
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

// Asked records, as a backup, the answers given to source's hello: a
// refusal is kept (from its first time, at most maxRefused) until a later
// hello is accepted. first reports the refusals not known before.
func (c *Book) Asked(source peer.ID, answers []wire.Consent, now time.Time) (first []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range answers {
		k := key{source, a.Folder}
		if a.Accepted {
			delete(c.refused, k)
		} else if _, ok := c.refused[k]; !ok && len(c.refused) < maxRefused {
			c.refused[k] = now
			first = append(first, a.Folder)
		}
	}
	return first
}

// Refused is a request this node refused as a backup.
type Refused struct {
	Source peer.ID
	Folder string
	Since  time.Time
}

// Refused lists the refused requests that cfg still refuses (forgetting
// those a reload accepted since).
func (c *Book) Refused(cfg *config.Config) []Refused {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Refused
	for k, since := range c.refused {
		if Of(cfg, k.peer, k.folder).Accepted {
			delete(c.refused, k)
			continue
		}
		out = append(out, Refused{Source: k.peer, Folder: k.folder, Since: since})
	}
	return out
}
