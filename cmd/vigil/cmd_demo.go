package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-mesh/vigil/internal/treediff"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node"
)

// The demo runs three in-process nodes on 127.0.0.1 in a temporary folder:
// laptop protects its folder "docs" (sample files generated at start), nas
// and cloud keep it. Node logs go to demo.log in that folder and are shown
// only when the demo fails.
const (
	demoFolder          = "docs"
	demoLogFile         = "demo.log"
	demoBigFileSize     = 20 << 20
	demoDefaultSeconds  = 5
	demoMaxSeconds      = 3600
	demoBaselineTimeout = 60 * time.Second
	demoSyncTimeout     = 60 * time.Second
	demoOpInterval      = 50 * time.Millisecond  // one workload change every ...
	demoShowInterval    = 300 * time.Millisecond // a lag table every ...
	demoLogTailLines    = 40
	demoMaxDiffsShown   = 20
	demoVerifyGrace     = 10 * time.Second       // a differing replica is compared again for ...
	demoVerifyPoll      = 100 * time.Millisecond // every ...
)

// demoNames are the demo's nodes: the first protects the folder, the others keep it.
var demoNames = []string{"laptop", "nas", "cloud"}

// demoOps is the order in which the live workload cycles through its kinds
// of change, so that even a short run makes each kind at least once.
var demoOps = []string{"create", "modify", "append", "rename", "create", "chmod", "modify", "delete"}

func newDemoCmd() *cobra.Command {
	var opts demoOptions
	c := &cobra.Command{
		Annotations: map[string]string{annotNoHome: "true"},
		Use:         "demo",
		Short:       "Run a local mesh of three nodes, change files, show lag and verify the replicas",
		Long: "demo starts three nodes (laptop, nas, cloud) on loopback in a temporary folder. laptop\n" +
			"protects a folder of sample files (text, nested folders, a 20 MiB file, a symlink, an\n" +
			"empty folder) backed up to nas and cloud. The demo shows the baseline copy, then changes\n" +
			"files for --seconds while it prints the replication lag, waits until both replicas have\n" +
			"every change and compares them with the source (content, modes, mtimes, symlinks, no\n" +
			"extra files). It exits 1 if a replica differs. It stops the nodes and removes the\n" +
			"temporary folder at the end, on failure and on Ctrl-C (unless --keep).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.seconds < 0 || opts.seconds > demoMaxSeconds {
				return usageErrorf("demo: --seconds: must be from 0 to %d (got %d)", demoMaxSeconds, opts.seconds)
			}
			g := globalsFrom(cmd)
			opts.logLevel = g.level
			opts.logJSON = g.logFormat == "json"
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), opts)
		},
	}
	f := c.Flags()
	f.IntVar(&opts.seconds, "seconds", demoDefaultSeconds, "how many `N` seconds the live workload runs")
	f.BoolVar(&opts.keep, "keep", false, "keep the temporary folder (homes, data, node log) and print its path")
	return c
}

// demoOutput cancels the demo when its output cannot be written (a closed
// pipe): nobody is watching any more.
type demoOutput struct {
	w      io.Writer
	cancel context.CancelFunc
}

func (o *demoOutput) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.cancel()
	}
	return n, err
}

// demoOptions are the demo's settings.
type demoOptions struct {
	seconds  int
	keep     bool
	logLevel slog.Level
	logJSON  bool
}

// demoNode is one node of the demo.
type demoNode struct {
	name string
	home string
	port int
	id   peer.ID
	cfg  *config.Config
	n    *node.Node

	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; runErr is set before
	runErr error
}

// demo is one run of `vigil demo`.
type demo struct {
	opts   demoOptions
	out    io.Writer
	errOut io.Writer
	dir    string
	logF   *os.File
	nodes  []*demoNode
	src    string // laptop's protected folder
	t0     time.Time
	grace  time.Duration // how long verify waits for a differing replica to converge

	mu       sync.Mutex
	progress map[string]node.BaselineEvent // by target name
}

