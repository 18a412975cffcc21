package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/restore"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node"
)

// restoreBarMin is the size from which a restore shows a progress bar on a terminal.
const restoreBarMin = 64 << 20

type restoreOptions struct {
	source, folder, to, at, seq string
	force                       bool
}

func newRestoreCmd() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore --source PEER --folder ID --to DIR [--at RFC3339 | --seq N] [--force] [PATH...]",
		Short: "Write a folder kept for another node, as it was at a time or sequence number, into a directory",
		Long: "restore writes the folder ID of PEER (a peer name or ID) that this node keeps, or only the\n" +
			"named PATHs and what is below them, into --to: as it was at --at (RFC 3339 time) or after\n" +
			"journal record --seq, else the newest state. Modes, mtimes, symlinks and empty directories\n" +
			"are restored; each file is written under a temporary name and renamed. --to must be empty\n" +
			"unless --force (files the backup does not have are then left alone). It uses the running\n" +
			"node when there is one, else reads the data directory itself.",
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
	return cmd
}

func (o restoreOptions) request(paths []string) (restore.RestoreRequest, error) {
	req := restore.RestoreRequest{Source: o.source, Folder: o.folder, Paths: paths, Force: o.force}
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
	var bar *progressbar.ProgressBar
	progress := func(done, total int64) {
		if bar == nil {
			if total < restoreBarMin || !isTerminal(stderr) {
				return
			}
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr),
				progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true),
				progressbar.OptionSetWidth(30), progressbar.OptionSetDescription("restoring"),
				progressbar.OptionClearOnFinish())
		}
		bar.Set64(done)
	}
	c := control.NewClient(cfg.ControlAddr())
	defer c.Close()
	res, err := c.Restore(ctx, req, progress)
	if errors.Is(err, control.ErrNotRunning) {
		res, err = node.RestoreOffline(cfg, req, progress)
	}
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return historyError("restore", err)
	}
	when := "newest state"
	switch {
	case !req.At.IsZero():
		when = "state at " + req.At.Format(time.RFC3339Nano)
	case req.Seq != 0:
		when = fmt.Sprintf("state after seq %d", req.Seq)
	case !res.Time.IsZero():
		when = "newest state, " + res.Time.Local().Format(time.RFC3339)
	}
	_, err = fmt.Fprintf(stdout, "restored %s/%s as of seq %d (%s) into %s: %d files, %d dirs, %d symlinks, %s\n",
		peerLabel(res.SourceName, res.Source), res.Folder, res.Seq, when, res.To,
		res.Files, res.Dirs, res.Symlinks, humanBytes(res.Bytes))
	return err
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
	case errors.Is(err, restore.ErrBadRequest):
		return usageErrorf("%s: %w", cmd, err)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
