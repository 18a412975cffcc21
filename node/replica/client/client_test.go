package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
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

// fakeSource answers sync requests from fixed data; tests change its
// answers to play a faulty or hostile source.
type fakeSource struct {
	records   []wire.Record // seq 1..n
	first     uint64        // first retained seq (below: compacted)
	chunks    map[string][]byte
	wrongData string // CID whose answer carries other bytes
	pathExtra string // an entry outside the asked path, in path answers
}

func (f *fakeSource) serve(_ peer.ID, s transport.Stream) {
	defer s.Close()
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	for {
		typ, body, err := mesh.ReadFrame(r, wire.MaxRequestFrame)
		if err != nil {
			return
		}
		switch typ {
		case wire.SnapshotReq:
			ents := []*baseline.Entry{{Path: "b", Kind: baseline.KindDir, Mode: 0o755}, {Path: "a", Kind: baseline.KindDir, Mode: 0o755}}
			mesh.WriteFrame(w, wire.SnapshotHead, wire.EncodeHead(wire.Head{Seq: 7, Entries: 2}))
			mesh.WriteFrame(w, wire.Entries, wire.EncodeEntries(ents))
			mesh.WriteFrame(w, wire.End, wire.EncodeSeq(7))
		case wire.PathReq:
			_, p, _ := wire.DecodePathReq(body)
			ents := []*baseline.Entry{{Path: p, Kind: baseline.KindDir, Mode: 0o755}}
			if f.pathExtra != "" {
				ents = append(ents, &baseline.Entry{Path: f.pathExtra, Kind: baseline.KindDir, Mode: 0o755})
			}
			mesh.WriteFrame(w, wire.PathHead, wire.EncodeSeq(3))
			mesh.WriteFrame(w, wire.Entries, wire.EncodeEntries(ents))
			mesh.WriteFrame(w, wire.End, wire.EncodeSeq(3))
		case wire.JournalReq:
			_, from, _ := wire.DecodeFolderSeq(body)
			if from < f.first {
				mesh.WriteFrame(w, wire.Compacted, wire.EncodeSeq(f.first))
				break
			}
			for _, rec := range f.records {
				if rec.Seq >= from {
					mesh.WriteFrame(w, wire.RecordFrame, wire.AppendRecord(nil, rec))
				}
			}
			mesh.WriteFrame(w, wire.End, wire.EncodeSeq(uint64(len(f.records))))
		case wire.ChunksReq:
			_, cids, _ := wire.DecodeChunksReq(body)
			var out []byte
			for _, c := range cids {
				d, ok := f.chunks[c.String()]
				switch {
				case !ok:
					out = wire.AppendMissing(out)
				case c.String() == f.wrongData:
					out = wire.AppendChunk(out, []byte("not these bytes"))
				default:
					out = wire.AppendChunk(out, d)
				}
			}
			mesh.WriteFrame(w, wire.Chunks, out)
		default:
			mesh.WriteFrame(w, wire.Error, []byte("refused"))
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

func setup(t *testing.T, f *fakeSource) *Client {
	t.Helper()
	h := transport.NewHub()
	src, dst := newID(t), newID(t)
	ns := h.Join(src, map[peer.ID]string{dst: "nas"})
	nd := h.Join(dst, map[peer.ID]string{src: "laptop"})
	t.Cleanup(func() { nd.Close(); ns.Close() })
	ns.Handle(mesh.ProtoSync, f.serve)
	return New(nd, src, "laptop", "docs")
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSnapshotIsSortedAndPathAnswersMustStayInThePath(t *testing.T) {
	f := &fakeSource{}
	c := setup(t, f)
	snap, err := c.Snapshot(ctxT(t))
	if err != nil || snap.Seq != 7 || len(snap.Ents) != 2 || snap.Ents[0].Path != "a" {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	if seq, ents, err := c.Path(ctxT(t), "a"); err != nil || seq != 3 || len(ents) != 1 {
		t.Fatalf("path: %d %v %v", seq, ents, err)
	}
	f.pathExtra = "elsewhere"
	if _, _, err := c.Path(ctxT(t), "a"); err == nil {
		t.Fatal("a path answer holding another path was accepted")
	}
}

func TestJournalGivesRecordsInOrderThenHeadOrCompacted(t *testing.T) {
	f := &fakeSource{first: 1}
	for s := uint64(1); s <= 5; s++ {
		f.records = append(f.records, wire.Record{Seq: s, Time: time.Unix(int64(s), 0), Payload: []byte{byte(s)}})
	}
	c := setup(t, f)
	var got []uint64
	head, err := c.Journal(ctxT(t), 3, func(r wire.Record) error { got = append(got, r.Seq); return nil })
	if err != nil || head != 5 || len(got) != 3 || got[0] != 3 {
		t.Fatalf("journal from 3: head %d, seqs %v, %v", head, got, err)
	}
	stop := errors.New("stop")
	if _, err := c.Journal(ctxT(t), 1, func(wire.Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("an error of fn: %v", err)
	}
	f.first = 4
	if _, err := c.Journal(ctxT(t), 2, func(wire.Record) error { return nil }); !errors.Is(err, ErrCompacted) {
		t.Fatalf("journal from a compacted seq: %v", err)
	}
}

func TestChunksArriveInOrderVerifiedMissingOnesNil(t *testing.T) {
	f := &fakeSource{chunks: map[string][]byte{}}
	var want []baseline.Chunk
	for i := range 600 { // more than one request, more than the window
		d := make([]byte, 8<<10)
		d[0], d[1] = byte(i), byte(i>>8)
		c := baseline.ChunkCID(d)
		want = append(want, baseline.Chunk{CID: c, Size: uint32(len(d))})
		if i != 10 {
			f.chunks[c.String()] = d
		}
	}
	f.wrongData = want[20].CID.String()
	c := setup(t, f)
	i := 0
	err := c.Chunks(ctxT(t), want, func(ch Chunk) error {
		if !ch.CID.Equals(want[i].CID) {
			t.Fatalf("chunk %d out of order", i)
		}
		if (ch.Data == nil) != (i == 10 || i == 20) {
			t.Fatalf("chunk %d: data %v", i, ch.Data != nil)
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("%d of %d chunks, %v", i, len(want), err)
	}
}

func TestUnreachableSourceIsASourceError(t *testing.T) {
	h := transport.NewHub()
	src, dst := newID(t), newID(t)
	nd := h.Join(dst, map[peer.ID]string{src: "laptop"})
	defer nd.Close()
	c := New(nd, src, "laptop", "docs")
	_, err := c.Snapshot(ctxT(t))
	var se *SourceError
	if !errors.As(err, &se) {
		t.Fatalf("snapshot from a source that is not there: %v, want *SourceError", err)
	}
}
