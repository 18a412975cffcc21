package mesh

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// IdleTimeout is the bound callers should give IdleReader and IdleWriter
// on stream protocols: a peer sends acks every second and pipelines its
// requests, so two minutes without a byte means a stalled or hostile peer,
// while a peer pausing for a long fsync or a busy disk stays well inside it.
const IdleTimeout = 2 * time.Minute

// DeadlineReader is a reader whose reads can be bounded in time, such as a
// network.Stream.
type DeadlineReader interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// DeadlineWriter is a writer whose writes can be bounded in time, such as
// a network.Stream.
type DeadlineWriter interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

var (
	_ DeadlineReader = network.Stream(nil)
	_ DeadlineWriter = network.Stream(nil)
)

// IdleReader returns a reader of s whose reads fail with an error wrapping
// ErrIdleTimeout (and the stream's own timeout error) once s has delivered
// nothing for d. It sets s's read deadline to d from now before every Read,
// so it bounds idleness, not the time a frame takes: a slow peer that keeps
// sending is never cut off, a silent one is, between frames as well as
// inside one. The reader owns s's read deadline. d <= 0 means no bound
// (s itself is returned). Wrap it in a bufio.Reader for ReadFrame:
//
//	r := bufio.NewReaderSize(mesh.IdleReader(s, mesh.IdleTimeout), 256<<10)
func IdleReader(s DeadlineReader, d time.Duration) io.Reader {
	if d <= 0 {
		return s
	}
	return &idleReader{s: s, d: d}
}

type idleReader struct {
	s DeadlineReader
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if err := r.s.SetReadDeadline(time.Now().Add(r.d)); err != nil {
		return 0, err
	}
	n, err := r.s.Read(p)
	return n, idleError(err, r.d)
}

// idleWritePiece is the most IdleWriter hands to one Write of the stream,
// so that its deadline bounds the time without progress rather than the
// time a large payload takes (256 KiB is yamux's initial window).
const idleWritePiece = 256 << 10

// IdleWriter returns a writer to s whose writes fail with an error
// wrapping ErrIdleTimeout (and the stream's own timeout error) once s has
// accepted nothing for d, e.g. because the peer stopped reading and its
// receive window is full. Large writes are passed on in pieces of at most
// 256 KiB, each with a fresh deadline, so a slow peer that keeps reading is
// never cut off. The writer owns s's write deadline. d <= 0 means no bound
// (s itself is returned).
func IdleWriter(s DeadlineWriter, d time.Duration) io.Writer {
	if d <= 0 {
		return s
	}
	return &idleWriter{s: s, d: d}
}

type idleWriter struct {
	s DeadlineWriter
	d time.Duration
}

func (w *idleWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		piece := p[:min(len(p), idleWritePiece)]
		if err := w.s.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
			return written, err
		}
		n, err := w.s.Write(piece)
		written += n
		if err != nil {
			return written, idleError(err, w.d)
		}
		p = p[n:]
	}
	return written, nil
}

// idleError wraps a deadline error into ErrIdleTimeout and returns any
// other error unchanged.
func idleError(err error, d time.Duration) error {
	if err == nil || err == io.EOF {
		return err
	}
	var te interface{ Timeout() bool }
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		return fmt.Errorf("%w: no progress for %v: %w", ErrIdleTimeout, d, err)
	}
	return err
}
