package restore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRestoreOfReplicaFileWithFlippedByteFailsNamingPathAndChunk(t *testing.T) {
	f := newFixture(t)
	big := randBytes(1, 3<<20) // several segments: written by parallel workers
	f.change(map[string][]byte{"big.bin": big, "ok.txt": []byte("fine")})
	const off = 2<<20 + 12345
	bad := f.chunkAt("big.bin", off)
	f.damage("big.bin", off)

	to := filepath.Join(t.TempDir(), "out")
	res, err := f.restore(RestoreRequest{To: to})
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore with a damaged replica file and no other copy: %v, want an *IncompleteError", err)
	}
	if !strings.Contains(err.Error(), "big.bin") || !strings.Contains(err.Error(), bad.CID.String()) {
		t.Fatalf("error %q does not name big.bin and its damaged chunk %s", err, bad.CID)
	}
	if len(res.Failed) != 1 || res.Failed[0].Path != "big.bin" || res.Failed[0].Chunk != bad.CID.String() ||
		!strings.Contains(res.Failed[0].Error, "damaged in the replica") {
		t.Fatalf("result failed = %+v, want big.bin with chunk %s damaged in the replica", res.Failed, bad.CID)
	}
	if _, err := os.Lstat(filepath.Join(to, "big.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("damaged big.bin was written (lstat err %v), want it left out", err)
	}
	if got := mustRead(t, filepath.Join(to, "ok.txt")); string(got) != "fine" || res.Files != 1 {
		t.Fatalf("the intact file: %q, result files %d; want it restored", got, res.Files)
	}
	if left, _ := filepath.Glob(filepath.Join(to, ".vigil-tmp-*")); len(left) > 0 {
		t.Fatalf("temporary files left in the target: %v", left)
	}
}

func TestRestoreTakesDamagedChunkFromHistoryStoreAndWritesIntactFile(t *testing.T) {
	f := newFixture(t)
	big := randBytes(2, 2<<20)
	f.change(map[string][]byte{"big.bin": big})
	const off = 1<<20 + 7
	c := f.chunkAt("big.bin", off)
	// the history store has this chunk (e.g. an earlier version held it)
	var at int64
	for _, ch := range f.cur["big.bin"].Chunks {
		if ch.CID.Equals(c.CID) {
			break
		}
		at += int64(ch.Size)
	}
	if err := f.d.History.Chunks.Put(c.CID, big[at:at+int64(c.Size)]); err != nil {
		t.Fatal(err)
	}
	f.damage("big.bin", off)

	to := filepath.Join(t.TempDir(), "out")
	res, err := f.restore(RestoreRequest{To: to})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(to, "big.bin")); !bytes.Equal(got, big) {
		t.Fatal("restored big.bin differs from the backed-up content")
	}
	if res.HistoryBytes != int64(c.Size) {
		t.Fatalf("history bytes %d, want the damaged chunk's %d", res.HistoryBytes, c.Size)
	}
}

func TestRestoreTakesDamagedChunkFromAnotherReplicaFileWithTheSameContent(t *testing.T) {
	f := newFixture(t)
	data := randBytes(3, 200_000)
	f.change(map[string][]byte{"a/one.bin": data, "b/two.bin": data})
	f.damage("a/one.bin", 100_000)

	to := filepath.Join(t.TempDir(), "out")
	if _, err := f.restore(RestoreRequest{To: to}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a/one.bin", "b/two.bin"} {
		if got := mustRead(t, filepath.Join(to, p)); !bytes.Equal(got, data) {
			t.Fatalf("restored %s differs from the backed-up content", p)
		}
	}
}

