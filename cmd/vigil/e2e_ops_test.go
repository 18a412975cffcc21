package main

// End-to-end tests of what an operator sees from `vigil run`: how it fails
// on a bad setup, what it logs at start and what its metrics endpoint
// serves.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runNodeUntilExit runs `vigil run --log-format json` for n in the
// foreground (giving up after 20s) and returns its exit code and the one
// line of stderr that is not a JSON log record.
func runNodeUntilExit(t *testing.T, n *e2eNode) (int, string) {
	t.Helper()
	code, _, stderr := n.m.vigil(20*time.Second, "run", "--home", n.home, "--log-format", "json")
	var other []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if !json.Valid([]byte(l)) {
			other = append(other, l)
		}
	}
	if len(other) != 1 || !strings.HasPrefix(other[0], "vigil: ") {
		t.Fatalf("vigil run: exit %d; want exactly one \"vigil: \" line besides the JSON logs, got stderr:\n%s", code, stderr)
	}
	return code, other[0]
}

func requireContains(t *testing.T, line string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("%q does not contain %q", line, w)
		}
	}
}

func TestE2ERunRefusesItsOwnPeerIDInPeersWithAConfigError(t *testing.T) {
	m := newE2EMesh(t)
	n := m.node("solo")
	n.allow(n)
	n.writeConfig()
	code, line := runNodeUntilExit(t, n)
	if code != 2 {
		t.Errorf("exit %d, want 2 (bad config)", code)
	}
	cfgPath := filepath.Join(n.home, "vigil.yaml")
	requireContains(t, line, fmt.Sprintf("%s:%d: peers[0].id: ", cfgPath, lineWith(t, cfgPath, n.id)),
		"own peer ID", fmt.Sprintf("(value %q)", n.id))
}

// lineWith returns the number of the first line of file that contains s.
func lineWith(t *testing.T, file, s string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q", file, s)
	return 0
}

func TestE2ERunRefusesAListenPortAnotherProgramHolds(t *testing.T) {
	m := newE2EMesh(t)
	n := m.node("late")
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
	if err != nil {
		t.Fatalf("hold the node's port: %v", err)
	}
	defer ln.Close()
	n.writeConfig()
	code, line := runNodeUntilExit(t, n)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	requireContains(t, line, "listen on "+n.listenAddr()+": address already in use")
}

func TestE2ETwoNodesCannotListenOnTheSamePort(t *testing.T) {
	m := newE2EMesh(t)
	first, second := m.node("first"), m.node("second")
	first.start()
	second.port = first.port
	second.writeConfig()
	code, line := runNodeUntilExit(t, second)
	if code != 1 {
		t.Errorf("second node: exit %d, want 1", code)
	}
	requireContains(t, line, "listen on "+first.listenAddr()+": address already in use")
	// the first node is unharmed
	if st := first.status(); st.ID != first.id {
		t.Errorf("first node's status names %s, want %s", st.ID, first.id)
	}
}

func TestE2ERunErrorsNameTheirOriginOnce(t *testing.T) {
	m := newE2EMesh(t)

	// data_dir where a file is: node.New fails
	n := m.node("filedata")
	n.writeConfig()
	blocker := filepath.Join(n.home, "data")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, line := runNodeUntilExit(t, n)
	if code != 1 {
		t.Errorf("data_dir is a file: exit %d, want 1", code)
	}
	requireContains(t, line, "vigil: node: data_dir "+blocker+": ")

	// metrics port held by another program: Run fails
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n2 := m.node("busymetrics")
	n2.metrics = ln.Addr().String()
	n2.writeConfig()
	code, line2 := runNodeUntilExit(t, n2)
	if code != 1 {
		t.Errorf("metrics port taken: exit %d, want 1", code)
	}
	requireContains(t, line2, "vigil: node: metrics endpoint "+n2.metrics+": ")

	for _, l := range []string{line, line2} {
		if strings.Contains(l, "node: node:") {
			t.Errorf("%q repeats its origin", l)
		}
	}
}

