package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/mesh"
)

// handleSync serves a target's requests on one /vigil/sync stream. Each
// request names a folder; only the folder's designated backups are served.
func (n *Node) handleSync(from peer.ID, s network.Stream) {
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.done:
			s.Reset()
			cancel()
		case <-ctx.Done():
		}
	}()
	r := bufio.NewReaderSize(s, 64<<10)
	w := bufio.NewWriterSize(s, 256<<10)
	srv := &chunkServer{}
	defer srv.close()
	q := newSendQueue(w)
	defer q.close()
	for {
		typ, body, err := readFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				n.log.Debug("sync stream", "peer", from.String(), "err", err)
			}
			return
		}
		// Chunk answers go out through the queue; anything else is written
		// here once the queue is idle.
		if typ != msgChunksReq {
			if err := q.sync(); err != nil {
				return
			}
		}
		if err := n.serveOne(ctx, from, typ, body, w, srv, q); err != nil {
			if q.sync() != nil {
				return
			}
			var re *remoteError
			if errors.As(err, &re) {
				writeFrame(w, msgError, []byte(re.msg))
				w.Flush()
				n.log.Warn("refused request", "peer", from.String(), "name", n.peerName(from), "reason", re.msg)
			} else {
				n.log.Debug("sync stream", "peer", from.String(), "err", err)
			}
			return
		}
		if typ != msgChunksReq && r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// sendQueue sends chunk answers from a goroutine of its own: a stream
// write returns only once the muxer has encrypted and sent the data, so
// reading and framing the next batch overlaps with sending this one.
type sendQueue struct {
	w    *bufio.Writer
	ch   chan []byte // msgChunks payloads; nil asks for a flush and an ack
	acks chan struct{}
	free chan []byte
	done chan struct{}
	err  error // owned by loop; read after an ack
}

func newSendQueue(w *bufio.Writer) *sendQueue {
	q := &sendQueue{w: w, ch: make(chan []byte, 2), acks: make(chan struct{}), free: make(chan []byte, 3), done: make(chan struct{})}
	for range cap(q.free) {
		q.free <- nil
	}
	go q.loop()
	return q
}

func (q *sendQueue) loop() {
	defer close(q.done)
	for b := range q.ch {
		if b == nil {
			if q.err == nil {
				q.err = q.w.Flush()
			}
			q.acks <- struct{}{}
			continue
		}
		if q.err == nil {
			q.err = writeFrame(q.w, msgChunks, b)
		}
		if q.err == nil && len(q.ch) == 0 {
			q.err = q.w.Flush()
		}
		q.free <- b[:0]
	}
	if q.err == nil {
		q.w.Flush()
	}
}

// buffer returns a payload buffer to fill and send.
func (q *sendQueue) buffer() []byte { return <-q.free }

func (q *sendQueue) send(b []byte) { q.ch <- b }

// sync waits until everything queued is written and flushed; the caller
// may then write to the stream itself until its next send.
func (q *sendQueue) sync() error {
	q.ch <- nil
	<-q.acks
	return q.err
}

func (q *sendQueue) close() {
	close(q.ch)
	<-q.done
}

