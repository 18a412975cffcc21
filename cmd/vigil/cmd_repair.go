package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node/control"
)

func newRepairCmd() *cobra.Command {
	var source, folder string
	var asJSON, rebuild bool
	cmd := &cobra.Command{
		Use:   "repair [--source PEER] [--folder ID] [--json] | repair --rebuild-index [--json]",
		Short: "Fetch again from the source whatever verify finds wrong in the replicas this node keeps",
		Long: "repair runs verify on each replica this node keeps (or only those of --source and --folder),\n" +
			"then brings every file that is damaged, missing or differs from the source back to the\n" +
			"source's current state, removes files the replica should not hold, and fetches damaged\n" +
			"history chunks again (those the source no longer has are dropped, and verify names the\n" +
			"versions that lost them). It needs the node running and the source online. It verifies\n" +
			"again at the end: exit 0 when nothing is left to repair, else 1.\n\n" +
			"--rebuild-index is the way back from a damaged index (DATA_DIR/index.db, which `vigil run`\n" +
			"refuses to use): with the node stopped, it moves the index aside (index.db.damaged-TIME)\n" +
			"and puts a new one in its place. On its next start the node rebuilds it: each protected\n" +
			"folder is scanned again and its backups take a new baseline, fetching only what they lack;\n" +
			"each replica takes a new baseline from its source, adopting by hash the files it already\n" +
			"holds. The restore points of the replicas from before the rebuild are lost.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rebuild {
				if source != "" || folder != "" {
					return usageErrorf("repair: --rebuild-index rebuilds the whole index: it takes no --source or --folder")
				}
				return runRebuildIndex(globalsFrom(cmd), cmd.OutOrStdout(), asJSON)
			}
			return runRepair(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), source, folder, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "only the replicas of this `PEER` (name or ID)")
	f.StringVar(&folder, "folder", "", "only the replicas of this folder `ID`")
	f.BoolVar(&asJSON, "json", false, "print the reports as JSON")
	f.BoolVar(&rebuild, "rebuild-index", false, "with the node stopped: set a damaged index.db aside; the node rebuilds it on its next start")
	return cmd
}

func runRepair(ctx context.Context, g *globals, stdout io.Writer, source, folder string, asJSON bool) error {
	cfg, err := g.LoadClientConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	reps, err := c.Repair(ctx, source, folder)
	if errors.Is(err, control.ErrNotRunning) {
		_, addr := cfg.ControlAddr()
		return fmt.Errorf("repair: the node is not running (nothing answers on %s): repair fetches from the source through it; start it with `vigil run`", addr)
	}
	if err != nil {
		return historyError("repair", err)
	}
	var buf bytes.Buffer
	left := 0
	if asJSON {
		if err := writeJSON(&buf, reps); err != nil {
			return err
		}
	}
	for _, r := range reps {
		left += len(r.After.Problems)
		if asJSON {
			continue
		}
		label := peerLabel(r.SourceName, r.Source) + "/" + r.Folder
		if len(r.Before.Problems) == 0 {
			fmt.Fprintf(&buf, "%s: OK, nothing to repair (%d files, %s)\n", label, r.After.Files, humanBytes(r.After.Bytes))
			continue
		}
		for _, p := range r.Before.Problems {
			fmt.Fprintf(&buf, "%s: found %s %s\n", label, p.Kind, quotePath(p.Path))
		}
		if len(r.After.Problems) == 0 {
			fmt.Fprintf(&buf, "%s: repaired %d problem(s); verify now OK\n", label, len(r.Before.Problems))
			continue
		}
		for _, p := range r.After.Problems {
			fmt.Fprintf(&buf, "%s: still %s %s", label, p.Kind, quotePath(p.Path))
			if p.Detail != "" {
				fmt.Fprintf(&buf, ": %s", quotePath(p.Detail))
			}
			buf.WriteByte('\n')
		}
	}
	if len(reps) == 0 && !asJSON {
		buf.WriteString("no replicas: this node keeps no folder for others\n")
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return err
	}
	if left > 0 {
		return fmt.Errorf("repair: %d problem(s) remain", left)
	}
	return nil
}
