package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machineInfo is printed at the top of every report.
func machineInfo(e *env) string {
	var b strings.Builder
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	gov := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		gov = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(&b, "machine:  nproc=%d  kernel=%s  %s\n", runtime.NumCPU(), strings.TrimSpace(string(kernel)), cpuModel())
	fmt.Fprintf(&b, "go:       %s\n", gov)
	fmt.Fprintf(&b, "rsync:    %s\n", rsyncVersion())
	if e.built && e.root != "" {
		if out, err := exec.Command("git", "-C", e.root, "rev-parse", "--short", "HEAD").Output(); err == nil {
			fmt.Fprintf(&b, "vigil:    built from the working tree at commit %s\n", strings.TrimSpace(string(out)))
		}
	} else {
		fmt.Fprintf(&b, "vigil:    binary %s\n", e.vigil)
	}
	fmt.Fprintf(&b, "date:     %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "work dir: %s\n", e.dir)
	return b.String()
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return "cpu=" + strings.TrimSpace(v)
		}
	}
	return ""
}

// header prints a report block title.
func header(w io.Writer, title string) {
	line := strings.Repeat("=", 78)
	fmt.Fprintf(w, "\n%s\n%s\n%s\n", line, title, line)
}

// mbps is bytes per second in MB/s (10^6 bytes).
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// fmtBytes formats n with a binary unit.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// verdict is "met" or "MISSED".
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// percentile returns the p-th percentile (0-100) of ds by the nearest-rank
// method; ds need not be sorted. It returns 0 for no samples.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
