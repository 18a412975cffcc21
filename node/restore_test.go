package node

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/restore"

	"golang.org/x/sys/unix"
)

// copyTree copies src to dst keeping content, permission bits, mtimes
// (directories after their children) and symlinks: a snapshot of a source
// tree at one moment, to compare a restore with.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	type dirMeta struct {
		p    string
		mode fs.FileMode
		mt   time.Time
	}
	var dirs []dirMeta
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMeta{out, fi.Mode().Perm(), fi.ModTime()})
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, out); err != nil {
				return err
			}
			ts, _ := unix.TimeToTimespec(fi.ModTime())
			return unix.UtimesNanoAt(unix.AT_FDCWD, out, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, b, fi.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(out, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(out, fi.ModTime(), fi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chmod(dirs[i].p, dirs[i].mode)
		os.Chtimes(dirs[i].p, dirs[i].mt, dirs[i].mt)
	}
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// synced waits until the source's pairs are synced and the replica of
// folder docs equals src.
func synced(t *testing.T, lap, nas *testNode, src string) {
	t.Helper()
	lap.waitSynced(30 * time.Second)
	var diff []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if diff = treeDiff(src, nas.replicaDir(lap, "docs")); len(diff) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source says synced, the replica still differs after 20s:\n%s\nsource lag: %+v",
				strings.Join(diff, "\n"), lap.n.Lag().Pairs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restoreT runs a restore that must succeed.
func restoreT(t *testing.T, n *Node, req restore.RestoreRequest) restore.RestoreResult {
	t.Helper()
	res, err := n.Restore(context.Background(), req, nil)
	if err != nil {
		t.Fatalf("restore %+v: %v", req, err)
	}
	return res
}

func TestRestoreFileAtTimeAndSeqAndWholeFolderAsItWas(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	v1 := append([]byte("version one\n"), randBytes(1, 300_000)...)
	v2 := append([]byte("version two\n"), randBytes(2, 200_000)...)
	writeFile(t, filepath.Join(src, "a.txt"), v1, 0o640)
	writeFile(t, filepath.Join(src, "dir/b.bin"), randBytes(3, 70_000), 0o600)
	writeFile(t, filepath.Join(src, "dir/sub/c"), nil, 0o755)
	os.MkdirAll(filepath.Join(src, "empty"), 0o750)
	os.Symlink("a.txt", filepath.Join(src, "link"))
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	synced(t, lap, nas, src)

	// the tree at T1 (a.txt is v1)
	tree1 := filepath.Join(t.TempDir(), "tree1")
	copyTree(t, src, tree1)
	t1 := time.Now()

	writeFile(t, filepath.Join(src, "a.txt"), v2, 0o644)
	writeFile(t, filepath.Join(src, "dir/new.txt"), []byte("added after T1"), 0o644)
	os.Remove(filepath.Join(src, "dir/b.bin"))
	synced(t, lap, nas, src)
	t2 := time.Now()

	os.Remove(filepath.Join(src, "a.txt"))
	synced(t, lap, nas, src)

	out := t.TempDir()
	// --at between v1 and v2 gives v1
	to := filepath.Join(out, "at-t1")
	res := restoreT(t, nas.n, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, At: t1, Paths: []string{"a.txt"}})
	if got, _ := os.ReadFile(filepath.Join(to, "a.txt")); !bytes.Equal(got, v1) {
		t.Fatalf("restore --at T1 of a.txt: got %d bytes starting %q, want v1", len(got), got[:min(len(got), 12)])
	}
	if res.Files != 1 || res.Bytes != int64(len(v1)) {
		t.Fatalf("restore --at T1 result: %+v, want 1 file of %d bytes", res, len(v1))
	}
	if fi, _ := os.Stat(filepath.Join(to, "a.txt")); fi.Mode().Perm() != 0o640 {
		t.Fatalf("restored a.txt mode %v, want 0640", fi.Mode().Perm())
	}
	// at T2 it is v2
	to = filepath.Join(out, "at-t2")
	restoreT(t, nas.n, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, At: t2, Paths: []string{"a.txt"}})
	if got, _ := os.ReadFile(filepath.Join(to, "a.txt")); !bytes.Equal(got, v2) {
		t.Fatalf("restore --at T2 of a.txt: got %d bytes, want v2", len(got))
	}

	// the newest state has no a.txt and equals the source
	to = filepath.Join(out, "newest")
	restoreT(t, nas.n, restore.RestoreRequest{Source: lap.id.String(), Folder: "docs", To: to})
	if _, err := os.Lstat(filepath.Join(to, "a.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("newest restore has a.txt (err %v), want it absent", err)
	}
	if d := treeDiff(src, to); len(d) > 0 {
		t.Fatalf("newest restore differs from the source:\n%s", strings.Join(d, "\n"))
	}

	// by seq: the seq of the v2 version
	vs, err := nas.n.History("laptop", "docs", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 || vs[len(vs)-1].Entry != nil {
		t.Fatalf("history of a.txt: %d versions, want >= 3 ending with a deletion: %+v", len(vs), vs)
	}
	v2seq := vs[len(vs)-2].Seq
	to = filepath.Join(out, "by-seq")
	res = restoreT(t, nas.n, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, Seq: v2seq, Paths: []string{"a.txt"}})
	if got, _ := os.ReadFile(filepath.Join(to, "a.txt")); !bytes.Equal(got, v2) {
		t.Fatalf("restore --seq %d of a.txt: got %d bytes, want v2", v2seq, len(got))
	}
	if res.Seq > v2seq {
		t.Fatalf("restore --seq %d reports seq %d", v2seq, res.Seq)
	}

	// the whole folder at T1 equals the tree as it was then
	to = filepath.Join(out, "folder-t1")
	restoreT(t, nas.n, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, At: t1})
	if d := treeDiff(tree1, to); len(d) > 0 {
		t.Fatalf("restore of the folder at T1 differs from the tree at T1:\n%s", strings.Join(d, "\n"))
	}

	// and the same offline, once the node stopped
	nas.stop()
	to = filepath.Join(out, "offline-t1")
	if _, err := RestoreOffline(context.Background(), nas.cfg, nil, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, At: t1}, nil); err != nil {
		t.Fatal(err)
	}
	if d := treeDiff(tree1, to); len(d) > 0 {
		t.Fatalf("offline restore of the folder at T1 differs from the tree at T1:\n%s", strings.Join(d, "\n"))
	}
}

