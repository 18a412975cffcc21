package baseline

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestDiffAndApply(t *testing.T) {
	c := testChunks(6)
	A, B, C, D, E, F := c[0], c[1], c[2], c[3], c[4], c[5]
	tests := []struct {
		name     string
		old, new []Chunk
		want     Splice
	}{
		{"identical", []Chunk{A, B, C}, []Chunk{A, B, C}, Splice{Start: 3}},
		{"both empty", nil, nil, Splice{}},
		{"from empty", nil, []Chunk{A, B}, Splice{Start: 0, Added: []Chunk{A, B}}},
		{"to empty", []Chunk{A, B}, nil, Splice{Start: 0, Removed: 2}},
		{"append", []Chunk{A, B}, []Chunk{A, B, C}, Splice{Start: 2, Added: []Chunk{C}}},
		{"prepend", []Chunk{B, C}, []Chunk{A, B, C}, Splice{Start: 0, Added: []Chunk{A}}},
		{"middle replaced", []Chunk{A, B, C, D}, []Chunk{A, E, F, D}, Splice{Start: 1, Removed: 2, Added: []Chunk{E, F}}},
		{"middle removed", []Chunk{A, B, C, D}, []Chunk{A, D}, Splice{Start: 1, Removed: 2}},
		{"repeated chunk, prefix and suffix do not overlap", []Chunk{A, A, A}, []Chunk{A, A}, Splice{Start: 2, Removed: 1}},
		{"repeated chunk grows", []Chunk{A}, []Chunk{A, A, A}, Splice{Start: 1, Added: []Chunk{A, A}}},
		{"all different", []Chunk{A, B}, []Chunk{C, D, E}, Splice{Start: 0, Removed: 2, Added: []Chunk{C, D, E}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.old, tt.new)
			if got.Start != tt.want.Start || got.Removed != tt.want.Removed || !slices.EqualFunc(got.Added, tt.want.Added, chunkEqual) {
				t.Fatalf("Diff = {%d %d %d chunks}, want {%d %d %d chunks}", got.Start, got.Removed, len(got.Added), tt.want.Start, tt.want.Removed, len(tt.want.Added))
			}
			old := slices.Clone(tt.old)
			applied, err := got.Apply(tt.old)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(applied, tt.new, chunkEqual) {
				t.Fatal("Apply(Diff(old, new), old) != new")
			}
			if !slices.EqualFunc(old, tt.old, chunkEqual) {
				t.Fatal("Apply modified its input")
			}
		})
	}
}

func TestDiffApplyRoundTripRandom(t *testing.T) {
	pool := testChunks(4)
	r := rand.New(rand.NewPCG(1, 2))
	gen := func() []Chunk {
		out := make([]Chunk, r.IntN(8))
		for i := range out {
			out[i] = pool[r.IntN(len(pool))]
		}
		return out
	}
	for range 2000 {
		old, new := gen(), gen()
		s := Diff(old, new)
		got, err := s.Apply(old)
		if err != nil || !slices.EqualFunc(got, new, chunkEqual) {
			t.Fatalf("old %d new %d: splice %+v does not reproduce new (err %v)", len(old), len(new), s, err)
		}
		if s.Start+s.Removed > len(old) {
			t.Fatalf("splice %+v beyond old of %d", s, len(old))
		}
	}
}

func TestSpliceApplyRejectsOutOfRange(t *testing.T) {
	old := testChunks(3)
	for _, s := range []Splice{
		{Start: -1}, {Start: 4}, {Start: 0, Removed: 4}, {Start: 2, Removed: 2}, {Start: 1, Removed: -1},
		{Start: 1, Removed: int(^uint(0) >> 1)},
	} {
		if _, err := s.Apply(old); !errors.Is(err, ErrBadSplice) {
			t.Errorf("%+v: err = %v, want ErrBadSplice", s, err)
		}
	}
}
