package main

// Helpers for the end-to-end tests: they build the vigil binary once per test
// process, run real `vigil` nodes on 127.0.0.1 as child processes, talk to
// them with `vigil lag` and `vigil status`, and compare a protected folder
// with its replica.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/vigil-mesh/vigil/internal/treediff"
)

// e2eBinDirPrefix names the directories holding the binary built for one
// test process; the process id follows it.
const e2eBinDirPrefix = "vigil-e2e-bin-"

var (
	e2eBuildOnce sync.Once
	e2eBin       string
	e2eBuildErr  error
)

// vigilBinary builds ./ (this command, without -race) once per test process
// and returns the path of the binary. Directories left by earlier test
// processes that no longer run are removed.
func vigilBinary(t *testing.T) string {
	t.Helper()
	e2eBuildOnce.Do(func() {
		removeStaleBinDirs()
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", e2eBinDirPrefix, os.Getpid()))
		if err != nil {
			e2eBuildErr = err
			return
		}
		// the go command that runs this test, else the one on PATH
		goTool := "go"
		if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
			if p := filepath.Join(strings.TrimSpace(string(out)), "bin", "go"); fileExists(p) {
				goTool = p
			}
		}
		bin := filepath.Join(dir, "vigil")
		cmd := exec.Command(goTool, "build", "-o", bin, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			e2eBuildErr = fmt.Errorf("go build ./cmd/vigil: %v\n%s", err, out)
			return
		}
		e2eBin = bin
	})
	if e2eBuildErr != nil {
		t.Fatal(e2eBuildErr)
	}
	return e2eBin
}

// removeStaleBinDirs removes binary directories of test processes that have exited.
func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), e2eBinDirPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), e2eBinDirPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(m)
		}
	}
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// e2eMesh is a set of real vigil nodes sharing one short temporary root
// (unix socket paths must stay under 108 bytes).
type e2eMesh struct {
	t     *testing.T
	bin   string
	root  string
	nodes []*e2eNode
}

// newE2EMesh creates the root directory; at the end of the test every node
// still running is killed, the logs of all nodes are printed if the test
// failed, and the root is removed (kept after a failure when the
// environment variable VIGIL_E2E_KEEP is set).
func newE2EMesh(t *testing.T) *e2eMesh {
	t.Helper()
	bin := vigilBinary(t)
	root, err := os.MkdirTemp("", "ve")
	if err != nil {
		t.Fatal(err)
	}
	m := &e2eMesh{t: t, bin: bin, root: root}
	t.Cleanup(func() {
		for _, n := range m.nodes {
			n.killIfRunning()
		}
		if t.Failed() {
			for _, n := range m.nodes {
				n.dumpLog(200)
			}
		}
		if t.Failed() && os.Getenv("VIGIL_E2E_KEEP") != "" {
			t.Logf("VIGIL_E2E_KEEP is set: kept the nodes' homes and folders in %s", root)
			return
		}
		os.RemoveAll(root)
	})
	return m
}

// e2eFolder is a folder a node protects.
type e2eFolder struct {
	id       string
	path     string
	backupTo []string
}

// e2eNode is one vigil node: its home, identity and child process.
type e2eNode struct {
	m       *e2eMesh
	t       *testing.T
	name    string
	home    string
	id      string
	port    int
	logPath string
	metrics string // node.metrics (host:port) when set

	peers     []*e2eNode
	folders   []e2eFolder
	backupFor map[string][]string // peer name -> folder ids

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// node runs `vigil init` for a new node listening on a free loopback port
// and returns it; its peer id is read from init's output.
func (m *e2eMesh) node(name string) *e2eNode {
	t := m.t
	t.Helper()
	n := &e2eNode{m: m, t: t, name: name, home: filepath.Join(m.root, name),
		port: freeTCPPort(t), backupFor: map[string][]string{}}
	n.logPath = filepath.Join(m.root, name+".log")
	code, out, errOut := m.vigil(30*time.Second, "init", "--home", n.home, "--name", name, "--listen", n.listenAddr())
	if code != 0 {
		t.Fatalf("vigil init %s: exit %d\nstdout: %s\nstderr: %s", name, code, out, errOut)
	}
	lines := strings.Fields(strings.TrimSpace(out))
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "12D3KooW") {
		t.Fatalf("vigil init %s: no peer id in stdout %q", name, out)
	}
	n.id = lines[len(lines)-1]
	m.nodes = append(m.nodes, n)
	return n
}

// dir creates and returns a directory under the mesh root, for a protected folder.
func (m *e2eMesh) dir(name string) string {
	m.t.Helper()
	p := filepath.Join(m.root, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		m.t.Fatal(err)
	}
	return p
}

