package baseline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"

	"github.com/zeebo/blake3"
)

var benchSettings = []struct {
	name          string
	min, avg, max int
}{
	{"2-8-32KiB", 2 << 10, 8 << 10, 32 << 10},
	{"4-16-64KiB", 4 << 10, 16 << 10, 64 << 10},
	{"16-64-256KiB", 16 << 10, 64 << 10, 256 << 10},
}

// BenchmarkChunkHash: ChunkReader throughput (cut + BLAKE3 + CIDs, all
// cores) over 64 MiB of random data, for three chunk size settings.
func BenchmarkChunkHash(b *testing.B) {
	data := pseudoRandom(1, 64<<20)
	for _, s := range benchSettings {
		c := newCDC(s.min, s.avg, s.max)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var n int
			for b.Loop() {
				chunks, err := chunkStream(context.Background(), bytes.NewReader(data), &c, runtime.GOMAXPROCS(0), nil)
				if err != nil {
					b.Fatal(err)
				}
				n = len(chunks)
			}
			b.ReportMetric(float64(len(data))/float64(n), "B/chunk")
		})
	}
}

// BenchmarkCut: the cutter alone, one core.
func BenchmarkCut(b *testing.B) {
	data := pseudoRandom(1, 64<<20)
	for _, s := range benchSettings {
		c := newCDC(s.min, s.avg, s.max)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var ends []int
			for b.Loop() {
				ends, _ = c.cutAll(data, 0, true, ends[:0])
			}
		})
	}
}

// BenchmarkHashChunk: one core hashing one chunk at a time, BLAKE3
// (zeebo/blake3, what ChunkCID uses) against SHA2-256.
func BenchmarkHashChunk(b *testing.B) {
	for _, size := range []int{8 << 10, 16 << 10, 64 << 10} {
		data := pseudoRandom(2, size)
		b.Run(fmt.Sprintf("blake3-%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				blake3.Sum256(data)
			}
		})
		b.Run(fmt.Sprintf("sha256-%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				sha256.Sum256(data)
			}
		})
	}
}

// BenchmarkChangeCost reports, per chunk size setting, the bytes of new
// chunks (what a peer holding the old version must receive) after a 4 KiB
// overwrite in the middle of a 64 MiB random file and after a 100-byte
// insert at its start. Run with -benchtime=1x.
func BenchmarkChangeCost(b *testing.B) {
	data := pseudoRandom(9, 64<<20)
	overwritten := bytes.Clone(data)
	copy(overwritten[len(data)/2:], pseudoRandom(11, 4096))
	inserted := append(pseudoRandom(10, 100), data...)
	for _, s := range benchSettings {
		c := newCDC(s.min, s.avg, s.max)
		chunk := func(d []byte) []Chunk {
			chunks, err := chunkStream(context.Background(), bytes.NewReader(d), &c, runtime.GOMAXPROCS(0), nil)
			if err != nil {
				b.Fatal(err)
			}
			return chunks
		}
		b.Run(s.name, func(b *testing.B) {
			var ow, ins int
			for b.Loop() {
				base := chunk(data)
				ow, _ = changedBytes(base, chunk(overwritten))
				ins, _ = changedBytes(base, chunk(inserted))
			}
			b.ReportMetric(float64(ow), "overwrite4KiB-B")
			b.ReportMetric(float64(ins), "insert100B-B")
		})
	}
}
