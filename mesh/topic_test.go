package mesh

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTopicNameFormat(t *testing.T) {
	_, id := newKey(t)
	if got, want := TopicName(id, "docs"), "/vigil/folder/1/"+id.String()+"/docs"; got != want {
		t.Fatalf("TopicName = %q, want %q", got, want)
	}
}

func TestJoinFolderValidatesArguments(t *testing.T) {
	ms := cluster(t, 2, nil)
	a := ms[0]
	_, stranger := newKey(t)
	for _, folder := range []string{"", "a/b", "x\x00"} {
		if _, err := a.JoinFolder(a.ID(), folder, nil); !errors.Is(err, ErrInvalidFolder) {
			t.Errorf("folder %q: err = %v, want ErrInvalidFolder", folder, err)
		}
	}
	if _, err := a.JoinFolder(stranger, "docs", nil); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("unlisted source: err = %v, want ErrNotAllowed", err)
	}
	if _, err := a.JoinFolder(a.ID(), "docs", []peer.ID{stranger}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("unlisted member: err = %v, want ErrNotAllowed", err)
	}
	t1, err := a.JoinFolder(a.ID(), "docs", []peer.ID{ms[1].ID()})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := a.JoinFolder(a.ID(), "docs", []peer.ID{ms[1].ID()})
	if err != nil {
		t.Fatal(err)
	}
	if t1 != t2 {
		t.Fatal("joining the same topic twice returned two Topics")
	}
	if err := t1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := t1.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: err = %v, want ErrClosed", err)
	}
	// After Close the topic can be joined again (validator unregistered).
	t3, err := a.JoinFolder(a.ID(), "docs", nil)
	if err != nil {
		t.Fatalf("rejoin after Close: %v", err)
	}
	if t3 == t1 {
		t.Fatal("rejoin returned the closed Topic")
	}
}

// joinAll joins (source, folder) on the source with the given backups as
// members, and on each backup with the source as member; it waits until
// the source sees every backup on the topic.
func joinAll(t *testing.T, source *Mesh, folder string, backups ...*Mesh) (*Topic, []*Topic) {
	t.Helper()
	var ids []peer.ID
	var bts []*Topic
	for _, b := range backups {
		ids = append(ids, b.ID())
		bt, err := b.JoinFolder(source.ID(), folder, []peer.ID{source.ID()})
		if err != nil {
			t.Fatal(err)
		}
		bts = append(bts, bt)
	}
	st, err := source.JoinFolder(source.ID(), folder, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := st.WaitPeer(ctxTimeout(t, 10*time.Second), id); err != nil {
			t.Fatalf("backup %s not in the source's mesh: %v", source.PeerName(id), err)
		}
	}
	return st, bts
}

func TestFolderMessageFromSourceReachesMember(t *testing.T) {
	ms := cluster(t, 2, nil)
	src, bak := ms[0], ms[1]
	connect(t, bak, src)
	st, bts := joinAll(t, src, "docs", bak)

	if err := st.Publish(context.Background(), []byte("record 1")); err != nil {
		t.Fatal(err)
	}
	got, err := bts[0].Next(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "record 1" {
		t.Fatalf("member received %q, want %q", got, "record 1")
	}
	// The source does not hand its own messages back.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := st.Next(ctx); err == nil {
		t.Fatalf("source's Next returned its own message %q", m)
	}
	if got := metricValue(t, src.met.published); got != 1 {
		t.Fatalf("published = %v, want 1", got)
	}
	if got := metricValue(t, bak.met.received); got != 1 {
		t.Fatalf("received = %v, want 1", got)
	}
}

