package main

// End-to-end tests of what a peer of the allow-list may ask of a node
// where it has no role: a real `vigil` source, and a peer made here with
// package mesh that the source lists in peers: but not in any backup_to.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/wire"
)

// rogueMesh is a mesh peer under the test's control, allow-listed by src.
type rogueMesh struct {
	node *e2eNode // its name, ID and port, for src's peers: (it runs no vigil)
	m    *mesh.Mesh
}

// newRogue makes a key and a port for a peer that src will list.
func newRogue(t *testing.T, m *e2eMesh, name string) *rogueMesh {
	t.Helper()
	keyPath := filepath.Join(m.root, name+".key")
	id, err := mesh.GenerateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	return &rogueMesh{node: &e2eNode{m: m, t: t, name: name, id: id.String(), port: freeTCPPort(t),
		home: filepath.Join(m.root, name)}}
}

// connect starts the rogue's mesh, dialing src, and waits for the
// connection. It runs until the test ends.
func (r *rogueMesh) connect(t *testing.T, src *e2eNode) peer.ID {
	t.Helper()
	key, _, err := mesh.LoadKey(filepath.Join(r.node.m.root, r.node.name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	srcID, err := peer.Decode(src.id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rm, err := mesh.New(ctx, mesh.Config{
		Key:    key,
		Listen: []multiaddr.Multiaddr{multiaddr.StringCast(r.node.listenAddr())},
		Peers:  []mesh.Peer{{Name: src.name, ID: srcID, Addrs: []multiaddr.Multiaddr{multiaddr.StringCast(src.listenAddr())}}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rm.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		rm.Close()
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := rm.WaitConnected(wctx, srcID); err != nil {
		t.Fatalf("rogue peer cannot reach %s: %v", src.name, err)
	}
	r.m = rm
	return srcID
}

// ask sends one request frame on a new sync stream and returns the frames
// of the answer, up to its end or error frame (or the end of the stream).
func (r *rogueMesh) ask(t *testing.T, to peer.ID, typ byte, payload []byte) (types []byte, bodies [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := r.m.Open(ctx, to, mesh.ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if err := mesh.WriteFrame(s, typ, payload); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(s)
	for {
		ft, body, err := mesh.ReadFrame(br, wire.MaxFrame)
		if errors.Is(err, io.EOF) {
			return types, bodies
		}
		if err != nil {
			t.Fatalf("reading the answer to request 0x%02x: %v", typ, err)
		}
		types, bodies = append(types, ft), append(bodies, body)
		if ft == wire.End || ft == wire.Error {
			return types, bodies
		}
	}
}

// The peer is the designated backup of folder "other" of the source, and
// has no role for folder "docs": it gets the snapshot of "other" (the
// control: its requests are well formed) and is refused everything of
// "docs"; its acks for "docs" are ignored.
func TestE2EPeerWithNoRoleForAFolderGetsNoSnapshotChunkJournalOrPathOfItAndItsAcksAreIgnored(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	secret := []byte(strings.Repeat("the contents only nas may have\n", 100))
	mustWrite(t, filepath.Join(dir, "secret.txt"), secret, 0o644)
	other := m.dir("laptop-other")
	mustWrite(t, filepath.Join(other, "shared.txt"), []byte("for the rogue peer\n"), 0o644)
	src, dst := twoNodes(t, m, dir)
	rogue := newRogue(t, m, "rogue")
	src.allow(rogue.node)
	src.protect("other", other, rogue.node)
	dst.start()
	src.start()
	dst.waitSynced() // docs on nas (nobody applies other: the source never sees it synced)
	srcID := rogue.connect(t, src)

	types, bodies := rogue.ask(t, srcID, wire.SnapshotReq, wire.EncodeFolder("other"))
	if len(types) < 2 || types[0] != wire.SnapshotHead || types[len(types)-1] != wire.End {
		t.Fatalf("snapshot of other, of which the peer is a designated backup: frames %x; want head ... end", types)
	}
	if !strings.Contains(string(bytes.Join(bodies, nil)), "shared.txt") {
		t.Errorf("the snapshot of other does not list shared.txt")
	}

	chunks, _, err := baseline.ChunkFile(context.Background(), filepath.Join(dir, "secret.txt"), nil)
	if err != nil || len(chunks) == 0 {
		t.Fatalf("chunk secret.txt: %v", err)
	}
	cids := []cid.Cid{chunks[0].CID}
	for name, req := range map[string]struct {
		typ     byte
		payload []byte
	}{
		"snapshot of docs":        {wire.SnapshotReq, wire.EncodeFolder("docs")},
		"chunk of secret.txt":     {wire.ChunksReq, wire.EncodeChunksReq("docs", cids)},
		"journal of docs":         {wire.JournalReq, wire.EncodeFolderSeq("docs", 1)},
		"path secret.txt":         {wire.PathReq, wire.EncodePathReq("docs", "secret.txt")},
		"snapshot of a no folder": {wire.SnapshotReq, wire.EncodeFolder("nope")},
	} {
		t.Run(name, func(t *testing.T) {
			types, bodies := rogue.ask(t, srcID, req.typ, req.payload)
			if len(types) != 1 || types[0] != wire.Error {
				t.Fatalf("answer frames %x; want one error frame", types)
			}
			if msg := wire.DecodeError(bodies[0]).Error(); !strings.Contains(msg, "not a designated backup") {
				t.Errorf("error %q; want it to say the peer is not a designated backup", msg)
			}
			for _, b := range bodies {
				if strings.Contains(string(b), "only nas may have") {
					t.Errorf("the answer holds the folder's contents")
				}
			}
		})
	}

	// An ack of the rogue for docs is ignored: no pair, no compaction.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := rogue.m.Open(ctx, srcID, mesh.ProtoAck)
	if err != nil {
		t.Fatal(err)
	}
	if err := mesh.WriteFrame(s, wire.AckFrame, wire.EncodeAck(wire.Ack{Folder: "docs", Applied: 1 << 40, AppliedAt: time.Now()})); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 20*time.Second, "the source to log the rogue's ack as refused", func() bool {
		data, _ := os.ReadFile(src.logPath)
		return strings.Contains(string(data), "ack for a folder the peer does not back up")
	})
	s.Reset()
	lag := src.lag()
	rogueID, _ := peer.Decode(rogue.node.id)
	for _, p := range lag.Pairs {
		if p.Folder == "docs" && p.Target != dst.id {
			t.Errorf("source reports docs backed up to %s (%s) after the rogue's ack", p.TargetName, p.Target)
		}
		if p.Target == rogueID.String() && p.AppliedSeq != 0 {
			t.Errorf("the rogue's ack for docs moved its pair of other: %+v", p)
		}
	}
	if p, ok := pairOf(lag, src, "docs", dst); !ok || p.State != "live" {
		t.Errorf("docs to nas after the rogue's ack: %+v, %v; want live", p, ok)
	}
	// The backup still gets every change.
	mustWrite(t, filepath.Join(dir, "after.txt"), []byte("after\n"), 0o644)
	pollUntil(t, 30*time.Second, "after.txt on nas", func() bool {
		b, err := os.ReadFile(filepath.Join(dst.replicaDir(src, "docs"), "after.txt"))
		return err == nil && string(b) == "after\n"
	})
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
}
