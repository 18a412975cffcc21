package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/restore"
)

// rewriter rewrites a file in place, piece by piece, in a new random
// order each round: pwrite of fixed-size pieces, never a truncate or a
// delete. Every piece holds its round number, so any content of the file
// tells which round each piece came from, and whether that mix is a state
// the file had: the pieces of the newest round present must be exactly
// the first pieces of that round's order, all others of the round before.
type rewriter struct {
	pieces, size int
	orders       [][]int // the piece order of each round (round 0: the initial content)
}

func newRewriter(pieces, size, rounds int, seed uint64) *rewriter {
	rng := rand.New(rand.NewPCG(seed, seed))
	rw := &rewriter{pieces: pieces, size: size}
	for range rounds + 1 {
		rw.orders = append(rw.orders, rng.Perm(pieces))
	}
	return rw
}

func (rw *rewriter) piece(round int) []byte {
	b := make([]byte, rw.size)
	for i := 0; i+4 <= len(b); i += 4 {
		binary.LittleEndian.PutUint32(b[i:], uint32(round))
	}
	return b
}

// write runs every round after the first, one piece every pause on
// average (it catches up when the machine is slow).
func (rw *rewriter) write(f *os.File, pause time.Duration) error {
	start := time.Now()
	k := 0
	for round := 1; round < len(rw.orders); round++ {
		b := rw.piece(round)
		for _, i := range rw.orders[round] {
			if _, err := f.WriteAt(b, int64(i*rw.size)); err != nil {
				return err
			}
			k++
			if d := time.Until(start.Add(time.Duration(k) * pause)); d > 0 {
				time.Sleep(d) // the writer's pace, not a synchronisation
			}
		}
	}
	return nil
}

// check reports whether data is a state the file had.
func (rw *rewriter) check(data []byte) error {
	if len(data) != rw.pieces*rw.size {
		return fmt.Errorf("%d bytes, want %d", len(data), rw.pieces*rw.size)
	}
	rounds := make([]int, rw.pieces)
	top := 0
	for i := range rounds {
		p := data[i*rw.size : (i+1)*rw.size]
		r := int(binary.LittleEndian.Uint32(p))
		for j := 0; j+4 <= len(p); j += 4 {
			if int(binary.LittleEndian.Uint32(p[j:])) != r {
				return fmt.Errorf("piece %d mixes rounds inside itself", i)
			}
		}
		if r >= len(rw.orders) {
			return fmt.Errorf("piece %d from round %d, which was never written", i, r)
		}
		rounds[i] = r
		top = max(top, r)
	}
	if top == 0 {
		return nil
	}
	n := 0 // pieces of round top: they must be the first n of its order
	for _, r := range rounds {
		if r == top {
			n++
		} else if r != top-1 {
			return fmt.Errorf("pieces from rounds %d and %d together", r, top)
		}
	}
	for k, i := range rw.orders[top] {
		if (k < n) != (rounds[i] == top) {
			return fmt.Errorf("round %d: %d of its pieces, not the first %d written", top, n, n)
		}
	}
	return nil
}

// A file rewritten in place while it is captured: every version in the
// backup's history is a state the file had, and no deletion is recorded.
func TestFileRewrittenInPlaceKeepsOnlyStatesItHadAndNoDeletion(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	// 4 MiB in 64 KiB pieces, 40 rewrites over ~3 s
	rw := newRewriter(64, 64<<10, 40, 11)
	p := filepath.Join(src, "data.bin")
	init := make([]byte, 0, 64*(64<<10))
	for range 64 {
		init = append(init, rw.piece(0)...)
	}
	writeFile(t, p, init, 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if err := rw.write(f, 3*time.Second/(40*64)); err != nil {
		t.Fatal(err)
	}
	t.Logf("40 rewrites took %v", time.Since(start).Round(time.Millisecond))
	lap.waitSynced(60 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))

	vs, err := nas.n.History(lap.name, "docs", "data.bin")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 {
		t.Fatalf("%d versions of a file rewritten 40 times over 3 s, want several", len(vs))
	}
	for _, v := range vs {
		if v.Entry == nil {
			t.Fatalf("history records a deletion at seq %d of a file that was never deleted", v.Seq)
		}
		to := t.TempDir()
		if _, err := nas.n.Restore(context.Background(), restore.RestoreRequest{Source: lap.name, Folder: "docs", To: to, Seq: v.Seq,
			Paths: []string{"data.bin"}, Force: true}, nil); err != nil {
			t.Fatalf("restore seq %d: %v", v.Seq, err)
		}
		data, err := os.ReadFile(filepath.Join(to, "data.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := rw.check(data); err != nil {
			t.Fatalf("version at seq %d is not a state the file had: %v", v.Seq, err)
		}
	}
	retries, torn := lap.n.agents[0].CaptureStats()
	t.Logf("%d versions, each a state the file had; reads that raced the writer and were read again: %d, captures that left the file out (torn): %d",
		len(vs), retries, torn)
}