func TestRestoreOfFolderRestoresTheRestAndNamesEveryUnrestorableFile(t *testing.T) {
	f := newFixture(t)
	files := map[string][]byte{"d": dirMark}
	for _, p := range []string{"d/a", "d/b", "d/c", "e", "g"} {
		files[p] = randBytes(uint64(len(p)+int(p[len(p)-1])), 50_000)
	}
	f.change(files)
	f.damage("d/b", 10)
	if err := os.Remove(filepath.Join(f.d.Root, "g")); err != nil {
		t.Fatal(err)
	}

	to := filepath.Join(t.TempDir(), "out")
	res, err := f.restore(RestoreRequest{To: to})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore with two unrestorable files: %v, want ErrIncomplete", err)
	}
	if len(res.Failed) != 2 || res.Failed[0].Path != "d/b" || res.Failed[1].Path != "g" {
		t.Fatalf("failed %+v, want d/b and g", res.Failed)
	}
	if !strings.Contains(err.Error(), "2 of 5 files") || !strings.Contains(err.Error(), "d/b") || !strings.Contains(err.Error(), "g (chunk") {
		t.Fatalf("error %q does not say 2 of 5 files and name d/b and g", err)
	}
	if !strings.Contains(res.Failed[1].Error, "neither in the replica nor in the history store") {
		t.Fatalf("missing file g: %q", res.Failed[1].Error)
	}
	for _, p := range []string{"d/a", "d/c", "e"} {
		if got := mustRead(t, filepath.Join(to, p)); !bytes.Equal(got, files[p]) {
			t.Fatalf("restored %s differs", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(to, "d")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("directory d: %v %v, want mode 0750", fi, err)
	}
	if res.Files != 3 || res.Dirs != 1 {
		t.Fatalf("result %+v, want 3 files and 1 dir", res)
	}
}

func TestRestoreOfOlderVersionReadsUnchangedChunksFromReplicaAndTheRestFromHistory(t *testing.T) {
	f := newFixture(t)
	v1 := randBytes(4, 1<<20)
	seq1, _ := f.change(map[string][]byte{"f.bin": v1})
	v2 := bytes.Clone(v1)
	copy(v2[500_000:], randBytes(5, 4096)) // a change in the middle
	f.change(map[string][]byte{"f.bin": v2})

	to := filepath.Join(t.TempDir(), "out")
	res, err := f.restore(RestoreRequest{To: to, Seq: seq1})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(to, "f.bin")); !bytes.Equal(got, v1) {
		t.Fatal("restore of seq 1 differs from version 1")
	}
	if res.HistoryBytes == 0 || res.HistoryBytes > 200_000 {
		t.Fatalf("history bytes %d, want only the changed chunks (> 0, far less than %d)", res.HistoryBytes, len(v1))
	}
}

func TestRestoreRefusesSeqAfterNewestAndTimeInTheFuture(t *testing.T) {
	f := newFixture(t)
	f.change(map[string][]byte{"a": []byte("1")})
	seq, _ := f.change(map[string][]byte{"a": []byte("2")})

	_, err := f.restore(RestoreRequest{To: t.TempDir(), Seq: seq + 1})
	if !errors.Is(err, ErrAfterNewest) || !strings.Contains(err.Error(), "the newest backed-up state of f from laptop is seq 2") {
		t.Fatalf("restore of seq %d: %v, want ErrAfterNewest naming seq 2", seq+1, err)
	}
	future := time.Now().Add(time.Hour)
	_, err = f.restore(RestoreRequest{To: t.TempDir(), At: future})
	if !errors.Is(err, ErrAfterNewest) || !strings.Contains(err.Error(), "is in the future") {
		t.Fatalf("restore at %s: %v, want ErrAfterNewest saying it is in the future", future, err)
	}
	to := t.TempDir()
	if res, err := f.restore(RestoreRequest{To: to, Seq: seq}); err != nil || res.Seq != seq {
		t.Fatalf("restore of the newest seq %d: %+v, %v", seq, res, err)
	}
}

func TestRestoreDryRunWritesNothingAndListsWhatWouldBeRestored(t *testing.T) {
	f := newFixture(t)
	f.change(map[string][]byte{"d": dirMark, "d/a": []byte("hello"), "b": randBytes(6, 70_000), "gone": []byte("x")})
	seq, _ := f.change(map[string][]byte{"gone": nil})
	// the deleted file's content is kept in the history store; lose it
	if err := os.RemoveAll(f.d.History.Chunks.Dir()); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "out")
	res, err := f.restore(RestoreRequest{To: to, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(to); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dry run created %s (lstat err %v)", to, err)
	}
	if !res.DryRun || res.Files != 2 || res.Dirs != 1 || res.Bytes != 70_005 || len(res.Entries) != 3 || len(res.Failed) != 0 {
		t.Fatalf("dry run of the newest state: %+v", res)
	}
	if e := res.Entries[0]; e.Path != "b" || e.Kind != "file" || e.Size != 70_000 {
		t.Fatalf("first entry %+v, want file b of 70000 bytes", e)
	}

	// before the deletion: "gone" would fail, its content is nowhere
	res, err = f.restore(RestoreRequest{To: to, DryRun: true, Seq: seq - 1})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "would not be restored") {
		t.Fatalf("dry run of seq %d with a file whose content is gone: %v, want ErrIncomplete saying it would not be restored", seq-1, err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Path != "gone" || res.Files != 2 {
		t.Fatalf("dry run of seq %d: failed %+v, files %d; want gone named and 2 files", seq-1, res.Failed, res.Files)
	}

	// a non-empty target is refused as by a real restore
	os.MkdirAll(to, 0o755)
	os.WriteFile(filepath.Join(to, "x"), nil, 0o644)
	if _, err := f.restore(RestoreRequest{To: to, DryRun: true}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("dry run into a non-empty target: %v, want ErrNotEmpty", err)
	}
}

// cancelAfterFirstWrite returns a context cancelled once the restore has
// written its first bytes.
func cancelAfterFirstWrite(t *testing.T) (context.Context, func(done, total int64)) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, func(done, total int64) { cancel() }
}

