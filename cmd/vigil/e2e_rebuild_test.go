package main

// End-to-end tests of a damaged index.db: `vigil run` fails cleanly naming
// it, and `vigil repair --rebuild-index` sets it aside so that the node
// rebuilds what it held on its next start.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/internal/workload"
)

// damageIndexPages overwrites the given 4 KiB pages of the index file at p
// with bytes from a generator seeded with seed.
func damageIndexPages(t *testing.T, p string, seed uint64, pages ...int) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, pg := range pages {
		for i := pg * 4096; i < (pg+1)*4096 && i < len(data); i++ {
			data[i] = byte(rng.Uint32())
		}
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// indexPages is the number of 4 KiB pages of the index file at p.
func indexPages(t *testing.T, p string) int {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size() / 4096)
}

// writeRebuildTree writes 120 files of 1-200 KiB (a few hundred chunks).
func writeRebuildTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(2026, 3))
	for i := range 120 {
		mustWrite(t, filepath.Join(dir, fmt.Sprintf("d%d/f%03d.bin", i%6, i)), workload.Bytes(rng, 1<<10+rng.IntN(200<<10)), 0o644)
	}
}

func TestE2ERunOnADamagedIndexExitsOneNamingTheFileAndTheRepair(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	writeRebuildTree(t, dir)
	src, _ := twoNodes(t, m, dir)
	src.start() // the backup need not run: the folder is scanned and indexed
	pollUntil(t, 30*time.Second, "the folder indexed", func() bool {
		s := src.status()
		return len(s.Folders) == 1 && s.Folders[0].Entries > 100
	})
	src.stop()
	idx := filepath.Join(src.dataDir(), "index.db")
	pristine, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	pages := indexPages(t, idx)
	var rest []int
	for p := 2; p < pages; p++ {
		rest = append(rest, p)
	}
	for name, damaged := range map[string][]int{
		"both meta pages":         {0, 1},
		"every page but the meta": rest,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(idx, pristine, 0o600); err != nil {
				t.Fatal(err)
			}
			damageIndexPages(t, idx, 5, damaged...)
			code, line := runNodeUntilExit(t, src) // one "vigil: " line, no stack trace
			if code != 1 {
				t.Errorf("vigil run on a damaged index: exit %d, want 1", code)
			}
			requireContains(t, line, "index.db damaged", idx, "vigil repair --rebuild-index --home "+src.home)
			t.Logf("%s", line)
		})
	}
}

// rebuildIndex runs `vigil repair --rebuild-index --json` on n, which must
// succeed, and returns what it reports.
func rebuildIndex(t *testing.T, n *e2eNode) rebuildReport {
	t.Helper()
	code, out, errOut := n.m.vigil(60*time.Second, "repair", "--rebuild-index", "--json", "--home", n.home)
	if code != 0 {
		t.Fatalf("%s: vigil repair --rebuild-index: exit %d\nstdout: %s\nstderr: %s", n.name, code, out, errOut)
	}
	var rep rebuildReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("vigil repair --rebuild-index --json: %v\n%s", err, out)
	}
	idx := filepath.Join(n.dataDir(), "index.db")
	if rep.Index != idx || !strings.HasPrefix(rep.SetAside, idx+".damaged-") || !fileExists(rep.SetAside) {
		t.Fatalf("rebuild report %+v: want index %s set aside as an existing %s.damaged-TIME", rep, idx, idx)
	}
	return rep
}

