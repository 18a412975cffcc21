package fsutil

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// VecWriter gathers slices and writes them to a file with writev(2), so
// that fetched chunks reach the kernel without being copied into a buffer
// first. A slice must not change until the Flush that writes it.
type VecWriter struct {
	f    *os.File
	vecs [][]byte
	n    int
}

const (
	vecFlushBytes = 1 << 20
	vecMax        = 1024 // IOV_MAX on Linux
)

// Reset starts writing to f.
func (w *VecWriter) Reset(f *os.File) { w.f, w.vecs, w.n = f, w.vecs[:0], 0 }

// Write queues p (written by a later Flush, or now when enough is queued).
func (w *VecWriter) Write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	w.vecs = append(w.vecs, p)
	w.n += len(p)
	if w.n >= vecFlushBytes || len(w.vecs) >= vecMax {
		return w.Flush()
	}
	return nil
}

// Flush writes what is queued.
func (w *VecWriter) Flush() error {
	err := WriteVec(w.f, w.vecs)
	clear(w.vecs) // drop the references
	w.vecs, w.n = w.vecs[:0], 0
	return err
}

// WriteVec writes every slice of vecs to f, in order, at f's offset. After
// a short write it reslices the element of vecs it stopped in.
func WriteVec(f *os.File, vecs [][]byte) error {
	if len(vecs) == 1 {
		_, err := f.Write(vecs[0])
		return err
	}
	fd := int(f.Fd())
	for len(vecs) > 0 {
		n, err := unix.Writev(fd, vecs[:min(len(vecs), vecMax)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "writev", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "writev", Path: f.Name(), Err: io.ErrShortWrite}
		}
		for n > 0 && n >= len(vecs[0]) {
			n -= len(vecs[0])
			vecs = vecs[1:]
		}
		if n > 0 {
			vecs[0] = vecs[0][n:] // a short write: the rest of this slice next
		}
	}
	return nil
}