func TestRestoreThatFailsRemovesTheTargetItCreated(t *testing.T) {
	f := newFixture(t)
	f.change(map[string][]byte{"a": []byte("first"), "b": []byte("second"), "c/d": []byte("third")})
	parent := t.TempDir()
	to := filepath.Join(parent, "new", "out")
	ctx, progress := cancelAfterFirstWrite(t)
	_, err := Restore(ctx, f.d, RestoreRequest{Source: "src", Folder: "f", To: to}, progress)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("restore cancelled after its first file: %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(parent, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the directories the failed restore created are still there (lstat err %v)", err)
	}
}

func TestRestoreThatFailsLeavesAnEmptyTargetEmpty(t *testing.T) {
	f := newFixture(t)
	f.change(map[string][]byte{"a": []byte("first"), "b": []byte("second")})
	to := t.TempDir()
	ctx, progress := cancelAfterFirstWrite(t)
	if _, err := Restore(ctx, f.d, RestoreRequest{Source: "src", Folder: "f", To: to}, progress); !errors.Is(err, context.Canceled) {
		t.Fatalf("restore cancelled after its first file: %v, want context.Canceled", err)
	}
	if s := snapshot(t, to); len(s) != 1 {
		t.Fatalf("the empty target holds %v after a failed restore, want nothing", s)
	}
}

func TestRestoreThatFailsIntoNonEmptyTargetPutsBackEverythingItChanged(t *testing.T) {
	f := newFixture(t)
	f.change(map[string][]byte{
		"a.txt": []byte("backed-up a"), "d": dirMark, "d/x": []byte("backed-up x"),
		"file-over-dir": []byte("backed-up file"), "new/deep/y": []byte("backed-up y"), "z": []byte("last"),
	})
	to := t.TempDir()
	mustWriteFile(t, filepath.Join(to, "a.txt"), "mine a", 0o600)
	mustWriteFile(t, filepath.Join(to, "keep.txt"), "not in the backup", 0o644)
	mustWriteFile(t, filepath.Join(to, "d/x"), "mine x", 0o644)
	mustWriteFile(t, filepath.Join(to, "file-over-dir/inner"), "a dir where the backup has a file", 0o644)
	if err := os.Chmod(filepath.Join(to, "d"), 0o711); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, to)

	// cancel when the last file (z) is being written: everything else is done
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var written int64
	progress := func(done, total int64) {
		if written = done; done >= total-int64(len("last")) {
			cancel()
		}
	}
	_, err := Restore(ctx, f.d, RestoreRequest{Source: "src", Folder: "f", To: to, Force: true}, progress)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("restore cancelled at its last file: %v (after %d bytes), want context.Canceled", err, written)
	}
	after := snapshot(t, to)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s: %q after the failed restore, want %q as before", p, after[p], v)
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s (%s) left by the failed restore", p, v)
		}
	}

	// the same restore, not interrupted, replaces them and removes what it set aside
	if _, err := f.restore(RestoreRequest{To: to, Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(to, "file-over-dir")); string(got) != "backed-up file" {
		t.Fatalf("file-over-dir: %q", got)
	}
	if got := mustRead(t, filepath.Join(to, "keep.txt")); string(got) != "not in the backup" {
		t.Fatalf("keep.txt: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(to, "*", ".vigil-tmp-*")); len(left) > 0 {
		t.Fatalf("set-aside copies left after a restore that succeeded: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(to, ".vigil-tmp-*")); len(left) > 0 {
		t.Fatalf("set-aside copies left after a restore that succeeded: %v", left)
	}
}

func mustWriteFile(t *testing.T, p, data string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreAtTimeOfABaselineAtSeqZeroAndRefusesEarlierSeqNamingTheOldest(t *testing.T) {
	f := newFixture(t)
	f.next = 0 // the baseline of a source whose journal was empty
	_, t0 := f.change(map[string][]byte{"a": []byte("baseline a"), "b": []byte("baseline b")})
	f.change(map[string][]byte{"a": []byte("second a")})
	f.change(map[string][]byte{"b": []byte("third b")})

	to := t.TempDir()
	res, err := f.restore(RestoreRequest{To: to, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustRead(t, filepath.Join(to, "a")), mustRead(t, filepath.Join(to, "b")); res.Seq != 0 || string(a) != "baseline a" || string(b) != "baseline b" {
		t.Fatalf("restore at the baseline's time: seq %d, a %q, b %q", res.Seq, a, b)
	}
	res, err = f.restore(RestoreRequest{To: t.TempDir(), Seq: 1})
	if err != nil || res.Seq != 1 {
		t.Fatalf("restore of seq 1 after a baseline at seq 0: %+v, %v", res, err)
	}
}
