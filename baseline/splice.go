package baseline

import "fmt"

// Splice describes how a chunk list changed: old[Start:Start+Removed] is
// replaced by Added. A journal record carries a splice instead of a whole
// manifest.
type Splice struct {
	Start   int
	Removed int
	Added   []Chunk
}

// Diff returns the splice that turns old into new: the longest common prefix
// and then the longest common suffix of what remains are kept, everything
// between is replaced. Diff(x, x) is the empty splice {Start: len(x)}.
func Diff(old, new []Chunk) Splice {
	p := 0
	for p < len(old) && p < len(new) && chunkEqual(old[p], new[p]) {
		p++
	}
	s := 0
	for s < len(old)-p && s < len(new)-p && chunkEqual(old[len(old)-1-s], new[len(new)-1-s]) {
		s++
	}
	var added []Chunk
	if n := len(new) - p - s; n > 0 {
		added = append(added, new[p:p+n]...)
	}
	return Splice{Start: p, Removed: len(old) - p - s, Added: added}
}

// Apply returns a new chunk list: old with the splice applied. old is not
// modified. It fails with ErrBadSplice if the splice does not fit old.
func (s Splice) Apply(old []Chunk) ([]Chunk, error) {
	if s.Start < 0 || s.Removed < 0 || s.Start > len(old) || s.Removed > len(old)-s.Start {
		return nil, fmt.Errorf("%w: start %d, removed %d, list of %d", ErrBadSplice, s.Start, s.Removed, len(old))
	}
	out := make([]Chunk, 0, len(old)-s.Removed+len(s.Added))
	out = append(out, old[:s.Start]...)
	out = append(out, s.Added...)
	return append(out, old[s.Start+s.Removed:]...), nil
}
