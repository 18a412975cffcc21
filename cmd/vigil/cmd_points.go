package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/node/restore"
)

// pointsLimit is how many restore points `vigil points` shows by default.
const pointsLimit = 100

type pointsOptions struct {
	source, folder, since string
	limit                 int
	asJSON                bool
}

func newPointsCmd() *cobra.Command {
	var o pointsOptions
	cmd := &cobra.Command{
		Use:   "points --source PEER --folder ID [--since TIME|DURATION] [--limit N] [--json]",
		Short: "List the restore points of a folder kept for another node",
		Long: "points lists the restore points of folder ID of PEER that this node keeps, oldest first:\n" +
			"each journal seq (and source time) at which something changed, with the number of paths\n" +
			"changed (and of those deleted) and the bytes of new content. `vigil restore --seq SEQ` (or\n" +
			"--at TIME) restores the state right after a point. --since keeps the points at or after a\n" +
			"time (RFC 3339) or within a duration (24h: the last day); --limit keeps the newest N\n" +
			"(default 100, 0: all). It uses the running node when there is one, else reads the data\n" +
			"directory itself.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPoints(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), o, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "the `PEER` (name or ID) whose folder it is")
	f.StringVar(&o.folder, "folder", "", "the folder `ID`")
	f.StringVar(&o.since, "since", "", "only points at or after this `TIME` (RFC 3339) or within this duration (e.g. 24h)")
	f.IntVar(&o.limit, "limit", pointsLimit, "show the newest `N` points (0: all)")
	f.BoolVar(&o.asJSON, "json", false, "print the points as JSON")
	return cmd
}

// parseSince reads --since: an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErrorf("points: --since %q: want an RFC 3339 time such as 2026-11-25T16:00:00Z or a duration such as 24h", s)
}

func runPoints(ctx context.Context, g *globals, stdout io.Writer, o pointsOptions, now time.Time) error {
	switch {
	case o.source == "":
		return usageErrorf("points: --source is required")
	case o.folder == "":
		return usageErrorf("points: --folder is required")
	case o.limit < 0:
		return usageErrorf("points: --limit %d: want a number >= 0", o.limit)
	}
	since, err := parseSince(o.since, now)
	if err != nil {
		return err
	}
	cfg, err := g.LoadClientConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	rep, err := c.Points(ctx, o.source, o.folder, since, o.limit)
	if errors.Is(err, control.ErrNotRunning) {
		rep, err = node.PointsOffline(cfg, o.source, o.folder, since, o.limit)
	}
	if err != nil {
		return historyError("points", err)
	}
	var buf bytes.Buffer
	if o.asJSON {
		if err := writeJSON(&buf, rep); err != nil {
			return err
		}
	} else {
		printPoints(&buf, rep, o.since != "")
	}
	_, err = stdout.Write(buf.Bytes())
	return err
}

// printPoints writes a points report as a heading and a table.
func printPoints(w io.Writer, rep restore.PointsReport, since bool) {
	label := peerLabel(rep.SourceName, rep.Source) + "/" + rep.Folder
	newest := fmt.Sprintf("seq %d", rep.NewestSeq)
	if !rep.NewestTime.IsZero() {
		newest += ", " + rep.NewestTime.Local().Format(time.RFC3339)
	}
	if !rep.Retained && rep.Total == 0 {
		fmt.Fprintf(w, "%s: no history is kept (retention is 0): only the newest state (%s) can be restored\n", label, newest)
		return
	}
	fmt.Fprintf(w, "%s: %d restore points, the newest state is %s", label, rep.Total, newest)
	switch {
	case len(rep.Points) < rep.Total && since:
		fmt.Fprintf(w, "; showing %d", len(rep.Points))
	case len(rep.Points) < rep.Total:
		fmt.Fprintf(w, "; showing the newest %d (--limit 0 for all)", len(rep.Points))
	}
	fmt.Fprintln(w)
	if len(rep.Points) == 0 {
		return
	}
	t := newTable(w, "TIME", "SEQ", "FILES", "DELETED", "NEW DATA")
	for _, p := range rep.Points {
		t.row(p.Time.Local().Format(time.RFC3339Nano), strconv.FormatUint(p.Seq, 10), strconv.Itoa(p.Files),
			strconv.Itoa(p.Deleted), humanBytes(p.Bytes))
	}
	t.flush()
}