func (n *Node) serveOne(ctx context.Context, from peer.ID, typ byte, body []byte, w *bufio.Writer, srv *chunkServer, q *sendQueue) error {
	switch typ {
	case msgSnapshotReq:
		a, err := n.servedAgent(from, string(body))
		if err != nil {
			return err
		}
		seq, ents, total, err := a.snapshot(ctx)
		if err != nil {
			return err
		}
		head := u64(seq)
		head = append(head, u64(uint64(len(ents)))...)
		head = append(head, u64(uint64(total))...)
		if err := writeFrame(w, msgSnapshotHead, head); err != nil {
			return err
		}
		for i := 0; i < len(ents); i += entriesPerFrame {
			if err := writeFrame(w, msgEntries, encodeEntries(ents[i:min(i+entriesPerFrame, len(ents))])); err != nil {
				return err
			}
		}
		return writeFrame(w, msgEnd, u64(seq))
	case msgChunksReq:
		folder, cids, err := decodeCIDs(body)
		if err != nil {
			return err
		}
		a, err := n.servedAgent(from, folder)
		if err != nil {
			return err
		}
		locs := a.chunkLocsBatch(cids)
		out := q.buffer()
		sent := 0
		for i := range cids {
			var ok bool
			if out, ok = srv.read(a.root, locs[i], out); ok {
				sent++
			}
		}
		n.m.chunksSent.Add(float64(sent))
		n.m.bytesSent.Add(float64(len(out)))
		q.send(out)
		return nil
	case msgJournalReq:
		folder, fromSeq, err := decodeFolderSeq(body)
		if err != nil {
			return err
		}
		a, err := n.servedAgent(from, folder)
		if err != nil {
			return err
		}
		if fromSeq < a.j.First() {
			return writeFrame(w, msgCompacted, u64(a.j.First()))
		}
		err = a.j.Read(fromSeq, func(rec journal.Record) error {
			return writeFrame(w, msgRecord, appendRecord(nil, wireRecord{Seq: rec.Seq, Time: rec.Time, Payload: rec.Payload}))
		})
		if errors.Is(err, journal.ErrCompacted) {
			return writeFrame(w, msgCompacted, u64(a.j.First()))
		}
		if err != nil {
			return err
		}
		return writeFrame(w, msgEnd, u64(a.j.Last()))
	case msgPathReq:
		d := decoder{b: body}
		folder, p := d.string(), d.string()
		if d.err != nil {
			return d.fail()
		}
		a, err := n.servedAgent(from, folder)
		if err != nil {
			return err
		}
		if err := baseline.ValidPath(p); err != nil {
			return &remoteError{msg: err.Error()}
		}
		seq, ents := a.pathState(p)
		if err := writeFrame(w, msgPathHead, u64(seq)); err != nil {
			return err
		}
		for i := 0; i < len(ents); i += entriesPerFrame {
			if err := writeFrame(w, msgEntries, encodeEntries(ents[i:min(i+entriesPerFrame, len(ents))])); err != nil {
				return err
			}
		}
		return writeFrame(w, msgEnd, u64(seq))
	default:
		return &remoteError{msg: fmt.Sprintf("unknown request type 0x%02x", typ)}
	}
}

// servedAgent returns the agent of folder if from is one of its designated
// backups.
func (n *Node) servedAgent(from peer.ID, folder string) (*agent, error) {
	a := n.agentFor(folder)
	if a == nil || !a.isBackup(from) {
		return nil, &remoteError{msg: fmt.Sprintf("peer %s is not a designated backup of folder %q on %s", from, folder, n.id)}
	}
	return a, nil
}

// chunkServer reads chunks from the folder's files. Requests come in file
// order, so it keeps the last file open and reads ahead in large blocks.
type chunkServer struct {
	path   string
	f      *os.File
	buf    []byte // file bytes [bufOff, bufOff+len(buf))
	bufOff int64
}

const readAhead = 1 << 20

// read appends one chunk's answer to out: 1, uvarint length and the bytes
// from the first location that can be read, or 0 when none can.
func (s *chunkServer) read(root string, locs []chunkLoc, out []byte) ([]byte, bool) {
	for _, l := range locs {
		p := filepath.Join(root, filepath.FromSlash(l.path))
		if p != s.path {
			s.close()
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			s.path, s.f = p, f
		}
		end := l.off + int64(l.size)
		if l.off < s.bufOff || end > s.bufOff+int64(len(s.buf)) {
			if cap(s.buf) < readAhead {
				s.buf = make([]byte, readAhead)
			}
			n, err := s.f.ReadAt(s.buf[:max(readAhead, int(l.size))], l.off)
			if err != nil && !errors.Is(err, io.EOF) {
				s.buf = s.buf[:0]
				continue
			}
			s.buf, s.bufOff = s.buf[:n], l.off
			if end > s.bufOff+int64(n) {
				continue // the file got shorter
			}
		}
		out = append(out, 1)
		out = binary.AppendUvarint(out, uint64(l.size))
		return append(out, s.buf[l.off-s.bufOff:end-s.bufOff]...), true
	}
	return append(out, 0), false
}

func (s *chunkServer) close() {
	if s.f != nil {
		s.f.Close()
		s.f, s.path = nil, ""
	}
	s.buf, s.bufOff = s.buf[:0], 0
}

// handleAck reads acknowledgements from a target.
func (n *Node) handleAck(from peer.ID, s network.Stream) {
	defer s.Close()
	r := bufio.NewReader(s)
	for {
		typ, body, err := mesh.ReadFrame(r, 4096)
		if err != nil {
			return
		}
		if typ != msgAck {
			return
		}
		ak, err := decodeAck(body)
		if err != nil {
			n.log.Warn("bad ack", "peer", from.String(), "err", err)
			return
		}
		a := n.agentFor(ak.Folder)
		if a == nil || !a.isBackup(from) {
			n.log.Warn("ack for a folder the peer does not back up", "peer", from.String(), "folder", ak.Folder)
			continue
		}
		a.onAck(from, ak)
	}
}
