package mesh

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestFrameRoundTripPreservesTypeAndPayload(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, coalesceLimit+1000) // takes the two-write path
	frames := []struct {
		typ     byte
		payload []byte
	}{
		{1, []byte("hello")},
		{0, nil},
		{255, []byte{}},
		{7, big},
		{2, bytes.Repeat([]byte{1}, 127)}, // length 128: two-byte varint
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f.typ, f.payload); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for i, f := range frames {
		typ, payload, err := ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if typ != f.typ || !bytes.Equal(payload, f.payload) {
			t.Fatalf("frame %d: got type %d, %d bytes; want type %d, %d bytes", i, typ, len(payload), f.typ, len(f.payload))
		}
		if payload == nil {
			t.Fatalf("frame %d: nil payload, want empty slice", i)
		}
	}
	if _, _, err := ReadFrame(r, 1<<20); err != io.EOF {
		t.Fatalf("after the last frame: err = %v, want io.EOF", err)
	}
}

func TestFrameEncodingIsUvarintLengthTypePayload(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, 0x42, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	want := []byte{4, 0x42, 'a', 'b', 'c'}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("encoding = % x, want % x", buf.Bytes(), want)
	}
}

func TestReadFrameTruncatedIsUnexpectedEOF(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, 3, bytes.Repeat([]byte("x"), 300)); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	// Every proper prefix but the empty one ends inside the frame: in the
	// varint, after it, or inside the payload.
	for n := 1; n < len(full); n++ {
		_, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(full[:n])), 1<<20)
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want io.ErrUnexpectedEOF", n, len(full), err)
		}
	}
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(nil)), 1<<20); err != io.EOF {
		t.Fatalf("empty input: err = %v, want io.EOF", err)
	}
}

func TestReadFrameRejectsOversizedFrameBeforeReadingIt(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, 1, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	// length is 101: a limit of 100 refuses it, 101 accepts it.
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(buf.Bytes())), 100); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("limit 100: err = %v, want ErrFrameTooLarge", err)
	}
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(buf.Bytes())), 101); err != nil {
		t.Fatalf("limit 101: %v", err)
	}
	// A huge announced length with no data behind it must fail on the
	// limit, not on allocation or EOF.
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(huge)), 1<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge length: err = %v, want ErrFrameTooLarge", err)
	}
}

func TestReadFrameRejectsMalformedLength(t *testing.T) {
	cases := map[string][]byte{
		"zero length":     {0},
		"varint overflow": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"varint too long": {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
	}
	for name, in := range cases {
		if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(in)), 1<<20); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: err = %v, want ErrBadFrame", name, err)
		}
	}
}

func TestReadFramePassesReadErrorsThrough(t *testing.T) {
	boom := errors.New("stream reset")
	r := bufio.NewReader(io.MultiReader(bytes.NewReader([]byte{0x85}), errReader{boom}))
	if _, _, err := ReadFrame(r, 1<<20); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
}

func TestReadFrameLargeFramesRoundTripInPieces(t *testing.T) {
	// Frame lengths around the one-buffer limit and across several pieces.
	for _, n := range []int{firstPiece - 1, firstPiece, firstPiece + 1, 8*firstPiece + 3, 3<<20 + 7} {
		payload := make([]byte, n-1)
		for i := range payload {
			payload[i] = byte(i * 31)
		}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, 9, payload); err != nil {
			t.Fatal(err)
		}
		if err := WriteFrame(&buf, 8, []byte("next")); err != nil {
			t.Fatal(err)
		}
		// Short reads: the pieces must not depend on how the data arrives.
		r := bufio.NewReaderSize(iotest.HalfReader(&buf), 16)
		typ, got, err := ReadFrame(r, 4<<20)
		if err != nil || typ != 9 || !bytes.Equal(got, payload) {
			t.Fatalf("frame of %d bytes: type %d, %d bytes, err %v", n, typ, len(got), err)
		}
		if typ, got, err := ReadFrame(r, 4<<20); err != nil || typ != 8 || string(got) != "next" {
			t.Fatalf("frame after one of %d bytes: (%d, %q, %v)", n, typ, got, err)
		}
	}
}

