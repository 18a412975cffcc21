package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/spf13/cobra"
)

// watchInterval is how often `vigil lag --watch` refreshes.
const watchInterval = 500 * time.Millisecond

// requestTimeout bounds one lag or status request to the control endpoint.
const requestTimeout = 10 * time.Second

type lagOptions struct {
	json       bool
	watch      bool
	waitSynced string // as given, so that messages repeat the user's spelling
}

func newLagCmd() *cobra.Command {
	var o lagOptions
	cmd := &cobra.Command{
		Use:   "lag [--json] [--watch] [--wait-synced DURATION]",
		Short: "Show the replication lag of every (source, folder, backup) pair",
		Long: "lag asks the running node for the replication lag of every pair it knows: one per\n" +
			"designated backup of each folder it protects, one per replica it keeps for others.\n" +
			"SEQ LAG is the number of journal records the backup has not applied (applied/head),\n" +
			"BYTES their size, SECONDS the age of the oldest of them.\n\n" +
			"--json prints the report as JSON (see docs/lag.md). --watch refreshes every 500ms\n" +
			"until Ctrl-C (with --json: one JSON document per line). --wait-synced 60s first makes\n" +
			"the node capture every pending change, then waits until every pair is live with\n" +
			"nothing to apply: exit 0 once synced, else 1 with the pairs still behind.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLag(cmd.Context(), globalsFrom(cmd), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print the lag report as JSON")
	f.BoolVar(&o.watch, "watch", false, "refresh every 500ms until interrupted")
	f.StringVar(&o.waitSynced, "wait-synced", "", "wait up to `DURATION` (e.g. 60s) for every pair to be live with nothing to apply; exit 1 if not")
	return cmd
}

func runLag(ctx context.Context, g *globals, stdout io.Writer, o lagOptions) error {
	var wait time.Duration
	if o.waitSynced != "" {
		d, err := time.ParseDuration(o.waitSynced)
		if err != nil || d <= 0 {
			return usageErrorf("lag: --wait-synced %q: want a positive duration such as 60s", o.waitSynced)
		}
		if o.watch {
			return usageErrorf("lag: --watch and --wait-synced cannot be used together")
		}
		wait = d
	}
	cfg, err := g.LoadClientConfig()
	if err != nil {
		return err
	}
	c := newControlClient(cfg)
	defer c.Close()
	_, addr := cfg.ControlAddr()

	switch {
	case wait > 0:
		return waitSynced(ctx, c, addr, stdout, o, wait)
	case o.watch:
		return watchLag(ctx, c, addr, stdout, o.json)
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	rep, err := c.Lag(rctx)
	if err != nil {
		return controlError(addr, err)
	}
	if o.json {
		return writeJSON(stdout, rep)
	}
	var buf bytes.Buffer
	writeLagTable(&buf, rep.Pairs, time.Now())
	_, err = stdout.Write(buf.Bytes())
	return err
}

// waitSynced runs `vigil lag --wait-synced`.
func waitSynced(ctx context.Context, c *control.Client, addr string, stdout io.Writer, o lagOptions, d time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The node bounds the wait by d; this only guards against a node that
	// stops answering.
	rctx, cancel := context.WithTimeout(ctx, d+requestTimeout)
	defer cancel()
	rep, ok, err := c.WaitSynced(rctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("lag: interrupted while waiting for sync")
		}
		return controlError(addr, err)
	}
	var buf bytes.Buffer
	behind := pairsBehind(rep.Pairs)
	switch {
	case o.json:
		if err := writeJSON(&buf, rep); err != nil {
			return err
		}
	case ok:
		writeLagTable(&buf, rep.Pairs, time.Now())
	default:
		writeLagTable(&buf, behind, time.Now())
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return err
	}
	if !ok {
		return &notSyncedError{after: o.waitSynced, behind: len(behind), failures: pairErrors(rep.Pairs)}
	}
	return nil
}

// pairFailure is one error of one pair, as the wait-synced message names it.
type pairFailure struct {
	pair string // "laptop/docs -> nas"
	control.ErrorReport
}

// pairErrors lists the errors of every pair, in pair order.
func pairErrors(pairs []control.LagPair) []pairFailure {
	var out []pairFailure
	for _, p := range sortPairs(pairs) {
		for _, e := range p.Errors {
			out = append(out, pairFailure{pair: pairLabel(p), ErrorReport: e})
		}
	}
	return out
}

func pairLabel(p control.LagPair) string {
	return peerLabel(p.SourceName, p.Source) + "/" + p.Folder + " -> " + peerLabel(p.TargetName, p.Target)
}

