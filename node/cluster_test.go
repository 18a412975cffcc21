package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/mesh"
)

// testNode is one node of an in-process cluster.
type testNode struct {
	t      *testing.T
	name   string
	home   string
	id     peer.ID
	port   int
	cfg    *Config
	n      *Node
	cancel context.CancelFunc
	done   chan error
	opts   []Option
}

// cluster builds nodes that know each other as peers, on loopback.
type cluster struct {
	t     *testing.T
	nodes map[string]*testNode
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// shortTempDir keeps unix socket paths under the OS limit.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newCluster(t *testing.T, names ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, nodes: make(map[string]*testNode)}
	for _, name := range names {
		home := shortTempDir(t)
		id, err := mesh.GenerateKey(filepath.Join(home, KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[name] = &testNode{t: t, name: name, home: home, id: id, port: freePort(t)}
	}
	for _, tn := range c.nodes {
		tn.cfg = &Config{Home: tn.home, File: filepath.Join(tn.home, "vigil.yaml")}
		tn.cfg.Node.Name = tn.name
		tn.cfg.Node.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", tn.port)}
		for _, o := range c.nodes {
			if o == tn {
				continue
			}
			tn.cfg.Peers = append(tn.cfg.Peers, PeerConfig{Name: o.name, ID: o.id.String(),
				Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", o.port)}})
		}
	}
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			tn.stop()
		}
	})
	return c
}

// protect makes src protect dir as folder id, backed up to the targets,
// and each target consent to it.
func (c *cluster) protect(src, id, dir string, targets ...string) {
	s := c.nodes[src]
	s.cfg.Folders = append(s.cfg.Folders, FolderConfig{ID: id, Path: dir, BackupTo: targets})
	for _, tname := range targets {
		tn := c.nodes[tname]
		tn.cfg.BackupFor = append(tn.cfg.BackupFor, BackupForConfig{Peer: src, Folders: []string{id}})
	}
}

func (tn *testNode) start() {
	tn.t.Helper()
	tn.cfg.SetDefaults()
	if err := tn.cfg.Validate(); err != nil {
		tn.t.Fatalf("config of %s: %v", tn.name, err)
	}
	logger := slog.New(slog.NewTextHandler(testLogWriter{tn.t, tn.name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := New(tn.cfg, append([]Option{WithLogger(logger)}, tn.opts...)...)
	if err != nil {
		tn.t.Fatalf("start %s: %v", tn.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.n, tn.cancel, tn.done = n, cancel, make(chan error, 1)
	go func() { tn.done <- n.Run(ctx) }()
}

func (tn *testNode) stop() {
	if tn.n == nil {
		return
	}
	tn.cancel()
	if err := <-tn.done; err != nil {
		tn.t.Errorf("node %s: %v", tn.name, err)
	}
	if err := tn.n.Close(); err != nil {
		tn.t.Errorf("close %s: %v", tn.name, err)
	}
	tn.n = nil
}

func (tn *testNode) replicaDir(src *testNode, folder string) string {
	return filepath.Join(tn.cfg.DataPath(), "replicas", src.id.String(), folder)
}

// waitSynced waits until every pair that n knows is live with no lag.
func (tn *testNode) waitSynced(d time.Duration) {
	tn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	rep, ok := tn.n.WaitSynced(ctx)
	if !ok {
		tn.t.Fatalf("%s not synced after %v: %+v", tn.name, d, rep.Pairs)
	}
}

type testLogWriter struct {
	t    *testing.T
	name string
}

func (w testLogWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Logf("[%s] %s", w.name, strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// treeDiff compares two trees: kinds, content, permission bits, mtimes
// (files, symlinks and directories) and symlink targets. It returns the
// differences found.
func treeDiff(src, dst string) []string {
	var diffs []string
	seen := make(map[string]bool)
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			diffs = append(diffs, err.Error())
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		seen[rel] = true
		a, err := os.Lstat(p)
		if err != nil {
			diffs = append(diffs, err.Error())
			return nil
		}
		b, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			diffs = append(diffs, "missing in replica: "+rel)
			return nil
		}
		if a.Mode().Type() != b.Mode().Type() {
			diffs = append(diffs, fmt.Sprintf("%s: type %v vs %v", rel, a.Mode().Type(), b.Mode().Type()))
			return nil
		}
		if a.Mode()&fs.ModeSymlink == 0 && a.Mode().Perm() != b.Mode().Perm() {
			diffs = append(diffs, fmt.Sprintf("%s: mode %v vs %v", rel, a.Mode().Perm(), b.Mode().Perm()))
		}
		if !a.ModTime().Equal(b.ModTime()) {
			diffs = append(diffs, fmt.Sprintf("%s: mtime %v vs %v", rel, a.ModTime(), b.ModTime()))
		}
		switch {
		case a.Mode()&fs.ModeSymlink != 0:
			ta, _ := os.Readlink(p)
			tb, _ := os.Readlink(filepath.Join(dst, rel))
			if ta != tb {
				diffs = append(diffs, fmt.Sprintf("%s: link %q vs %q", rel, ta, tb))
			}
		case a.Mode().IsRegular():
			if ha, hb := fileHash(p), fileHash(filepath.Join(dst, rel)); ha != hb {
				diffs = append(diffs, fmt.Sprintf("%s: content differs", rel))
			}
		}
		return nil
	})
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		if rel != "." && !seen[rel] {
			diffs = append(diffs, "extra in replica: "+rel)
		}
		return nil
	})
	return diffs
}

func fileHash(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "error: " + err.Error()
	}
	s := sha256.Sum256(b)
	return string(s[:])
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireSame(t *testing.T, src, dst string) {
	t.Helper()
	if d := treeDiff(src, dst); len(d) > 0 {
		if len(d) > 20 {
			d = d[:20]
		}
		t.Fatalf("replica differs from source:\n%s", strings.Join(d, "\n"))
	}
}

func writeFile(t *testing.T, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestClusterBaselineThenLiveChanges(t *testing.T) {
	src := t.TempDir() // created first: removed after the nodes stopped
	c := newCluster(t, "laptop", "nas")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"), 0o644)
	writeFile(t, filepath.Join(src, "dir/b.bin"), bytes.Repeat([]byte("xyz"), 100000), 0o600)
	writeFile(t, filepath.Join(src, "dir/sub/c"), nil, 0o755)
	os.MkdirAll(filepath.Join(src, "empty"), 0o755)
	os.Symlink("a.txt", filepath.Join(src, "link"))
	os.Symlink("nowhere", filepath.Join(src, "dangling"))
	c.protect("laptop", "docs", src, "nas")
	lap, nas := c.nodes["laptop"], c.nodes["nas"]
	lap.start()
	nas.start()
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))

	// live changes
	writeFile(t, filepath.Join(src, "new.txt"), []byte("new file"), 0o644)
	f, _ := os.OpenFile(filepath.Join(src, "dir/b.bin"), os.O_WRONLY, 0)
	f.WriteAt([]byte("CHANGED"), 150000)
	f.Close()
	os.Remove(filepath.Join(src, "a.txt"))
	os.Rename(filepath.Join(src, "dir/sub"), filepath.Join(src, "moved"))
	os.Chmod(filepath.Join(src, "new.txt"), 0o600)
	lap.waitSynced(30 * time.Second)
	requireSame(t, src, nas.replicaDir(lap, "docs"))
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

var _ = errors.New
