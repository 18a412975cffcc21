package node

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/wire"
	"github.com/vigil-mesh/vigil/store"
)

// Fault tests: each case of "synced means synced". A failure that keeps a
// change from being backed up must show in lag and status (errors), make
// wait-synced give up at once naming it, block only what it must, and be
// recovered from without a restart once it is gone.

// waitNotSynced runs WaitSynced on tn and requires it to give up (well
// before d) with an error whose path is path ("" for a whole-folder
// error) and whose message contains msg.
func waitNotSynced(t *testing.T, tn *testNode, d time.Duration, path, msg string) control.LagReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	rep, ok := tn.n.WaitSynced(ctx)
	if ok {
		t.Fatalf("%s: wait-synced said synced; want an error on %q (%s)", tn.name, path, msg)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: wait-synced waited out its %v instead of giving up at once (after %v): %+v", tn.name, d, time.Since(start), rep.Pairs)
	}
	if !reportHasError(rep, path, msg) {
		t.Fatalf("%s: wait-synced gave up without an error on %q containing %q: %+v", tn.name, path, msg, rep.Pairs)
	}
	return rep
}

func reportHasError(rep control.LagReport, path, msg string) bool {
	for _, p := range rep.Pairs {
		for _, e := range p.Errors {
			if e.Path == path && strings.Contains(e.Error, msg) && !e.Since.IsZero() {
				return true
			}
		}
	}
	return false
}

func fastRetries(o *options) { o.problemRetry = 100 * time.Millisecond }

func TestJournalThatCannotBeWrittenLosesNoChangeAndRecoversWithoutRestart(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.cfg.Node.JournalMaxBytes = 64 << 10 // small segments, so compaction can be seen
	var faulty *journal.Faulty
	lap.opts = append(lap.opts, WithJournal(func(_ string, j journal.Log) journal.Log {
		faulty = journal.NewFaulty(j)
		return faulty
	}))
	writeFile(t, filepath.Join(src, "log.txt"), []byte("start\n"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	firstBefore := lap.n.Status().Folders[0].JournalFirst

	faulty.Fail(syscall.ENOSPC)
	for i := range 21 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("new/%02d.txt", i)), bytes.Repeat([]byte{byte(i)}, 3000+i), 0o644)
	}
	f, err := os.OpenFile(filepath.Join(src, "log.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		fmt.Fprintf(f, "append %d\n", i)
	}
	f.Close()
	waitNotSynced(t, lap, 20*time.Second, "", "no space left on device")
	if st := lap.n.Status(); len(st.Folders[0].Errors) == 0 {
		t.Fatalf("status shows no error for the folder while its journal cannot be written: %+v", st.Folders[0])
	}

	faulty.Heal() // space is back: no restart
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	if errs := lap.n.Status().Folders[0].Errors; len(errs) != 0 {
		t.Fatalf("errors left after recovery: %+v", errs)
	}
	// more changes, and the journal is compacted as the backup acknowledges
	// (files written together may share a group record: count records
	// by seq, not by file)
	recovered := lap.n.Status().Folders[0].JournalLast
	for i := range 40 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("more/%02d.txt", i)), bytes.Repeat([]byte{byte(i)}, 2000), 0o644)
	}
	lap.waitSynced(30 * time.Second)
	waitFor(t, 20*time.Second, "the journal compacted after the recovery", func() bool {
		return lap.n.Status().Folders[0].JournalFirst > max(firstBefore, recovered)
	})
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

