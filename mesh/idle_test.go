package mesh

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeStream records the deadlines set before each Read and Write.
type fakeStream struct {
	in       *bytes.Reader
	readErr  error // returned once in is drained (io.EOF if nil)
	writeErr error // returned by Write when set
	out      bytes.Buffer

	deadline  time.Time   // the last deadline set
	readDL    []time.Time // deadline in force at each Read
	writeDL   []time.Time // deadline in force at each Write
	writeLens []int
}

func (f *fakeStream) SetReadDeadline(t time.Time) error  { f.deadline = t; return nil }
func (f *fakeStream) SetWriteDeadline(t time.Time) error { f.deadline = t; return nil }

func (f *fakeStream) Read(p []byte) (int, error) {
	f.readDL = append(f.readDL, f.deadline)
	f.deadline = time.Time{}
	if f.in.Len() == 0 && f.readErr != nil {
		return 0, f.readErr
	}
	return f.in.Read(p[:min(len(p), 10)]) // short reads, like a stream's
}

func (f *fakeStream) Write(p []byte) (int, error) {
	f.writeDL = append(f.writeDL, f.deadline)
	f.deadline = time.Time{}
	f.writeLens = append(f.writeLens, len(p))
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return f.out.Write(p)
}

// timeoutErr is what a stream returns when its deadline passes.
type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o deadline reached" }
func (timeoutErr) Timeout() bool { return true }

// checkDeadlines fails t unless every deadline in dls lies d after a
// moment between start and end.
func checkDeadlines(t *testing.T, what string, dls []time.Time, start, end time.Time, d time.Duration) {
	t.Helper()
	if len(dls) == 0 {
		t.Fatalf("%s: no calls", what)
	}
	for i, dl := range dls {
		if dl.Before(start.Add(d)) || dl.After(end.Add(d)) {
			t.Fatalf("%s %d: deadline %v, want %v after the call", what, i, dl, d)
		}
	}
}

func TestIdleReaderSetsDeadlineBeforeEveryRead(t *testing.T) {
	var frames bytes.Buffer
	for i := range 3 {
		WriteFrame(&frames, byte(i), bytes.Repeat([]byte{byte(i)}, 100))
	}
	f := &fakeStream{in: bytes.NewReader(frames.Bytes()), readErr: timeoutErr{}}
	const d = time.Minute
	start := time.Now()
	r := bufio.NewReaderSize(IdleReader(f, d), 16)
	for i := range 3 {
		if typ, _, err := ReadFrame(r, 1<<10); err != nil || typ != byte(i) {
			t.Fatalf("frame %d: type %d, %v", i, typ, err)
		}
	}
	_, _, err := ReadFrame(r, 1<<10)
	checkDeadlines(t, "read", f.readDL, start, time.Now(), d)
	if len(f.readDL) < 3*100/10 {
		t.Fatalf("%d reads, want at least one per 10 bytes", len(f.readDL))
	}
	if !errors.Is(err, ErrIdleTimeout) || !errors.As(err, new(timeoutErr)) {
		t.Fatalf("after the deadline: err = %v, want ErrIdleTimeout wrapping the stream's error", err)
	}

	// The end of the stream and other errors are passed through as they are.
	f = &fakeStream{in: bytes.NewReader(nil)}
	if _, _, err := ReadFrame(bufio.NewReader(IdleReader(f, d)), 1<<10); err != io.EOF {
		t.Fatalf("end of stream: err = %v, want io.EOF", err)
	}
	boom := errors.New("stream reset")
	f = &fakeStream{in: bytes.NewReader([]byte{5, 1}), readErr: boom}
	if _, _, err := ReadFrame(bufio.NewReader(IdleReader(f, d)), 1<<10); err != boom {
		t.Fatalf("reset: err = %v, want the stream's error unchanged", err)
	}
	if r := IdleReader(f, 0); r != io.Reader(f) {
		t.Fatalf("no bound: got a wrapper %T, want the stream itself", r)
	}
}

func TestIdleWriterBoundsEachPieceOfALargeWrite(t *testing.T) {
	f := &fakeStream{}
	const d = time.Minute
	payload := bytes.Repeat([]byte{7}, 4*idleWritePiece+5)
	start := time.Now()
	w := IdleWriter(f, d)
	if n, err := w.Write(payload); err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	checkDeadlines(t, "write", f.writeDL, start, time.Now(), d)
	if len(f.writeLens) != 5 || f.writeLens[0] != idleWritePiece || f.writeLens[4] != 5 {
		t.Fatalf("pieces %v, want 4 of %d and one of 5", f.writeLens, idleWritePiece)
	}
	if !bytes.Equal(f.out.Bytes(), payload) {
		t.Fatal("written bytes differ")
	}
	f.writeErr = timeoutErr{}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("after the deadline: err = %v, want ErrIdleTimeout", err)
	}
}

func TestIdleReaderFailsWhenPeerGoesSilent(t *testing.T) {
	ms := cluster(t, 2, nil)
	srv, cli := ms[0], ms[1]
	errs := make(chan error, 2)
	srv.Handle(ProtoSync, func(_ peer.ID, s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(IdleReader(s, 100*time.Millisecond))
		for {
			_, _, err := ReadFrame(r, 1<<10)
			errs <- err
			if err != nil {
				return
			}
		}
	})
	s, err := cli.Open(ctxTimeout(t, 10*time.Second), srv.ID(), ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := WriteFrame(s, 1, []byte("one request, then silence")); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, ErrIdleTimeout} {
		select {
		case err := <-errs:
			if !errors.Is(err, want) {
				t.Fatalf("read %d: err = %v, want %v", i, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d: handler still blocked", i)
		}
	}
}

func TestIdleWriterFailsWhenPeerStopsReading(t *testing.T) {
	ms := cluster(t, 2, nil)
	srv, cli := ms[0], ms[1]
	release := make(chan struct{})
	defer close(release) // before the cleanup closes the meshes
	srv.Handle(ProtoSync, func(_ peer.ID, s network.Stream) {
		<-release // reads nothing
		s.Reset()
	})
	s, err := cli.Open(ctxTimeout(t, 10*time.Second), srv.ID(), ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	// More than the peer's receive window (16 MiB).
	n, err := IdleWriter(s, 200*time.Millisecond).Write(make([]byte, 64<<20))
	if !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("err = %v after %d bytes, want ErrIdleTimeout", err, n)
	}
	if n == 0 || n >= 64<<20 {
		t.Fatalf("wrote %d bytes before the timeout, want some but not all", n)
	}
}
