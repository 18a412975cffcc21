package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the running node: peers, protected folders, replicas held",
		Long: "status asks the running node for an overview: its ID and addresses, the configured\n" +
			"peers (connected or not, round-trip time), the folders it protects (entries, size,\n" +
			"journal) and the replicas it keeps for others (state, size, applied/head sequence,\n" +
			"baseline progress, last error). --json prints the report as JSON.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status report as JSON")
	return cmd
}

func runStatus(ctx context.Context, g *globals, stdout io.Writer, asJSON bool) error {
	cfg, err := g.LoadClientConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	_, addr := cfg.ControlAddr()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := c.Status(rctx)
	if err != nil {
		return controlError(addr, err)
	}
	if asJSON {
		return writeJSON(stdout, st)
	}
	var buf bytes.Buffer
	writeStatus(&buf, st, time.Now())
	_, err = stdout.Write(buf.Bytes())
	return err
}

// writeStatus writes the status report as a node section and the PEERS,
// FOLDERS and REPLICAS tables.
func writeStatus(w io.Writer, st control.StatusReport, now time.Time) {
	t := newTable(w, "node", st.Name+" ("+st.ID+")")
	addrs := strings.Join(st.Addrs, ", ")
	t.row("addrs", addrs)
	up := "-"
	if !st.Started.IsZero() {
		up = st.Started.Local().Format("2006-01-02 15:04:05 MST") + " (" + humanDuration(now.Sub(st.Started)) + ")"
	}
	t.row("up since", up)
	t.row("journal", humanBytes(st.JournalBytes))
	t.flush()

	fmt.Fprintln(w, "\nPEERS")
	if len(st.Peers) == 0 {
		fmt.Fprintln(w, "none configured")
	} else {
		peers := slices.Clone(st.Peers)
		slices.SortStableFunc(peers, func(a, b control.PeerReport) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		t = newTable(w, "NAME", "ID", "CONNECTED", "ADDRS", "RTT")
		for _, p := range peers {
			connected, rtt := "no", "-"
			if p.Connected {
				connected = "yes"
				if p.RTTMillis > 0 {
					rtt = strconv.FormatFloat(p.RTTMillis, 'f', 1, 64) + "ms"
				}
			}
			t.row(p.Name, shortID(p.ID), connected, strings.Join(uniqueStrings(p.Addrs), ", "), rtt)
		}
		t.flush()
		for _, p := range peers {
			if !p.Connected && p.Problem != "" {
				fmt.Fprintf(w, "  %s not connected: %s\n", p.Name, p.Problem)
			}
		}
	}

	fmt.Fprintln(w, "\nFOLDERS")
	if len(st.Folders) == 0 {
		fmt.Fprintln(w, "none protected")
	} else {
		folders := slices.Clone(st.Folders)
		slices.SortStableFunc(folders, func(a, b control.FolderReport) int { return cmp.Compare(a.ID, b.ID) })
		t = newTable(w, "ID", "PATH", "ENTRIES", "SIZE", "JOURNAL SEQS", "JOURNAL SIZE", "BACKUPS")
		for _, f := range folders {
			t.row(f.ID, f.Path, strconv.Itoa(f.Entries), humanBytes(f.Bytes), journalSeqs(f.JournalFirst, f.JournalLast),
				humanBytes(f.JournalBytes), strings.Join(f.BackupTo, ", "))
		}
		t.flush()
		for _, f := range folders {
			if f.Scan != nil {
				fmt.Fprintf(w, "  %s %s\n", cellText(f.ID), scanText(f.Scan))
			}
		}
	}

	fmt.Fprintln(w, "\nREPLICAS")
	if len(st.Replicas) == 0 {
		fmt.Fprintln(w, "none held")
	} else {
		writeReplicas(w, st.Replicas)
	}
	writeStatusErrors(w, st, now)
	if len(st.RefusedFolders) > 0 {
		fmt.Fprintln(w, "\nASKED TO BACK UP, NOT KEPT (no backup_for entry)")
		for _, r := range st.RefusedFolders {
			fmt.Fprintf(w, "  %s/%s (asked since %s): add it to backup_for to keep it\n",
				peerLabel(r.SourceName, r.Source), r.Folder, relativeTime(&r.Since, now))
		}
	}
}

// writeReplicas writes the REPLICAS table.
func writeReplicas(w io.Writer, replicas []control.ReplicaReport) {
	reps := slices.Clone(replicas)
	slices.SortStableFunc(reps, func(a, b control.ReplicaReport) int {
		return cmp.Or(cmp.Compare(peerLabel(a.SourceName, a.Source), peerLabel(b.SourceName, b.Source)),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.Folder, b.Folder))
	})
	t := newTable(w, "SOURCE", "FOLDER", "STATE", "FILES", "SIZE", "APPLIED/HEAD", "BASELINE", "CHUNKS FETCHED", "LAST ERROR")
	for _, r := range reps {
		t.row(peerLabel(r.SourceName, r.Source), r.Folder, r.State, strconv.Itoa(r.Files), humanBytes(r.Bytes),
			strconv.FormatUint(r.AppliedSeq, 10)+"/"+strconv.FormatUint(r.HeadSeq, 10),
			baselineCell(r), strconv.FormatInt(r.ChunksFetched, 10), r.LastError)
	}
	t.flush()
}

// writeStatusErrors lists what keeps folders and replicas from being
// backed up.
func writeStatusErrors(w io.Writer, st control.StatusReport, now time.Time) {
	var lines []string
	add := func(where string, es []control.ErrorReport) {
		for _, e := range es {
			what := e.Path
			if what == "" {
				what = "(whole folder)"
			}
			lines = append(lines, fmt.Sprintf("  %s  %s: %s (since %s)", where, quotePath(what), e.Error, relativeTime(&e.Since, now)))
		}
	}
	for _, f := range st.Folders {
		add("folder "+f.ID, f.Errors)
	}
	for _, r := range st.Replicas {
		add("replica "+peerLabel(r.SourceName, r.Source)+"/"+r.Folder, r.Errors)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNOT BACKED UP")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// journalSeqs formats a journal's retained sequence numbers as "first..last",
// or "-" when it holds no record.
func journalSeqs(first, last uint64) string {
	if last == 0 || first > last {
		return "-"
	}
	return strconv.FormatUint(first, 10) + ".." + strconv.FormatUint(last, 10)
}

// uniqueStrings drops repeated values (a peer reached over two connections
// lists the same address twice), keeping the first occurrence's order.
func uniqueStrings(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// baselineCell is the BASELINE column of a replica: its progress, or 100%
// for a replica past its baseline whose sizes the node no longer holds
// (they are not kept across restarts).
func baselineCell(r control.ReplicaReport) string {
	if r.BaselineTotalBytes <= 0 && r.State != control.StateBaseline && r.State != "" {
		return "100%"
	}
	return percent(r.BaselineDoneBytes, r.BaselineTotalBytes)
}
