package fsutil

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// VecWriter writes what it is given in order, across flushes by size and
// by slice count, with empty slices and single-slice writes.
func TestVecWriterWritesInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want bytes.Buffer
	w := &VecWriter{}
	w.Reset(f)
	for i := range 5000 {
		n := rng.IntN(700)
		if i%17 == 0 {
			n = 0
		}
		if i%1000 == 999 {
			n = 3 << 20 // larger than a flush
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		want.Write(p)
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := WriteVec(f, [][]byte{[]byte("tail")}); err != nil {
		t.Fatal(err)
	}
	want.WriteString("tail")
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file has %d bytes, want %d (or content differs)", len(got), want.Len())
	}
}