func TestReadFrameTruncatedAtPieceBoundariesIsUnexpectedEOF(t *testing.T) {
	const n = 3<<20 + 7 // frame length: pieces of 24577 and 196616 bytes
	var buf bytes.Buffer
	if err := WriteFrame(&buf, 1, make([]byte, n-1)); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	hdr := len(full) - n
	var cuts []int
	for p := pieceSize(n); ; p *= pieceGrowth {
		cuts = append(cuts, hdr+p-1, hdr+p, hdr+p+1)
		if p*lastGrowth >= n {
			break
		}
	}
	cuts = append(cuts, hdr, hdr+1, len(full)-1)
	for _, c := range cuts {
		if _, _, err := ReadFrame(bytes.NewReader(full[:c]), 4<<20); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut after %d of %d bytes: err = %v, want io.ErrUnexpectedEOF", c, len(full), err)
		}
	}
	if _, p, err := ReadFrame(bytes.NewReader(full), 4<<20); err != nil || len(p) != n-1 {
		t.Fatalf("whole frame: %d bytes, %v", len(p), err)
	}
}

func TestReadFrameMemoryFollowsBytesReceivedNotAnnounced(t *testing.T) {
	// announce returns an 80 MiB frame cut after body bytes.
	announce := func(body int) []byte {
		b := binary.AppendUvarint(nil, 80<<20+1)
		return append(append(b, 0x83), make([]byte, body-1)...)
	}
	// allocated returns the bytes allocated by reading in, with the
	// pieces' pools emptied first (a garbage collection moves a pool's
	// buffers aside, the next one drops them).
	allocated := func(in []byte) uint64 {
		t.Helper()
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := ReadFrame(bytes.NewReader(in), 100<<20)
		runtime.ReadMemStats(&after)
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}

	// A peer announces an 80 MiB frame and sends 10 bytes of it.
	got := allocated(announce(10))
	t.Logf("announced 80 MiB, received 10 bytes: %d bytes allocated", got)
	if got > firstPiece {
		t.Fatalf("allocated %d bytes, want at most %d", got, firstPiece)
	}
	// Memory grows with what arrives: 1 MiB of the frame costs about
	// lastGrowth times that at most, not 80 MiB.
	got = allocated(announce(1 << 20))
	t.Logf("announced 80 MiB, received 1 MiB: %d bytes allocated", got)
	if bound := uint64(lastGrowth<<20 + 2*firstPiece); got > bound {
		t.Fatalf("allocated %d bytes, want at most %d", got, bound)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func FuzzReadFrame(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{0},
		{1, 7},
		{4, 0x42, 'a', 'b', 'c'},
		{4, 0x42, 'a'},
		{0x80},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0x80, 0x01, 9},
	} {
		f.Add(seed, 64)
	}
	// Frames read in several pieces, whole and cut short.
	for _, n := range []int{firstPiece + 1, 9*firstPiece + 5} {
		var buf bytes.Buffer
		WriteFrame(&buf, 5, bytes.Repeat([]byte{0xa5}, n-1))
		WriteFrame(&buf, 6, []byte("x"))
		f.Add(buf.Bytes(), 1<<20)
		f.Add(buf.Bytes()[:buf.Len()/2], 1<<20)
		f.Add(buf.Bytes(), n-1)
	}
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max > 1<<20 {
			max = 1 << 20
		}
		r := bytes.NewReader(data) // a FrameReader without read-ahead: r.Len() tells what was consumed
		for {
			before := r.Len()
			pos := len(data) - before
			typ, payload, err := ReadFrame(r, max)
			if err != nil {
				switch {
				case err == io.EOF:
					if before != 0 {
						t.Fatalf("io.EOF with %d bytes left", before)
					}
				case err == io.ErrUnexpectedEOF:
					if r.Len() != 0 {
						t.Fatalf("io.ErrUnexpectedEOF with %d bytes left", r.Len())
					}
				case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrBadFrame):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(payload)+1 > max {
				t.Fatalf("frame of %d bytes passed limit %d", len(payload)+1, max)
			}
			used := before - r.Len()
			body := data[pos+used-len(payload)-1 : pos+used]
			if body[0] != typ || !bytes.Equal(body[1:], payload) {
				t.Fatalf("decoded frame differs from the input bytes")
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, typ, payload); err != nil {
				t.Fatal(err)
			}
			if buf.Len() > used {
				t.Fatalf("re-encoded frame is %d bytes, read %d", buf.Len(), used)
			}
		}
	})
}
