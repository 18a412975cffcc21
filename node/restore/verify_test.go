package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func verifyT(t *testing.T, d *Replica) VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func problemsOf(rep VerifyReport, kind string) []VerifyProblem {
	var out []VerifyProblem
	for _, p := range rep.Problems {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

func TestVerifyReportsOlderVersionLostWhenDamagedReplicaFileWasReplaced(t *testing.T) {
	f := newFixture(t)
	v1 := randBytes(10, 300_000)
	seq1, t1 := f.change(map[string][]byte{"a.bin": v1, "b.txt": []byte("unchanged")})
	if rep := verifyT(t, f.d); !rep.OK || rep.HistoryVersions != 2 {
		t.Fatalf("verify of a healthy replica: %+v", rep)
	}
	const off = 150_000
	bad := f.chunkAt("a.bin", off)
	f.damage("a.bin", off)
	// the replica moves on: a.bin is replaced; its damaged chunk cannot
	// be kept in the history store
	seq2, _ := f.change(map[string][]byte{"a.bin": randBytes(11, 300_000)})

	rep := verifyT(t, f.d)
	if rep.OK {
		t.Fatalf("verify after the only copy of a chunk of a.bin@%d was lost says OK: %+v", seq1, rep)
	}
	miss := problemsOf(rep, "history-missing")
	if len(miss) != 1 {
		t.Fatalf("history-missing problems %+v, want one (a.bin at seq %d)", miss, seq1)
	}
	p := miss[0]
	if p.Path != "a.bin" || p.Seq == nil || *p.Seq != seq1 || p.Chunk != bad.CID.String() || p.Time == nil || !p.Time.Equal(t1) ||
		!strings.Contains(p.Detail, bad.CID.String()) {
		t.Fatalf("history-missing %+v, want a.bin, seq %d, time %s, chunk %s", p, seq1, t1, bad.CID)
	}
	if len(rep.Problems) != 1 {
		t.Fatalf("problems %+v, want only the lost version (the replica itself is intact)", rep.Problems)
	}
	// and what verify says is what restore finds
	_, err := f.restore(RestoreRequest{To: t.TempDir(), Seq: seq1, Paths: []string{"a.bin"}})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), bad.CID.String()) {
		t.Fatalf("restore of a.bin at seq %d: %v, want ErrIncomplete naming chunk %s", seq1, err, bad.CID)
	}
	if _, err := f.restore(RestoreRequest{To: t.TempDir(), Seq: seq2}); err != nil {
		t.Fatalf("restore of the newest state: %v", err)
	}
}

func TestVerifyReportsDamagedReplicaFileWhoseVersionHasNoOtherCopy(t *testing.T) {
	f := newFixture(t)
	seq, _ := f.change(map[string][]byte{"a.bin": randBytes(12, 100_000)})
	bad := f.chunkAt("a.bin", 5)
	f.damage("a.bin", 5)
	rep := verifyT(t, f.d)
	diff, miss := problemsOf(rep, "differs"), problemsOf(rep, "history-missing")
	if len(diff) != 1 || len(miss) != 1 || *miss[0].Seq != seq || miss[0].Chunk != bad.CID.String() {
		t.Fatalf("problems %+v, want a.bin differs and its version of seq %d missing chunk %s", rep.Problems, seq, bad.CID)
	}
}

func TestVerifyAcceptsVersionWhoseChunkIsIntactInAnotherReplicaFile(t *testing.T) {
	f := newFixture(t)
	data := randBytes(13, 200_000)
	seq1, _ := f.change(map[string][]byte{"a.bin": data, "copy.bin": data})
	f.damage("a.bin", 100_000)
	f.change(map[string][]byte{"a.bin": []byte("new content")})

	if rep := verifyT(t, f.d); !rep.OK {
		t.Fatalf("verify when copy.bin holds every chunk of a.bin@%d: %+v", seq1, rep.Problems)
	}
	to := t.TempDir()
	if _, err := f.restore(RestoreRequest{To: to, Seq: seq1, Paths: []string{"a.bin"}}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(to, "a.bin")); !bytes.Equal(got, data) {
		t.Fatal("a.bin restored from the other replica file differs")
	}
}

func TestVerifyReportsVersionWhoseOnlyCopyInTheHistoryStoreIsDamaged(t *testing.T) {
	f := newFixture(t)
	seq1, _ := f.change(map[string][]byte{"a.bin": []byte("version one, kept in the history store")})
	c := f.cur["a.bin"].Chunks[0]
	f.change(map[string][]byte{"a.bin": []byte("version two")})
	if rep := verifyT(t, f.d); !rep.OK || rep.HistoryChunks != 1 {
		t.Fatalf("verify after a.bin was replaced: %+v", rep)
	}
	s := c.CID.String()
	file := filepath.Join(f.d.History.Chunks.Dir(), s[len(s)-2:], s)
	data := mustRead(t, file)
	data[0] ^= 1
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := verifyT(t, f.d)
	miss := problemsOf(rep, "history-missing")
	if len(problemsOf(rep, "history-chunk")) != 1 || len(miss) != 1 || *miss[0].Seq != seq1 || miss[0].Path != "a.bin" {
		t.Fatalf("problems %+v, want the damaged history chunk and a.bin@%d missing", rep.Problems, seq1)
	}
}
