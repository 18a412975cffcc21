package mesh

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const benchProto protocol.ID = "/vigil/test/bulk/1.0.0"

// BenchmarkStream256MiB streams 256 MiB over one stream between two meshes
// on loopback (TCP + TLS + yamux) and reports the throughput.
func BenchmarkStream256MiB(b *testing.B) {
	const total = 256 << 20
	const chunk = 256 << 10
	ms := cluster(b, 2, nil)
	src, dst := ms[0], ms[1]
	dst.Handle(benchProto, func(_ peer.ID, s network.Stream) {
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.Reset()
			return
		}
		// Report the byte count back as one frame so the sender knows
		// everything arrived.
		w := bufio.NewWriter(s)
		WriteFrame(w, 1, []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		w.Flush()
		s.Close()
	})
	connect(b, src, dst)
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(total)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s, err := src.Open(ctx, dst.ID(), benchProto)
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		if sec := s.Conn().ConnState().Security; sec != "/tls/1.0.0" {
			b.Fatalf("security %s, want TLS", sec)
		}
		for sent := 0; sent < total; sent += chunk {
			if _, err := s.Write(buf); err != nil {
				cancel()
				b.Fatal(err)
			}
		}
		if err := s.CloseWrite(); err != nil {
			cancel()
			b.Fatal(err)
		}
		_, p, err := ReadFrame(bufio.NewReader(s), 16)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if n := int(p[0])<<24 | int(p[1])<<16 | int(p[2])<<8 | int(p[3]); n != total {
			b.Fatalf("receiver got %d bytes, want %d", n, total)
		}
		s.Close()
	}
	elapsed := time.Since(start)
	mbps := float64(total) * float64(b.N) / elapsed.Seconds() / 1e6
	b.ReportMetric(mbps, "MB/s")
	b.Logf("256 MiB x %d over TCP+TLS on loopback: %.0f MB/s", b.N, mbps)
}

// BenchmarkReadFrame decodes frames of the sizes the sync protocol carries
// (a chunk, a batch of chunks, a large batch) from memory through the
// 256 KiB bufio.Reader the node reads streams with: the decoder's own cost,
// allocation and copying included.
func BenchmarkReadFrame(b *testing.B) {
	for _, size := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20, 8 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			var enc bytes.Buffer
			if err := WriteFrame(&enc, 0x83, make([]byte, size)); err != nil {
				b.Fatal(err)
			}
			src := bytes.NewReader(enc.Bytes())
			br := bufio.NewReaderSize(src, 256<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(enc.Bytes())
				br.Reset(src)
				if _, p, err := ReadFrame(br, 80<<20); err != nil || len(p) != size {
					b.Fatalf("ReadFrame: %d bytes, %v", len(p), err)
				}
			}
		})
	}
}

// BenchmarkStreamFrames256MiB moves 256 MiB as 8 MiB frames of 16 KiB
// chunks over one stream between two meshes on loopback and decodes them
// with ReadFrame, as a backup fetching chunks does.
func BenchmarkStreamFrames256MiB(b *testing.B) {
	const total = 256 << 20
	const frame = 8 << 20
	ms := cluster(b, 2, nil)
	src, dst := ms[0], ms[1]
	payload := make([]byte, frame)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	src.Handle(benchProto, func(_ peer.ID, s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		for {
			if _, _, err := ReadFrame(r, 16); err != nil {
				return
			}
			w := bufio.NewWriterSize(s, 64<<10)
			for sent := 0; sent < total; sent += frame {
				if err := WriteFrame(w, 0x83, payload); err != nil {
					s.Reset()
					return
				}
			}
			if err := w.Flush(); err != nil {
				s.Reset()
				return
			}
		}
	})
	connect(b, dst, src)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := dst.Open(ctx, src.ID(), benchProto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	br := bufio.NewReaderSize(s, 256<<10)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if err := WriteFrame(s, 1, nil); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < total; {
			_, p, err := ReadFrame(br, 80<<20)
			if err != nil {
				b.Fatal(err)
			}
			got += len(p)
		}
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