func TestRestoreRefusesNonEmptyTargetEarlyTimeAndUnknownPath(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"), 0o644)
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	before := time.Now().Add(-time.Hour)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	to := t.TempDir()
	writeFile(t, filepath.Join(to, "keep.txt"), []byte("mine"), 0o644)
	_, err := nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to}, nil)
	if !errors.Is(err, restore.ErrNotEmpty) || !strings.Contains(err.Error(), to) {
		t.Fatalf("restore into a non-empty dir: %v, want restore.ErrNotEmpty naming %s", err, to)
	}
	res, err := nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, Force: true}, nil)
	if err != nil || res.Files != 1 {
		t.Fatalf("restore with force: %+v, %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "keep.txt")); string(b) != "mine" {
		t.Fatal("restore with force removed a file the backup does not have")
	}

	_, err = nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs", To: t.TempDir(), At: before}, nil)
	if !errors.Is(err, restore.ErrBeforeFirst) || !strings.Contains(err.Error(), "no backup of docs from laptop before") {
		t.Fatalf("restore --at before the first backup: %v", err)
	}
	_, err = nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs", To: t.TempDir(), Paths: []string{"nope/x"}}, nil)
	if !errors.Is(err, restore.ErrNoSuchPath) || !strings.Contains(err.Error(), `"nope/x" never existed`) {
		t.Fatalf("restore of a path that never existed: %v", err)
	}
	_, err = nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "other", To: t.TempDir()}, nil)
	if !errors.Is(err, restore.ErrNoReplica) {
		t.Fatalf("restore of a folder this node does not keep: %v", err)
	}
	_, err = nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs", To: t.TempDir(), At: time.Now(), Seq: 1}, nil)
	if !errors.Is(err, restore.ErrBadRequest) {
		t.Fatalf("restore with both at and seq: %v", err)
	}
	_, err = nas.n.Restore(context.Background(), restore.RestoreRequest{Source: "laptop", Folder: "docs", To: filepath.Join(nas.cfg.DataPath(), "x")}, nil)
	if !errors.Is(err, restore.ErrBadRequest) {
		t.Fatalf("restore into the data dir: %v", err)
	}
}

