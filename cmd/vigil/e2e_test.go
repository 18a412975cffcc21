package main

// End-to-end tests: real `vigil run` processes on 127.0.0.1, driven and
// observed only through the command line (init, run, lag, status) and the
// file system. Helpers are in e2e_helpers_test.go; the tests with a live
// workload are in e2e_live_test.go.

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/internal/workload"
)

// buildBaselineTree fills dir with the edge cases of a baseline: empty
// files, files at and around the chunker's size bounds, a 50 MiB random
// file, 2,000 small files in nested directories, a 30-level deep path,
// unicode and spaces in names, 0600/0755 modes, relative and dangling
// symlinks, empty directories, identical files and set mtimes.
func buildBaselineTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	j := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }

	mustWrite(t, j("empty.txt"), nil, 0o644)
	mustWrite(t, j("sub/empty too"), nil, 0o600)
	for _, s := range []struct {
		name string
		size int
	}{{"min", baseline.MinChunk}, {"avg", baseline.AvgChunk}, {"max", baseline.MaxChunk}} {
		for _, d := range []int{-1, 0, 1} {
			mustWrite(t, j(fmt.Sprintf("sizes/%s%+d.bin", s.name, d)), workload.Bytes(rng, s.size+d), 0o644)
		}
	}
	mustWrite(t, j("big/random-50MiB.bin"), workload.Bytes(rng, 50<<20), 0o644)
	for i := 0; i < 2000; i++ {
		p := fmt.Sprintf("many/g%02d/h%d/file-%04d.txt", i%20, (i/20)%10, i)
		mustWrite(t, j(p), workload.Bytes(rng, rng.IntN(2048)), 0o644)
	}
	deep := make([]string, 30)
	for i := range deep {
		deep[i] = fmt.Sprintf("l%02d", i)
	}
	mustWrite(t, j(strings.Join(deep, "/")+"/bottom.txt"), []byte("thirty levels down\n"), 0o644)
	mustWrite(t, j("résumé été/naïve file.txt"), []byte("unicode and spaces\n"), 0o644)
	mustWrite(t, j("日本語/ファイル"), []byte("日本語のファイル\n"), 0o644)
	mustWrite(t, j("modes/secret"), []byte("private\n"), 0o600)
	mustWrite(t, j("modes/tool.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	same := workload.Bytes(rng, 100<<10)
	mustWrite(t, j("dup/one.bin"), same, 0o644)
	mustWrite(t, j("dup/two.bin"), same, 0o644)
	for _, l := range []struct{ at, to string }{
		{"link-to-min", "sizes/min+0.bin"},
		{"sub/up-link", "../empty.txt"},
		{"sub/dir-link", "../modes"},
		{"dangling", "no/such/target"},
	} {
		if err := os.Symlink(l.to, j(l.at)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"emptydir", "nested/empty/dir"} {
		if err := os.MkdirAll(j(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(j("modes"), 0o750); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	if err := os.Chtimes(j("sizes/avg+0.bin"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(j("emptydir"), old, old); err != nil {
		t.Fatal(err)
	}
}

// twoNodes returns a source "laptop" protecting folder "docs" (dir) backed
// up to "nas", which keeps it; both are configured, neither started.
func twoNodes(t *testing.T, m *e2eMesh, dir string) (src, dst *e2eNode) {
	t.Helper()
	src, dst = m.node("laptop"), m.node("nas")
	src.allow(dst)
	dst.allow(src)
	src.protect("docs", dir, dst)
	dst.keepFor(src, "docs")
	return src, dst
}

func TestE2EBaselineReplicatesTreeExactly(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	buildBaselineTree(t, dir)
	src, dst := twoNodes(t, m, dir)

	begin := time.Now()
	dst.start()
	src.start()
	src.waitSynced()
	dst.waitSynced()
	t.Logf("baseline of the tree took %v", time.Since(begin).Round(time.Millisecond))
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
	if rs := dst.replicaStatus(src, "docs"); rs.ChunksFetched == 0 {
		t.Errorf("target status after the baseline: chunks_fetched = 0, want > 0 (the data was copied): %+v", rs)
	}

	// Restart both: the target must find its replica complete and fetch nothing.
	src.stop()
	dst.stop()
	dst.start()
	src.start()
	src.waitSynced()
	dst.waitSynced()
	st := dst.status()
	if len(st.Replicas) != 1 {
		t.Fatalf("target status after restart: %d replicas, want 1: %+v", len(st.Replicas), st.Replicas)
	}
	if r := st.Replicas[0]; r.ChunksFetched != 0 {
		t.Errorf("target status after restart: replicas[0].chunks_fetched = %d, want 0 (nothing changed)", r.ChunksFetched)
	}
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
}

func TestE2ESourceRestartCapturesOfflineChanges(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	rng := rand.New(rand.NewPCG(4, 4))
	j := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	for i := 0; i < 20; i++ {
		mustWrite(t, j(fmt.Sprintf("a/file%02d.bin", i)), workload.Bytes(rng, 1000+rng.IntN(60000)), 0o644)
	}
	mustWrite(t, j("b/c/keep.txt"), []byte("keep\n"), 0o644)
	mustWrite(t, j("large.bin"), workload.Bytes(rng, 2<<20), 0o644)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))

	src.stop()
	// Changes made while the source is down.
	mustWrite(t, j("a/new-while-down.txt"), []byte("created offline\n"), 0o600)
	big, err := os.ReadFile(j("large.bin"))
	if err != nil {
		t.Fatal(err)
	}
	copy(big[1<<20:], bytes.Repeat([]byte("M"), 4096)) // modify in the middle, same size
	mustWrite(t, j("large.bin"), big, 0o644)
	if f, err := os.OpenFile(j("a/file03.bin"), os.O_WRONLY|os.O_APPEND, 0); err != nil {
		t.Fatal(err)
	} else {
		f.Write([]byte("appended while down"))
		f.Close()
	}
	for _, p := range []string{"a/file05.bin", "a/file06.bin"} {
		if err := os.Remove(j(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(j("a/file07.bin"), j("a/renamed07.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(j("b"), j("b-renamed")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(j("a/file08.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(j("new-empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	src.start()
	src.waitSynced()
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
}

func TestE2ENonConsentingTargetKeepsNothing(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	mustWrite(t, filepath.Join(dir, "secret.bin"), workload.Bytes(rand.New(rand.NewPCG(5, 5)), 300<<10), 0o600)
	src, other := m.node("laptop"), m.node("stranger")
	src.allow(other)
	other.allow(src) // it talks to the source, but keeps nothing for it: no backup_for
	src.protect("docs", dir, other)
	other.start()
	src.start()

	// The two are connected: the source reports the pair and the peer as connected.
	pollUntil(t, 30*time.Second, "the source to report its pair with the stranger as connected", func() bool {
		p, ok := pairOf(src.lag(), src, "docs", other)
		pr, _ := peerOf(src.status(), other.id)
		return ok && p.State != "offline" && pr.Connected
	})
	// Give the source a few seconds and several rounds of opportunity to
	// ship: each round makes a change and waits until the source has
	// journaled it.
	marker := []byte("vigil-e2e-marker:never-on-the-stranger:" + other.id)
	opportunity := time.Now()
	last := src.status().Folders[0].JournalLast
	for i := 0; i < 5 || time.Since(opportunity) < 3*time.Second; i++ {
		data := append(bytes.Repeat([]byte{byte('a' + i%26)}, 1000*(i%10+1)), marker...)
		mustWrite(t, filepath.Join(dir, fmt.Sprintf("change-%d.txt", i)), data, 0o644)
		pollUntil(t, 30*time.Second, fmt.Sprintf("the source journal to pass seq %d", last), func() bool {
			f := src.status().Folders
			if len(f) == 1 && f[0].JournalLast > last {
				last = f[0].JournalLast
				return true
			}
			return false
		})
	}
	t.Logf("source journaled up to seq %d over %v while connected to the stranger", last, time.Since(opportunity).Round(time.Millisecond))
	// Still connected: the stranger had every chance to receive the folder.
	if pr, ok := peerOf(src.status(), other.id); !ok || !pr.Connected {
		t.Fatalf("source no longer connected to the stranger (%+v): the test proves nothing", pr)
	}

	rep := filepath.Join(other.dataDir(), "replicas", src.id)
	if ents, err := os.ReadDir(rep); err == nil && len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("non-consenting node keeps %s with %v, want nothing", rep, names)
	} else if err != nil && !os.IsNotExist(err) {
		t.Errorf("read %s: %v", rep, err)
	}
	filepath.WalkDir(other.home, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, marker) {
				t.Errorf("non-consenting node holds the source's data in %s", p)
			}
		}
		return nil
	})
	if st := other.status(); len(st.Replicas) != 0 {
		t.Errorf("non-consenting node reports replicas %+v, want none", st.Replicas)
	}
	p, ok := pairOf(src.lag(), src, "docs", other)
	if !ok {
		t.Fatalf("source lag no longer shows the pair with the stranger")
	}
	if p.State == "live" || p.AppliedSeq != 0 {
		t.Errorf("source believes the non-consenting peer backs docs up: state %q applied_seq %d, want not live and 0", p.State, p.AppliedSeq)
	}
}

func TestE2EUnlistedPeerRefused(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	mustWrite(t, filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o644)
	udir := m.dir("intruder-docs")
	mustWrite(t, filepath.Join(udir, "b.txt"), []byte("let me in\n"), 0o644)
	src, dst := twoNodes(t, m, dir)
	intruder := m.node("intruder")
	intruder.allow(src) // the intruder lists the source, the source does not list it
	intruder.protect("docs", udir, src)
	dst.start()
	src.start()
	intruder.start()
	src.waitSynced() // the source works with the peer it lists
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))

	// Watch both sides over a few seconds while the intruder keeps trying.
	deadline := time.Now().Add(4 * time.Second)
	polls := 0
	for time.Now().Before(deadline) || polls < 5 {
		polls++
		s := src.status()
		if pr, ok := peerOf(s, intruder.id); ok {
			t.Fatalf("source status lists the unlisted intruder as a peer: %+v", pr)
		}
		if pr, ok := peerOf(s, dst.id); !ok || !pr.Connected {
			t.Fatalf("source lost its listed peer nas: %+v", pr)
		}
		is := intruder.status()
		pr, ok := peerOf(is, src.id)
		if !ok {
			t.Fatalf("intruder status does not list the source it is configured with: %+v", is.Peers)
		}
		if pr.Connected {
			t.Fatalf("intruder status shows the source connected: the source admitted an unlisted peer")
		}
		if p, ok := pairOf(intruder.lag(), intruder, "docs", src); !ok || p.State != "offline" {
			t.Fatalf("intruder lag: pair with the source = %+v (found %v), want state offline", p, ok)
		}
		time.Sleep(200 * time.Millisecond) // observation interval
	}
	if _, err := os.Stat(filepath.Join(src.dataDir(), "replicas", intruder.id)); !os.IsNotExist(err) {
		t.Errorf("source holds data from the intruder (stat err %v)", err)
	}
}
