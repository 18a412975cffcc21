package transport

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// ErrReset is what a reset in-memory stream returns.
var ErrReset = errors.New("transport: stream reset")

// errClosedRead is returned to a writer whose reader has closed.
var errClosedRead = errors.New("transport: stream closed for reading")

// pipeCap is how many bytes one direction of an in-memory stream buffers
// before a writer waits (as a TCP window would make it).
const pipeCap = 1 << 20

// pipe is one direction of an in-memory stream: a bounded byte buffer with
// half-close, reset and deadlines.
type pipe struct {
	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte
	wclosed  bool  // writer closed: reader gets EOF once drained
	rclosed  bool  // reader closed: writer fails
	err      error // reset
	rdl, wdl time.Time
	rdT, wdT *time.Timer
}

func newPipe() *pipe {
	p := &pipe{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func expired(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.err != nil:
			return 0, p.err
		case len(p.buf) > 0:
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			if len(p.buf) == 0 {
				p.buf = nil
			}
			p.cond.Broadcast()
			return n, nil
		case p.wclosed:
			return 0, io.EOF
		case p.rclosed:
			return 0, errClosedRead
		case expired(p.rdl):
			return 0, os.ErrDeadlineExceeded
		}
		p.cond.Wait()
	}
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		switch {
		case p.err != nil:
			return n, p.err
		case p.wclosed:
			return n, io.ErrClosedPipe
		case p.rclosed:
			return n, errClosedRead
		case expired(p.wdl):
			return n, os.ErrDeadlineExceeded
		case len(p.buf) < pipeCap:
			k := min(len(b), pipeCap-len(p.buf))
			p.buf = append(p.buf, b[:k]...)
			b, n = b[k:], n+k
			p.cond.Broadcast()
			continue
		}
		p.cond.Wait()
	}
	return n, nil
}

func (p *pipe) closeWrite() {
	p.mu.Lock()
	p.wclosed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pipe) closeRead() {
	p.mu.Lock()
	p.rclosed = true
	p.buf = nil
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pipe) reset() {
	p.mu.Lock()
	if p.err == nil {
		p.err = ErrReset
	}
	p.buf = nil
	p.cond.Broadcast()
	p.mu.Unlock()
}

// setDeadline sets the read (or write) deadline; a timer wakes waiters
// when it passes.
func (p *pipe) setDeadline(t time.Time, read bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dl, tm := &p.wdl, &p.wdT
	if read {
		dl, tm = &p.rdl, &p.rdT
	}
	*dl = t
	if *tm != nil {
		(*tm).Stop()
		*tm = nil
	}
	if !t.IsZero() {
		*tm = time.AfterFunc(time.Until(t), func() {
			p.mu.Lock()
			p.cond.Broadcast()
			p.mu.Unlock()
		})
	}
	p.cond.Broadcast()
}

func (p *pipe) stopTimers() {
	p.mu.Lock()
	for _, t := range []*time.Timer{p.rdT, p.wdT} {
		if t != nil {
			t.Stop()
		}
	}
	p.mu.Unlock()
}

// memStream is one end of an in-memory stream.
type memStream struct {
	in, out *pipe
	onEnd   func()
	endOnce sync.Once
}

// newStreamPair returns the two ends of a new in-memory stream.
func newStreamPair() (*memStream, *memStream) {
	ab, ba := newPipe(), newPipe()
	return &memStream{in: ba, out: ab}, &memStream{in: ab, out: ba}
}

var _ Stream = (*memStream)(nil)

func (s *memStream) Read(b []byte) (int, error)  { return s.in.read(b) }
func (s *memStream) Write(b []byte) (int, error) { return s.out.write(b) }

func (s *memStream) CloseWrite() error {
	s.out.closeWrite()
	return nil
}

func (s *memStream) Close() error {
	s.out.closeWrite()
	s.in.closeRead()
	s.end()
	return nil
}

func (s *memStream) Reset() error {
	s.in.reset()
	s.out.reset()
	s.end()
	return nil
}

func (s *memStream) end() {
	s.endOnce.Do(func() {
		s.in.stopTimers()
		s.out.stopTimers()
		if s.onEnd != nil {
			s.onEnd()
		}
	})
}

func (s *memStream) SetDeadline(t time.Time) error {
	s.in.setDeadline(t, true)
	s.out.setDeadline(t, false)
	return nil
}

func (s *memStream) SetReadDeadline(t time.Time) error {
	s.in.setDeadline(t, true)
	return nil
}

func (s *memStream) SetWriteDeadline(t time.Time) error {
	s.out.setDeadline(t, false)
	return nil
}