// runDemo runs the whole demo; the temporary folder is removed and every
// node stopped before it returns, whatever happened.
func runDemo(ctx context.Context, out, errOut io.Writer, opts demoOptions) (err error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once stopping, restore the default signal handling: a second signal kills.
	context.AfterFunc(ctx, stop)
	// With stdout piped into e.g. head, a write to the closed pipe must not
	// kill the process before it cleaned up: with SIGPIPE caught (and
	// dropped) the write fails instead, and a failed write stops the demo.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out = &demoOutput{w: out, cancel: cancel}

	dir, err := os.MkdirTemp("", "vigil-demo-")
	if err != nil {
		return fmt.Errorf("demo: temporary folder: %w", err)
	}
	d := &demo{opts: opts, out: out, errOut: errOut, dir: dir, t0: time.Now(), grace: demoVerifyGrace,
		progress: make(map[string]node.BaselineEvent)}
	defer func() { err = errors.Join(err, d.cleanup(ctx, err != nil)) }()

	d.logF, err = os.OpenFile(filepath.Join(dir, demoLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("demo: node log: %w", err)
	}
	fmt.Fprintf(out, "vigil demo: 3 nodes on loopback in %s (node log: %s)\n", dir, demoLogFile)
	err = d.run(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("demo: interrupted")
	}
	return err
}

func (d *demo) run(ctx context.Context) error {
	d.heading(1, "starting 3 nodes")
	if err := d.setup(); err != nil {
		return err
	}
	if err := d.start(); err != nil {
		return err
	}
	if err := d.baseline(ctx); err != nil {
		return err
	}
	if err := d.workload(ctx); err != nil {
		return err
	}
	if err := d.waitSynced(ctx); err != nil {
		return err
	}
	return d.verify(ctx)
}

func (d *demo) heading(step int, title string) {
	fmt.Fprintf(d.out, "\n== %d/6 %s ==\n", step, title)
}

func (d *demo) elapsed() string {
	return fmt.Sprintf("%5.1fs", time.Since(d.t0).Seconds())
}

// setup creates the three homes (key, config, vigil.yaml) and laptop's
// folder of sample files.
func (d *demo) setup() error {
	for _, name := range demoNames {
		home := filepath.Join(d.dir, name)
		if err := os.Mkdir(home, 0o700); err != nil {
			return fmt.Errorf("demo: home of %s: %w", name, err)
		}
		id, err := mesh.GenerateKey(filepath.Join(home, config.KeyFile))
		if err != nil {
			return fmt.Errorf("demo: key of %s: %w", name, err)
		}
		port, err := demoFreePort()
		if err != nil {
			return fmt.Errorf("demo: port for %s: %w", name, err)
		}
		d.nodes = append(d.nodes, &demoNode{name: name, home: home, port: port, id: id})
	}
	src := d.nodes[0]
	d.src = filepath.Join(src.home, demoFolder)
	if err := writeDemoFiles(d.src); err != nil {
		return fmt.Errorf("demo: sample files: %w", err)
	}
	for _, dn := range d.nodes {
		cfg := &config.Config{Home: dn.home, File: filepath.Join(dn.home, configFileName)}
		cfg.Node.Name = dn.name
		cfg.Node.Listen = []string{demoAddr(dn.port)}
		for _, o := range d.nodes {
			if o != dn {
				cfg.Peers = append(cfg.Peers, config.PeerConfig{Name: o.name, ID: o.id.String(),
					Addrs: []string{demoAddr(o.port)}})
			}
		}
		if dn == src {
			var to []string
			for _, o := range d.nodes[1:] {
				to = append(to, o.name)
			}
			cfg.Folders = []config.FolderConfig{{ID: demoFolder, Path: demoFolder, BackupTo: to}}
		} else {
			cfg.BackupFor = []config.BackupForConfig{{Peer: src.name, Folders: []string{demoFolder}}}
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("demo: config of %s: %w", dn.name, err)
		}
		if err := writeDemoConfig(cfg); err != nil {
			return fmt.Errorf("demo: config of %s: %w", dn.name, err)
		}
		dn.cfg = cfg
	}
	return nil
}

// writeDemoConfig writes cfg as the vigil.yaml of its home, so that a kept
// demo folder can be run with `vigil run --home`.
func writeDemoConfig(cfg *config.Config) error {
	var b bytes.Buffer
	b.WriteString("# vigil.yaml of the demo node " + cfg.Node.Name + "\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return os.WriteFile(cfg.File, b.Bytes(), 0o600)
}

func demoAddr(port int) string { return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port) }

// demoFreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func demoFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start creates and runs the nodes and prints who they are.
func (d *demo) start() error {
	logger, err := d.logger()
	if err != nil {
		return err
	}
	for i, dn := range d.nodes {
		opts := []node.Option{node.WithLogger(logger.With("node", dn.name))}
		if i > 0 {
			name := dn.name
			opts = append(opts, node.WithBaselineProgress(func(ev node.BaselineEvent) {
				d.mu.Lock()
				d.progress[name] = ev
				d.mu.Unlock()
			}))
		}
		n, err := node.New(dn.cfg, opts...)
		if err != nil {
			return fmt.Errorf("demo: start %s: %w", dn.name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		dn.n, dn.cancel, dn.done = n, cancel, make(chan struct{})
		go func() {
			defer close(dn.done)
			dn.runErr = n.Run(ctx)
		}()
	}
	st, err := demoTreeStats(d.src)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for i, dn := range d.nodes {
		var addrs []string
		for _, a := range dn.n.Addrs() {
			addrs = append(addrs, a.String())
		}
		fmt.Fprintf(d.out, "  %-6s  %s  %s\n", dn.name, dn.id, strings.Join(addrs, " "))
		if i == 0 {
			fmt.Fprintf(d.out, "          protects %q (%s) -> %s\n", demoFolder, st, strings.Join(dn.cfg.Folders[0].BackupTo, ", "))
		} else {
			fmt.Fprintf(d.out, "          keeps %s/%s\n", d.nodes[0].name, demoFolder)
		}
	}
	return nil
}

// logger writes the nodes' logs to the demo log file.
func (d *demo) logger() (*slog.Logger, error) {
	hopts := &slog.HandlerOptions{Level: d.opts.logLevel}
	if d.opts.logJSON {
		return slog.New(slog.NewJSONHandler(d.logF, hopts)), nil
	}
	return slog.New(slog.NewTextHandler(d.logF, hopts)), nil
}

// checkNodes reports a node whose Run returned while the demo still needs it.
func (d *demo) checkNodes() error {
	for _, dn := range d.nodes {
		if dn.done == nil {
			continue
		}
		select {
		case <-dn.done:
			if dn.runErr != nil {
				return fmt.Errorf("demo: node %s stopped: %w", dn.name, dn.runErr)
			}
			return fmt.Errorf("demo: node %s stopped", dn.name)
		default:
		}
	}
	return nil
}

// waitNode runs WaitSynced on dn with a deadline, calling tick every
// interval meanwhile. The waiting goroutine has returned when it returns.
func (d *demo) waitNode(ctx context.Context, dn *demoNode, timeout time.Duration, tick func()) (control.LagReport, bool, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		rep control.LagReport
		ok  bool
	}
	ch := make(chan result, 1) // one send, never blocks
	go func() {
		rep, ok := dn.n.WaitSynced(wctx)
		ch <- result{rep, ok}
	}()
	t := time.NewTicker(demoShowInterval)
	defer t.Stop()
	for {
		select {
		case r := <-ch:
			if !r.ok && ctx.Err() != nil {
				return r.rep, false, ctx.Err()
			}
			return r.rep, r.ok, nil
		case <-t.C:
			if err := d.checkNodes(); err != nil {
				cancel()
				<-ch
				return control.LagReport{}, false, err
			}
			if tick != nil {
				tick()
			}
		}
	}
}

// baseline shows the targets' baseline progress until laptop reports both
// replicas live.
func (d *demo) baseline(ctx context.Context) error {
	d.heading(2, "baseline: copying docs to nas and cloud")
	start := time.Now()
	last := ""
	show := func() {
		line := d.progressLine()
		if line != last {
			fmt.Fprintf(d.out, "  %s  %s\n", d.elapsed(), line)
			last = line
		}
	}
	rep, ok, err := d.waitNode(ctx, d.nodes[0], demoBaselineTimeout, show)
	if err != nil {
		return err
	}
	show()
	if !ok {
		d.printLag(rep, true, "")
		return fmt.Errorf("demo: replicas not live after %v", demoBaselineTimeout)
	}
	fmt.Fprintf(d.out, "  both replicas are live after %.1fs\n", time.Since(start).Seconds())
	return nil
}

// progressLine renders each target's baseline progress on one line.
func (d *demo) progressLine() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var parts []string
	for _, dn := range d.nodes[1:] {
		ev, ok := d.progress[dn.name]
		var s string
		switch {
		case !ok:
			s = "connecting"
		case ev.Finished:
			s = fmt.Sprintf("%s %s done", demoBar(1), demoBytes(ev.TotalBytes))
		default:
			frac := 0.0
			if ev.TotalBytes > 0 {
				frac = float64(ev.DoneBytes) / float64(ev.TotalBytes)
			}
			s = fmt.Sprintf("%s %3.0f%% %s/%s", demoBar(frac), 100*frac,
				demoBytes(ev.DoneBytes), demoBytes(ev.TotalBytes))
		}
		parts = append(parts, fmt.Sprintf("%-5s %s", dn.name, s))
	}
	return strings.Join(parts, "   ")
}

func demoBar(frac float64) string {
	const w = 20
	k := int(frac*w + 0.5)
	k = min(max(k, 0), w)
	return "[" + strings.Repeat("#", k) + strings.Repeat("-", w-k) + "]"
}

// workload changes the source folder for the configured time while
// printing laptop's lag table.
func (d *demo) workload(ctx context.Context) error {
	dur := time.Duration(d.opts.seconds) * time.Second
	d.heading(3, fmt.Sprintf("live changes for %v (create, modify, append, rename, delete, chmod)", dur))
	if dur == 0 {
		fmt.Fprintln(d.out, "  skipped (--seconds 0)")
		return nil
	}
	w := newDemoWorkload(d.src)
	ops := time.NewTicker(demoOpInterval)
	defer ops.Stop()
	show := time.NewTicker(demoShowInterval)
	defer show.Stop()
	end := time.NewTimer(dur)
	defer end.Stop()
	d.printLagHeader()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C:
			d.printLag(d.nodes[0].n.Lag(), false, fmt.Sprint(w.count))
			fmt.Fprintf(d.out, "  %d changes: %s\n", w.count, w.summary())
			return nil
		case <-ops.C:
			if err := w.step(); err != nil {
				return fmt.Errorf("demo: workload: %w", err)
			}
		case <-show.C:
			if err := d.checkNodes(); err != nil {
				return err
			}
			d.printLag(d.nodes[0].n.Lag(), false, fmt.Sprint(w.count))
		}
	}
}

