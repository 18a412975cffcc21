package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/restore"
)

type restoreOptions struct {
	source, folder, to, at, seq string
	force, dryRun, asJSON       bool
}

func newRestoreCmd() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore --source PEER --folder ID --to DIR [--at RFC3339 | --seq N] [--force] [--dry-run] [--json] [PATH...]",
		Short: "Write a folder kept for another node, as it was at a time or sequence number, into a directory",
		Long: "restore writes the folder ID of PEER (a peer name or ID) that this node keeps, or only the\n" +
			"named PATHs and what is below them, into --to: as it was at --at (RFC 3339 time) or after\n" +
			"journal record --seq, else the newest state (`vigil points` lists them). Modes, mtimes,\n" +
			"symlinks and empty directories are restored; every chunk written is verified against its\n" +
			"hash, and each file is written under a temporary name and renamed. --to must be empty\n" +
			"unless --force (files the backup does not have are then left alone).\n\n" +
			"A file whose content is found nowhere intact is left out and named; the rest is restored\n" +
			"and restore exits 1. Any other failure (or an interrupt) undoes the restore: a --to it\n" +
			"created is removed, and what it replaced in an existing --to is put back. It uses the\n" +
			"running node when there is one, else reads the data directory itself.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "the `PEER` (name or ID) whose folder to restore")
	f.StringVar(&o.folder, "folder", "", "the folder `ID` to restore")
	f.StringVar(&o.to, "to", "", "target `DIR` (created if missing; must be empty unless --force)")
	f.StringVar(&o.at, "at", "", "restore the state at this `TIME` (RFC 3339, e.g. 2026-11-25T16:00:00Z)")
	f.StringVar(&o.seq, "seq", "", "restore the state after journal record `N`")
	f.BoolVar(&o.force, "force", false, "restore into a non-empty --to")
	f.BoolVar(&o.dryRun, "dry-run", false, "say what would be restored; write nothing")
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON (with --dry-run: and every path)")
	return cmd
}

func (o restoreOptions) request(paths []string) (restore.RestoreRequest, error) {
	req := restore.RestoreRequest{Source: o.source, Folder: o.folder, Paths: paths, Force: o.force, DryRun: o.dryRun}
	switch {
	case o.source == "":
		return req, usageErrorf("restore: --source is required")
	case o.folder == "":
		return req, usageErrorf("restore: --folder is required")
	case o.to == "":
		return req, usageErrorf("restore: --to is required")
	case o.at != "" && o.seq != "":
		return req, usageErrorf("restore: --at and --seq cannot be used together")
	}
	if o.at != "" {
		t, err := time.Parse(time.RFC3339Nano, o.at)
		if err != nil {
			return req, usageErrorf("restore: --at %q: want an RFC 3339 time such as 2026-11-25T16:00:00Z", o.at)
		}
		req.At = t
	}
	if o.seq != "" {
		n, err := strconv.ParseUint(o.seq, 10, 64)
		if err != nil || n == 0 {
			return req, usageErrorf("restore: --seq %q: want a positive journal sequence number", o.seq)
		}
		req.Seq = n
	}
	to, err := filepath.Abs(o.to)
	if err != nil {
		return req, usageErrorf("restore: --to %q: %w", o.to, err)
	}
	req.To = to
	return req, nil
}

func runRestore(ctx context.Context, g *globals, stdout, stderr io.Writer, o restoreOptions, paths []string) error {
	req, err := o.request(paths)
	if err != nil {
		return err
	}
	cfg, err := g.LoadConfig()
	if err != nil {
		return err
	}
	// An interrupt ends the restore, which then undoes what it wrote.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var prog *restoreProgress
	if !req.DryRun && isTerminal(stderr) {
		prog = newRestoreProgress(stderr, o.source+"/"+o.folder, time.Now)
	}
	c := newControlClient(cfg)
	defer c.Close()
	res, err := c.Restore(ctx, req, prog.update)
	if errors.Is(err, control.ErrNotRunning) {
		res, err = node.RestoreOffline(ctx, cfg, commandLogger(g), req, prog.update)
	}
	prog.finish()
	if ctx.Err() != nil && err != nil {
		return fmt.Errorf("restore: interrupted: what it wrote into %s is undone", req.To)
	}
	if err != nil && !errors.Is(err, restore.ErrIncomplete) {
		return restoreError(req, err)
	}

	var buf bytes.Buffer
	if o.asJSON {
		if werr := writeJSON(&buf, res); werr != nil {
			return werr
		}
	} else {
		printRestoreResult(&buf, req, res)
		what := "not restored"
		if res.DryRun {
			what = "would not be restored"
		}
		for _, f := range res.Failed {
			fmt.Fprintf(stderr, "%s: %s: %s\n", what, quotePath(f.Path), quotePath(f.Error))
		}
	}
	if _, werr := stdout.Write(buf.Bytes()); werr != nil {
		return werr
	}
	if err != nil {
		return restoreError(req, err)
	}
	return nil
}

