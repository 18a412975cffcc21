package main

// Tests of `vigil restore` and `vigil verify` through the real binary
// (flags, output, exit codes), and of the restore progress line.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/internal/workload"
	"github.com/vigil-mesh/vigil/node/restore"
)

func TestRestoreStatusShowsBytesRateAndTimeLeft(t *testing.T) {
	got := restoreStatus("laptop/docs", 300<<20, 1200<<20, 2*time.Second)
	want := "restoring laptop/docs: 300 MiB of 1.17 GiB (25%), 150 MiB/s, 6.0s left"
	if got != want {
		t.Fatalf("restoreStatus = %q, want %q", got, want)
	}
	if got := restoreStatus("laptop/docs", 0, 1<<20, 0); got != "restoring laptop/docs: 0 B of 1.00 MiB (0%)" {
		t.Fatalf("restoreStatus before any byte = %q", got)
	}
}

func TestRestoreProgressStaysQuietForAQuickRestoreThenDrawsRateAndTimeLeft(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	p := newRestoreProgress(&out, "laptop/docs", func() time.Time { return now })
	now = now.Add(restoreProgressAfter / 2)
	p.update(10<<20, 100<<20)
	if out.Len() != 0 {
		t.Fatalf("progress drawn %v into a restore: %q", restoreProgressAfter/2, out.String())
	}
	now = now.Add(restoreProgressAfter)
	p.update(60<<20, 100<<20)
	if s := out.String(); !strings.Contains(s, "60.0 MiB of 100 MiB") || !strings.Contains(s, "MiB/s") || !strings.Contains(s, "left") {
		t.Fatalf("progress after %v: %q, want bytes, rate and time left", restoreProgressAfter*3/2, s)
	}
	p.finish()
	if !strings.HasSuffix(out.String(), "\r\x1b[2K") {
		t.Fatalf("finish did not erase the bar: %q", out.String())
	}
	var none *restoreProgress // not a terminal
	none.update(1, 2)
	none.finish()
}

// restoreArgs are the arguments of `vigil restore` of folder docs of src on dst.
func restoreArgs(dst, src *e2eNode, to string, more ...string) []string {
	return append([]string{"restore", "--home", dst.home, "--source", src.name, "--folder", "docs", "--to", to}, more...)
}

// oneLine fails the test unless stderr is one line and returns it.
func oneLine(t *testing.T, stderr string) string {
	t.Helper()
	s := strings.TrimRight(stderr, "\n")
	if s == "" || strings.Contains(s, "\n") {
		t.Fatalf("stderr is not one line: %q", stderr)
	}
	return s
}

