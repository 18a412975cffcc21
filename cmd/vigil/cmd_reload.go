package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node/control"
)

func newReloadCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reload [--json]",
		Short: "Make the running node read vigil.yaml again (like SIGHUP)",
		Long: "reload checks vigil.yaml and asks the running node to apply it without a restart: peers,\n" +
			"folders, backup_for entries and ignore patterns. Folders and replicas that were added\n" +
			"start, those removed stop (their data stays on disk), those whose entry changed are\n" +
			"rebuilt; the others go on undisturbed. An invalid file is refused with the usual\n" +
			"message (exit 2) and the node keeps its running config. node.listen, node.control and\n" +
			"node.metrics take effect at the next start. Sending SIGHUP to `vigil run` does the same.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReload(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what changed as JSON")
	return cmd
}

func runReload(ctx context.Context, g *globals, stdout io.Writer, asJSON bool) error {
	// An invalid file is reported here, with file and line, before the
	// node is asked (it would refuse it the same way).
	cfg, err := g.LoadConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	_, addr := cfg.ControlAddr()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	rep, err := c.Reload(rctx)
	if err != nil && !errors.Is(err, control.ErrReloadFailed) {
		return controlError(addr, err)
	}
	if asJSON {
		if werr := writeJSON(stdout, rep); werr != nil {
			return werr
		}
	} else {
		writeReload(stdout, rep)
	}
	return err
}

// writeReload prints what a reload changed, one line per kind.
func writeReload(w io.Writer, rep control.ReloadReport) {
	line := func(what string, items []string) {
		if len(items) > 0 {
			fmt.Fprintf(w, "%-14s %s\n", what, strings.Join(items, ", "))
		}
	}
	if len(rep.Added)+len(rep.Removed)+len(rep.Changed)+len(rep.NeedsRestart)+len(rep.Errors) == 0 {
		fmt.Fprintln(w, "reloaded: nothing changed")
		return
	}
	fmt.Fprintln(w, "reloaded:")
	line("added", rep.Added)
	line("removed", rep.Removed)
	line("changed", rep.Changed)
	line("needs restart", rep.NeedsRestart)
	line("not started", rep.Errors)
}
