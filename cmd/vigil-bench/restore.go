package main

// vigil-bench restore [--scale 1.0] [--trials 3] [--compare OTHER_VIGIL] [common flags]
//
// Generates dataset B (4 files of 256 MiB at scale 1.0), baselines it to a
// target node, stops the target, then times in the same run an offline
// `vigil restore` of the whole folder into an empty directory and `cp -a`
// of the replica directory into another (and, with --compare, the same
// restore by a second vigil binary), in alternating order. Before each
// run the page cache is dropped (as root) and the replica read again, so
// every tool starts from the same memory state with warm data. Prints the MB/s, CPU seconds (user + system) and peak RSS of
// each and the ratio to cp -a (target >= 0.8x).

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cmdRun is one timed run of a command.
type cmdRun struct {
	elapsed time.Duration
	cpu     time.Duration // user + system, of the process and its children
	maxRSS  int64         // bytes
}

// runRestoreBench runs `vigil-bench restore`; args are the flags after
// the subcommand name.
func runRestoreBench(args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	scale := fs.Float64("scale", 1.0, "shrink (or grow) dataset B by this factor, e.g. 0.05 for a quick run")
	trials := fs.Int("trials", 3, "timed runs of each tool (the best is kept)")
	compare := fs.String("compare", "", "a second vigil `BINARY` whose restore is timed in every trial too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !(*scale > 0) || *trials < 1 {
		return fmt.Errorf("--scale and --trials: want positive values")
	}
	if *compare != "" {
		abs, err := filepath.Abs(*compare)
		if err != nil {
			return fmt.Errorf("--compare: %w", err)
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("--compare: %q is not an executable file", *compare)
		}
		*compare = abs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := os.Stdout
	e, err := newEnv(ctx, common, w)
	if err != nil {
		return err
	}
	defer e.Close()
	header(w, "vigil-bench restore: offline `vigil restore` vs `cp -a` of the replica")
	fmt.Fprint(w, machineInfo(e))
	fmt.Fprintf(w, "command:  vigil-bench restore --scale %g --trials %d", *scale, *trials)
	if *compare != "" {
		fmt.Fprintf(w, " --compare %s", *compare)
	}
	fmt.Fprintln(w)

	dir := e.path("data-B")
	ds, err := genLargeFiles(ctx, dir, *scale)
	if err != nil {
		return fmt.Errorf("generate dataset B: %w", err)
	}
	fmt.Fprintf(w, "\ndataset %s: %s, %s (%d bytes)\n", ds.name, ds.desc, fmtBytes(ds.bytes), ds.bytes)

	src, err := e.initNode(ctx, "srcR")
	if err != nil {
		return err
	}
	dst, err := e.initNode(ctx, "dstR")
	if err != nil {
		return err
	}
	pairNodes(src, dst, "data", ds.dir)
	defer src.stop()
	defer dst.stop()
	if err := dst.run(ctx); err != nil {
		return err
	}
	if err := src.run(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	var replica string
	for {
		if err := errors.Join(src.alive(), dst.alive()); err != nil {
			return err
		}
		r, err := dst.replica(ctx)
		if err == nil && r.State == "live" && r.Bytes == ds.bytes && r.AppliedSeq == r.HeadSeq {
			replica = r.Path
			break
		}
		if time.Since(t0) > baselineTimeout {
			return fmt.Errorf("baseline not complete after %s", baselineTimeout)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "baseline to the target done in %.1fs\n", time.Since(t0).Seconds())
	if _, err := src.stop(); err != nil {
		return fmt.Errorf("stop source: %w", err)
	}
	if _, err := dst.stop(); err != nil {
		return fmt.Errorf("stop target: %w", err)
	}

	type tool struct {
		label string
		run   func(out string) (cmdRun, error)
		check bool // compare the output with the dataset
		best  cmdRun
	}
	restoreWith := func(bin string) func(string) (cmdRun, error) {
		return func(out string) (cmdRun, error) {
			return timeCmd(ctx, bin, "restore", "--home", dst.home, "--source", src.name, "--folder", "data", "--to", out)
		}
	}
	tools := []*tool{{label: "vigil restore", run: restoreWith(e.vigil), check: true}}
	if *compare != "" {
		tools = append(tools, &tool{label: "vigil --compare", run: restoreWith(*compare), check: true})
	}
	tools = append(tools, &tool{label: "cp -a", run: func(out string) (cmdRun, error) { return timeCmd(ctx, "cp", "-a", replica, out) }})
	for i := 0; i < *trials; i++ {
		order := tools
		if i%2 == 1 {
			order = make([]*tool, len(tools))
			for j, t := range tools {
				order[len(tools)-1-j] = t
			}
		}
		var line []string
		for k, t := range order {
			// the same memory state for every tool: page cache dropped
			// (as root), then the replica, the binaries and the index read
			dropCaches()
			if _, err := warm(ctx, replica); err != nil {
				return err
			}
			for _, f := range []string{e.vigil, *compare, filepath.Join(dst.home, "data", "index.db")} {
				if f != "" {
					readThrough(f)
				}
			}
			out := e.path(fmt.Sprintf("restore-%d-%d", i, k))
			syscall.Sync()
			r, err := t.run(out)
			if err != nil {
				return err
			}
			if t.check {
				if n, err := compareTrees(ctx, ds.dir, out); err != nil {
					return fmt.Errorf("%s differs from the dataset (%d files checked): %w", t.label, n, err)
				}
			}
			if t.best.elapsed == 0 || r.elapsed < t.best.elapsed {
				t.best = r
			}
			os.RemoveAll(out)
			line = append(line, fmt.Sprintf("%s %.2fs (CPU %.2fs, RSS %s)", t.label, r.elapsed.Seconds(), r.cpu.Seconds(), fmtBytes(r.maxRSS)))
		}
		fmt.Fprintf(w, "trial %d: %s\n", i+1, strings.Join(line, ", "))
	}
	cp := tools[len(tools)-1].best
	header(w, "restore summary (MB = 10^6 bytes, best of trials; CPU = user + system)")
	for _, t := range tools {
		fmt.Fprintf(w, "%-16s %7.1f MB/s (%.2fs)  CPU %.2fs  peak RSS %s", t.label, mbps(ds.bytes, t.best.elapsed),
			t.best.elapsed.Seconds(), t.best.cpu.Seconds(), fmtBytes(t.best.maxRSS))
		if t.check {
			ratio := cp.elapsed.Seconds() / t.best.elapsed.Seconds()
			fmt.Fprintf(w, "  %s/cp %.2fx  target >= 0.8x: %s", t.label, ratio, verdict(ratio >= 0.8))
		}
		fmt.Fprintln(w)
	}
	return nil
}

// readThrough reads file p into the page cache, keeping none of it in memory.
func readThrough(p string) {
	if f, err := os.Open(p); err == nil {
		io.Copy(io.Discard, f)
		f.Close()
	}
}

// gnuTime is GNU time, which reports the peak RSS of the command alone: a
// child started by this process would report at least this process's own
// (Linux counts the memory of the parent it was vforked from).
const gnuTime = "/usr/bin/time"

// timeCmd runs a command to completion and returns how long it took, its
// CPU time and its peak RSS (through GNU time when there is one).
func timeCmd(ctx context.Context, name string, args ...string) (cmdRun, error) {
	var rusage *os.File
	cmdName, cmdArgs := name, args
	if _, err := os.Stat(gnuTime); err == nil {
		f, err := os.CreateTemp("", "vigil-bench-time-")
		if err != nil {
			return cmdRun{}, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		rusage = f
		cmdName, cmdArgs = gnuTime, append([]string{"-f", "%U %S %M", "-o", f.Name(), name}, args...)
	}
	cmd := exec.CommandContext(ctx, cmdName, cmdArgs...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return cmdRun{}, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	r := cmdRun{elapsed: time.Since(t0), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	if rusage != nil {
		var user, sys float64
		var kib int64
		b, _ := io.ReadAll(rusage)
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%f %f %d", &user, &sys, &kib); err == nil {
			r.cpu = time.Duration((user + sys) * float64(time.Second))
			r.maxRSS = kib << 10
		}
	}
	return r, nil
}
