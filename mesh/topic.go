package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxMessageSize is the largest payload a folder topic carries; the
// validators reject larger messages. Bulk data moves over streams. It
// leaves room for the 256 KiB of records a message carries at most (see
// node/wire) and bounds what a flood can make a peer hold: gossipsub
// keeps each delivered message in its history for a few seconds, and a
// Topic buffers up to subscriptionBuffer of them.
const MaxMessageSize = 320 << 10

// rpcOverhead is the room gossipsub gets above MaxMessageSize for the
// envelope of one message (topic, signature, key, control data).
const rpcOverhead = 64 << 10

// subscriptionBuffer is how many validated messages a Topic holds for Next
// before gossipsub drops new ones (counted as dropped, reason
// "subscriber_full").
const subscriptionBuffer = 128

// topicPrefix starts every folder topic name.
const topicPrefix = "/vigil/folder/1/"

// TopicName returns the gossipsub topic of folder on source:
// "/vigil/folder/1/<source peer ID>/<folder>".
func TopicName(source peer.ID, folder string) string {
	return topicPrefix + source.String() + "/" + folder
}

func validFolder(folder string) bool {
	if folder == "" || strings.ContainsRune(folder, '/') {
		return false
	}
	for _, r := range folder {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Topic is this node's membership of one folder topic. Messages are
// accepted only when signed by the topic's source and received from the
// source or a member; Next returns them in arrival order.
type Topic struct {
	m      *Mesh
	name   string
	source peer.ID
	pt     *pubsub.Topic
	sub    *pubsub.Subscription
	ctx    context.Context // cancelled by Close and by Mesh.Close
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// JoinFolder joins the topic of (source, folder) and subscribes to it at
// once, so messages arriving before the first Next are kept (up to 256).
// members are the peers allowed to exchange this topic with us besides
// ourselves: on the source its designated backups, on a backup the source.
// The gossipsub peer filter refuses the topic to every other peer, so they
// never receive its messages from us; the topic validator rejects a
// message whose signer is not source, that is larger than MaxMessageSize
// or that was forwarded by a peer that is not a member. source and members
// must be in the allow-list (or be this node). Joining the same topic
// again returns the same *Topic and replaces its member list. A member
// that SetPeers removes from the allow-list stops counting as a member
// (the filter and the validator consult the current allow-list) until it
// is listed again.
func (m *Mesh) JoinFolder(source peer.ID, folder string, members []peer.ID) (*Topic, error) {
	if !validFolder(folder) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidFolder, folder)
	}
	if !m.allowed(source) && source != m.self {
		return nil, &PeerError{Op: "join folder " + folder + " of", Peer: source, Err: ErrNotAllowed}
	}
	set := make(map[peer.ID]struct{}, len(members))
	for _, p := range members {
		if p == m.self {
			continue
		}
		if !m.allowed(p) {
			return nil, &PeerError{Op: "add member to folder " + folder, Peer: p, Err: ErrNotAllowed}
		}
		set[p] = struct{}{}
	}
	name := TopicName(source, folder)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	m.setMembers(name, set)
	if t, ok := m.topics[name]; ok {
		return t, nil
	}
	fail := func(err error) (*Topic, error) {
		m.setMembers(name, nil)
		return nil, fmt.Errorf("mesh: join %s: %w", name, err)
	}
	if err := m.ps.RegisterTopicValidator(name, m.folderValidator(name, source),
		pubsub.WithValidatorInline(true)); err != nil {
		return fail(err)
	}
	pt, err := m.ps.Join(name)
	if err != nil {
		m.ps.UnregisterTopicValidator(name)
		return fail(err)
	}
	sub, err := pt.Subscribe(pubsub.WithBufferSize(subscriptionBuffer),
		pubsub.WithMessageFilter(m.inboundFilter(name)))
	if err != nil {
		pt.Close()
		m.ps.UnregisterTopicValidator(name)
		return fail(err)
	}
	t := &Topic{m: m, name: name, source: source, pt: pt, sub: sub}
	t.ctx, t.cancel = context.WithCancel(m.ctx)
	m.topics[name] = t
	return t, nil
}

func (m *Mesh) setMembers(name string, set map[peer.ID]struct{}) {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	if set == nil {
		delete(m.members, name)
		return
	}
	m.members[name] = set
}

// isMember reports whether p is a member of topic and still in the
// allow-list.
func (m *Mesh) isMember(topic string, p peer.ID) bool {
	if !m.allowed(p) {
		return false
	}
	m.tmu.RLock()
	defer m.tmu.RUnlock()
	_, ok := m.members[topic][p]
	return ok
}

// peerFilter is gossipsub's peer filter: a peer takes part in a topic
// (mesh, gossip, message requests) only if it is a member of it. Topics
// not joined through JoinFolder have no members.
func (m *Mesh) peerFilter(p peer.ID, topic string) bool {
	return m.isMember(topic, p)
}

func (m *Mesh) folderValidator(name string, source peer.ID) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		switch {
		case msg.GetFrom() != source:
			m.log.Debug("rejected folder message not signed by the source",
				"topic", name, "signer", msg.GetFrom(), "from", from)
			return pubsub.ValidationReject
		case source != m.self && !m.allowed(source):
			m.log.Debug("rejected folder message of a source no longer in the allow-list",
				"topic", name, "from", from)
			return pubsub.ValidationReject
		case len(msg.Data) > MaxMessageSize:
			m.log.Debug("rejected oversized folder message", "topic", name, "size", len(msg.Data), "from", from)
			return pubsub.ValidationReject
		case from != m.self && !m.isMember(name, from):
			m.log.Debug("rejected folder message forwarded by a non-member", "topic", name, "from", from)
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
}

// inboundFilter decides which validated messages reach the subscription:
// not our own, and not those the DropInbound test hook drops.
func (m *Mesh) inboundFilter(name string) func(*pubsub.Message) bool {
	return func(msg *pubsub.Message) bool {
		if msg.GetFrom() == m.self {
			return false
		}
		if m.cfg.DropInbound != nil && m.cfg.DropInbound(name) {
			m.met.dropped.WithLabelValues("drop_inbound_hook").Inc()
			return false
		}
		return true
	}
}

// Name returns the topic name (see TopicName).
func (t *Topic) Name() string { return t.name }

// Source returns the peer whose folder this topic carries.
func (t *Topic) Source() peer.ID { return t.source }

// Peers returns the members in this node's gossipsub mesh for the topic:
// the peers that a message published from now on is pushed to directly.
// A member that just connected or subscribed enters the mesh at the next
// gossipsub heartbeat (within about a second); until then it misses what
// is published.
func (t *Topic) Peers() []peer.ID {
	grafted, _ := t.m.graft.peers(t.name)
	return t.filterPeers(grafted)
}

func (t *Topic) filterPeers(grafted map[peer.ID]struct{}) []peer.ID {
	var out []peer.ID
	if len(grafted) == 0 {
		return out
	}
	for _, p := range t.pt.ListPeers() {
		if _, ok := grafted[p]; ok && t.m.isMember(t.name, p) {
			out = append(out, p)
		}
	}
	return out
}

// WaitPeer blocks until p is in Peers, ctx is done or the topic is
// closed. A source can use it to publish only once a backup that just
// connected will receive the message.
func (t *Topic) WaitPeer(ctx context.Context, p peer.ID) error {
	for {
		grafted, changed := t.m.graft.peers(t.name)
		if slices.Contains(t.filterPeers(grafted), p) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.ctx.Done():
			return ErrClosed
		}
	}
}