func (d *demo) printLagHeader() {
	fmt.Fprintf(d.out, "  %6s %7s  %-22s %-11s %7s %11s\n", "time", "changes", "pair", "state", "lag_seq", "lag_seconds")
}

// printLag prints the rows of a lag report; header prints the column names
// first. changes goes in the first row's changes column.
func (d *demo) printLag(rep control.LagReport, header bool, changes string) {
	if header {
		d.printLagHeader()
	}
	for i, p := range rep.Pairs {
		t, c := "", ""
		if i == 0 {
			t, c = d.elapsed(), changes
		}
		pair := fmt.Sprintf("%s/%s -> %s", p.SourceName, p.Folder, p.TargetName)
		fmt.Fprintf(d.out, "  %6s %7s  %-22s %-11s %7d %11.3f\n", t, c, pair, p.State, p.LagSeq, p.LagSeconds)
	}
}

// waitSynced waits until laptop has every change acknowledged and both
// targets see themselves live, then prints the final lag table.
func (d *demo) waitSynced(ctx context.Context) error {
	d.heading(4, "waiting until both replicas have every change")
	start := time.Now()
	rep, ok, err := d.waitNode(ctx, d.nodes[0], demoSyncTimeout, nil)
	if err != nil {
		return err
	}
	if !ok {
		d.printLag(rep, true, "")
		return fmt.Errorf("demo: replicas not synced after %v", demoSyncTimeout)
	}
	for _, dn := range d.nodes[1:] {
		trep, ok, err := d.waitNode(ctx, dn, demoSyncTimeout, nil)
		if err != nil {
			return err
		}
		if !ok {
			d.printLag(trep, true, "")
			return fmt.Errorf("demo: %s not synced after %v", dn.name, demoSyncTimeout)
		}
	}
	fmt.Fprintf(d.out, "  synced after %.2fs\n", time.Since(start).Seconds())
	d.printLag(d.nodes[0].n.Lag(), true, "")
	return nil
}