func TestE2ERestoreOnANodeThatNeverRanSaysRestoreOnce(t *testing.T) {
	m := newE2EMesh(t)
	src, dst := m.node("src"), m.node("dst")
	dst.allow(src)
	dst.keepFor(src, "docs")
	dst.writeConfig()
	code, _, stderr := m.vigil(20*time.Second, "restore", "--home", dst.home, "--source", "src", "--folder", "docs", "--to", filepath.Join(m.root, "out"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	assertOneErrorLine(t, stderr, "vigil: restore: no index in data_dir "+dst.dataDir())
}

// logMessages returns the msg of every JSON log record in n's log file.
func logMessages(t *testing.T, n *e2eNode) []map[string]any {
	t.Helper()
	f, err := os.Open(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func TestE2ERunLogsNodeRunningOnceWithPeerAndVersion(t *testing.T) {
	m := newE2EMesh(t)
	n := m.node("once")
	n.start()
	var running []map[string]any
	var starting map[string]any
	// node.Run logs "node running" after it listens; the control endpoint
	// may answer a moment earlier.
	pollUntil(t, 10*time.Second, `"node running" in the log`, func() bool {
		running = running[:0]
		for _, rec := range logMessages(t, n) {
			switch rec["msg"] {
			case "node running":
				running = append(running, rec)
			case "starting node":
				starting = rec
			}
		}
		return len(running) > 0
	})
	n.stop() // nothing is logged at start after this
	running = running[:0]
	for _, rec := range logMessages(t, n) {
		if rec["msg"] == "node running" {
			running = append(running, rec)
		}
	}
	if len(running) != 1 {
		t.Fatalf("\"node running\" logged %d times, want once: %v", len(running), running)
	}
	if running[0]["peer"] != n.id {
		t.Errorf("\"node running\" peer = %v, want %s", running[0]["peer"], n.id)
	}
	b := binaryBuild(t)
	if starting == nil || starting["version"] != b.Version || starting["commit"] != b.Commit || starting["home"] != n.home {
		t.Errorf("\"starting node\" = %v, want version %q, commit %q, home %q", starting, b.Version, b.Commit, n.home)
	}
}

// scrape returns the text of n's /metrics.
func scrape(t *testing.T, n *e2eNode) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.metrics+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", n.metrics, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v", n.metrics, resp.Status, err)
	}
	return string(body)
}

// metricTypes maps each metric family in a Prometheus text exposition to its
// type, and returns the sample lines.
func metricTypes(text string) (map[string]string, []string) {
	types := map[string]string{}
	var samples []string
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			if name, typ, ok := strings.Cut(rest, " "); ok {
				types[name] = typ
			}
		} else if l != "" && !strings.HasPrefix(l, "#") {
			samples = append(samples, l)
		}
	}
	return types, samples
}

func TestE2EMetricsServeRuntimeProcessBuildInfoAndStreamByteCounter(t *testing.T) {
	m := newE2EMesh(t)
	a, b := m.node("a"), m.node("b")
	a.metrics = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	a.allow(b)
	b.allow(a)
	a.start()
	b.start()
	pollUntil(t, 30*time.Second, "a connected to b", func() bool {
		p, ok := peerOf(a.status(), b.id)
		return ok && p.Connected
	})

	// libp2p publishes its byte totals once a second
	var text string
	pollUntil(t, 10*time.Second, "vigil_mesh_stream_bytes_total on /metrics", func() bool {
		text = scrape(t, a)
		return strings.Contains(text, "\nvigil_mesh_stream_bytes_total{")
	})
	types, samples := metricTypes(text)
	for name, typ := range map[string]string{
		"go_goroutines":                 "gauge",
		"process_resident_memory_bytes": "gauge",
		"vigil_build_info":              "gauge",
		"vigil_mesh_stream_bytes_total": "counter",
		"vigil_mesh_connected_peers":    "gauge",
	} {
		if types[name] != typ {
			t.Errorf("metric %s: type %q, want %q", name, types[name], typ)
		}
	}
	for name := range types {
		if strings.HasSuffix(name, "_per_second") {
			t.Errorf("metric %s is a rate the node samples; want only counters (rate() is the query's)", name)
		}
	}
	bi := binaryBuild(t)
	wantInfo := fmt.Sprintf(`vigil_build_info{commit=%q,goversion=%q,version=%q} 1`, bi.Commit, bi.GoVersion, bi.Version)
	found := false
	for _, s := range samples {
		found = found || s == wantInfo
	}
	if !found {
		t.Errorf("no sample %s on /metrics", wantInfo)
	}
}