func TestUnreadablePathsAreNamedAndEverythingElseIsBackedUp(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var faults baseline.Faults
	lap.opts = append(lap.opts, fastRetries, func(o *options) { o.readFaults = &faults })
	for _, p := range []string{"a.txt", "secret.txt", "private/x.txt", "private/y/z.txt", "sub/b.txt"} {
		writeFile(t, filepath.Join(src, p), []byte("content of "+p), 0o644)
	}
	// unreadable before the first sync: the first baseline must not be blocked
	faults.FailRead("secret.txt", syscall.EACCES)
	faults.FailRead("private", syscall.EACCES)
	lap.start()
	nas.start()
	rep := waitNotSynced(t, lap, 20*time.Second, "secret.txt", "permission denied")
	if !reportHasError(rep, "private", "permission denied") {
		t.Fatalf("the unreadable directory is not named: %+v", rep.Pairs)
	}
	dst := nas.replicaDir(lap, "docs")
	waitFor(t, 20*time.Second, "the readable files backed up", func() bool {
		for _, p := range []string{"a.txt", "sub/b.txt"} {
			if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != "content of "+p {
				return false
			}
		}
		return true
	})

	faults.Clear("") // permissions fixed
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, dst)

	// a file that becomes unreadable and then changes: not synced, named
	faults.FailRead("a.txt", syscall.EACCES)
	writeFile(t, filepath.Join(src, "a.txt"), []byte("changed while unreadable"), 0o644)
	waitNotSynced(t, lap, 20*time.Second, "a.txt", "permission denied")
	if b, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(b) != "content of a.txt" {
		t.Fatalf("the backup's copy of a.txt changed to %q; it should keep the last version read", b)
	}
	faults.Clear("a.txt")
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, dst)
}

// Names Linux allows in a folder, including ones that look like vigil's
// own temporary files, replicate: present before the first sync and made
// while live.
func TestEveryNameLinuxAllowsReplicates(t *testing.T) {
	names := []string{`..\x`, `a\..\..\b`, ".vigil-tmp-notes", ".vigil-tmp-dir/inside", "new\nline", "bad\xff\xfeutf8",
		strings.Repeat("n", 255), "sp ace/ tab\t", "-dash", "~tilde"}
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	for i, n := range names {
		writeFile(t, filepath.Join(src, "before", n), []byte(fmt.Sprint("before ", i)), 0o644)
	}
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	for i, n := range names {
		writeFile(t, filepath.Join(src, "live", n), []byte(fmt.Sprint("live ", i)), 0o644)
	}
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

func TestNameTheBackupCannotWriteIsAnErrorAndTheFolderGoesOn(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var faults store.Faults
	nas.opts = append(nas.opts, fastRetries, func(o *options) { o.replicaFaults = &faults })
	faults.FailPath("refused.txt", syscall.ENAMETOOLONG)
	writeFile(t, filepath.Join(src, "refused.txt"), []byte("r"), 0o644)
	writeFile(t, filepath.Join(src, "ok.txt"), []byte("o"), 0o644)
	lap.start()
	nas.start()
	// the source learns it from the backup's acknowledgement
	waitNotSynced(t, lap, 20*time.Second, "refused.txt", "file name too long")
	dst := nas.replicaDir(lap, "docs")
	if b, err := os.ReadFile(filepath.Join(dst, "ok.txt")); err != nil || string(b) != "o" {
		t.Fatalf("ok.txt in the replica: %q, %v", b, err)
	}
	// the folder goes on: later files arrive, including a refused one
	writeFile(t, filepath.Join(src, "later.txt"), []byte("l"), 0o644)
	writeFile(t, filepath.Join(src, "refused.txt"), []byte("r2"), 0o644)
	waitFor(t, 20*time.Second, "later.txt in the replica", func() bool {
		b, err := os.ReadFile(filepath.Join(dst, "later.txt"))
		return err == nil && string(b) == "l"
	})
	waitNotSynced(t, nas, 20*time.Second, "refused.txt", "file name too long")

	faults.Clear()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, dst)
}

func TestBackupDiskFullIsReportedOnBothSidesAndRecovers(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var faults store.Faults
	nas.opts = append(nas.opts, func(o *options) { o.replicaFaults = &faults })
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)

	faults.FailWrites(syscall.ENOSPC)
	for i := range 10 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{byte(i)}, 5000), 0o644)
	}
	waitNotSynced(t, lap, 20*time.Second, "", "no space left on device")
	waitNotSynced(t, nas, 20*time.Second, "", "no space left on device")
	st := nas.n.Status().Replicas[0]
	if len(st.Errors) == 0 || !strings.Contains(st.LastError, "no space left") {
		t.Fatalf("status of the replica shows no disk-full error: %+v", st)
	}

	faults.Clear()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	if errs := nas.n.Status().Replicas[0].Errors; len(errs) != 0 {
		t.Fatalf("errors left after the disk has space again: %+v", errs)
	}
}