// verify compares each replica with the source folder. A replica that
// differs is compared again until it matches or d.grace has passed, and
// the time it took is printed: wait-synced should make that unnecessary.
func (d *demo) verify(ctx context.Context) error {
	d.heading(5, "verifying replicas against the source")
	start := time.Now()
	deadline := start.Add(d.grace)
	bad := 0
	for _, dn := range d.nodes[1:] {
		dst := filepath.Join(dn.cfg.DataPath(), "replicas", d.nodes[0].id.String(), demoFolder)
		var st demoStats
		var diffs []string
		for tries := 0; ; tries++ {
			var err error
			st, diffs, err = compareTrees(d.src, dst)
			if err != nil {
				return fmt.Errorf("demo: verify %s: %w", dn.name, err)
			}
			if len(diffs) == 0 {
				if tries > 0 {
					fmt.Fprintf(d.out, "  %s: differed after wait-synced, converged %.2fs later\n", dn.name, time.Since(start).Seconds())
				}
				break
			}
			if !time.Now().Before(deadline) {
				break
			}
			t := time.NewTimer(demoVerifyPoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if len(diffs) == 0 {
			fmt.Fprintf(d.out, "  %s: replica matches (%s)\n", dn.name, st)
			continue
		}
		bad++
		fmt.Fprintf(d.out, "  %s: replica DIFFERS from the source in %d places:\n", dn.name, len(diffs))
		for i, x := range diffs {
			if i == demoMaxDiffsShown {
				fmt.Fprintf(d.out, "    ... and %d more\n", len(diffs)-i)
				break
			}
			fmt.Fprintf(d.out, "    %s\n", x)
		}
	}
	if bad > 0 {
		return fmt.Errorf("demo: %d of %d replicas differ from the source", bad, len(d.nodes)-1)
	}
	return nil
}

// cleanup stops the nodes, shows the node log tail if the demo failed
// (not when interrupted), and removes the temporary folder unless --keep.
func (d *demo) cleanup(ctx context.Context, failed bool) error {
	d.heading(6, "stopping nodes and cleaning up")
	if ctx.Err() != nil {
		fmt.Fprintln(d.out, "  interrupted")
	}
	var err error
	for _, dn := range d.nodes {
		err = errors.Join(err, dn.stop())
	}
	if d.logF != nil {
		err = errors.Join(err, d.logF.Close())
	}
	if (failed && ctx.Err() == nil) || err != nil {
		d.showLogTail()
	}
	if d.opts.keep {
		fmt.Fprintf(d.out, "kept %s (homes of laptop, nas and cloud; node log %s)\n", d.dir, demoLogFile)
		return err
	}
	if rerr := os.RemoveAll(d.dir); rerr != nil {
		return errors.Join(err, fmt.Errorf("demo: remove %s: %w", d.dir, rerr))
	}
	fmt.Fprintln(d.out, "cleaned up")
	return err
}

// stop cancels the node's Run, waits for it and closes the node.
func (dn *demoNode) stop() error {
	if dn.n == nil {
		return nil
	}
	dn.cancel()
	<-dn.done
	err := dn.runErr
	if cerr := dn.n.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	dn.n = nil
	if err != nil {
		return fmt.Errorf("demo: node %s: %w", dn.name, err)
	}
	return nil
}

// showLogTail prints the last lines of the node log to stderr.
func (d *demo) showLogTail() {
	p := filepath.Join(d.dir, demoLogFile)
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > demoLogTailLines {
		lines = lines[len(lines)-demoLogTailLines:]
	}
	fmt.Fprintf(d.errOut, "--- last %d lines of the node log %s ---\n%s\n---\n", len(lines), p, strings.Join(lines, "\n"))
}

// writeDemoFiles fills dir with the sample folder: text files, nested
// folders, an executable, a private file, a 20 MiB random file, a symlink
// and an empty folder, some with older modification times.
func writeDemoFiles(dir string) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	old := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	files := []struct {
		path string
		mode fs.FileMode
		data []byte
		mt   time.Time
	}{
		{"README.txt", 0o644, []byte("These files are protected by vigil.\nEvery change is copied to nas and cloud.\n"), old},
		{"notes/todo.md", 0o644, demoText(rng, 40), time.Time{}},
		{"notes/2026/meeting.txt", 0o644, demoText(rng, 120), old.Add(time.Hour)},
		{"notes/2026/ideas.txt", 0o644, demoText(rng, 15), time.Time{}},
		{"src/tool/run.sh", 0o755, []byte("#!/bin/sh\necho backed up\n"), time.Time{}},
		{"private/keys.txt", 0o600, demoText(rng, 8), time.Time{}},
		{"log.txt", 0o644, []byte("log start\n"), time.Time{}},
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
		if !f.mt.IsZero() {
			if err := os.Chtimes(p, f.mt, f.mt); err != nil {
				return err
			}
		}
	}
	if err := writeRandomFile(filepath.Join(dir, "photos", "raw", "big.bin"), demoBigFileSize, rng); err != nil {
		return err
	}
	if err := os.Symlink("notes/2026/meeting.txt", filepath.Join(dir, "latest-meeting")); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(dir, "inbox"), 0o755)
}

