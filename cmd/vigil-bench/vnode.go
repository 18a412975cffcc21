package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// vnode is one vigil node run as a real process: its home, identity,
// listen port, metrics address and control client.
type vnode struct {
	e       *env
	name    string
	home    string
	id      string
	listen  string // multiaddr
	metrics string // 127.0.0.1:PORT
	cfg     benchConfig
	p       *proc
	ctl     *controlClient
}

// benchConfig is the part of vigil.yaml the benchmarks write (see the
// contract for the schema).
type benchConfig struct {
	Node      benchNodeSection `yaml:"node"`
	Peers     []benchPeer      `yaml:"peers,omitempty"`
	Folders   []benchFolder    `yaml:"folders,omitempty"`
	BackupFor []benchBackupFor `yaml:"backup_for,omitempty"`
}

type benchNodeSection struct {
	Name    string   `yaml:"name"`
	Listen  []string `yaml:"listen"`
	DataDir string   `yaml:"data_dir"`
	Control string   `yaml:"control"`
	Metrics string   `yaml:"metrics,omitempty"`
}

type benchPeer struct {
	Name  string   `yaml:"name"`
	ID    string   `yaml:"id"`
	Addrs []string `yaml:"addrs"`
}

type benchFolder struct {
	ID       string   `yaml:"id"`
	Path     string   `yaml:"path"`
	BackupTo []string `yaml:"backup_to"`
}

type benchBackupFor struct {
	Peer    string   `yaml:"peer"`
	Folders []string `yaml:"folders"`
}

// initNode runs `vigil init` for a node called name with a home under the
// work directory and a fresh loopback port.
func (e *env) initNode(ctx context.Context, name string) (*vnode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &vnode{e: e, name: name, home: e.path("nodes", name),
		listen:  fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port),
		metrics: fmt.Sprintf("127.0.0.1:%d", mport)}
	cmd := exec.CommandContext(ctx, e.vigil, "init", "--home", n.home, "--name", name, "--listen", n.listen)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("vigil init %s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	n.id = strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(n.id, "12D3KooW") {
		return nil, fmt.Errorf("vigil init %s printed %q, want a peer ID", name, n.id)
	}
	n.cfg.Node = benchNodeSection{Name: name, Listen: []string{n.listen}, DataDir: "data",
		Control: "vigil.sock", Metrics: n.metrics}
	n.ctl = newControlClient(filepath.Join(n.home, "vigil.sock"))
	return n, nil
}

// pairNodes configures src to protect folder dir (as folderID) with dst as
// its backup, and dst to keep it.
func pairNodes(src, dst *vnode, folderID, dir string) {
	src.cfg.Peers = append(src.cfg.Peers, benchPeer{Name: dst.name, ID: dst.id, Addrs: []string{dst.listen}})
	dst.cfg.Peers = append(dst.cfg.Peers, benchPeer{Name: src.name, ID: src.id, Addrs: []string{src.listen}})
	src.cfg.Folders = append(src.cfg.Folders, benchFolder{ID: folderID, Path: dir, BackupTo: []string{dst.name}})
	dst.cfg.BackupFor = append(dst.cfg.BackupFor, benchBackupFor{Peer: src.name, Folders: []string{folderID}})
}

// configYAML renders the node's vigil.yaml.
func (n *vnode) configYAML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# vigil.yaml written by vigil-bench\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n.cfg); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeConfig replaces the vigil.yaml written by init.
func (n *vnode) writeConfig() error {
	b, err := n.configYAML()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.home, "vigil.yaml"), b, 0o600)
}

// run starts `vigil run` and waits until its control endpoint answers.
func (n *vnode) run(ctx context.Context) error {
	if err := n.writeConfig(); err != nil {
		return err
	}
	p, err := n.e.start("vigil "+n.name, filepath.Join(n.home, "vigil.log"), n.e.vigil,
		"run", "--home", n.home, "--log-level", "warn")
	if err != nil {
		return err
	}
	n.p = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.ctl.Status(sctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("vigil run %s exited: %v\n%s", n.name, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vigil run %s: control endpoint not answering after 30s: %v", n.name, err)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// alive returns an error (with the end of its log) if the process has exited.
func (n *vnode) alive() error {
	if n.p != nil && n.p.Exited() {
		return fmt.Errorf("vigil run %s exited: %v\n%s", n.name, n.p.err, n.p.tail(30))
	}
	return nil
}

// stop stops the node and returns its peak RSS (read just before stopping).
func (n *vnode) stop() (peak int64, err error) {
	if n.p == nil {
		return 0, nil
	}
	peak, _ = n.p.PeakRSS()
	n.ctl.Close()
	err = n.p.Stop(30 * time.Second)
	n.p = nil
	return peak, err
}

// replica returns the status of the one replica this node holds.
func (n *vnode) replica(ctx context.Context) (replicaReport, error) {
	st, err := n.ctl.Status(ctx)
	if err != nil {
		return replicaReport{}, err
	}
	if len(st.Replicas) != 1 {
		return replicaReport{}, fmt.Errorf("vigil %s: status lists %d replicas, want 1", n.name, len(st.Replicas))
	}
	return st.Replicas[0], nil
}

// waitSynced asks the node to capture pending changes and waits until every
// pair is live with nothing left to apply (`vigil lag --wait-synced`).
func (n *vnode) waitSynced(ctx context.Context, d time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	rep, ok, err := n.ctl.WaitSynced(cctx, d)
	if err != nil {
		if aerr := n.alive(); aerr != nil {
			return aerr
		}
		return fmt.Errorf("vigil %s: wait-synced: %w", n.name, err)
	}
	if !ok {
		return fmt.Errorf("vigil %s: not synced after %s: %s", n.name, d, describeLag(rep))
	}
	return nil
}

// describeLag summarises a lag report in one line.
func describeLag(rep lagReport) string {
	var parts []string
	for _, p := range rep.Pairs {
		parts = append(parts, fmt.Sprintf("%s/%s->%s state=%s head=%d applied=%d lag_seq=%d lag_s=%.2f baseline=%d/%d",
			p.SourceName, p.Folder, p.TargetName, p.State, p.HeadSeq, p.AppliedSeq, p.LagSeq, p.LagSeconds,
			p.BaselineDoneBytes, p.BaselineTotalBytes))
	}
	return strings.Join(parts, "; ")
}