func TestPublishRefusedForNonSourceAndOversizedMessage(t *testing.T) {
	ms := cluster(t, 2, nil)
	src, bak := ms[0], ms[1]
	bt, err := bak.JoinFolder(src.ID(), "docs", []peer.ID{src.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.Publish(context.Background(), []byte("x")); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("backup publishing: err = %v, want ErrNotAllowed", err)
	}
	st, err := src.JoinFolder(src.ID(), "docs", []peer.ID{bak.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(context.Background(), make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized publish: err = %v, want ErrMessageTooLarge", err)
	}
	if err := st.Publish(context.Background(), make([]byte, MaxMessageSize)); err != nil {
		t.Fatalf("publish of exactly MaxMessageSize: %v", err)
	}
}

func TestValidatorRejectsFolderMessageNotSignedBySource(t *testing.T) {
	ms := cluster(t, 2, nil)
	src, rogue := ms[0], ms[1]
	connect(t, rogue, src)
	name := TopicName(src.ID(), "docs")

	st, err := src.JoinFolder(src.ID(), "docs", []peer.ID{rogue.ID()})
	if err != nil {
		t.Fatal(err)
	}
	// The rogue member bypasses its own JoinFolder (whose validator would
	// refuse the publish locally) and publishes on the raw gossipsub topic,
	// signed with its own key.
	rogue.setMembers(name, map[peer.ID]struct{}{src.ID(): {}})
	rt, err := rogue.ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	eventually(t, 10*time.Second, "rogue to see the source on the topic", func() bool {
		return slices.Contains(rt.ListPeers(), src.ID())
	})
	if err := rt.Publish(context.Background(), []byte("forged record")); err != nil {
		t.Fatal(err)
	}
	rejected := src.met.rejected.WithLabelValues(pubsub.RejectValidationFailed)
	eventually(t, 10*time.Second, "the source to reject the forged message", func() bool {
		return metricValue(t, rejected) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := st.Next(ctx); err == nil {
		t.Fatalf("forged message delivered: %q", m)
	}
	if got := metricValue(t, src.met.received); got != 0 {
		t.Fatalf("received = %v, want 0", got)
	}
}

func TestPeerFilterKeepsNonMemberFromTopic(t *testing.T) {
	// All three allow each other; only n1 is a designated backup of n0's
	// folder, while n2 joins the topic as if it were one.
	ms := cluster(t, 3, nil)
	src, member, outsider := ms[0], ms[1], ms[2]
	connect(t, member, src)
	connect(t, outsider, src)
	connect(t, outsider, member)
	name := TopicName(src.ID(), "docs")

	mt, err := member.JoinFolder(src.ID(), "docs", []peer.ID{src.ID()})
	if err != nil {
		t.Fatal(err)
	}
	ot, err := outsider.JoinFolder(src.ID(), "docs", []peer.ID{src.ID(), member.ID()})
	if err != nil {
		t.Fatal(err)
	}
	// The source learns both subscriptions before it joins, so that without
	// the filter both would enter its mesh at once.
	eventually(t, 10*time.Second, "source to learn both subscriptions", func() bool {
		ps := src.ps.ListPeers(name)
		return slices.Contains(ps, member.ID()) && slices.Contains(ps, outsider.ID())
	})
	st, err := src.JoinFolder(src.ID(), "docs", []peer.ID{member.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WaitPeer(ctxTimeout(t, 10*time.Second), member.ID()); err != nil {
		t.Fatal(err)
	}
	if grafted, _ := src.graft.peers(name); len(grafted) != 1 {
		t.Fatalf("source's gossipsub mesh holds %d peers, want only the member", len(grafted))
	}
	for _, rec := range []string{"r1", "r2", "r3"} {
		if err := st.Publish(context.Background(), []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	// Gossipsub validates messages on several workers, so they may arrive
	// out of order.
	var got []string
	for range 3 {
		m, err := mt.Next(ctxTimeout(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r1", "r2", "r3"}) {
		t.Fatalf("member got %q, want r1, r2, r3", got)
	}
	// The member has all three; the outsider, sent the same RPCs if the
	// filter let it, has none.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if m, err := ot.Next(ctx); err == nil {
		t.Fatalf("non-member received %q", m)
	}
}

func TestDropInboundDropsMessages(t *testing.T) {
	var calls atomic.Int32
	ms := cluster(t, 2, func(i int, cfg *Config) {
		if i == 1 {
			cfg.DropInbound = func(string) bool { return calls.Add(1) == 1 } // drop the first message only
		}
	})
	src, bak := ms[0], ms[1]
	connect(t, bak, src)
	st, bts := joinAll(t, src, "docs", bak)
	for _, rec := range []string{"a", "b"} {
		if err := st.Publish(context.Background(), []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	// Messages may arrive in either order: the hook drops whichever comes
	// first, the other is delivered, and nothing else.
	got, err := bts[0].Next(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "a" && string(got) != "b" {
		t.Fatalf("delivered %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := bts[0].Next(ctx); err == nil {
		t.Fatalf("both messages delivered (%q, then %q): the hook dropped nothing", got, m)
	}
	if got := metricValue(t, bak.met.dropped.WithLabelValues("drop_inbound_hook")); got != 1 {
		t.Fatalf("dropped{reason=drop_inbound_hook} = %v, want 1", got)
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("DropInbound consulted %d times, want 2 (once per message)", got)
	}
}

func TestTopicNextReturnsErrClosedWhenMeshCloses(t *testing.T) {
	ms := cluster(t, 2, nil)
	bt, err := ms[1].JoinFolder(ms[0].ID(), "docs", []peer.ID{ms[0].ID()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := bt.Next(context.Background())
		errc <- err
	}()
	if err := ms[1].Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next: err = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after Mesh.Close")
	}
	if err := bt.Close(); err != nil {
		t.Fatalf("Topic.Close after Mesh.Close: %v", err)
	}
}
