package baseline

import (
	"encoding/binary"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pseudoRandom returns n deterministic bytes (splitmix64 from seed), so that
// pinned values in tests depend on nothing outside this file.
func pseudoRandom(seed uint64, n int) []byte {
	b := make([]byte, n+8)
	x := seed
	for i := 0; i < n; i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		binary.LittleEndian.PutUint64(b[i:], z)
	}
	return b[:n]
}