func writeRandomFile(p string, size int, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = io.CopyN(w, rand.NewChaCha8(seed), int64(size))
	if err == nil {
		err = w.Flush()
	}
	return errors.Join(err, f.Close())
}

var demoWords = strings.Fields("backup replica journal chunk mesh peer folder change baseline lag " +
	"laptop nas cloud sync verify restore history snapshot stream record")

// demoText returns n lines of words.
func demoText(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		k := 3 + rng.IntN(8)
		for j := 0; j < k; j++ {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(demoWords[rng.IntN(len(demoWords))])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// demoWorkload makes the live changes in the source folder.
type demoWorkload struct {
	root    string
	rng     *rand.Rand
	created []string // files made by the workload, slash-separated and relative
	count   int
	byKind  map[string]int
	dirs    int
}

func newDemoWorkload(root string) *demoWorkload {
	return &demoWorkload{root: root, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0xd3)),
		byKind: make(map[string]int)}
}

func (w *demoWorkload) abs(rel string) string { return filepath.Join(w.root, filepath.FromSlash(rel)) }

// step makes the next change of the cycle.
func (w *demoWorkload) step() error {
	kind := demoOps[w.count%len(demoOps)]
	if len(w.created) == 0 && (kind == "rename" || kind == "delete" || kind == "chmod") {
		kind = "create"
	}
	var err error
	switch kind {
	case "create":
		dir := "notes"
		if w.byKind["create"]%3 == 2 {
			w.dirs++
			dir = fmt.Sprintf("projects/p%02d/drafts", w.dirs)
		}
		rel := path.Join(dir, fmt.Sprintf("new-%03d.txt", w.count))
		if err = os.MkdirAll(w.abs(path.Dir(rel)), 0o755); err == nil {
			err = os.WriteFile(w.abs(rel), demoText(w.rng, 5+w.rng.IntN(200)), 0o644)
		}
		if err == nil {
			w.created = append(w.created, rel)
		}
	case "modify":
		if w.byKind["modify"]%2 == 0 {
			// A byte-level change inside the 20 MiB file.
			err = w.writeAt("photos/raw/big.bin", int64(w.rng.IntN(demoBigFileSize-4096)), 4096)
		} else {
			err = w.writeAt("notes/todo.md", 0, 16)
		}
	case "append":
		var f *os.File
		f, err = os.OpenFile(w.abs("log.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = fmt.Fprintf(f, "%s change %d\n", time.Now().UTC().Format(time.RFC3339Nano), w.count)
			err = errors.Join(err, f.Close())
		}
	case "rename":
		k := w.rng.IntN(len(w.created))
		old := w.created[k]
		rel := path.Join(path.Dir(old), fmt.Sprintf("renamed-%03d.txt", w.count))
		if err = os.Rename(w.abs(old), w.abs(rel)); err == nil {
			w.created[k] = rel
		}
	case "chmod":
		rel := w.created[w.rng.IntN(len(w.created))]
		err = os.Chmod(w.abs(rel), []fs.FileMode{0o600, 0o640, 0o755}[w.byKind["chmod"]%3])
	case "delete":
		k := w.rng.IntN(len(w.created))
		if err = os.Remove(w.abs(w.created[k])); err == nil {
			w.created = append(w.created[:k], w.created[k+1:]...)
		}
	}
	if err != nil {
		return err
	}
	w.count++
	w.byKind[kind]++
	return nil
}

func (w *demoWorkload) writeAt(rel string, off int64, n int) error {
	f, err := os.OpenFile(w.abs(rel), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + w.rng.IntN(26))
	}
	_, err = f.WriteAt(b, off)
	return errors.Join(err, f.Close())
}