// Publish sends data to the topic's members. Only the source may publish
// (ErrNotAllowed otherwise); data larger than MaxMessageSize yields
// ErrMessageTooLarge. Delivery is best effort: a member that is not
// connected, or not yet subscribed, misses the message.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if t.ctx.Err() != nil {
		return ErrClosed
	}
	if t.m.self != t.source {
		return fmt.Errorf("mesh: publish on %s: only the source publishes: %w", t.name, ErrNotAllowed)
	}
	if len(data) > MaxMessageSize {
		return fmt.Errorf("mesh: publish on %s: %d bytes: %w", t.name, len(data), ErrMessageTooLarge)
	}
	if err := t.pt.Publish(ctx, data); err != nil {
		if t.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("mesh: publish on %s: %w", t.name, err)
	}
	t.m.met.published.Inc()
	return nil
}

// Next returns the payload of the next message from the source, skipping
// our own. It returns ctx's error when ctx is done and ErrClosed once the
// topic or the mesh is closed.
func (t *Topic) Next(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	msg, err := t.sub.Next(ctx)
	if err != nil {
		if t.ctx.Err() != nil || errors.Is(err, pubsub.ErrSubscriptionCancelled) {
			return nil, ErrClosed
		}
		return nil, err
	}
	return msg.Data, nil
}

// Close leaves the topic: it cancels the subscription, unregisters the
// validator and forgets the member list. Pending and later Next calls
// return ErrClosed. Every holder of this *Topic is affected. Idempotent.
func (t *Topic) Close() error {
	t.closeOnce.Do(func() {
		t.cancel()
		m := t.m
		// m.mu serialises this with a JoinFolder of the same topic, which
		// must not register its validator before ours is gone.
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.topics[t.name] == t {
			delete(m.topics, t.name)
			m.setMembers(t.name, nil)
		}
		if m.ctx.Err() != nil {
			return // gossipsub is gone with the mesh
		}
		t.sub.Cancel()
		err := t.pt.Close()
		if verr := m.ps.UnregisterTopicValidator(t.name); verr != nil && err == nil {
			err = verr
		}
		if err != nil && m.ctx.Err() == nil {
			t.closeErr = fmt.Errorf("mesh: close topic %s: %w", t.name, err)
		}
	})
	return t.closeErr
}
