package local

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
)

// dirFiles is a replica of files in a directory with chunk locations.
type dirFiles struct {
	dir     string
	locs    map[cid.Cid][]index.Loc
	damaged []string
}

func (d *dirFiles) Open(p string) (*os.File, error) { return os.Open(filepath.Join(d.dir, p)) }
func (d *dirFiles) Locs(c cid.Cid) []index.Loc      { return d.locs[c] }
func (d *dirFiles) Damaged(p string, ch baseline.Chunk) {
	d.damaged = append(d.damaged, p)
	delete(d.locs, ch.CID)
}

func chunk(data string) baseline.Chunk {
	return baseline.Chunk{CID: baseline.ChunkCID([]byte(data)), Size: uint32(len(data))}
}

func TestReaderCopiesRunsAndNeverBuildsOnDamage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("aaaabbbbcccc"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b, c := chunk("aaaa"), chunk("bbbb"), chunk("cccc")
	files := &dirFiles{dir: dir, locs: map[cid.Cid][]index.Loc{
		a.CID: {{Path: "f", Off: 0, Size: 4}}, b.CID: {{Path: "f", Off: 4, Size: 4}}, c.CID: {{Path: "f", Off: 8, Size: 4}}}}
	lr := NewReader(files)
	defer lr.Close()

	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	run := NewRunCopier(lr)
	for _, ch := range []baseline.Chunk{b, c, a} {
		if err := run.Add(out, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.Flush(out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out.Name()); string(got) != "bbbbccccaaaa" {
		t.Fatalf("copied %q", got)
	}

	// the file changes under the index: the chunk is not read, the
	// replica is told
	lr.Close()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("aaaaBBBBcccc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := lr.ReadChunk(b); !errors.Is(err, ErrUnavailable) || d != nil {
		t.Fatalf("ReadChunk of a damaged chunk: %q, %v", d, err)
	}
	if len(files.damaged) != 1 || files.damaged[0] != "f" {
		t.Fatalf("damage reported for %v, want [f]", files.damaged)
	}
	if d, err := lr.ReadChunk(c); err != nil || !bytes.Equal(d, []byte("cccc")) {
		t.Fatalf("ReadChunk of an intact chunk: %q, %v", d, err)
	}
	if err := lr.CopyChunk(out, b); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CopyChunk with no location left: %v", err)
	}
}