// watchLag runs `vigil lag --watch` until ctx ends or SIGINT/SIGTERM.
func watchLag(ctx context.Context, c *control.Client, addr string, stdout io.Writer, asJSON bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := !asJSON && isTerminal(stdout)
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		rep, err := c.Lag(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && frame == 0 {
			return controlError(addr, err)
		}
		var buf bytes.Buffer
		switch {
		case asJSON && err == nil:
			enc := json.NewEncoder(&buf)
			if err := enc.Encode(rep); err != nil {
				return err
			}
		case asJSON:
			// Nothing to print: a script sees the gap; the node may come back.
		default:
			now := time.Now()
			var body bytes.Buffer
			if err != nil {
				fmt.Fprintf(&body, "%s (retrying)\n", controlError(addr, err).Error())
			} else {
				writeLagTable(&body, rep.Pairs, now)
			}
			if tty {
				writeWatchFrame(&buf, frame == 0, rep.Node, now, body.Bytes())
			} else {
				if frame > 0 {
					buf.WriteByte('\n')
				}
				buf.Write(body.Bytes())
			}
		}
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// writeWatchFrame draws one refresh of --watch on a terminal: a title line
// and body, overwriting the previous frame in place (cursor home, each line
// cleared to its end, the rest of the screen cleared).
func writeWatchFrame(w *bytes.Buffer, first bool, nodeID string, now time.Time, body []byte) {
	if first {
		w.WriteString("\x1b[2J")
	}
	w.WriteString("\x1b[H")
	title := fmt.Sprintf("vigil lag  node %s  %s  (every %v, Ctrl-C to stop)",
		shortID(nodeID), now.Format("15:04:05"), watchInterval)
	w.WriteString(title + "\x1b[K\n\x1b[K\n")
	for line := range bytes.Lines(body) {
		w.Write(bytes.TrimRight(line, "\n"))
		w.WriteString("\x1b[K\n")
	}
	w.WriteString("\x1b[J")
}

// sortPairs orders pairs by source, folder and backup (names, then IDs).
func sortPairs(pairs []control.LagPair) []control.LagPair {
	out := slices.Clone(pairs)
	slices.SortStableFunc(out, func(a, b control.LagPair) int {
		return cmp.Or(
			cmp.Compare(peerLabel(a.SourceName, a.Source), peerLabel(b.SourceName, b.Source)),
			cmp.Compare(a.Source, b.Source),
			cmp.Compare(a.Folder, b.Folder),
			cmp.Compare(peerLabel(a.TargetName, a.Target), peerLabel(b.TargetName, b.Target)),
			cmp.Compare(a.Target, b.Target),
		)
	})
	return out
}

// pairsBehind returns the pairs that are not live with nothing to apply.
func pairsBehind(pairs []control.LagPair) []control.LagPair {
	var out []control.LagPair
	for _, p := range pairs {
		if p.State != control.StateLive || p.LagSeq != 0 || len(p.Errors) > 0 || p.MoreErrors > 0 {
			out = append(out, p)
		}
	}
	return out
}

// writeLagTable writes the lag table of pairs (sorted), followed by a
// progress bar for each pair in baseline.
func writeLagTable(w io.Writer, pairs []control.LagPair, now time.Time) {
	if len(pairs) == 0 {
		fmt.Fprintln(w, "no pairs: this node protects no folder and keeps none for others")
		return
	}
	pairs = sortPairs(pairs)
	t := newTable(w, "SOURCE", "FOLDER", "BACKUP", "STATE", "SEQ LAG", "BYTES", "SECONDS", "LAST APPLIED")
	for _, p := range pairs {
		t.row(peerLabel(p.SourceName, p.Source), p.Folder, peerLabel(p.TargetName, p.Target), p.State,
			seqLag(p), humanBytes(p.LagBytes), humanSeconds(p.LagSeconds), relativeTime(p.LastApplied, now))
	}
	t.flush()
	writeErrors(w, pairs, now)
	writeOffline(w, pairs)
	writeScans(w, pairs)
	var bars []control.LagPair
	for _, p := range pairs {
		if p.State == control.StateBaseline {
			bars = append(bars, p)
		}
	}
	if len(bars) == 0 {
		return
	}
	fmt.Fprintln(w)
	t = newTable(w, "BASELINE", "PROGRESS", "DONE", "RATE", "ETA")
	for _, p := range bars {
		rate, eta := "-", "-"
		if p.BaselineBytesPerSecond > 0 {
			rate = humanBytes(int64(p.BaselineBytesPerSecond)) + "/s"
		}
		if p.BaselineETASeconds != nil {
			eta = humanDuration(time.Duration(*p.BaselineETASeconds * float64(time.Second)).Round(time.Second))
		}
		t.row(peerLabel(p.SourceName, p.Source)+"/"+p.Folder+" -> "+peerLabel(p.TargetName, p.Target),
			textBar(p.BaselineDoneBytes, p.BaselineTotalBytes, 30)+" "+percent(p.BaselineDoneBytes, p.BaselineTotalBytes),
			humanBytes(p.BaselineDoneBytes)+" of "+humanBytes(p.BaselineTotalBytes), rate, eta)
	}
	t.flush()
}

// seqLag formats the SEQ LAG cell: "2 (118/120)", records not applied
// and applied/head.
func seqLag(p control.LagPair) string {
	return strconv.FormatUint(p.LagSeq, 10) + " (" + strconv.FormatUint(p.AppliedSeq, 10) + "/" +
		strconv.FormatUint(p.HeadSeq, 10) + ")"
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// notRunningError says that no node answers on the control endpoint.
type notRunningError struct {
	Addr string // socket path or host:port
	Err  error
}

func (e *notRunningError) Error() string {
	return "node not running: nothing answers on " + e.Addr
}

func (e *notRunningError) Unwrap() error { return e.Err }

// controlError turns a control client error into what the user reads: a
// node that is not running is one short line naming the socket.
func controlError(addr string, err error) error {
	if errors.Is(err, control.ErrNotRunning) {
		return &notRunningError{Addr: addr, Err: err}
	}
	return err
}

// notSyncedError is the failure of `vigil lag --wait-synced`.
type notSyncedError struct {
	after    string // the duration as the user wrote it
	behind   int    // pairs not live with nothing to apply
	failures []pairFailure
}

// maxNamed bounds the failures named in the one-line message.
const maxNamed = 8

func (e *notSyncedError) Error() string {
	if len(e.failures) == 0 {
		return fmt.Sprintf("not synced after %s: %d pair(s) behind", e.after, e.behind)
	}
	var b strings.Builder
	b.WriteString("not synced: changes cannot be backed up: ")
	for i, f := range e.failures {
		if i == maxNamed {
			fmt.Fprintf(&b, "; and %d more (see vigil lag)", len(e.failures)-maxNamed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		if f.Path != "" {
			b.WriteString(quotePath(f.Path) + ": ")
		}
		b.WriteString(f.Error + " (" + f.pair + ")")
	}
	return b.String()
}

// writeErrors lists, below the table, what keeps each pair from being
// backed up.
func writeErrors(w io.Writer, pairs []control.LagPair, now time.Time) {
	first := true
	for _, p := range pairs {
		if len(p.Errors) == 0 && p.MoreErrors == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "NOT BACKED UP")
			first = false
		}
		for _, e := range p.Errors {
			what := e.Path
			if what == "" {
				what = "(whole folder)"
			}
			fmt.Fprintf(w, "  %s  %s: %s (since %s)\n", pairLabel(p), quotePath(what), e.Error, relativeTime(&e.Since, now))
		}
		if p.MoreErrors > 0 {
			fmt.Fprintf(w, "  %s  and %d more\n", pairLabel(p), p.MoreErrors)
		}
	}
}

// writeOffline says why the other side of offline pairs is not connected
// (reasons that are errors are in NOT BACKED UP already).
func writeOffline(w io.Writer, pairs []control.LagPair) {
	first := true
	for _, p := range pairs {
		if p.OfflineReason == "" || slices.ContainsFunc(p.Errors, func(e control.ErrorReport) bool {
			return strings.Contains(e.Error, p.OfflineReason)
		}) {
			continue
		}
		if first {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "OFFLINE")
			first = false
		}
		fmt.Fprintf(w, "  %s  %s\n", pairLabel(p), p.OfflineReason)
	}
}

// writeScans lists the folders this node scans as a source (once per
// folder, whatever its number of backups).
func writeScans(w io.Writer, pairs []control.LagPair) {
	seen := make(map[string]bool)
	for _, p := range pairs {
		if p.SourceScan == nil || seen[p.Folder] {
			continue
		}
		if len(seen) == 0 {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "SCANNING")
		}
		seen[p.Folder] = true
		fmt.Fprintf(w, "  %s/%s  %s\n", peerLabel(p.SourceName, p.Source), cellText(p.Folder), scanText(p.SourceScan))
	}
}

// quotePath shows a path (or an error) as is unless it holds characters a
// terminal would misrender (newlines, C0 and C1 controls, invalid UTF-8):
// then quoted with Go escapes.
func quotePath(p string) string {
	if !utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl) {
		return strconv.Quote(p)
	}
	return p
}
