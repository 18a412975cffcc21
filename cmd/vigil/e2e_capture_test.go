package main

// End-to-end tests of consistent capture (docs/capture.md): programs that
// keep files changing together (a database in WAL mode, a git
// repository) run against real `vigil` nodes, and restores at moments
// during the run must give files that existed together.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// restoreAt restores the folder docs of src as it was at t into a new
// directory and returns it.
func restoreAt(t *testing.T, m *e2eMesh, dst *e2eNode, at time.Time, name string) string {
	t.Helper()
	out := filepath.Join(m.root, name)
	code, stdout, stderr := m.vigil(60*time.Second, "restore", "--home", dst.home, "--source", "laptop", "--folder", "docs",
		"--to", out, "--at", at.UTC().Format(time.RFC3339Nano))
	if code != 0 {
		t.Fatalf("restore --at %s: exit %d\nstdout: %s\nstderr: %s", at.Format(time.RFC3339Nano), code, stdout, stderr)
	}
	return out
}

// captureFigures returns the source's consistent-capture counters from
// its metrics endpoint.
func captureFigures(t *testing.T, n *e2eNode) string {
	t.Helper()
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		return "metrics: " + err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "vigil_node_capture_") && !strings.Contains(l, "_seconds") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

func freeMetricsAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)) }

// A database in WAL mode under a steady stream of commits, with
// checkpoints (automatic ones, and a truncating one every second): a
// restore at any moment of the stream gives a database that passes
// integrity_check and holds every row committed at least 1.5 s before
// that moment.
func TestE2ESQLiteInWALModeRestoresWholeAtEveryMoment(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	src, dst := twoNodes(t, m, dir)
	src.metrics = freeMetricsAddr(t)
	dst.start()
	src.start()
	src.waitSynced()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(100)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection for the whole run: the WAL is never deleted
	if _, err := db.Exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, payload BLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}

	// the stream: one insert per commit, about every 2 ms, for 8 s
	const run, every = 8 * time.Second, 2 * time.Millisecond
	rng := rand.New(rand.NewPCG(3, 9))
	var committed []time.Time // committed[i] = when row i+1 was committed
	truncations := 0
	begin := time.Now()
	lastTrunc := begin
	for k := 1; time.Since(begin) < run; k++ {
		payload := make([]byte, 100+rng.IntN(400))
		for i := range payload {
			payload[i] = byte(rng.Uint32())
		}
		if _, err := db.Exec("INSERT INTO rows (id, at, payload) VALUES (?, ?, ?)", len(committed)+1, time.Now().UnixNano(), payload); err != nil {
			t.Fatal(err)
		}
		committed = append(committed, time.Now())
		if time.Since(lastTrunc) >= time.Second {
			if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
			truncations++
			lastTrunc = time.Now()
		}
		if d := time.Until(begin.Add(time.Duration(k) * every)); d > 0 {
			time.Sleep(d) // the stream's pace, not a synchronisation
		}
	}
	end := time.Now()
	t.Logf("%d commits in %v, %d truncating checkpoints (and an automatic one every 100 pages)",
		len(committed), end.Sub(begin).Round(time.Millisecond), truncations)
	src.waitSynced()

	// every 250 ms of the stream, from 2 s in, and its end
	var moments []time.Time
	for at := begin.Add(2 * time.Second); at.Before(end); at = at.Add(250 * time.Millisecond) {
		moments = append(moments, at)
	}
	moments = append(moments, end.Add(500*time.Millisecond))
	for i, at := range moments {
		out := restoreAt(t, m, dst, at, fmt.Sprintf("restore-%02d", i))
		// rows committed at least 1.5 s before the moment must be there
		want := 0
		for want < len(committed) && !committed[want].After(at.Add(-1500*time.Millisecond)) {
			want++
		}
		rdb, err := sql.Open("sqlite", "file:"+filepath.Join(out, "app.db"))
		if err != nil {
			t.Fatal(err)
		}
		var check string
		if err := rdb.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			rdb.Close()
			t.Fatalf("moment %s: integrity_check = %q, %v", at.Format(time.RFC3339Nano), check, err)
		}
		var n, maxID int
		if err := rdb.QueryRow("SELECT count(*), coalesce(max(id), 0) FROM rows").Scan(&n, &maxID); err != nil {
			rdb.Close()
			t.Fatalf("moment %s: %v", at.Format(time.RFC3339Nano), err)
		}
		rdb.Close()
		if n != maxID {
			t.Fatalf("moment %s: %d rows but ids up to %d: rows missing from the middle", at.Format(time.RFC3339Nano), n, maxID)
		}
		if n < want {
			t.Fatalf("moment %s (%.1f s into the stream): %d rows, but %d were committed at least 1.5 s before",
				at.Format(time.RFC3339Nano), at.Sub(begin).Seconds(), n, want)
		}
		t.Logf("moment %5.2f s: integrity ok, %d rows (%d committed 1.5 s before, %d by then)",
			at.Sub(begin).Seconds(), n, want, committedBy(committed, at))
	}
	t.Logf("source: %s", captureFigures(t, src))
}