func TestE2ERebuildIndexOfABackupRebaselinesItAdoptingTheFilesItHolds(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	writeRebuildTree(t, dir)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	replica := dst.replicaDir(src, "docs")
	requireSameTree(t, dir, replica)
	first := dst.replicaStatus(src, "docs").ChunksFetched
	t.Logf("first baseline fetched %d chunks", first)

	// Refused while the node runs: it holds the index.
	code, _, errOut := m.vigil(30*time.Second, "repair", "--rebuild-index", "--home", dst.home)
	if code != 1 {
		t.Errorf("repair --rebuild-index with the node running: exit %d, want 1: %s", code, errOut)
	}
	assertOneErrorLine(t, errOut, filepath.Join(dst.dataDir(), "index.db"), "stop the node")

	dst.stop()
	idx := filepath.Join(dst.dataDir(), "index.db")
	pages := indexPages(t, idx)
	var rest []int
	for p := 2; p < pages; p++ {
		rest = append(rest, p)
	}
	damageIndexPages(t, idx, 11, rest...)
	if code, line := runNodeUntilExit(t, dst); code != 1 {
		t.Fatalf("vigil run on the damaged index: exit %d: %s", code, line)
	}
	// A change made meanwhile at the source arrives too.
	mustWrite(t, filepath.Join(dir, "while-down.txt"), []byte("written while the backup's index was rebuilt\n"), 0o644)
	if err := os.Remove(filepath.Join(dir, "d3/f003.bin")); err != nil {
		t.Fatal(err)
	}

	rep := rebuildIndex(t, dst)
	if len(rep.Replicas) != 1 || rep.Replicas[0].Folder != "docs" || rep.Replicas[0].Source != src.id {
		t.Errorf("rebuild report names replicas %+v; want the one of %s/docs", rep.Replicas, src.name)
	}
	dst.start()
	src.waitSynced()
	dst.waitSynced()
	// The new baseline writes what the source has and, as the rebuilt
	// index knows none of the replica's paths, removes what the source
	// does not have (the file it deleted meanwhile).
	requireSameTree(t, dir, replica)
	if code, out, errOut := m.vigil(60*time.Second, "repair", "--home", dst.home); code != 0 {
		t.Fatalf("vigil repair after the rebuild: exit %d\n%s%s", code, out, errOut)
	}
	requireSameTree(t, dir, replica)
	fetched := dst.replicaStatus(src, "docs").ChunksFetched
	t.Logf("after the rebuild the backup fetched %d chunks (the first baseline %d)", fetched, first)
	if fetched > 2 {
		t.Errorf("the re-baseline fetched %d chunks; want at most 2 (only the file written meanwhile): the files already held are adopted", fetched)
	}
	if code, out, errOut := m.vigil(60*time.Second, "verify", "--home", dst.home); code != 0 {
		t.Errorf("vigil verify after the rebuild: exit %d\n%s%s", code, out, errOut)
	}
}

func TestE2ERebuildIndexOfASourceMakesItsBackupsCatchChangesMadeWhileItWasDown(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	writeRebuildTree(t, dir)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	replica := dst.replicaDir(src, "docs")
	requireSameTree(t, dir, replica)
	src.stop()

	// While the source is down: a file changed, one deleted, one added.
	// Its first scan after the rebuild only builds its index; the backup
	// must take a new baseline to see them.
	mustWrite(t, filepath.Join(dir, "d0/f000.bin"), []byte("changed while the source was down\n"), 0o644)
	if err := os.Remove(filepath.Join(dir, "d1/f001.bin")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "d2/new.txt"), []byte("new\n"), 0o644)

	idx := filepath.Join(src.dataDir(), "index.db")
	damageIndexPages(t, idx, 13, 0, 1)
	if code, line := runNodeUntilExit(t, src); code != 1 {
		t.Fatalf("vigil run on the damaged index: exit %d: %s", code, line)
	}
	rep := rebuildIndex(t, src)
	if len(rep.Folders) != 1 || rep.Folders[0].Folder != "docs" || rep.Folders[0].JournalNextSeq == 0 {
		t.Errorf("rebuild report names folders %+v; want docs with the journal's next seq", rep.Folders)
	}
	src.start()
	src.waitSynced()
	requireSameTree(t, dir, replica)
}

func TestRepairRebuildIndexTakesNoSourceOrFolder(t *testing.T) {
	home := newHome(t, validDoc)
	code, _, errOut := runVigil(t, "repair", "--rebuild-index", "--folder", "docs", "--home", home)
	if code != 2 {
		t.Errorf("exit %d, want 2 (bad usage)", code)
	}
	assertOneErrorLine(t, errOut, "--rebuild-index", "--source or --folder")
}

func TestRepairRebuildIndexOnANodeThatNeverRanMakesAnEmptyIndex(t *testing.T) {
	home := newHome(t, validDoc)
	code, out, errOut := runVigil(t, "repair", "--rebuild-index", "--json", "--home", home)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep rebuildReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	idx := filepath.Join(home, "data", "index.db")
	if rep.Index != idx || rep.SetAside != "" || !fileExists(idx) {
		t.Errorf("report %+v: want a new index at %s and nothing set aside", rep, idx)
	}
	if len(rep.Folders) != 1 || rep.Folders[0].Folder != "docs" || rep.Folders[0].JournalNextSeq != 0 {
		t.Errorf("folders %+v: want docs, with no journal to skip", rep.Folders)
	}
	if len(rep.Replicas) != 1 || rep.Replicas[0].SourceName != "nas" || rep.Replicas[0].Folder != "music" {
		t.Errorf("replicas %+v: want nas/music", rep.Replicas)
	}
}
