package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func validSegment(payloads ...string) []byte {
	b := segmentHeader()
	for i, p := range payloads {
		b = appendFrame(b, uint64(i+1), int64(1_700_000_000_000_000_000+i), []byte(p))
	}
	return b
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, 1, 42, []byte("hello")), uint32(1<<20))
	f.Add(appendFrame(nil, 7, -1, bytes.Repeat([]byte{0xff}, 64)), uint32(64))
	f.Add(appendFrame(nil, 7, -1, bytes.Repeat([]byte{0xff}, 64)), uint32(63))
	f.Add(appendFrame(nil, 3, 0, []byte("torn"))[:20], uint32(1<<20))
	f.Add(make([]byte, 32), uint32(1<<20))
	f.Add([]byte{0xff, 0xff, 0xff, 0x3f, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint32(1<<30))
	f.Fuzz(func(t *testing.T, data []byte, declaredMax uint32) {
		maxPayload := int64(declaredMax % (4 << 20)) // keep the fuzzer's memory use small
		d := newFrameDecoder(bytes.NewReader(data))
		h, payload, err := d.next(maxPayload, -1, true)
		if cap(payload) > int(maxPayload) {
			t.Fatalf("payload of cap %d above the declared max %d", cap(payload), maxPayload)
		}
		// Checksumming only, and knowing how many bytes follow, must agree.
		_, _, errScan := newFrameDecoder(bytes.NewReader(data)).next(maxPayload, max(0, int64(len(data))-frameHeaderSize), false)
		if (err == nil) != (errScan == nil) {
			t.Fatalf("decode err %v, scan err %v", err, errScan)
		}
		if err != nil {
			if err != io.EOF && !isFrameError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		n := frameSize(len(payload))
		if n > int64(len(data)) || len(payload) == 0 || int64(len(payload)) > maxPayload {
			t.Fatalf("decoded a %d-byte payload (frame %d) from %d bytes", len(payload), n, len(data))
		}
		re := appendFrame(nil, h.seq, h.nanos, payload)
		if !bytes.Equal(re[:frameHeaderSize+len(payload)], data[:frameHeaderSize+len(payload)]) {
			t.Fatal("re-encoding the decoded frame gives other bytes")
		}
	})
}

func FuzzOpenSegment(f *testing.F) {
	good := validSegment("one", "two two", "three three three")
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(append(bytes.Clone(good), make([]byte, 64)...))
	flipped := bytes.Clone(good)
	flipped[len(good)-9] ^= 1
	f.Add(flipped)
	f.Add(segmentHeader())
	f.Add([]byte("VGLJ"))
	f.Add([]byte{})
	f.Add(append([]byte("VGLJ\x02\x00\x00\x00"), good[8:]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		seg := segName(dir, 1)
		if err := os.WriteFile(seg, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := Open(dir, WithSync(SyncNone), WithLogger(discardLogger()))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open failed with a non-corruption error: %v", err)
			}
			return
		}
		defer j.Close()
		// Either intact or repaired: the segment is a prefix of the data,
		// and what was cut is in .broken.
		kept, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(kept, data[:len(kept)]) {
			t.Fatal("the kept segment is not a prefix of the original bytes")
		}
		if len(kept) < len(data) {
			broken, err := os.ReadFile(seg + brokenExt)
			if err != nil || !bytes.Equal(broken, data[len(kept):]) {
				t.Fatalf(".broken does not hold the cut bytes: %v", err)
			}
		}
		last := j.Last()
		next := uint64(1)
		if err := j.Read(1, func(r Record) error {
			if r.Seq != next {
				t.Fatalf("read seq %d, want %d", r.Seq, next)
			}
			next++
			return nil
		}); err != nil {
			t.Fatalf("Read after Open: %v", err)
		}
		if next != last+1 {
			t.Fatalf("read up to %d, Last is %d", next-1, last)
		}
		if info, err := j.Append([]byte("after")); err != nil || info.Seq != last+1 {
			t.Fatalf("Append = %+v, %v; want seq %d", info, err, last+1)
		}
	})
}

func TestDecodeFrameAllocatesNothingForOversizedLength(t *testing.T) {
	hdr := make([]byte, frameHeaderSize)
	binary.LittleEndian.PutUint32(hdr, MaxRecordSizeLimit) // declares 1 GiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := newFrameDecoder(bytes.NewReader(hdr)).next(1<<20, -1, true)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errOversized) {
		t.Fatalf("err = %v, want errOversized", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("decoding allocated %d bytes for a rejected length", grew)
	}
	// Scanning with the file's remaining size rejects a length that
	// cannot fit, whatever the limit.
	_, _, err = newFrameDecoder(bytes.NewReader(hdr)).next(MaxRecordSizeLimit, 0, false)
	if !errors.Is(err, errShortFrame) {
		t.Fatalf("err = %v, want errShortFrame", err)
	}
}

// TestFuzzSeedCorporaMatchTheFormat checks that testdata/fuzz holds the
// seeds built from the current frame format (so the fuzzers start from
// valid and torn segments); VIGIL_WRITE_FUZZ_SEEDS=1 rewrites them.
func TestFuzzSeedCorporaMatchTheFormat(t *testing.T) {
	rewrite := os.Getenv("VIGIL_WRITE_FUZZ_SEEDS") != ""
	good := validSegment("one", "two two", "three three three")
	write := func(fuzz, name string, values ...string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		body := "go test fuzz v1\n"
		for _, v := range values {
			body += v + "\n"
		}
		p := filepath.Join(dir, name)
		if !rewrite {
			got, err := os.ReadFile(p)
			if err != nil || string(got) != body {
				t.Errorf("%s is missing or out of date (run with VIGIL_WRITE_FUZZ_SEEDS=1): %v", p, err)
			}
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs := func(b []byte) string { return "[]byte(" + quote(b) + ")" }
	write("FuzzDecodeFrame", "valid", bs(good[8:8+frameSize(3)]), "uint32(1048576)")
	write("FuzzDecodeFrame", "torn", bs(good[8:8+frameSize(3)-3]), "uint32(1048576)")
	write("FuzzDecodeFrame", "zeros", bs(make([]byte, 48)), "uint32(1048576)")
	write("FuzzDecodeFrame", "above-max", bs(good[8:8+frameSize(3)]), "uint32(2)")
	write("FuzzOpenSegment", "valid", bs(good))
	write("FuzzOpenSegment", "torn", bs(good[:len(good)-5]))
	write("FuzzOpenSegment", "trailing-zeros", bs(append(bytes.Clone(good), make([]byte, 40)...)))
	write("FuzzOpenSegment", "header-only", bs(segmentHeader()))
	write("FuzzOpenSegment", "bad-seq", bs(append(segmentHeader(), appendFrame(nil, 9, 0, []byte("x"))...)))
}

func quote(b []byte) string {
	var s bytes.Buffer
	s.WriteByte('"')
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			s.WriteByte(c)
		} else {
			s.WriteString(`\x`)
			s.WriteByte("0123456789abcdef"[c>>4])
			s.WriteByte("0123456789abcdef"[c&15])
		}
	}
	s.WriteByte('"')
	return s.String()
}