func committedBy(committed []time.Time, at time.Time) int {
	n := 0
	for n < len(committed) && !committed[n].After(at) {
		n++
	}
	return n
}

// A git repository in the folder: commits, branch switches and a `git gc`
// while the folder is captured; a restore at moments during the run is a
// repository that passes `git fsck`.
func TestE2EGitRepositoryRestoresPassFsckAtMomentsDuringTheRun(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	repo := filepath.Join(dir, "repo")
	git := func(dir string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "HOME="+m.root)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	git(repo, "init", "-q", "-b", "main")
	mustWrite(t, filepath.Join(repo, "README"), []byte("start\n"), 0o644)
	git(repo, "add", "-A")
	git(repo, "commit", "-q", "-m", "start")

	src, dst := twoNodes(t, m, dir)
	src.metrics = freeMetricsAddr(t)
	dst.start()
	src.start()
	src.waitSynced()

	rng := rand.New(rand.NewPCG(5, 5))
	var moments []time.Time
	begin := time.Now()
	for round := 0; round < 6; round++ {
		branch := fmt.Sprintf("topic-%d", round)
		git(repo, "checkout", "-q", "-b", branch)
		for c := 0; c < 8; c++ {
			for f := 0; f < 4; f++ {
				data := make([]byte, 200+rng.IntN(20000))
				for i := range data {
					data[i] = byte('a' + rng.IntN(26))
				}
				mustWrite(t, filepath.Join(repo, fmt.Sprintf("src/d%d/f%d.txt", rng.IntN(4), rng.IntN(30))), data, 0o644)
			}
			git(repo, "add", "-A")
			git(repo, "commit", "-q", "-m", fmt.Sprintf("round %d commit %d", round, c))
			moments = append(moments, time.Now())
		}
		git(repo, "checkout", "-q", "main")
		git(repo, "merge", "-q", "--no-ff", "-m", "merge "+branch, branch)
		moments = append(moments, time.Now())
		if round%2 == 1 {
			git(repo, "gc", "-q", "--prune=now")
			moments = append(moments, time.Now())
		}
	}
	end := time.Now()
	t.Logf("git workload: 6 rounds of 8 commits, merges and 3 gc in %v", end.Sub(begin).Round(time.Millisecond))
	src.waitSynced()
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))

	// the moments after operations, and moments between them
	var at []time.Time
	for i, mo := range moments {
		if i%4 == 0 {
			at = append(at, mo)
		}
	}
	for x := begin.Add(300 * time.Millisecond); x.Before(end); x = x.Add(1100 * time.Millisecond) {
		at = append(at, x)
	}
	for i, mo := range at {
		out := restoreAt(t, m, dst, mo, fmt.Sprintf("git-%02d", i))
		r := filepath.Join(out, "repo")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "git", "fsck", "--full", "--no-progress")
		cmd.Dir = r
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+m.root)
		fsck, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("moment %.2f s into the run: git fsck of the restore failed: %v\n%s", mo.Sub(begin).Seconds(), err, fsck)
		}
		log := git(r, "log", "--oneline", "-1")
		t.Logf("moment %5.2f s: fsck ok, HEAD %s", mo.Sub(begin).Seconds(), strings.TrimSpace(log))
	}
	t.Logf("source: %s", captureFigures(t, src))
}