func TestE2ERestoreDryRunJSONAndUsageErrors(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	rng := rand.New(rand.NewPCG(7, 7))
	mustWrite(t, filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o644)
	mustWrite(t, filepath.Join(dir, "sub/b.bin"), workload.Bytes(rng, 200<<10), 0o600)
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	out := filepath.Join(m.root, "out")

	// --dry-run --json: the list, nothing written
	code, stdout, stderr := m.vigil(60*time.Second, restoreArgs(dst, src, out, "--dry-run", "--json")...)
	if code != 0 {
		t.Fatalf("restore --dry-run --json: exit %d: %s", code, stderr)
	}
	var dry restore.RestoreResult
	if err := json.Unmarshal([]byte(stdout), &dry); err != nil {
		t.Fatalf("restore --dry-run --json: %v\n%s", err, stdout)
	}
	if !dry.DryRun || dry.Files != 2 || dry.Symlinks != 1 || dry.Dirs != 2 || dry.Bytes != 6+200<<10 || len(dry.Entries) != 5 {
		t.Fatalf("restore --dry-run --json: %+v, want 2 files, 1 symlink, 2 dirs, 5 entries", dry)
	}
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("restore --dry-run created %s (lstat err %v)", out, err)
	}
	code, stdout, _ = m.vigil(60*time.Second, restoreArgs(dst, src, out, "--dry-run")...)
	if code != 0 || !strings.HasPrefix(stdout, "would restore laptop/docs as of seq ") || !strings.Contains(stdout, "2 files, 2 dirs, 1 symlinks") {
		t.Fatalf("restore --dry-run: exit %d, stdout %q", code, stdout)
	}

	// points after the newest state are usage errors naming the flag
	code, _, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out, "--seq", "999999")...)
	if line := oneLine(t, stderr); code != 2 || !strings.HasPrefix(line, "vigil: restore: --seq 999999: the newest backed-up state of docs from laptop is seq ") {
		t.Fatalf("restore --seq 999999: exit %d, stderr %q; want exit 2 naming --seq and the newest seq", code, stderr)
	}
	code, _, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out, "--at", "2099-01-01T00:00:00Z")...)
	if line := oneLine(t, stderr); code != 2 || !strings.Contains(line, "restore: --at: 2099-01-01T00:00:00Z is in the future") {
		t.Fatalf("restore --at 2099: exit %d, stderr %q; want exit 2 naming --at as in the future", code, stderr)
	}
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused restore created %s (lstat err %v)", out, err)
	}

	// --json: the result on stdout, the tree as the source's
	code, stdout, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out, "--json")...)
	if code != 0 {
		t.Fatalf("restore --json: exit %d: %s", code, stderr)
	}
	var res restore.RestoreResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("restore --json: %v\n%s", err, stdout)
	}
	if res.DryRun || res.Files != 2 || res.Bytes != dry.Bytes || len(res.Failed) != 0 || res.To != out {
		t.Fatalf("restore --json: %+v", res)
	}
	requireSameTree(t, dir, out)

	// a non-empty --to needs --force, and the message says so
	code, _, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out)...)
	if line := oneLine(t, stderr); code != 2 || !strings.Contains(line, "--to") || !strings.Contains(line, "pass --force") {
		t.Fatalf("restore into a non-empty --to: exit %d, stderr %q; want exit 2 saying to pass --force", code, stderr)
	}

	// offline, the same
	dst.stop()
	out2 := filepath.Join(m.root, "out2")
	code, stdout, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out2)...)
	if code != 0 || !strings.HasPrefix(stdout, "restored laptop/docs as of seq ") {
		t.Fatalf("offline restore: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	requireSameTree(t, dir, out2)
}

// flipByte changes the byte at off of file p, keeping its size and mtime.
func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func TestE2ERestoreOfDamagedReplicaRestoresTheRestNamesEachFileLeftOutAndExits1(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	rng := rand.New(rand.NewPCG(8, 8))
	b := workload.Bytes(rng, 300<<10)
	mustWrite(t, filepath.Join(dir, "a.bin"), workload.Bytes(rng, 300<<10), 0o644)
	mustWrite(t, filepath.Join(dir, "b.bin"), b, 0o644)
	mustWrite(t, filepath.Join(dir, "c.txt"), []byte("see\n"), 0o644)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	src.stop()

	rep := dst.replicaDir(src, "docs")
	flipByte(t, filepath.Join(rep, "a.bin"), 150<<10)
	if err := os.Remove(filepath.Join(rep, "c.txt")); err != nil {
		t.Fatal(err)
	}

	// through the running node: the result comes with the error
	code, stdout, stderr := m.vigil(60*time.Second, restoreArgs(dst, src, filepath.Join(m.root, "out-json"), "--json")...)
	var res restore.RestoreResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 1 {
		t.Fatalf("restore --json of a damaged replica through the node: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if res.Files != 1 || len(res.Failed) != 2 || res.Failed[0].Path != "a.bin" || res.Failed[0].Chunk == "" || res.Failed[1].Path != "c.txt" {
		t.Fatalf("restore --json of a damaged replica: %+v", res)
	}
	if line := oneLine(t, stderr); !strings.HasPrefix(line, "vigil: restore: 2 of 3 files of docs from laptop could not be restored intact") {
		t.Fatalf("restore --json of a damaged replica through the node: stderr %q", stderr)
	}

	// offline
	dst.stop()
	out := filepath.Join(m.root, "out")
	code, stdout, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out)...)
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if code != 1 || len(lines) != 3 || !strings.HasPrefix(lines[0], "not restored: a.bin: chunk ") ||
		!strings.Contains(lines[0], "damaged in the replica") || !strings.HasPrefix(lines[1], "not restored: c.txt: chunk ") ||
		!strings.HasPrefix(lines[2], "vigil: restore: 2 of 3 files of docs from laptop could not be restored intact") {
		t.Fatalf("restore of a damaged replica: exit %d\nstdout: %s\nstderr: %s\nwant exit 1, a line per file left out, then the error", code, stdout, stderr)
	}
	if !strings.Contains(lines[2], "a.bin (chunk ") || !strings.Contains(lines[2], "c.txt (chunk ") {
		t.Fatalf("the error line does not name both files and chunks: %q", lines[2])
	}
	if got, err := os.ReadFile(filepath.Join(out, "b.bin")); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("the intact file b.bin was not restored as it was (err %v)", err)
	}
	for _, p := range []string{"a.bin", "c.txt"} {
		if _, err := os.Lstat(filepath.Join(out, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s was written though it could not be restored intact (lstat err %v)", p, err)
		}
	}

	code, stdout, _ = m.vigil(60*time.Second, "verify", "--home", dst.home)
	if code != 1 || !strings.Contains(stdout, "differs a.bin") || !strings.Contains(stdout, "missing c.txt") ||
		!strings.Contains(stdout, "history-missing a.bin") {
		t.Fatalf("verify of the damaged replica: exit %d\n%s", code, stdout)
	}
}

func TestE2ERestoreThatFailsPutsBackWhatItReplacedInTheTarget(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("needs chattr to make a file the restore cannot replace")
	}
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	mustWrite(t, filepath.Join(dir, "a.txt"), []byte("backed-up a\n"), 0o644)
	mustWrite(t, filepath.Join(dir, "m/new.txt"), []byte("backed-up new\n"), 0o644)
	mustWrite(t, filepath.Join(dir, "z.txt"), []byte("backed-up z\n"), 0o644)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()

	out := m.dir("existing")
	mustWrite(t, filepath.Join(out, "a.txt"), []byte("mine\n"), 0o600)
	mustWrite(t, filepath.Join(out, "z.txt"), []byte("mine too\n"), 0o644)
	z := filepath.Join(out, "z.txt")
	if b, err := exec.Command("chattr", "+i", z).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v: %s (the file system does not support it)", z, err, b)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", z).Run() })

	code, _, stderr := m.vigil(60*time.Second, restoreArgs(dst, src, out, "--force")...)
	if line := oneLine(t, stderr); code != 1 || !strings.Contains(line, "z.txt") {
		t.Fatalf("restore that cannot replace z.txt: exit %d, stderr %q; want exit 1 naming z.txt", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(got) != "mine\n" {
		t.Fatalf("a.txt after the failed restore: %q, want what was there before", got)
	}
	if fi, err := os.Stat(filepath.Join(out, "a.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a.txt after the failed restore: %v %v, want mode 0600 as before", fi, err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("the target holds %v after the failed restore, want only a.txt and z.txt", names)
	}
}
