package history

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
)

// `vigil history --json` through a running node decodes the versions the
// node sent and encodes them again: each must keep its own content root,
// not the root of an empty chunk list.
func TestVersionJSONRoundTripKeepsEachVersionsRoot(t *testing.T) {
	var vs []Version
	for i, data := range []string{"one", "two", "three"} {
		c := baseline.ChunkCID([]byte(data))
		e := &baseline.Entry{Path: "f", Kind: baseline.KindFile, Size: int64(len(data)), Chunks: []baseline.Chunk{{CID: c, Size: uint32(len(data))}}}
		vs = append(vs, Version{Path: "f", Seq: uint64(i + 1), Time: time.Unix(1700000000+int64(i), 0), Entry: e})
	}
	b, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	var back []Version
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	var first, second []map[string]any
	json.Unmarshal(b, &first)
	json.Unmarshal(b2, &second)
	roots := make(map[any]bool)
	for i := range first {
		if first[i]["root"] != second[i]["root"] {
			t.Fatalf("version %d: root %v after a round trip, was %v", i, second[i]["root"], first[i]["root"])
		}
		roots[second[i]["root"]] = true
	}
	if len(roots) != len(vs) {
		t.Fatalf("%d distinct roots for %d versions of different content", len(roots), len(vs))
	}
}
