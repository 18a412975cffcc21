package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
)

// TestChunkServerSendsOnlyBytesMatchingTheCIDFromInsideTheFolder: a chunk
// is sent only when the bytes at its location still hash to its CID, and
// a symlink put in place of a file since the scan is not followed out of
// the folder.
func TestChunkServerSendsOnlyBytesMatchingTheCIDFromInsideTheFolder(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	data := []byte("the chunk as it was scanned")
	c := baseline.ChunkCID(data)
	p := filepath.Join(root, "a.txt")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	locs := []index.Loc{{Path: "a.txt", Off: 0, Size: uint32(len(data))}}
	cs := &chunkServer{}
	defer cs.close()

	out, ok := cs.read(root, c, locs, nil, nil)
	if !ok || out[0] != 1 {
		t.Fatalf("unchanged file: sent=%v answer %q", ok, out)
	}

	// same size, other bytes: never sent as the chunk
	cs.closeFile()
	if err := os.WriteFile(p, []byte("THE CHUNK AS IT WAS SCANNED"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := cs.read(root, c, locs, nil, nil); ok || len(out) != 1 || out[0] != 0 {
		t.Fatalf("changed bytes: sent=%v answer %q, want missing", ok, out)
	}

	// the file swapped for a symlink to a file outside holding the chunk
	cs.closeFile()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, p); err != nil {
		t.Fatal(err)
	}
	if out, ok := cs.read(root, c, locs, nil, nil); ok || len(out) != 1 || out[0] != 0 {
		t.Fatalf("symlink out of the folder followed: sent=%v answer %q", ok, out)
	}
}

// TestChunkServerMovingToAnotherFolderDropsTheOpenFile: the same relative
// path in two folders is two files; what was read ahead of one is never
// served for the other.
func TestChunkServerMovingToAnotherFolderDropsTheOpenFile(t *testing.T) {
	one, two := t.TempDir(), t.TempDir()
	a, b := []byte("the file in folder one"), []byte("the file in folder two")
	if err := os.WriteFile(filepath.Join(one, "same.txt"), a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(two, "same.txt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cs := &chunkServer{}
	defer cs.close()
	if _, ok := cs.read(one, baseline.ChunkCID(a), []index.Loc{{Path: "same.txt", Size: uint32(len(a))}}, nil, nil); !ok {
		t.Fatal("chunk of folder one not served")
	}
	out, ok := cs.read(two, baseline.ChunkCID(b), []index.Loc{{Path: "same.txt", Size: uint32(len(b))}}, nil, nil)
	if !ok || !bytes.HasSuffix(out, b) {
		t.Fatalf("chunk of folder two: served=%v %q, want its own bytes", ok, out)
	}
}
