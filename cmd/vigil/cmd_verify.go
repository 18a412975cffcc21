package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node"
)

func newVerifyCmd() *cobra.Command {
	var source, folder string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--source PEER] [--folder ID] [--json]",
		Short: "Check the replicas this node keeps (and their history) for damage; exit 1 if any differ",
		Long: "verify re-hashes every file of each replica this node keeps (or only those of --source and\n" +
			"--folder) and compares it with the node's index, reports files that differ, are missing or\n" +
			"are extra, re-hashes every chunk of the replica's history, and checks that every version\n" +
			"kept for `restore --at/--seq` can be restored: each of its chunks intact in the history\n" +
			"store or in the replica (else history-missing, naming the path, seq, time and chunk). With\n" +
			"the node running and the source online and in sync, the replica is also compared with the\n" +
			"source's current Merkle roots. Exit 1 if any problem is found.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerify(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), source, folder, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "only the replicas of this `PEER` (name or ID)")
	f.StringVar(&folder, "folder", "", "only the replicas of this folder `ID`")
	f.BoolVar(&asJSON, "json", false, "print the reports as JSON")
	return cmd
}

func runVerify(ctx context.Context, g *globals, stdout io.Writer, source, folder string, asJSON bool) error {
	cfg, err := g.LoadConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	reps, err := c.Verify(ctx, source, folder)
	if errors.Is(err, control.ErrNotRunning) {
		reps, err = node.VerifyOffline(cfg, source, folder)
	}
	if err != nil {
		return historyError("verify", err)
	}
	var buf bytes.Buffer
	problems := 0
	if asJSON {
		if err := writeJSON(&buf, reps); err != nil {
			return err
		}
	}
	for _, r := range reps {
		problems += len(r.Problems)
		if asJSON {
			continue
		}
		label := peerLabel(r.SourceName, r.Source) + "/" + r.Folder
		for _, p := range r.Problems {
			fmt.Fprintf(&buf, "%s: %s %s", label, p.Kind, quotePath(p.Path))
			if p.Detail != "" {
				fmt.Fprintf(&buf, ": %s", quotePath(p.Detail))
			}
			buf.WriteByte('\n')
		}
		status := "OK"
		if !r.OK {
			status = fmt.Sprintf("%d problem(s)", len(r.Problems))
		}
		fmt.Fprintf(&buf, "%s: %s (%d files, %s, %d history chunks, %d versions; against %s)\n",
			label, status, r.Files, humanBytes(r.Bytes), r.HistoryChunks, r.HistoryVersions, r.Against)
	}
	if len(reps) == 0 && !asJSON {
		buf.WriteString("no replicas: this node keeps no folder for others\n")
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return err
	}
	if problems > 0 {
		return fmt.Errorf("verify: %d problem(s) found", problems)
	}
	return nil
}
