package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/restore"
)

// verifyT verifies every replica of n and returns the only report.
func verifyT(t *testing.T, n *Node) restore.VerifyReport {
	t.Helper()
	reps, err := n.Verify(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 {
		t.Fatalf("verify returned %d reports, want 1", len(reps))
	}
	return reps[0]
}

func hasProblem(rep restore.VerifyReport, kind, pathPart string) bool {
	for _, p := range rep.Problems {
		if p.Kind == kind && strings.Contains(p.Path, pathPart) {
			return true
		}
	}
	return false
}

func TestVerifyOKOnHealthyReplicaThenNamesDamagedAndExtraFiles(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	writeFile(t, filepath.Join(src, "a.bin"), randBytes(1, 200_000), 0o644)
	writeFile(t, filepath.Join(src, "dir/b.txt"), []byte("bee"), 0o600)
	writeFile(t, filepath.Join(src, "old.bin"), randBytes(2, 100_000), 0o644)
	os.Symlink("a.bin", filepath.Join(src, "link"))
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	synced(t, lap, nas, src)
	// replacing old.bin puts its chunks into the history store
	writeFile(t, filepath.Join(src, "old.bin"), randBytes(3, 100_000), 0o644)
	synced(t, lap, nas, src)

	rep := verifyT(t, nas.n)
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("verify of a healthy replica: %+v", rep)
	}
	if rep.Against != "source" {
		t.Fatalf("verify of a live replica with its source online compared against %q, want source", rep.Against)
	}
	if rep.Files != 3 || rep.HistoryChunks == 0 {
		t.Fatalf("verify counted %d files and %d history chunks, want 3 and > 0", rep.Files, rep.HistoryChunks)
	}
	if st := nas.n.Status().Replicas[0].LastVerify; st == nil || !st.OK {
		t.Fatalf("status LastVerify after verify: %+v", st)
	}

	// one byte of a replica file changed on disk (size and mtime kept)
	repDir := nas.replicaDir(lap, "docs")
	p := filepath.Join(repDir, "a.bin")
	fi, _ := os.Stat(p)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, 100_000)
	b[0] ^= 0xff
	f.WriteAt(b, 100_000)
	f.Close()
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	rep = verifyT(t, nas.n)
	if rep.OK || !hasProblem(rep, "differs", "a.bin") {
		t.Fatalf("verify after a byte of a.bin changed: %+v", rep.Problems)
	}

	// a file added to the replica
	writeFile(t, filepath.Join(repDir, "dir/intruder"), []byte("x"), 0o644)
	rep = verifyT(t, nas.n)
	if !hasProblem(rep, "extra", "dir/intruder") {
		t.Fatalf("verify after a file was added to the replica: %+v", rep.Problems)
	}

	// a history chunk changed on disk
	var chunk string
	filepath.WalkDir(filepath.Join(nas.cfg.DataPath(), "history"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && chunk == "" && !strings.Contains(p, "/.tmp/") {
			chunk = p
		}
		return nil
	})
	if chunk == "" {
		t.Fatal("no history chunk file found")
	}
	data, _ := os.ReadFile(chunk)
	data[len(data)/2] ^= 0x01
	os.WriteFile(chunk, data, 0o600)
	rep = verifyT(t, nas.n)
	if !hasProblem(rep, "history-chunk", filepath.Base(chunk)) {
		t.Fatalf("verify after history chunk %s changed: %+v", chunk, rep.Problems)
	}
	if st := nas.n.Status().Replicas[0].LastVerify; st == nil || st.OK || len(st.Problems) != len(rep.Problems) {
		t.Fatalf("status LastVerify does not hold the newest report: %+v", st)
	}

	// offline, the same problems are found against the local records
	nas.stop()
	reps, err := VerifyOffline(nas.cfg, "laptop", "docs")
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Against != "local" || !hasProblem(reps[0], "differs", "a.bin") ||
		!hasProblem(reps[0], "extra", "dir/intruder") || !hasProblem(reps[0], "history-chunk", filepath.Base(chunk)) {
		t.Fatalf("offline verify: %+v", reps)
	}
}

func TestVerifyReportsMissingFileAndScrubStoresResult(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"), 0o644)
	writeFile(t, filepath.Join(src, "b.txt"), []byte("world"), 0o644)
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	nas.cfg.SetDefaults()
	nas.cfg.Node.ScrubInterval = config.Duration(300 * time.Millisecond)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	os.Remove(filepath.Join(nas.replicaDir(lap, "docs"), "b.txt"))
	waitFor(t, 20*time.Second, "the scrub to report b.txt missing", func() bool {
		st := nas.n.Status().Replicas[0].LastVerify
		return st != nil && !st.OK && hasProblem(*st, "missing", "b.txt")
	})
}

func TestVerifyReportsVersionLostWhenDamagedReplicaFileWasReplacedByTheSource(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	v1 := randBytes(21, 400_000)
	writeFile(t, filepath.Join(src, "a.bin"), v1, 0o644)
	writeFile(t, filepath.Join(src, "b.txt"), []byte("unchanged"), 0o644)
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	synced(t, lap, nas, src)
	t1 := time.Now()
	if rep := verifyT(t, nas.n); !rep.OK || rep.HistoryVersions == 0 {
		t.Fatalf("verify of a healthy replica: %+v", rep)
	}

	// a byte of the replica's a.bin changes on disk (size and mtime kept) ...
	p := filepath.Join(nas.replicaDir(lap, "docs"), "a.bin")
	fi, _ := os.Stat(p)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, 200_000)
	b[0] ^= 0xff
	f.WriteAt(b, 200_000)
	f.Close()
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	// ... and then the source replaces a.bin: the replica moves on
	writeFile(t, filepath.Join(src, "a.bin"), randBytes(22, 400_000), 0o644)
	synced(t, lap, nas, src)

	rep := verifyT(t, nas.n)
	var lost *restore.VerifyProblem
	for i, pr := range rep.Problems {
		if pr.Kind == "history-missing" && pr.Path == "a.bin" {
			lost = &rep.Problems[i]
		}
	}
	if rep.OK || lost == nil || lost.Seq == nil || lost.Chunk == "" || lost.Time == nil || lost.Time.After(t1) {
		t.Fatalf("verify after the damaged a.bin was replaced: %+v, want a.bin's first version reported history-missing", rep)
	}
	_, err = nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs",
		To: t.TempDir(), At: t1, Paths: []string{"a.bin"}}, nil)
	if !errors.Is(err, restore.ErrIncomplete) || !strings.Contains(err.Error(), lost.Chunk) {
		t.Fatalf("restore of a.bin as of %s: %v, want ErrIncomplete naming chunk %s", t1, err, lost.Chunk)
	}
}