func TestRestoreThroughControlEndpointReportsProgressAndHistory(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	big := randBytes(9, 3<<20)
	writeFile(t, filepath.Join(src, "big.bin"), big, 0o644)
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	cc := control.NewClient(nas.cfg.ControlAddr())
	defer cc.Close()
	ctx := context.Background()
	to := filepath.Join(t.TempDir(), "out")
	var last, total int64
	res, err := cc.Restore(ctx, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to}, func(d, tot int64) { last, total = d, tot })
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Bytes != int64(len(big)) || last != total || total != int64(len(big)) {
		t.Fatalf("restore over the control endpoint: %+v, progress %d/%d", res, last, total)
	}
	if got, _ := os.ReadFile(filepath.Join(to, "big.bin")); !bytes.Equal(got, big) {
		t.Fatal("restored big.bin differs")
	}
	_, err = cc.Restore(ctx, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to}, nil)
	if !errors.Is(err, restore.ErrNotEmpty) {
		t.Fatalf("second restore into the same dir over the control endpoint: %v, want restore.ErrNotEmpty", err)
	}
	vs, err := cc.History(ctx, "laptop", "docs", "big.bin")
	if err != nil || len(vs) != 1 || vs[0].Entry == nil || vs[0].Entry.Size != int64(len(big)) || vs[0].Seq == 0 && vs[0].Time.IsZero() {
		t.Fatalf("history over the control endpoint: %+v, %v", vs, err)
	}
	if _, err := cc.History(ctx, "laptop", "docs", "nothing"); !errors.Is(err, restore.ErrNoSuchPath) {
		t.Fatalf("history of an unknown path: %v", err)
	}
}

func TestPruneDropsOldVersionsAndFreesTheirChunks(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	writeFile(t, filepath.Join(src, "big.bin"), randBytes(1, 1<<20), 0o644)
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	nas.cfg.BackupFor[0].Retention = config.Duration(3 * time.Second)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	v2 := randBytes(2, 1<<20)
	writeFile(t, filepath.Join(src, "big.bin"), v2, 0o644)
	synced(t, lap, nas, src)
	histBytes := func() int64 { return nas.n.Status().Replicas[0].HistoryBytes }
	if hb := histBytes(); hb < 1<<20 {
		t.Fatalf("history holds %d bytes after big.bin was replaced, want the old version's ~1 MiB", hb)
	}
	if vs, _ := nas.n.History("laptop", "docs", "big.bin"); len(vs) != 2 {
		t.Fatalf("big.bin has %d versions, want 2", len(vs))
	}
	waitFor(t, 20*time.Second, "the old version pruned and its chunks freed", func() bool {
		vs, _ := nas.n.History("laptop", "docs", "big.bin")
		return len(vs) == 1 && histBytes() == 0
	})

	// a newer version still restores from history once it is replaced
	t2 := time.Now()
	v3 := randBytes(3, 1<<20)
	writeFile(t, filepath.Join(src, "big.bin"), v3, 0o644)
	synced(t, lap, nas, src)
	to := t.TempDir()
	res := restoreT(t, nas.n, restore.RestoreRequest{Source: "laptop", Folder: "docs", To: to, At: t2})
	if got, _ := os.ReadFile(filepath.Join(to, "big.bin")); !bytes.Equal(got, v2) {
		t.Fatal("restore of the version kept after pruning differs from it")
	}
	if res.HistoryBytes != int64(len(v2)) {
		t.Fatalf("restore read %d bytes from the history store, want %d", res.HistoryBytes, len(v2))
	}
}