// vigil runs the vigil binary with args, giving up after timeout, and
// returns its exit code (-1 if it did not exit by itself), stdout and stderr.
func (m *e2eMesh) vigil(timeout time.Duration, args ...string) (int, string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			code = ee.ExitCode()
		} else {
			code = -1
			fmt.Fprintf(&stderr, "\n[test: %v]", err)
		}
	}
	return code, stdout.String(), stderr.String()
}

func (n *e2eNode) listenAddr() string { return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", n.port) }

// dataDir is the node's data_dir.
func (n *e2eNode) dataDir() string { return filepath.Join(n.home, "data") }

// replicaDir is where n keeps folder of src: DATA_DIR/replicas/<src id>/<folder>.
func (n *e2eNode) replicaDir(src *e2eNode, folder string) string {
	return filepath.Join(n.dataDir(), "replicas", src.id, folder)
}

// allow adds peers to n's allow-list.
func (n *e2eNode) allow(peers ...*e2eNode) { n.peers = append(n.peers, peers...) }

// protect makes n protect dir as folder id, backed up to the named peers.
func (n *e2eNode) protect(id, dir string, backupTo ...*e2eNode) {
	f := e2eFolder{id: id, path: dir}
	for _, b := range backupTo {
		f.backupTo = append(f.backupTo, b.name)
	}
	n.folders = append(n.folders, f)
}

// keepFor makes n keep the given folders of src (backup_for).
func (n *e2eNode) keepFor(src *e2eNode, folders ...string) {
	n.backupFor[src.name] = append(n.backupFor[src.name], folders...)
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = yamlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// writeConfig writes n's vigil.yaml from its peers, folders and backup_for.
func (n *e2eNode) writeConfig() {
	n.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "node:\n  name: %s\n  listen: %s\n  data_dir: data\n  control: vigil.sock\n",
		yamlString(n.name), yamlList([]string{n.listenAddr()}))
	if n.metrics != "" {
		fmt.Fprintf(&b, "  metrics: %s\n", yamlString(n.metrics))
	}
	if len(n.peers) == 0 {
		b.WriteString("peers: []\n")
	} else {
		b.WriteString("peers:\n")
		for _, p := range n.peers {
			fmt.Fprintf(&b, "  - name: %s\n    id: %s\n    addrs: %s\n", yamlString(p.name), yamlString(p.id), yamlList([]string{p.listenAddr()}))
		}
	}
	if len(n.folders) == 0 {
		b.WriteString("folders: []\n")
	} else {
		b.WriteString("folders:\n")
		for _, f := range n.folders {
			fmt.Fprintf(&b, "  - id: %s\n    path: %s\n    backup_to: %s\n", yamlString(f.id), yamlString(f.path), yamlList(f.backupTo))
		}
	}
	if len(n.backupFor) == 0 {
		b.WriteString("backup_for: []\n")
	} else {
		b.WriteString("backup_for:\n")
		names := make([]string, 0, len(n.backupFor))
		for p := range n.backupFor {
			names = append(names, p)
		}
		sort.Strings(names)
		for _, p := range names {
			fmt.Fprintf(&b, "  - peer: %s\n    folders: %s\n", yamlString(p), yamlList(n.backupFor[p]))
		}
	}
	if err := os.WriteFile(filepath.Join(n.home, "vigil.yaml"), []byte(b.String()), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// start writes the config and runs `vigil run --log-format json` in the
// background, its output appended to n's log file, then waits until its
// control endpoint answers.
func (n *e2eNode) start() {
	n.t.Helper()
	n.writeConfig()
	n.startWithConfigAsWritten()
}

// startWithConfigAsWritten starts n with the vigil.yaml in its home as it
// is (a test may have edited it by hand).
func (n *e2eNode) startWithConfigAsWritten() {
	t := n.t
	t.Helper()
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		t.Fatalf("%s: already running", n.name)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.mu.Unlock()
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: vigil run started at %s\n", n.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(n.m.bin, "run", "--home", n.home, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		t.Fatalf("%s: start vigil run: %v", n.name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(done)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			n.mu.Lock()
			err := n.err
			n.cmd = nil
			n.mu.Unlock()
			t.Fatalf("%s: vigil run exited while starting: %v", n.name, err)
		default:
		}
		code, _, errOut := n.m.vigil(10*time.Second, "status", "--home", n.home, "--json")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: control endpoint not answering after 30s; last `vigil status`: exit %d: %s", n.name, code, errOut)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// stop sends SIGTERM and waits for a clean exit (status 0).
func (n *e2eNode) stop() {
	n.t.Helper()
	n.signalAndWait(syscall.SIGTERM, true)
}

// kill sends SIGKILL (kill -9) and waits for the process to end.
func (n *e2eNode) kill() {
	n.t.Helper()
	n.signalAndWait(syscall.SIGKILL, false)
}

func (n *e2eNode) signalAndWait(sig syscall.Signal, wantClean bool) {
	t := n.t
	t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		t.Fatalf("%s: not running", n.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", n.name, sig, err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s: vigil run did not exit within 30s of %v", n.name, sig)
	}
	n.mu.Lock()
	err := n.err
	n.cmd = nil
	n.mu.Unlock()
	if wantClean && err != nil {
		t.Fatalf("%s: vigil run did not stop cleanly on %v: %v", n.name, sig, err)
	}
}

// killIfRunning kills the process if it still runs (test cleanup).
func (n *e2eNode) killIfRunning() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		<-done
	}
}