// A folder added to vigil.yaml is protected and backed up without a
// restart: the backup reloads on SIGHUP, the source on `vigil reload`. An
// invalid file is then refused with the config error (exit 2) and the
// node goes on with what it runs.
func TestE2EReloadAddsAFolderToRunningNodesAndRefusesABadConfig(t *testing.T) {
	m := newE2EMesh(t)
	lap, nas := m.node("laptop"), m.node("nas")
	lap.allow(nas)
	nas.allow(lap)
	docs, photos := m.dir("docs"), m.dir("photos")
	mustWrite(t, filepath.Join(docs, "a.txt"), []byte("a"), 0o644)
	mustWrite(t, filepath.Join(photos, "p.jpg"), []byte("jpeg"), 0o644)
	lap.protect("docs", docs, nas)
	nas.keepFor(lap, "docs")
	nas.start()
	lap.start()
	lap.waitSynced()
	pid := nas.process().Pid

	nas.keepFor(lap, "photos")
	nas.writeConfig()
	if err := nas.process().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 20*time.Second, "nas to keep laptop/photos after SIGHUP", func() bool {
		for _, r := range nas.status().Replicas {
			if r.Folder == "photos" {
				return true
			}
		}
		return false
	})
	lap.protect("photos", photos, nas)
	lap.writeConfig()
	code, out, errOut := m.vigil(20*time.Second, "reload", "--home", lap.home)
	if code != 0 || !strings.Contains(out, "folder photos") {
		t.Fatalf("vigil reload: exit %d\n%s%s", code, out, errOut)
	}
	mustWrite(t, filepath.Join(photos, "q.jpg"), []byte("jpeg2"), 0o644)
	lap.waitSynced()
	requireSameTree(t, photos, nas.replicaDir(lap, "photos"))
	requireSameTree(t, docs, nas.replicaDir(lap, "docs"))
	if nas.process().Pid != pid {
		t.Fatal("nas restarted")
	}

	// an invalid file: refused, the running config kept
	cfgPath := filepath.Join(lap.home, "vigil.yaml")
	lap.folders[1].path = filepath.Join(photos, "no-such-dir")
	lap.writeConfig()
	code, _, errOut = m.vigil(20*time.Second, "reload", "--home", lap.home)
	if code != 2 || !strings.Contains(errOut, cfgPath+":") || !strings.Contains(errOut, "folders[1].path") {
		t.Fatalf("vigil reload of a bad config: exit %d, want 2 naming %s and folders[1].path; stderr: %s", code, cfgPath, errOut)
	}
	if err := lap.process().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 20*time.Second, "the refused SIGHUP reload in the log", func() bool {
		data, _ := os.ReadFile(lap.logPath)
		return strings.Contains(string(data), "reload refused")
	})
	// lag still answers, with a warning naming the problem of the file
	code, _, errOut = m.vigil(20*time.Second, "lag", "--home", lap.home)
	if code != 0 || !strings.Contains(errOut, "warning: "+cfgPath) || !strings.Contains(errOut, "keeps the config it loaded") {
		t.Fatalf("vigil lag with a bad file: exit %d, stderr: %s", code, errOut)
	}
	mustWrite(t, filepath.Join(photos, "r.jpg"), []byte("jpeg3"), 0o644)
	lap.waitSynced()
	requireSameTree(t, photos, nas.replicaDir(lap, "photos"))
}

// process is n's running `vigil run`.
func (n *e2eNode) process() *os.Process {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		n.t.Fatalf("%s: not running", n.name)
	}
	return n.cmd.Process
}

// Each silent misconfiguration is explained where users look: `vigil lag`
// (which gives up at once with --wait-synced, naming it) and `vigil status`.
func TestE2EMisconfigurationsAreExplainedInLagAndStatus(t *testing.T) {
	m := newE2EMesh(t)
	lap, nas, other := m.node("laptop"), m.node("nas"), m.node("other")
	docs := m.dir("docs")
	mustWrite(t, filepath.Join(docs, "a.txt"), []byte("a"), 0o644)
	lap.allow(nas)
	nas.allow(lap)
	lap.protect("docs", docs, nas)
	// nas has no backup_for entry for laptop/docs
	nas.start()
	lap.start()
	waitSyncedFails := func(want string) string {
		t.Helper()
		code, out, errOut := m.vigil(60*time.Second, "lag", "--home", lap.home, "--wait-synced", "30s")
		if code != 1 || !strings.Contains(out+errOut, want) {
			t.Fatalf("vigil lag --wait-synced: exit %d, want 1 naming %q\nstdout: %s\nstderr: %s", code, want, out, errOut)
		}
		return out + errOut
	}
	waitSyncedFails("nas has no backup_for entry for laptop/docs")
	code, out, _ := m.vigil(20*time.Second, "status", "--home", nas.home)
	if code != 0 || !strings.Contains(out, "laptop/docs") || !strings.Contains(out, "no backup_for entry") {
		t.Fatalf("nas status does not list the folder it was asked for: exit %d\n%s", code, out)
	}
	nas.stop()
	lap.stop()

	// nas does not list laptop among its peers (nor keeps anything for it)
	nas.peers = nil
	nas.start()
	lap.start()
	waitSyncedFails("it probably does not list this node (" + lap.id + ") in its peers")
	nas.stop()
	lap.stop()

	// a typo in the peer ID: laptop expects other's ID at nas's address
	nas.allow(lap)
	nas.keepFor(lap, "docs")
	nas.start()
	lap.peers = nil
	lap.allow(nas)
	lap.writeConfig()
	cfg, err := os.ReadFile(filepath.Join(lap.home, "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lap.home, "vigil.yaml"), []byte(strings.ReplaceAll(string(cfg), nas.id, other.id)), 0o600); err != nil {
		t.Fatal(err)
	}
	lap.startWithConfigAsWritten()
	text := waitSyncedFails("identifies as " + nas.id + ", not the configured " + other.id)
	if !strings.Contains(text, nas.listenAddr()) {
		t.Errorf("the message does not name the address: %s", text)
	}
	code, out, _ = m.vigil(20*time.Second, "status", "--home", lap.home)
	if code != 0 || !strings.Contains(out, "identifies as "+nas.id) {
		t.Fatalf("laptop status does not explain the peer: exit %d\n%s", code, out)
	}
}
