package restore

import (
	"bytes"
	"testing"
	"time"
)

func TestPointsListEachChangeWithFilesDeletionsAndChangedBytes(t *testing.T) {
	f := newFixture(t)
	f.next = 0 // a baseline at seq 0 is a point too
	big := randBytes(30, 500_000)
	seq1, t1 := f.change(map[string][]byte{"d": dirMark, "d/big.bin": big, "small.txt": []byte("12345")})
	edited := bytes.Clone(big)
	copy(edited[250_000:], randBytes(31, 1000)) // one chunk or two change
	seq2, _ := f.change(map[string][]byte{"d/big.bin": edited})
	seq3, t3 := f.change(map[string][]byte{"small.txt": nil, "new.txt": []byte("new")})

	rep, err := Points(f.d, t1.Add(-1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 3 || len(rep.Points) != 3 || rep.NewestSeq != seq3 || !rep.NewestTime.Equal(t3) || !rep.Retained {
		t.Fatalf("points report %+v, want 3 points, the newest seq %d at %s", rep, seq3, t3)
	}
	p1, p2, p3 := rep.Points[0], rep.Points[1], rep.Points[2]
	if p1.Seq != seq1 || !p1.Time.Equal(t1) || p1.Files != 3 || p1.Deleted != 0 || p1.Bytes != int64(len(big))+5 {
		t.Fatalf("first point %+v, want seq %d: 3 paths, %d bytes", p1, seq1, len(big)+5)
	}
	if p2.Seq != seq2 || p2.Files != 1 || p2.Bytes == 0 || p2.Bytes > 100_000 {
		t.Fatalf("second point %+v, want seq %d: 1 path, only the changed chunks' bytes", p2, seq2)
	}
	if p3.Seq != seq3 || p3.Files != 2 || p3.Deleted != 1 || p3.Bytes != 3 {
		t.Fatalf("third point %+v, want seq %d: 2 paths, 1 deleted, 3 bytes", p3, seq3)
	}
}

func TestPointsSinceAndLimitKeepTheNewest(t *testing.T) {
	f := newFixture(t)
	var seqs []uint64
	var times []time.Time
	for i := range 5 {
		seq, at := f.change(map[string][]byte{"a": randBytes(uint64(40+i), 100)})
		seqs, times = append(seqs, seq), append(times, at)
	}
	rep, err := Points(f.d, f.t0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 5 || len(rep.Points) != 2 || rep.Points[0].Seq != seqs[3] || rep.Points[1].Seq != seqs[4] {
		t.Fatalf("--limit 2: %+v, want the last two points (seq %d, %d), oldest first", rep.Points, seqs[3], seqs[4])
	}
	rep, err = Points(f.d, times[2], 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Points) != 3 || rep.Points[0].Seq != seqs[2] {
		t.Fatalf("--since the third change: %+v, want the last three points", rep.Points)
	}
}
