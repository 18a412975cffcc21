package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node"
)

func newHistoryCmd() *cobra.Command {
	var source, folder string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history --source PEER --folder ID PATH [--json]",
		Short: "List the versions of a file kept for another node (time, seq, size)",
		Long: "history lists the versions of PATH in folder ID of PEER that this node keeps for\n" +
			"point-in-time restore, oldest first: the source time of each change, its journal seq,\n" +
			"and the size (or \"deleted\"). Use a TIME or SEQ with `vigil restore --at/--seq`.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("history: want exactly one PATH (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHistory(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), source, folder, args[0], asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "the `PEER` (name or ID) whose folder it is")
	f.StringVar(&folder, "folder", "", "the folder `ID`")
	f.BoolVar(&asJSON, "json", false, "print the versions as JSON")
	return cmd
}

func runHistory(ctx context.Context, g *globals, stdout io.Writer, source, folder, p string, asJSON bool) error {
	switch {
	case source == "":
		return usageErrorf("history: --source is required")
	case folder == "":
		return usageErrorf("history: --folder is required")
	}
	cfg, err := g.LoadClientConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	vs, err := c.History(ctx, source, folder, p)
	if errors.Is(err, control.ErrNotRunning) {
		vs, err = node.HistoryOffline(cfg, source, folder, p)
	}
	if err != nil {
		return historyError("history", err)
	}
	var buf bytes.Buffer
	if asJSON {
		if err := writeJSON(&buf, vs); err != nil {
			return err
		}
	} else {
		t := newTable(&buf, "TIME", "SEQ", "SIZE", "KIND")
		for _, v := range vs {
			size, kind := "deleted", ""
			if v.Entry != nil {
				size, kind = strconv.FormatInt(v.Entry.Size, 10), v.Entry.Kind.String()
			}
			t.row(v.Time.Local().Format(time.RFC3339Nano), strconv.FormatUint(v.Seq, 10), size, kind)
		}
		t.flush()
	}
	_, err = stdout.Write(buf.Bytes())
	return err
}
