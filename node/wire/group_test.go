package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestGroupRoundTripKeepsEveryChangeInOrder(t *testing.T) {
	cs := sampleChanges()
	g := NewGroup(cs)
	if g.Op != OpGroup || g.Path != cs[0].Path {
		t.Fatalf("NewGroup: op %s path %q", g.Op, g.Path)
	}
	got, err := DecodeChange(EncodeChange(nil, g))
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != OpGroup || len(got.Changes()) != len(cs) {
		t.Fatalf("decoded %s with %d changes, want a group of %d", got.Op, len(got.Changes()), len(cs))
	}
	for i, c := range got.Group {
		if !bytes.Equal(EncodeChange(nil, c), EncodeChange(nil, cs[i])) {
			t.Fatalf("change %d (%s %s) differs after the round trip", i, cs[i].Op, cs[i].Path)
		}
	}
	var enc [][]byte
	for _, c := range cs {
		enc = append(enc, EncodeChange(nil, c))
	}
	if !bytes.Equal(EncodeGroup(cs[0].Path, enc), EncodeChange(nil, g)) {
		t.Fatal("EncodeGroup of encoded changes differs from EncodeChange of the group")
	}
	if one := NewGroup(cs[:1]); one != cs[0] || len(one.Changes()) != 1 {
		t.Fatal("a group of one change is not the change itself")
	}
}

func TestDecodeGroupRejectsEmptyNestedAndMismatchedGroups(t *testing.T) {
	hdr := func(path string) []byte {
		return AppendString([]byte{recordVersion, byte(OpGroup)}, path)
	}
	member := EncodeChange(nil, &Change{Op: OpDelete, Path: "a"})
	nested := EncodeChange(nil, NewGroup([]*Change{{Op: OpDelete, Path: "a"}, {Op: OpDelete, Path: "b"}}))
	cases := map[string][]byte{
		"empty group":     binary.AppendUvarint(hdr("a"), 0),
		"group in group":  AppendBytes(binary.AppendUvarint(hdr("a"), 1), nested),
		"path mismatch":   AppendBytes(binary.AppendUvarint(hdr("b"), 1), member),
		"count too large": AppendBytes(binary.AppendUvarint(hdr("a"), 1<<40), member),
		"bad member":      AppendBytes(binary.AppendUvarint(hdr("a"), 1), member[:2]),
	}
	for name, b := range cases {
		if _, err := DecodeChange(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