func (w *demoWorkload) summary() string {
	var parts []string
	for _, k := range []string{"create", "modify", "append", "rename", "chmod", "delete"} {
		parts = append(parts, fmt.Sprintf("%d %s", w.byKind[k], k))
	}
	return strings.Join(parts, ", ")
}

// demoStats counts a folder's entries.
type demoStats struct {
	Files, Dirs, Symlinks int
	Bytes                 int64
}

func (s demoStats) String() string {
	return fmt.Sprintf("%s, %d bytes, %s, %s", demoPlural(s.Files, "file"), s.Bytes,
		demoPlural(s.Dirs, "dir"), demoPlural(s.Symlinks, "symlink"))
}

func demoPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (s *demoStats) add(fi fs.FileInfo) {
	switch {
	case fi.Mode().IsRegular():
		s.Files++
		s.Bytes += fi.Size()
	case fi.IsDir():
		s.Dirs++
	case fi.Mode()&fs.ModeSymlink != 0:
		s.Symlinks++
	}
}

// demoTreeStats counts the entries under root (root itself excluded).
func demoTreeStats(root string) (demoStats, error) {
	var st demoStats
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		st.add(fi)
		return nil
	})
	return st, err
}

// compareTrees compares the replica dst with the source src (see
// treediff.Diff) and counts the source's entries. err is a failure to read
// the source.
func compareTrees(src, dst string) (demoStats, []string, error) {
	var st demoStats
	diffs, _, err := treediff.Diff(src, dst, func(_ string, fi fs.FileInfo) { st.add(fi) })
	return st, diffs, err
}

// demoBytes formats n as KiB/MiB.
func demoBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