// Records that were durable and then lost from the source's disk (a
// segment cut short) are not silently missing on the backup: their seqs
// are never issued again and the backup takes a new baseline.
func TestLostJournalRecordsMakeTheBackupRebaselineNotMissChanges(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	nas.stop() // the backup does not see what follows

	seg := func() (string, int64) {
		ms, _ := filepath.Glob(filepath.Join(lap.cfg.DataPath(), "journal", "docs", "*"))
		var last string
		for _, m := range ms {
			if strings.HasSuffix(m, ".seg") {
				last = m
			}
		}
		fi, err := os.Stat(last)
		if err != nil {
			t.Fatalf("journal segment: %v (%v)", err, ms)
		}
		return last, fi.Size()
	}
	_, before := seg()
	for i := range 6 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("lost%d", i)), bytes.Repeat([]byte{byte(i)}, 1000), 0o644)
		if err := lap.n.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	headBefore := lap.n.Status().Folders[0].JournalLast
	lap.stop()
	path, after := seg()
	// cut the segment in the middle of the new records
	if err := os.Truncate(path, before+(after-before)/3); err != nil {
		t.Fatal(err)
	}
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	if head := lap.n.Status().Folders[0].JournalLast; head < headBefore {
		t.Fatalf("journal head %d after the loss, below the %d already issued: seqs would be reused", head, headBefore)
	}
}

