package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/restore"
)

func pointsJSON(t *testing.T, m *e2eMesh, dst, src *e2eNode, more ...string) restore.PointsReport {
	t.Helper()
	args := append([]string{"points", "--home", dst.home, "--source", src.name, "--folder", "docs", "--json"}, more...)
	code, stdout, stderr := m.vigil(60*time.Second, args...)
	if code != 0 {
		t.Fatalf("vigil %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	var rep restore.PointsReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("vigil %s: %v\n%s", strings.Join(args, " "), err, stdout)
	}
	return rep
}

func TestE2EPointsListsEachChangeOnlineAndOfflineAndRestoreTakesThem(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	mustWrite(t, filepath.Join(dir, "a.txt"), []byte("version one\n"), 0o644)
	mustWrite(t, filepath.Join(dir, "b.txt"), []byte("bee\n"), 0o644)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	mustWrite(t, filepath.Join(dir, "a.txt"), []byte("version two, longer\n"), 0o644)
	src.waitSynced()
	if err := os.Remove(filepath.Join(dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	src.waitSynced()

	online := pointsJSON(t, m, dst, src)
	n := len(online.Points)
	if n < 3 || online.Total != n || !online.Retained {
		t.Fatalf("points: %+v, want at least 3 (the baseline, a.txt changed, b.txt deleted)", online)
	}
	first, last := online.Points[0], online.Points[n-1]
	if first.Files != 2 || first.Bytes != int64(len("version one\n")+len("bee\n")) {
		t.Fatalf("first point %+v, want the baseline: 2 files, %d bytes", first, len("version one\n")+len("bee\n"))
	}
	if last.Files != 1 || last.Deleted != 1 || last.Seq != online.NewestSeq {
		t.Fatalf("last point %+v, want b.txt deleted at the newest seq %d", last, online.NewestSeq)
	}

	limited := pointsJSON(t, m, dst, src, "--limit", "1")
	if len(limited.Points) != 1 || limited.Points[0] != last || limited.Total != n {
		t.Fatalf("points --limit 1: %+v, want only the last point of %d", limited, n)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if rep := pointsJSON(t, m, dst, src, "--since", future); len(rep.Points) != 0 {
		t.Fatalf("points --since %s: %+v, want none", future, rep.Points)
	}
	code, stdout, stderr := m.vigil(60*time.Second, "points", "--home", dst.home, "--source", src.name, "--folder", "docs", "--since", "1h")
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("laptop/docs: %d restore points, the newest state is seq %d", n, online.NewestSeq)) ||
		!strings.Contains(stdout, "TIME") || !strings.Contains(stdout, "DELETED") {
		t.Fatalf("points --since 1h: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = m.vigil(60*time.Second, "points", "--home", dst.home, "--source", src.name, "--folder", "docs", "--since", "yesterday")
	if line := oneLine(t, stderr); code != 2 || !strings.Contains(line, "--since") {
		t.Fatalf("points --since yesterday: exit %d, %q; want exit 2 naming --since", code, stderr)
	}

	// the state right after the point before the last: b.txt still there
	before := online.Points[n-2]
	out := filepath.Join(m.root, "out")
	code, _, stderr = m.vigil(60*time.Second, restoreArgs(dst, src, out, "--seq", fmt.Sprint(before.Seq))...)
	if code != 0 {
		t.Fatalf("restore --seq %d: exit %d: %s", before.Seq, code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(out, "b.txt")); err != nil || string(b) != "bee\n" {
		t.Fatalf("restore --seq %d: b.txt %q (%v), want it as before its deletion", before.Seq, b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "version two, longer\n" {
		t.Fatalf("restore --seq %d: a.txt %q, want version two", before.Seq, b)
	}

	dst.stop()
	offline := pointsJSON(t, m, dst, src)
	if len(offline.Points) != n || offline.Points[n-1] != last || offline.NewestSeq != online.NewestSeq {
		t.Fatalf("points offline: %+v, want the same as online: %+v", offline, online)
	}
}
