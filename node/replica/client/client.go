// Package client speaks the /vigil/sync protocol (node/wire) to one
// source, for one folder, on behalf of a replica: the snapshot of the
// folder, the current state of a path, chunks by CID, and a range of the
// journal. Each call opens a stream of its own and closes it before it
// returns. Failures to talk to the source (it is not reachable, the stream
// broke) are *SourceError, which a replica retries without alarm; an
// answer the source refused with is a *wire.RemoteError.
package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
)

// Opener opens streams (a transport.Network has it).
type Opener interface {
	Open(ctx context.Context, p peer.ID, proto protocol.ID) (transport.Stream, error)
}

// Client is the sync protocol towards one source, for one folder.
type Client struct {
	net    Opener
	source peer.ID
	name   string // the source's name, for messages
	folder string
}

// New returns a client for folder of source (named name in messages).
func New(net Opener, source peer.ID, name, folder string) *Client {
	return &Client{net: net, source: source, name: name, folder: folder}
}

// SourceError is a failure to talk to the source: it is not reachable,
// the stream broke or ended early. Retried, never a problem of the replica.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// stream is one open request/answer exchange.
type stream struct {
	s    transport.Stream
	w    *bufio.Writer
	r    *bufio.Reader
	stop func() bool
}

func (c *Client) open(ctx context.Context, typ byte, payload []byte) (*stream, error) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := c.net.Open(octx, c.source, mesh.ProtoSync)
	cancel()
	if err != nil {
		return nil, &SourceError{fmt.Errorf("open stream to source %s (%s): %w", c.name, c.source, err)}
	}
	st := &stream{s: s, w: bufio.NewWriterSize(s, 64<<10), r: bufio.NewReaderSize(s, 256<<10)}
	st.stop = context.AfterFunc(ctx, func() { s.Reset() })
	if typ != 0 {
		if err := st.send(typ, payload); err != nil {
			st.close()
			return nil, err
		}
	}
	return st, nil
}

func (st *stream) send(typ byte, payload []byte) error {
	if err := mesh.WriteFrame(st.w, typ, payload); err != nil {
		return &SourceError{err}
	}
	if err := st.w.Flush(); err != nil {
		return &SourceError{err}
	}
	return nil
}

// next reads the next answer frame (at most wire.MaxFrame).
func (st *stream) next(what string) (byte, []byte, error) {
	typ, body, err := mesh.ReadFrame(st.r, wire.MaxFrame)
	if err != nil {
		return 0, nil, &SourceError{fmt.Errorf("%s: %w", what, err)}
	}
	if typ == wire.Error {
		return 0, nil, wire.DecodeError(body)
	}
	return typ, body, nil
}

func (st *stream) close() {
	st.stop()
	st.s.Reset()
}

// Snapshot is a source's folder as of a journal seq.
type Snapshot struct {
	Seq   uint64
	Total int64
	Ents  []baseline.Entry // sorted by path
}

// Snapshot asks for the folder's snapshot.
func (c *Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	st, err := c.open(ctx, wire.SnapshotReq, wire.EncodeFolder(c.folder))
	if err != nil {
		return nil, err
	}
	defer st.close()
	what := "snapshot from " + c.name
	snap := &Snapshot{}
	for {
		typ, body, err := st.next(what)
		if err != nil {
			return nil, err
		}
		switch typ {
		case wire.SnapshotHead:
			h, err := wire.DecodeHead(body)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			snap.Seq, snap.Total = h.Seq, h.Total
			snap.Ents = make([]baseline.Entry, 0, min(h.Entries, 1<<16))
		case wire.Entries:
			es, err := wire.DecodeEntries(body)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			snap.Ents = append(snap.Ents, es...)
		case wire.End:
			sort.Slice(snap.Ents, func(i, j int) bool { return snap.Ents[i].Path < snap.Ents[j].Path })
			return snap, nil
		default:
			return nil, fmt.Errorf("%s: unexpected frame 0x%02x", what, typ)
		}
	}
}

// Path asks for the current entries of p and its subtree, and the journal
// seq they are current at.
func (c *Client) Path(ctx context.Context, p string) (uint64, []baseline.Entry, error) {
	st, err := c.open(ctx, wire.PathReq, wire.EncodePathReq(c.folder, p))
	if err != nil {
		return 0, nil, err
	}
	defer st.close()
	what := "path request to " + c.name
	var seq uint64
	var out []baseline.Entry
	for {
		typ, body, err := st.next(what)
		if err != nil {
			return 0, nil, err
		}
		switch typ {
		case wire.PathHead:
			if seq, err = wire.DecodeSeq(body); err != nil {
				return 0, nil, fmt.Errorf("%s: %w", what, err)
			}
		case wire.Entries:
			es, err := wire.DecodeEntries(body)
			if err != nil {
				return 0, nil, fmt.Errorf("%s: %w", what, err)
			}
			for _, e := range es {
				if e.Path != p && !strings.HasPrefix(e.Path, p+"/") {
					return 0, nil, fmt.Errorf("%s: the source answered path %q for %q", what, e.Path, p)
				}
			}
			out = append(out, es...)
		case wire.End:
			sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
			return seq, out, nil
		default:
			return 0, nil, fmt.Errorf("%s: unexpected frame 0x%02x", what, typ)
		}
	}
}

// ErrCompacted is returned by Journal when the source no longer has the
// records asked for: the replica must take a new baseline.
var ErrCompacted = errors.New("client: the source's journal no longer has those records")

// Journal asks for the folder's journal from seq from and calls fn for
// each record in order (the payload is the caller's). It returns the head
// seq the source says it had, once every record up to it was given to fn.
// An error of fn stops the transfer and is returned as is.
func (c *Client) Journal(ctx context.Context, from uint64, fn func(wire.Record) error) (uint64, error) {
	st, err := c.open(ctx, wire.JournalReq, wire.EncodeFolderSeq(c.folder, from))
	if err != nil {
		return 0, err
	}
	defer st.close()
	what := "journal from " + c.name
	for {
		typ, body, err := st.next(what)
		if err != nil {
			return 0, err
		}
		switch typ {
		case wire.RecordFrame:
			rec, err := wire.DecodeRecord(body)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", what, err)
			}
			if err := fn(rec); err != nil {
				return 0, err
			}
		case wire.End:
			head, err := wire.DecodeSeq(body)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", what, err)
			}
			return head, nil
		case wire.Compacted:
			return 0, ErrCompacted
		default:
			return 0, fmt.Errorf("%s: unexpected frame 0x%02x", what, typ)
		}
	}
}

// Chunk is one chunk delivered by Chunks, in request order. Data is nil
// when the source no longer has it or what it sent did not match the CID.
type Chunk struct {
	baseline.Chunk
	Data []byte
}