// dumpLog prints the last max lines of the node's log.
func (n *e2eNode) dumpLog(max int) {
	data, err := os.ReadFile(n.logPath)
	if err != nil {
		n.t.Logf("%s: no log: %v", n.name, err)
		return
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	skipped := 0
	if len(lines) > max {
		skipped = len(lines) - max
		lines = lines[skipped:]
	}
	n.t.Logf("----- log of %s (%s, %d earlier lines left out) -----\n%s", n.name, n.id, skipped, strings.Join(lines, "\n"))
}

// waitSynced runs `vigil lag --wait-synced 60s` on n and fails the test
// unless it exits 0.
func (n *e2eNode) waitSynced() {
	t := n.t
	t.Helper()
	start := time.Now()
	code, out, errOut := n.m.vigil(90*time.Second, "lag", "--home", n.home, "--wait-synced", "60s")
	if code != 0 {
		_, lag, _ := n.m.vigil(10*time.Second, "lag", "--home", n.home, "--json")
		t.Fatalf("%s: `vigil lag --wait-synced 60s` exit %d after %v\nstdout: %s\nstderr: %s\nlag --json: %s",
			n.name, code, time.Since(start).Round(time.Millisecond), out, errOut, lag)
	}
	t.Logf("%s: synced (wait-synced took %v)", n.name, time.Since(start).Round(time.Millisecond))
}

// status runs `vigil status --json` on n.
func (n *e2eNode) status() control.StatusReport { return vigilJSON[control.StatusReport](n, "status") }

// lag runs `vigil lag --json` on n.
func (n *e2eNode) lag() control.LagReport { return vigilJSON[control.LagReport](n, "lag") }

// vigilJSON runs `vigil CMD --home HOME --json` on n and decodes its output.
func vigilJSON[T any](n *e2eNode, cmd string) T {
	t := n.t
	t.Helper()
	code, out, errOut := n.m.vigil(20*time.Second, cmd, "--home", n.home, "--json")
	if code != 0 {
		t.Fatalf("%s: `vigil %s --json`: exit %d: %s", n.name, cmd, code, errOut)
	}
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s: `vigil %s --json`: %v\n%s", n.name, cmd, err, out)
	}
	return v
}

// replicaStatus returns the entry of n's status for folder of src.
func (n *e2eNode) replicaStatus(src *e2eNode, folder string) control.ReplicaReport {
	n.t.Helper()
	s := n.status()
	for _, r := range s.Replicas {
		if r.Source == src.id && r.Folder == folder {
			return r
		}
	}
	n.t.Fatalf("%s: status shows no replica of %s/%s: %+v", n.name, src.name, folder, s.Replicas)
	return control.ReplicaReport{}
}

// pollUntil polls cond every 50ms until it holds, failing the test after d.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// requireSameTree fails the test unless dst mirrors src exactly.
func requireSameTree(t *testing.T, src, dst string) {
	t.Helper()
	diffs, n, err := treediff.Diff(src, dst, nil)
	if err != nil {
		diffs = append(diffs, err.Error())
	}
	if len(diffs) > 0 {
		total := len(diffs)
		if total > 40 {
			diffs = diffs[:40]
		}
		t.Fatalf("replica %s differs from source %s (%d differences, first %d):\n%s", dst, src, total, len(diffs), strings.Join(diffs, "\n"))
	}
	t.Logf("replica identical to source: %d entries compared", n)
}

// mustWrite creates p (and its parents) with data and exactly mode perm.
func mustWrite(t *testing.T, p string, data []byte, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

// pairOf returns the pair of a lag report for (source, folder, target).
func pairOf(r control.LagReport, src *e2eNode, folder string, target *e2eNode) (control.LagPair, bool) {
	for _, p := range r.Pairs {
		if p.Source == src.id && p.Folder == folder && p.Target == target.id {
			return p, true
		}
	}
	return control.LagPair{}, false
}

// peerOf returns the entry of a status report for peer id.
func peerOf(s control.StatusReport, id string) (control.PeerReport, bool) {
	for _, p := range s.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return control.PeerReport{}, false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
