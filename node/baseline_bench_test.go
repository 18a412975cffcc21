package node

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBaseline times the baseline of a folder of large random files
// between two in-process nodes on loopback (source and target share the
// machine's cores), from the target's start to the source seeing it live.
func BenchmarkBaseline(b *testing.B) {
	b.Run("4x64MiB", func(b *testing.B) {
		benchBaseline(b, func(rng *rand.Rand, i int) (string, int) { return fmt.Sprintf("f%d", i), 64 << 20 }, 4)
	})
	b.Run("5000x1-64KiB", func(b *testing.B) {
		benchBaseline(b, func(rng *rand.Rand, i int) (string, int) {
			return fmt.Sprintf("d%d/e%d/f%d", i%10, i%97, i), 1<<10 + rng.IntN(63<<10)
		}, 5000)
	})
}

func benchBaseline(b *testing.B, file func(*rand.Rand, int) (string, int), files int) {
	src := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	for i := 0; i < files; i++ {
		name, size := file(rng, i)
		buf := make([]byte, size)
		for j := 0; j+8 <= len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8; k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		writeFile(b, filepath.Join(src, name), buf, 0o644)
		total += int64(size)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := newCluster(b, "laptop", "nas")
		c.protect("laptop", "docs", src, "nas")
		lap, nas := c.nodes["laptop"], c.nodes["nas"]
		lap.start()
		waitFor(b, time.Minute, "source ready", func() bool {
			select {
			case <-lap.n.agents[0].Ready():
				return true
			default:
				return false
			}
		})
		b.StartTimer()
		nas.start()
		lap.waitSynced(5 * time.Minute)
		b.StopTimer()
		lap.stop()
		nas.stop()
	}
}
