package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
)

// Server serves the /vigil/sync and /vigil/ack streams of a node's
// agents: it looks up the folder a request names and serves it only to the
// folder's designated backups.
type Server struct {
	self   peer.ID
	lookup func(ctx context.Context, folder string, from peer.ID) *Agent
	log    *slog.Logger
	m      *Metrics
	names  func(peer.ID) string
	stop   chan struct{}
	once   sync.Once

	limMu   sync.Mutex
	limited map[string]*logLimit // refusals logged, by peer and kind
}

// logLimit keeps refusals from one peer from flooding the log: one line a
// minute per peer and kind, with the number left out since the last.
type logLimit struct {
	last       time.Time
	suppressed int
}

const refusalLogEvery = time.Minute

// warnLimited logs a refusal unless one of the same kind from the same
// peer was logged within refusalLogEvery.
func (srv *Server) warnLimited(from peer.ID, kind, msg string, args ...any) {
	key := from.String() + "\x00" + kind
	srv.limMu.Lock()
	if srv.limited == nil {
		srv.limited = make(map[string]*logLimit)
	}
	l := srv.limited[key]
	if l == nil {
		l = &logLimit{}
		srv.limited[key] = l
	}
	now := time.Now()
	if now.Sub(l.last) < refusalLogEvery {
		l.suppressed++
		srv.limMu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	srv.limMu.Unlock()
	args = append(args, "peer", from.String(), "name", srv.names(from))
	if suppressed > 0 {
		args = append(args, "suppressed_since_last", suppressed)
	}
	srv.log.Warn(msg, args...)
}

// NewServer returns a server for the agents lookup finds for a request
// of peer from (nil: not protected here; lookup may wait, bounded by ctx,
// while the folder's agent is being built or rebuilt for from).
func NewServer(self peer.ID, lookup func(ctx context.Context, folder string, from peer.ID) *Agent, log *slog.Logger, m *Metrics, names func(peer.ID) string) *Server {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Server{self: self, lookup: lookup, log: log.With("subsystem", "serve"), m: m, names: names, stop: make(chan struct{})}
}

// Stop resets the streams being served and refuses new ones.
func (s *Server) Stop() { s.once.Do(func() { close(s.stop) }) }

// idleTimeout bounds how long a target may leave a sync stream without a
// request.
const idleTimeout = 2 * time.Minute

// HandleSync serves a target's requests on one /vigil/sync stream. Each
// request names a folder; only the folder's designated backups are served.
// Requests are small: a frame is read only up to wire.MaxRequestFrame.
func (srv *Server) HandleSync(from peer.ID, s transport.Stream) {
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-srv.stop:
			s.Reset()
			cancel()
		case <-ctx.Done():
		}
	}()
	r := bufio.NewReaderSize(s, 64<<10)
	w := bufio.NewWriterSize(s, 256<<10)
	cs := &chunkServer{}
	defer cs.close()
	q := newSendQueue(w)
	defer q.close()
	for {
		s.SetReadDeadline(time.Now().Add(idleTimeout))
		typ, body, err := mesh.ReadFrame(r, wire.MaxRequestFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				srv.log.Debug("sync stream", "peer", from.String(), "err", err)
			}
			return
		}
		// Chunk answers go out through the queue; anything else is written
		// here once the queue is idle.
		if typ != wire.ChunksReq {
			if err := q.sync(); err != nil {
				return
			}
		}
		if err := srv.serveOne(ctx, from, typ, body, w, cs, q); err != nil {
			if q.sync() != nil {
				return
			}
			var re *wire.RemoteError
			if errors.As(err, &re) {
				mesh.WriteFrame(w, wire.Error, []byte(re.Msg))
				w.Flush()
				srv.warnLimited(from, "refused", "refused request", "reason", re.Msg)
			} else {
				srv.log.Debug("sync stream", "peer", from.String(), "err", err)
			}
			return
		}
		if typ != wire.ChunksReq && r.Buffered() == 0 {
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
	ch   chan []byte // wire.Chunks payloads; nil asks for a flush and an ack
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
			q.err = writeFrame(q.w, wire.Chunks, b)
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

func (srv *Server) serveOne(ctx context.Context, from peer.ID, typ byte, body []byte, w *bufio.Writer, cs *chunkServer, q *sendQueue) error {
	switch typ {
	case wire.SnapshotReq:
		folder, err := wire.DecodeFolder(body)
		if err != nil {
			return err
		}
		a, err := srv.servedAgent(ctx, from, folder)
		if err != nil {
			return err
		}
		seq, ents, total, err := a.snapshot(ctx)
		if err != nil {
			return err
		}
		if err := writeFrame(w, wire.SnapshotHead, wire.EncodeHead(wire.Head{Seq: seq, Entries: uint64(len(ents)), Total: total})); err != nil {
			return err
		}
		for i := 0; i < len(ents); i += wire.EntriesPerFrame {
			if err := writeFrame(w, wire.Entries, wire.EncodeEntries(ents[i:min(i+wire.EntriesPerFrame, len(ents))])); err != nil {
				return err
			}
		}
		return writeFrame(w, wire.End, wire.EncodeSeq(seq))
	case wire.ChunksReq:
		folder, cids, err := wire.DecodeChunksReq(body)
		if err != nil {
			return err
		}
		a, err := srv.servedAgent(ctx, from, folder)
		if err != nil {
			return err
		}
		locs := a.chunkLocsBatch(cids)
		out := q.buffer()
		sent := 0
		for i := range cids {
			var ok bool
			if out, ok = cs.read(a.root, cids[i], locs[i], a.faults, out); ok {
				sent++
			}
		}
		srv.m.chunksSent.Add(float64(sent))
		srv.m.bytesSent.Add(float64(len(out)))
		q.send(out)
		return nil
	case wire.JournalReq:
		folder, fromSeq, err := wire.DecodeFolderSeq(body)
		if err != nil {
			return err
		}
		a, err := srv.servedAgent(ctx, from, folder)
		if err != nil {
			return err
		}
		if fromSeq < a.j.First() {
			return writeFrame(w, wire.Compacted, wire.EncodeSeq(a.j.First()))
		}
		err = a.j.Read(fromSeq, func(rec journal.Record) error {
			return writeFrame(w, wire.RecordFrame, wire.AppendRecord(nil, wire.Record{Seq: rec.Seq, Time: rec.Time, Payload: rec.Payload}))
		})
		if errors.Is(err, journal.ErrCompacted) {
			return writeFrame(w, wire.Compacted, wire.EncodeSeq(a.j.First()))
		}
		if err != nil {
			return err
		}
		return writeFrame(w, wire.End, wire.EncodeSeq(a.j.Last()))
	case wire.PathReq:
		folder, p, err := wire.DecodePathReq(body)
		if err != nil {
			return &wire.RemoteError{Msg: err.Error()}
		}
		a, err := srv.servedAgent(ctx, from, folder)
		if err != nil {
			return err
		}
		seq, ents := a.pathState(p)
		if err := writeFrame(w, wire.PathHead, wire.EncodeSeq(seq)); err != nil {
			return err
		}
		for i := 0; i < len(ents); i += wire.EntriesPerFrame {
			if err := writeFrame(w, wire.Entries, wire.EncodeEntries(ents[i:min(i+wire.EntriesPerFrame, len(ents))])); err != nil {
				return err
			}
		}
		return writeFrame(w, wire.End, wire.EncodeSeq(seq))
	default:
		return &wire.RemoteError{Msg: fmt.Sprintf("unknown request type 0x%02x", typ)}
	}
}

// servedAgent returns the agent of folder if from is one of its designated
// backups.
func (srv *Server) servedAgent(ctx context.Context, from peer.ID, folder string) (*Agent, error) {
	a := srv.lookup(ctx, folder, from)
	if a == nil || !a.isBackup(from) {
		return nil, &wire.RemoteError{Msg: fmt.Sprintf("peer %s is not a designated backup of folder %q on %s", from, folder, srv.self)}
	}
	return a, nil
}

// chunkServer reads chunks from the folder's files. Requests come in file
// order, so it keeps the last file open and reads ahead in large blocks.
// Files are opened through the folder's os.Root, so a symlink put in place
// of a file or directory since the scan cannot lead outside the folder,
// and each chunk is checked against its CID before it is sent: bytes that
// changed since the scan are never sent as the chunk.
type chunkServer struct {
	rootDir string
	root    *os.Root
	path    string
	f       *os.File
	buf     []byte // file bytes [bufOff, bufOff+len(buf))
	bufOff  int64
}

const readAhead = 1 << 20

// read appends one chunk's answer to out: 1, uvarint length and the bytes
// from the first location that can be read, or 0 when none can. faults
// (nil in production) makes reads of chosen paths fail.
func (s *chunkServer) read(root string, c cid.Cid, locs []index.Loc, faults *baseline.Faults, out []byte) ([]byte, bool) {
	if s.root == nil || s.rootDir != root {
		s.close() // the open file and its bytes belong to the other folder
		s.rootDir = ""
		rt, err := os.OpenRoot(root)
		if err != nil {
			return wire.AppendMissing(out), false
		}
		s.root, s.rootDir = rt, root
	}
	for _, l := range locs {
		if faults.Check(l.Path) != nil {
			continue
		}
		p := filepath.FromSlash(l.Path)
		if p != s.path {
			s.closeFile()
			f, err := s.root.Open(p)
			if err != nil {
				continue
			}
			s.path, s.f = p, f
		}
		end := l.Off + int64(l.Size)
		if l.Off < s.bufOff || end > s.bufOff+int64(len(s.buf)) {
			if cap(s.buf) < readAhead {
				s.buf = make([]byte, readAhead)
			}
			n, err := s.f.ReadAt(s.buf[:max(readAhead, int(l.Size))], l.Off)
			if err != nil && !errors.Is(err, io.EOF) {
				s.buf = s.buf[:0]
				continue
			}
			s.buf, s.bufOff = s.buf[:n], l.Off
			if end > s.bufOff+int64(n) {
				continue // the file got shorter
			}
		}
		data := s.buf[l.Off-s.bufOff : end-s.bufOff]
		if baseline.VerifyChunk(c, data) != nil {
			continue // changed since the scan: the next capture sees it
		}
		return wire.AppendChunk(out, data), true
	}
	return wire.AppendMissing(out), false
}

func (s *chunkServer) closeFile() {
	if s.f != nil {
		s.f.Close()
		s.f, s.path = nil, ""
	}
	s.buf, s.bufOff = s.buf[:0], 0
}

func (s *chunkServer) close() {
	s.closeFile()
	if s.root != nil {
		s.root.Close()
		s.root = nil
	}
}

// HandleAck reads acknowledgements from a target.
func (srv *Server) HandleAck(from peer.ID, s transport.Stream) {
	defer s.Close()
	r := bufio.NewReader(s)
	for {
		typ, body, err := mesh.ReadFrame(r, wire.MaxAckFrame)
		if err != nil {
			return
		}
		if typ != wire.AckFrame {
			return
		}
		ak, err := wire.DecodeAck(body)
		if err != nil {
			srv.warnLimited(from, "bad ack", "bad ack", "err", err)
			return
		}
		a := srv.lookup(context.Background(), ak.Folder, from)
		if a == nil || !a.isBackup(from) {
			srv.warnLimited(from, "foreign ack", "ack for a folder the peer does not back up", "folder", ak.Folder)
			continue
		}
		a.onAck(from, ak)
	}
}

func writeFrame(w io.Writer, typ byte, payload []byte) error { return mesh.WriteFrame(w, typ, payload) }
