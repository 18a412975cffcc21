package mesh

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
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
