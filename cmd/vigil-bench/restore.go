package main

// vigil-bench restore [--scale 1.0] [common flags]
//
// Generates dataset B (4 files of 256 MiB at scale 1.0), baselines it to a
// target node, stops the target, then times in the same run an offline
// `vigil restore` of the whole folder into an empty directory and `cp -a`
// of the replica directory into another. Both read warm data. Prints the
// MB/s of each and the ratio (target >= 0.8x).

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
	"strings"
	"syscall"
	"time"
)

// runRestoreBench runs `vigil-bench restore`; args are the flags after
// the subcommand name.
func runRestoreBench(args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	scale := fs.Float64("scale", 1.0, "shrink (or grow) dataset B by this factor, e.g. 0.05 for a quick run")
	trials := fs.Int("trials", 3, "timed runs of each tool (the best is kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !(*scale > 0) || *trials < 1 {
		return fmt.Errorf("--scale and --trials: want positive values")
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
	fmt.Fprintf(w, "command:  vigil-bench restore --scale %g --trials %d\n", *scale, *trials)

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

	var best struct{ vigil, cp time.Duration }
	for i := 0; i < *trials; i++ {
		// vigil restore, offline (the target node is stopped)
		if _, err := warm(ctx, replica); err != nil {
			return err
		}
		out := e.path(fmt.Sprintf("restore-vigil-%d", i))
		syscall.Sync()
		d, err := timeCmd(ctx, e.vigil, "restore", "--home", dst.home, "--source", src.name, "--folder", "data", "--to", out)
		if err != nil {
			return err
		}
		if n, err := compareTrees(ctx, ds.dir, out); err != nil {
			return fmt.Errorf("vigil restore differs from the dataset (%d files checked): %w", n, err)
		}
		if best.vigil == 0 || d < best.vigil {
			best.vigil = d
		}
		os.RemoveAll(out)

		// cp -a of the replica directory
		if _, err := warm(ctx, replica); err != nil {
			return err
		}
		out = e.path(fmt.Sprintf("restore-cp-%d", i))
		syscall.Sync()
		d, err = timeCmd(ctx, "cp", "-a", replica, out)
		if err != nil {
			return err
		}
		if best.cp == 0 || d < best.cp {
			best.cp = d
		}
		os.RemoveAll(out)
		fmt.Fprintf(w, "trial %d: vigil restore %.2fs, cp -a %.2fs\n", i+1, best.vigil.Seconds(), d.Seconds())
	}
	v, c := mbps(ds.bytes, best.vigil), mbps(ds.bytes, best.cp)
	header(w, "restore summary (MB = 10^6 bytes, best of trials)")
	fmt.Fprintf(w, "vigil restore %7.1f MB/s (%.2fs)  cp -a %7.1f MB/s (%.2fs)  vigil/cp %.2fx  target >= 0.8x: %s\n",
		v, best.vigil.Seconds(), c, best.cp.Seconds(), v/c, verdict(v/c >= 0.8))
	return nil
}

// timeCmd runs a command to completion and returns how long it took.
func timeCmd(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return time.Since(t0), nil
}