func TestDamagedReplicaFileIsRepairedNotBuiltUponAndRepairFixesWhatVerifyFinds(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	data := randBytes(11, 1<<20)
	writeFile(t, filepath.Join(src, "big.bin"), data, 0o644)
	writeFile(t, filepath.Join(src, "other.bin"), randBytes(12, 300<<10), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	dst := nas.replicaDir(lap, "docs")

	// one byte flipped in the replica, mtime kept
	damage := func(p string, off int64) {
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
		f.ReadAt(b, off)
		b[0] ^= 0xff
		f.WriteAt(b, off)
		f.Close()
		os.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
	damage(filepath.Join(dst, "big.bin"), 1000)
	// an append at the source: the backup must not build it on the damage
	f, err := os.OpenFile(filepath.Join(src, "big.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("appended"))
	f.Close()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, dst)

	// damage and a missing file found by verify are fixed by repair
	damage(filepath.Join(dst, "other.bin"), 5)
	if err := os.Remove(filepath.Join(dst, "big.bin")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reps, err := nas.n.Repair(ctx, "laptop", "docs")
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || len(reps[0].Before.Problems) < 2 || !reps[0].After.OK {
		t.Fatalf("repair: %+v", reps)
	}
	requireSame(t, src, dst)
}

// A backup killed after renaming a file into place and before saving its
// index row restarts with the file newer than its index says. The record
// it applies again must not copy "unchanged" chunks from the newer bytes
// at the old offsets (both nodes would then say synced over a corrupt
// file): every chunk copied from the replica is checked.
func TestReplayedRecordAfterAKillBetweenRenameAndCommitDoesNotCorruptTheFile(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	v1 := randBytes(21, 600<<10)
	writeFile(t, filepath.Join(src, "f.bin"), v1, 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	nas.stop()

	// v2: a change in the middle, which shifts nothing before it
	v2 := append(append(append([]byte(nil), v1[:300<<10]...), randBytes(22, 50<<10)...), v1[300<<10:]...)
	writeFile(t, filepath.Join(src, "f.bin"), v2, 0o644)
	if err := lap.n.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// what the killed backup left: v2 in place, the index still at v1
	dst := nas.replicaDir(lap, "docs")
	fi, err := os.Stat(filepath.Join(dst, "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "f.bin"), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dst, "f.bin"), fi.ModTime(), fi.ModTime())

	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, dst)
}

// .vigilignore edits take effect without a restart; a bad file is named
// and the rules in force stay.
func TestIgnoreFileEditsApplyLiveAndABadOneIsNamed(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	for _, p := range []string{"a.txt", "b.log", "keep.log", "logs/x.log"} {
		writeFile(t, filepath.Join(src, p), []byte(p), 0o644)
	}
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	dst := nas.replicaDir(lap, "docs")
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(dst, p)); return err == nil }

	writeFile(t, filepath.Join(src, ".vigilignore"), []byte("# logs stay local\n*.log\n!keep.log\n"), 0o644)
	lap.waitSynced(30 * time.Second)
	waitFor(t, 10*time.Second, "ignored files gone from the replica", func() bool {
		return !exists("b.log") && !exists("logs/x.log") && exists("keep.log") && exists("a.txt") && exists(".vigilignore")
	})
	writeFile(t, filepath.Join(src, "c.log"), []byte("c"), 0o644)
	writeFile(t, filepath.Join(src, "d.txt"), []byte("d"), 0o644)
	lap.waitSynced(30 * time.Second)
	if exists("c.log") || !exists("d.txt") {
		t.Fatalf("after the rules changed: c.log in the replica %v (want false), d.txt %v (want true)", exists("c.log"), exists("d.txt"))
	}

	writeFile(t, filepath.Join(src, ".vigilignore"), []byte("*.log\n[a-\n"), 0o644)
	waitNotSynced(t, lap, 20*time.Second, ".vigilignore", ".vigilignore:2")
	writeFile(t, filepath.Join(src, "e.log"), []byte("e"), 0o644) // the old rules still hold
	writeFile(t, filepath.Join(src, ".vigilignore"), []byte("*.log\n!keep.log\n"), 0o644)
	lap.waitSynced(30 * time.Second)
	if exists("e.log") {
		t.Fatal("e.log was backed up while a bad ignore file was in place")
	}
}

// A source (compromised) claims a head far beyond its journal: the backup
// reports only what the source served.
func TestHeartbeatClaimingAHugeHeadDoesNotPinTheBackupsHead(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	topic := mesh.TopicName(lap.id, "docs")
	if err := c.hub.Publish(lap.id, topic, wire.EncodeHeartbeat(math.MaxUint64)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "b"), []byte("b"), 0o644) // and real traffic goes on
	lap.waitSynced(30 * time.Second)
	nas.waitSynced(30 * time.Second)
	for _, p := range nas.n.Lag().Pairs {
		if p.HeadSeq > 10 {
			t.Fatalf("backup's head_seq %d after a claimed head of 2^64-1; want what the source served", p.HeadSeq)
		}
	}
}

// A source publishing big records beyond a gap that never fills cannot
// make the backup hold more than a bounded buffer; replication goes on.
func TestRecordsBeyondAGapAreBufferedOnlyUpToABound(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	topic := mesh.TopicName(lap.id, "docs")
	payload := bytes.Repeat([]byte{1}, 200<<10)
	for i := range 400 { // 80 MB of records that can never apply
		rec := wire.Record{Seq: 1000 + uint64(i), Time: time.Now(), Payload: payload}
		if err := c.hub.Publish(lap.id, topic, wire.AppendRecord([]byte{wire.PubRecord}, rec)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(src, "b"), []byte("b"), 0o644)
	lap.waitSynced(30 * time.Second)
	nas.stop() // the run goroutine owns the buffer: read it once it stopped
	if held := nas.lastReplicas[0].PendingBytes(); held > 32<<20 {
		t.Fatalf("the backup holds %d bytes of out-of-order records, want at most 32 MiB", held)
	}
}

// A file whose bytes the source cannot send when a backup copies it (read
// errors there, or the file changed and changed back) is not taken as
// backed up: the baseline goes on, the path is an error of the pair until
// it is copied, and it is copied once the source can send it, without a
// change to the file.
func TestFileTheSourceCannotSendIsAnErrorUntilItIsCopied(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var faults baseline.Faults
	lap.opts = append(lap.opts, func(o *options) { o.readFaults = &faults })
	nas.opts = append(nas.opts, fastRetries)
	writeFile(t, filepath.Join(src, "a.txt"), []byte("readable"), 0o644)
	writeFile(t, filepath.Join(src, "dir/b.bin"), randBytes(7, 100_000), 0o640)
	lap.start()
	select { // the first scan read every file
	case <-lap.n.agents[0].Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("first scan not done after 30s")
	}
	faults.FailRead("dir/b.bin", syscall.EIO) // from now on its chunks cannot be read
	nas.start()
	waitNotSynced(t, lap, 20*time.Second, "dir/b.bin", "could not send")
	dst := nas.replicaDir(lap, "docs")
	if b, err := os.ReadFile(filepath.Join(dst, "a.txt")); err != nil || string(b) != "readable" {
		t.Fatalf("a.txt on the backup: %q, %v; the rest of the baseline must go on", b, err)
	}
	faults.Clear("")
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, dst)
}

// An ignored file made and removed in a directory moves the directory's
// mtime; the backup's directory follows before wait-synced says synced.
func TestDirectoryMtimeMovedByAnIgnoredFileIsBackedUp(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.cfg.Folders[0].Ignore = []string{"*.swp"}
	writeFile(t, filepath.Join(src, "notes/todo.txt"), []byte("todo"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
	swp := filepath.Join(src, "notes/.todo.txt.swp")
	writeFile(t, swp, []byte("editor state"), 0o600)
	if err := os.Remove(swp); err != nil {
		t.Fatal(err)
	}
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

// A file written all the time cannot be synced: wait-synced reads it again
// a few times, then gives up at once naming it, instead of saying synced
// while its last change is not captured; once the writer stops it syncs.
func TestFileWrittenOnEveryReadIsNamedByWaitSynced(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var faults baseline.Faults
	lap.opts = append(lap.opts, func(o *options) { o.readFaults = &faults })
	writeFile(t, filepath.Join(src, "busy.log"), []byte("start\n"), 0o644)
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	p := filepath.Join(src, "busy.log")
	faults.DuringRead("busy.log", func() { // a writer racing every read
		if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			f.Write([]byte("x"))
			f.Close()
		}
	})
	writeFile(t, p, []byte("changed\n"), 0o644)
	waitNotSynced(t, lap, 20*time.Second, "busy.log", "changed again each time it was read")
	faults.DuringRead("busy.log", nil) // the writer stops
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

// While a backup has not got the bytes of a path yet (the source could not
// send them), the pair is catching-up with the path pending, never synced;
// the path arrives with the backup's next retry once the source can send.
func TestPathTheSourceCouldNotSendIsPendingNotSynced(t *testing.T) {
	src := t.TempDir()
	c := newCluster(t, "laptop", "nas")
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	var faults baseline.Faults
	lap.opts = append(lap.opts, func(o *options) { o.readFaults = &faults })
	writeFile(t, filepath.Join(src, "a.txt"), []byte("readable"), 0o644)
	writeFile(t, filepath.Join(src, "b.bin"), randBytes(8, 50_000), 0o644)
	lap.start()
	select {
	case <-lap.n.agents[0].Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("first scan not done after 30s")
	}
	faults.FailRead("b.bin", syscall.EIO)
	nas.start()
	var pair control.LagPair
	waitFor(t, 20*time.Second, "the backup to report b.bin pending", func() bool {
		ps := lap.n.Lag().Pairs
		if len(ps) == 1 && ps[0].PendingPaths > 0 {
			pair = ps[0]
			return true
		}
		return false
	})
	if pair.State != control.StateCatchingUp || len(pair.Errors) > 0 {
		t.Fatalf("pair with a pending path: %+v, want catching-up without errors (not yet)", pair)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, ok := lap.n.WaitSynced(ctx)
	cancel()
	if ok {
		t.Fatal("wait-synced said synced while b.bin is not on the backup")
	}
	faults.Clear("")
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}
