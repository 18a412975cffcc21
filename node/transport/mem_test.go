package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pair joins two nodes that list each other.
func pair(t *testing.T) (*Hub, *MemNet, *MemNet) {
	t.Helper()
	h := NewHub()
	a, b := newID(t), newID(t)
	na := h.Join(a, map[peer.ID]string{b: "b"})
	nb := h.Join(b, map[peer.ID]string{a: "a"})
	t.Cleanup(func() { na.Close(); nb.Close() })
	return h, na, nb
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStreamCarriesBytesBothWaysAndCloseWriteGivesEOF(t *testing.T) {
	_, na, nb := pair(t)
	nb.Handle("/echo", func(from peer.ID, s Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	s, err := na.Open(ctxT(t), nb.ID(), "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := make([]byte, 3*pipeCap+17) // more than the pipe buffers: the echo must read while we write
	rand.Read(msg)
	go func() {
		s.Write(msg)
		s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
}

func TestPartitionResetsStreamsRefusesOpenAndHealCallsOnConnect(t *testing.T) {
	h, na, nb := pair(t)
	var connects atomic.Int32
	connected := make(chan struct{}, 4)
	na.OnConnect(func(p peer.ID) {
		if p == nb.ID() {
			connects.Add(1)
			connected <- struct{}{}
		}
	})
	block := make(chan struct{})
	nb.Handle("/hold", func(from peer.ID, s Stream) {
		<-block
		s.Close()
	})
	defer close(block)
	s, err := na.Open(ctxT(t), nb.ID(), "/hold")
	if err != nil {
		t.Fatal(err)
	}
	h.Partition(na.ID(), nb.ID())
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Fatalf("read on a partitioned stream: %v, want ErrReset", err)
	}
	if na.Connected(nb.ID()) {
		t.Fatal("connected across a partition")
	}
	if _, err := na.Open(ctxT(t), nb.ID(), "/hold"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("open across a partition: %v", err)
	}
	h.Heal(na.ID(), nb.ID())
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("OnConnect not called after Heal")
	}
	if err := na.WaitConnected(ctxT(t), nb.ID()); err != nil {
		t.Fatal(err)
	}
}

func TestReadDeadlineExpires(t *testing.T) {
	_, na, nb := pair(t)
	nb.Handle("/silent", func(from peer.ID, s Stream) { io.Copy(io.Discard, s); s.Close() })
	s, err := na.Open(ctxT(t), nb.ID(), "/silent")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
}

func TestTopicDeliversOnlyToMembersAndDropHookDrops(t *testing.T) {
	h := NewHub()
	src, m1, other := newID(t), newID(t), newID(t)
	ns := h.Join(src, map[peer.ID]string{m1: "m1", other: "other"})
	n1 := h.Join(m1, map[peer.ID]string{src: "src"})
	no := h.Join(other, map[peer.ID]string{src: "src"})
	defer ns.Close()
	defer n1.Close()
	defer no.Close()
	pub, err := ns.JoinFolder(src, "docs", []peer.ID{m1})
	if err != nil {
		t.Fatal(err)
	}
	sub1, _ := n1.JoinFolder(src, "docs", []peer.ID{src})
	subO, _ := no.JoinFolder(src, "docs", []peer.ID{src})
	if err := pub.Publish(ctxT(t), []byte("one")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub1.Next(ctxT(t)); err != nil || string(m) != "one" {
		t.Fatalf("member got %q, %v", m, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if m, err := subO.Next(ctx); err == nil {
		t.Fatalf("non-member got %q", m)
	}
	h.SetDrop(func(from, to peer.ID, topic string) bool { return true })
	pub.Publish(ctxT(t), []byte("dropped"))
	h.SetDrop(nil)
	pub.Publish(ctxT(t), []byte("two"))
	if m, err := sub1.Next(ctxT(t)); err != nil || string(m) != "two" {
		t.Fatalf("after a dropped message the member got %q, %v", m, err)
	}
	if err := sub1.Publish(ctxT(t), []byte("x")); err == nil {
		t.Fatal("a member published on the source's topic")
	}
}

func TestCloseWaitsForHandlersAndResetsTheirStreams(t *testing.T) {
	_, na, nb := pair(t)
	ended := make(chan struct{})
	nb.Handle("/wait", func(from peer.ID, s Stream) {
		defer close(ended)
		io.Copy(io.Discard, s) // returns when the stream is reset
	})
	if _, err := na.Open(ctxT(t), nb.ID(), "/wait"); err != nil {
		t.Fatal(err)
	}
	nb.Close()
	select {
	case <-ended:
	default:
		t.Fatal("Close returned before the handler")
	}
	if na.Connected(nb.ID()) {
		t.Fatal("still connected to a closed node")
	}
}
