package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/vigil-mesh/vigil/node/control"
)

// Formatting shared by the commands that print tables (lag, status): sizes
// in IEC units, durations and relative times as a person reads them, peer
// IDs shortened, and aligned columns.

// table writes aligned columns: a header row, then one row per call to row.
type table struct {
	tw *tabwriter.Writer
}

// newTable starts a table on w with the given column headers.
func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

// row adds a row; a cell never contains a tab or a newline.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cellText(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// flush writes the table out.
func (t *table) flush() error { return t.tw.Flush() }

// cellText makes s safe for one table cell: control characters (tabs,
// newlines, escape sequences from a file name or an error) become spaces or
// '?', and an empty cell shows "-".
func cellText(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r) || r == utf8.RuneError:
			return '?'
		}
		return r
	}, s)
}

// humanBytes formats n bytes in IEC units: "0 B", "512 B", "1.5 KiB",
// "12.3 MiB", "2.00 GiB" (three significant digits from KiB up).
func humanBytes(n int64) string {
	if n < 0 {
		return "-" + humanBytes(-n)
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	const units = "KMGTPE"
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	var num string
	switch {
	case v >= 100:
		num = strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		num = strconv.FormatFloat(v, 'f', 1, 64)
	default:
		num = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return num + " " + units[i:i+1] + "iB"
}

// humanSeconds formats a lag in seconds for the SECONDS column: "0",
// "0.35", "12.4", "305".
func humanSeconds(s float64) string {
	switch {
	case s <= 0 || math.IsNaN(s):
		return "0"
	case s < 10:
		return strconv.FormatFloat(s, 'f', 2, 64)
	case s < 100:
		return strconv.FormatFloat(s, 'f', 1, 64)
	default:
		return strconv.FormatFloat(s, 'f', 0, 64)
	}
}

// humanDuration formats d coarsely: "350ms", "4.2s", "3m05s", "2h07m",
// "3d04h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// relativeTime formats t as seen from now: "never" (nil or zero), "now"
// (under a second), "2s ago", "3m05s ago"; a time in the future (clock
// skew between nodes) reads "in 2s".
func relativeTime(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d < 0:
		return "in " + wholeDuration(-d)
	default:
		return wholeDuration(d) + " ago"
	}
}

// wholeDuration is humanDuration without fractions of a second.
func wholeDuration(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(int(d.Seconds())) + "s"
	}
	return humanDuration(d)
}

// shortID shortens a peer ID for a table: the first 8 and last 6
// characters ("12D3KooW...x7Yq2P"). Short strings are kept whole.
func shortID(id string) string {
	if len(id) <= 17 {
		return id
	}
	return id[:8] + "..." + id[len(id)-6:]
}

// peerLabel is a peer's name, or its short ID when it has none.
func peerLabel(name, id string) string {
	if name != "" {
		return name
	}
	return shortID(id)
}

// percent formats done/total as "52%" ("-" when total is not known).
func percent(done, total int64) string {
	if total <= 0 {
		return "-"
	}
	p := float64(done) / float64(total) * 100
	return strconv.Itoa(int(math.Min(math.Max(p, 0), 100))) + "%"
}

// textBar draws done/total as a bar of width cells: "[=======>      ]".
func textBar(done, total int64, width int) string {
	fill := 0
	if total > 0 {
		fill = int(float64(width) * float64(min(max(done, 0), total)) / float64(total))
	}
	var b strings.Builder
	b.WriteByte('[')
	for i := range width {
		switch {
		case i < fill:
			b.WriteByte('=')
		case i == fill && fill > 0:
			b.WriteByte('>')
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteByte(']')
	return b.String()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// scanText describes a source's scan of a whole folder under way: "first
// scan: 1200 of 5000 files read (40.0 MiB of 160 MiB), 12.0 MiB/s, ETA 10s";
// while the walk still lists the folder the totals are what it found so
// far ("of 3000+ files found so far") and there is no ETA.
func scanText(sc *control.ScanReport) string {
	var b strings.Builder
	if sc.First {
		b.WriteString("first scan: ")
	} else {
		b.WriteString("scan: ")
	}
	more := "+"
	if sc.Listed {
		more = ""
	}
	fmt.Fprintf(&b, "%d of %d%s files read (%s of %s%s)", sc.Files, sc.FoundFiles, more,
		humanBytes(sc.Bytes), humanBytes(sc.FoundBytes), more)
	if !sc.Listed {
		b.WriteString(", still listing")
	}
	if sc.BytesPerSecond > 0 {
		b.WriteString(", " + humanBytes(int64(sc.BytesPerSecond)) + "/s")
	}
	if sc.ETASeconds != nil {
		b.WriteString(", ETA " + humanDuration(time.Duration(*sc.ETASeconds*float64(time.Second)).Round(time.Second)))
	}
	return b.String()
}