// printRestoreResult writes the one-line summary of a restore (or of a dry
// run: what it would write; --json lists the paths).
func printRestoreResult(w io.Writer, req restore.RestoreRequest, res restore.RestoreResult) {
	when := "newest state"
	switch {
	case !req.At.IsZero():
		when = "state at " + req.At.Format(time.RFC3339Nano)
	case req.Seq != 0:
		when = fmt.Sprintf("state after seq %d", req.Seq)
	case !res.Time.IsZero():
		when = "newest state, " + res.Time.Local().Format(time.RFC3339)
	}
	verb := "restored"
	if res.DryRun {
		verb = "would restore"
	}
	fmt.Fprintf(w, "%s %s/%s as of seq %d (%s) into %s: %d files, %d dirs, %d symlinks, %s\n",
		verb, peerLabel(res.SourceName, res.Source), res.Folder, res.Seq, when, quotePath(res.To),
		res.Files, res.Dirs, res.Symlinks, humanBytes(res.Bytes))
}

// restoreError names the flag at fault in the errors a caller makes.
func restoreError(req restore.RestoreRequest, err error) error {
	switch {
	case errors.Is(err, restore.ErrAfterNewest) && req.Seq != 0:
		return usageErrorf("restore: --seq %d: %w", req.Seq, err)
	case errors.Is(err, restore.ErrAfterNewest):
		return usageErrorf("restore: --at: %w", err)
	case errors.Is(err, restore.ErrNotEmpty):
		return usageErrorf("restore: --to: %w: pass --force to restore into it", err)
	}
	return historyError("restore", err)
}

// historyError prefixes a restore/verify/history error with the command and
// makes the caller's mistakes (unknown replica, non-empty --to, bad
// request) usage errors.
func historyError(cmd string, err error) error {
	switch {
	case errors.Is(err, restore.ErrNoReplica):
		return usageErrorf("%s: --source/--folder: %w", cmd, err)
	case errors.Is(err, restore.ErrNotEmpty):
		return usageErrorf("%s: --to: %w", cmd, err)
	case errors.Is(err, restore.ErrBadRequest), errors.Is(err, restore.ErrAfterNewest):
		return usageErrorf("%s: %w", cmd, err)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

// Restore progress on a terminal: a bar with the bytes written, the rate
// and the time left, shown once a restore has run for restoreProgressAfter
// (a quick restore prints nothing but its result) and redrawn at most
// every progressRefresh.
const restoreProgressAfter = time.Second

// restoreProgress draws the progress of one restore. update may be called
// from several goroutines; a nil *restoreProgress draws nothing.
type restoreProgress struct {
	out   io.Writer
	label string
	now   func() time.Time
	start time.Time

	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	last time.Time
}

func newRestoreProgress(out io.Writer, label string, now func() time.Time) *restoreProgress {
	return &restoreProgress{out: out, label: label, now: now, start: now()}
}

// update records done of total content bytes written.
func (p *restoreProgress) update(done, total int64) {
	if p == nil || total <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	elapsed := now.Sub(p.start)
	if elapsed < restoreProgressAfter || now.Sub(p.last) < progressRefresh {
		return
	}
	p.last = now
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
	}
	p.bar.Describe(restoreStatus(p.label, done, total, elapsed))
	p.bar.Set64(min(done, total-1)) // a full bar would finish (and print) it; finish erases it
	p.bar.RenderBlank()
}

// finish erases the bar.
func (p *restoreProgress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		io.WriteString(p.out, "\r\x1b[2K")
		p.bar = nil
	}
}

// restoreStatus is the text next to the restore bar, e.g. "restoring
// laptop/docs: 1.2 GiB of 4.0 GiB (30%), 850 MiB/s, 3.4s left".
func restoreStatus(label string, done, total int64, elapsed time.Duration) string {
	s := fmt.Sprintf("restoring %s: %s of %s (%s)", label, humanBytes(done), humanBytes(total), percent(done, total))
	if elapsed <= 0 || done <= 0 {
		return s
	}
	rate := float64(done) / elapsed.Seconds()
	s += fmt.Sprintf(", %s/s", humanBytes(int64(rate)))
	if done < total {
		s += ", " + humanDuration(time.Duration(float64(total-done)/rate*float64(time.Second))) + " left"
	}
	return s
}

// commandLogger is the logger of a command that opens a node's data
// directory itself (a node not running): the command prints its own
// result, so only warnings and errors are logged, unless --log-level debug.
func commandLogger(g *globals) *slog.Logger {
	if g.level >= slog.LevelWarn || g.level < slog.LevelInfo {
		return g.Logger()
	}
	opts := &slog.HandlerOptions{Level: slog.LevelWarn}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}
