package mesh

import (
	"bufio"
	"context"
	"io"
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
