package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type baselineOpts struct {
	common  commonFlags
	dataset string
	scale   float64
	trials  int
	compare string // a second vigil binary run in every trial, or ""
}

func (o *baselineOpts) check() error {
	switch strings.ToUpper(o.dataset) {
	case "A", "B", "C", "BOTH":
	default:
		return fmt.Errorf("--dataset: want A, B, C or both (got %q)", o.dataset)
	}
	if !(o.scale > 0) {
		return fmt.Errorf("--scale: want a positive factor (got %v)", o.scale)
	}
	if o.compare != "" {
		if abs, err := filepath.Abs(o.compare); err == nil {
			o.compare = abs
		}
		if fi, err := os.Stat(o.compare); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("--compare: %q is not an executable file", o.compare)
		}
	}
	return nil
}

// baselineTimeout bounds one tool's copy of one dataset.
const baselineTimeout = 30 * time.Minute

// toolRun is one timed copy of a dataset.
type toolRun struct {
	elapsed  time.Duration
	snapshot time.Duration // vigil: until the target started copying (the source's scan and the snapshot); 0 if not seen
	cpu      time.Duration // vigil: source+target processes; rsync: client+daemon with its children
	cpuSrc   time.Duration // vigil: the source process
	busy     time.Duration // machine-wide busy CPU time during the copy
	self     time.Duration // this program's CPU time during the copy
	load     string        // /proc/loadavg before the copy
	peakSrc  int64         // vigil only
	peakDst  int64
	verified error // nil when the copy matched the dataset
	note     string
}

func runBaseline(ctx context.Context, o baselineOpts, w io.Writer) error {
	e, err := newEnv(ctx, o.common, w)
	if err != nil {
		return err
	}
	defer e.Close()
	header(w, "vigil-bench baseline: initial copy, vigil vs rsync daemon, 127.0.0.1")
	fmt.Fprint(w, machineInfo(e))
	fmt.Fprintf(w, "command:  vigil-bench baseline --dataset %s --scale %g\n", o.dataset, o.scale)

	var sets []string
	switch strings.ToUpper(o.dataset) {
	case "A":
		sets = []string{"A"}
	case "B":
		sets = []string{"B"}
	case "C":
		sets = []string{"C"}
	default:
		sets = []string{"A", "B"}
	}
	type summary struct {
		ds                dataset
		vigil, rsync, cmp toolRun
		target            float64
	}
	var sums []summary
	for _, name := range sets {
		dir := e.path("data-" + name)
		var ds dataset
		start := time.Now()
		switch name {
		case "A":
			ds, err = genSmallFiles(ctx, dir, o.scale)
		case "C":
			ds, err = genTinyFiles(ctx, dir, o.scale)
		default:
			ds, err = genLargeFiles(ctx, dir, o.scale)
		}
		if err != nil {
			return fmt.Errorf("generate dataset %s: %w", name, err)
		}
		fmt.Fprintf(w, "\ndataset %s: %s, %s (%d bytes), generated in %.1fs\n", ds.name, ds.desc, fmtBytes(ds.bytes), ds.bytes, time.Since(start).Seconds())
		// Each trial runs both tools on the same warm dataset; the order
		// alternates between trials (the first writer of a run pays for
		// fresh page-cache pages on this VM), and the best run of each
		// tool counts. Every run writes into directories of its own and
		// nothing is deleted until the dataset's last trial: on ext4
		// without a journal, the kernel skips inodes freed in the last
		// minutes one by one when it allocates new ones, so deleting one
		// run's copy slows every file creation of the next.
		probe, err := createCost(e.path("probe-"+name), 2000)
		if err != nil {
			return fmt.Errorf("file creation probe: %w", err)
		}
		fmt.Fprintf(w, "file creation before the runs: %.0f us per file (2,000 files; tens of us when no inodes were freed recently)\n", probe)
		var vr, rr, cr toolRun
		var made []string
		for t := 1; t <= max(o.trials, 1); t++ {
			order := []string{"vigil", "compare", "rsync"}
			if t%2 == 0 {
				order = []string{"rsync", "compare", "vigil"}
			}
			for _, tool := range order {
				if tool == "compare" && o.compare == "" {
					continue
				}
				dropCaches()
				if _, err := warm(ctx, dir); err != nil {
					return fmt.Errorf("read dataset %s: %w", name, err)
				}
				if tool == "vigil" || tool == "compare" {
					label, tag, best, bin := "vigil", "", &vr, e.vigil
					if tool == "compare" {
						label, tag, best, bin = "vigil --compare", "cmp", &cr, o.compare
					}
					run, err := vigilBaseline(ctx, e, bin, ds, fmt.Sprintf("%s%d", tag, t), w)
					made = append(made, e.path("nodes", fmt.Sprintf("src%s-%s%d", name, tag, t)), e.path("nodes", fmt.Sprintf("dst%s-%s%d", name, tag, t)))
					if err != nil {
						return fmt.Errorf("%s baseline of dataset %s: %w", bin, name, err)
					}
					fmt.Fprintf(w, "trial %d: %s %.2f s (snapshot after %.2f s, copy %.2f s)\n", t, label,
						run.elapsed.Seconds(), run.snapshot.Seconds(), (run.elapsed - run.snapshot).Seconds())
					if best.elapsed == 0 || run.elapsed < best.elapsed {
						*best = run
					}
				} else {
					run, err := rsyncBaseline(ctx, e, ds, t)
					made = append(made, e.path(fmt.Sprintf("rsync-%s-%d", name, t)))
					if err != nil {
						return fmt.Errorf("rsync of dataset %s: %w", name, err)
					}
					fmt.Fprintf(w, "trial %d: rsync %.2f s\n", t, run.elapsed.Seconds())
					if rr.elapsed == 0 || run.elapsed < rr.elapsed {
						rr = run
					}
				}
			}
		}
		target := 1.0
		if name == "A" {
			target = 2.0
		}
		s := summary{ds: ds, vigil: vr, rsync: rr, cmp: cr, target: target}
		sums = append(sums, s)
		printBaseline(w, s.ds, s.vigil, s.rsync, s.target)
		if o.compare != "" {
			printCompare(w, s.ds, e.vigil, o.compare, s.vigil, s.cmp)
		}
		if !e.keep {
			for _, p := range append(made, dir, e.path("probe-"+name)) {
				os.RemoveAll(p)
			}
		}
	}
	header(w, "baseline summary (MB = 10^6 bytes)")
	for _, s := range sums {
		v, r := mbps(s.ds.bytes, s.vigil.elapsed), mbps(s.ds.bytes, s.rsync.elapsed)
		fmt.Fprintf(w, "dataset %s  vigil %7.1f MB/s  rsync %7.1f MB/s  vigil/rsync %.2fx  target >= %.1fx: %s\n",
			s.ds.name, v, r, v/r, s.target, verdict(v/r >= s.target))
	}
	return nil
}

// printCompare compares the best runs of two vigil binaries.
func printCompare(w io.Writer, ds dataset, binA, binB string, a, b toolRun) {
	fmt.Fprintf(w, "compare (dataset %s, best of each):\n", ds.name)
	for _, x := range []struct {
		bin string
		r   toolRun
	}{{binA, a}, {binB, b}} {
		fmt.Fprintf(w, "  %-40s %6.2f s  %7.1f MB/s  snapshot %.2f s, copy %.2f s, cpu %.1f s (source %.1f s, %.0f us/file), peak RSS source %s, target %s  %s\n", x.bin, x.r.elapsed.Seconds(),
			mbps(ds.bytes, x.r.elapsed), x.r.snapshot.Seconds(), (x.r.elapsed - x.r.snapshot).Seconds(), x.r.cpu.Seconds(),
			x.r.cpuSrc.Seconds(), perFile(x.r.cpuSrc, ds.files), fmtBytes(x.r.peakSrc), fmtBytes(x.r.peakDst), verifiedNote(x.r.verified))
	}
	fmt.Fprintf(w, "  time %s / %s: %.2f\n", filepath.Base(binB), filepath.Base(binA), b.elapsed.Seconds()/a.elapsed.Seconds())
}

// perFile is d per file in microseconds.
func perFile(d time.Duration, files int) float64 {
	return float64(d.Microseconds()) / float64(max(files, 1))
}

func verifiedNote(err error) string {
	if err == nil {
		return "copy verified"
	}
	return "COPY WRONG: " + err.Error()
}

func printBaseline(w io.Writer, ds dataset, v, r toolRun, target float64) {
	ok := verifiedNote
	vm, rm := mbps(ds.bytes, v.elapsed), mbps(ds.bytes, r.elapsed)
	header(w, fmt.Sprintf("baseline, dataset %s: %s, %s", ds.name, ds.desc, fmtBytes(ds.bytes)))
	fmt.Fprintf(w, "vigil  %8.2f s  %7.1f MB/s  %s\n", v.elapsed.Seconds(), vm, ok(v.verified))
	fmt.Fprintf(w, "       cpu: vigil source %.1f s (%.0f us/file), source+target %.1f s, machine busy %.1f s of %.1f s (this program %.1f s); peak RSS source %s, target %s; loadavg before: %s\n",
		v.cpuSrc.Seconds(), perFile(v.cpuSrc, ds.files), v.cpu.Seconds(), v.busy.Seconds(), v.elapsed.Seconds()*float64(runtime.NumCPU()), v.self.Seconds(), fmtBytes(v.peakSrc), fmtBytes(v.peakDst), v.load)
	if v.note != "" {
		fmt.Fprintf(w, "       %s\n", v.note)
	}
	fmt.Fprintf(w, "rsync  %8.2f s  %7.1f MB/s  %s\n", r.elapsed.Seconds(), rm, ok(r.verified))
	fmt.Fprintf(w, "       cpu: rsync client+daemon %.1f s, machine busy %.1f s of %.1f s; loadavg before: %s\n",
		r.cpu.Seconds(), r.busy.Seconds(), r.elapsed.Seconds()*float64(runtime.NumCPU()), r.load)
	fmt.Fprintf(w, "ratio vigil/rsync: %.2fx   target >= %.1fx: %s\n", vm/rm, target, verdict(vm/rm >= target))
}

// vigilBaseline times vigil's baseline of ds between two fresh nodes: from
// the start of the source process until the target reports the replica
// live with every byte.
func vigilBaseline(ctx context.Context, e *env, bin string, ds dataset, trial string, w io.Writer) (toolRun, error) {
	var res toolRun
	defer func(prev string) { e.vigil = prev }(e.vigil)
	e.vigil = bin
	src, err := e.initNode(ctx, fmt.Sprintf("src%s-%s", ds.name, trial))
	if err != nil {
		return res, err
	}
	dst, err := e.initNode(ctx, fmt.Sprintf("dst%s-%s", ds.name, trial))
	if err != nil {
		return res, err
	}
	pairNodes(src, dst, "data", ds.dir)
	defer src.stop()
	defer dst.stop()
	if err := dst.run(ctx); err != nil {
		return res, err
	}
	syscall.Sync() // start from clean dirty-page state

	res.load = loadAvg()
	b0, _ := machineBusy()
	s0, _ := procCPU(os.Getpid())
	t0 := time.Now()
	if err := src.run(ctx); err != nil {
		return res, err
	}
	var rep struct {
		bytes int64
		state string
	}
	deadline := t0.Add(baselineTimeout)
	nextNote := t0.Add(10 * time.Second)
	var path string
	for {
		if err := errors.Join(src.alive(), dst.alive()); err != nil {
			return res, err
		}
		r, err := dst.replica(ctx)
		if err == nil {
			rep.bytes, rep.state, path = r.Bytes, r.State, r.Path
			if res.snapshot == 0 && r.BaselineTotalBytes > 0 {
				res.snapshot = time.Since(t0)
			}
			if r.State == "live" && r.Bytes == ds.bytes && r.Files >= ds.files && r.AppliedSeq == r.HeadSeq {
				break
			}
			if time.Now().After(nextNote) {
				fmt.Fprintf(w, "  vigil: %.0fs: target %s, %s of %s in the replica, baseline %s/%s, chunks fetched %d%s\n",
					time.Since(t0).Seconds(), r.State, fmtBytes(r.Bytes), fmtBytes(ds.bytes),
					fmtBytes(r.BaselineDoneBytes), fmtBytes(r.BaselineTotalBytes), r.ChunksFetched, errNote(r.LastError))
				nextNote = nextNote.Add(10 * time.Second)
			}
		} else if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("replica not complete after %s: state %s, %d of %d bytes", baselineTimeout, rep.state, rep.bytes, ds.bytes)
		}
		if err := sleepCtx(ctx, 25*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.elapsed = time.Since(t0)
	b1, _ := machineBusy()
	s1, _ := procCPU(os.Getpid())
	res.busy, res.self = b1-b0, s1-s0
	// The source counts the pair live once the target's acknowledgement
	// arrives; not part of the timing.
	if err := src.waitSynced(ctx, 2*time.Minute); err != nil {
		res.note = "source did not report the pair synced within 2m after the replica was complete: " + err.Error()
	}
	for _, n := range []*vnode{src, dst} {
		if c, err := procCPU(n.p.Pid()); err == nil {
			res.cpu += c
			if n == src {
				res.cpuSrc = c
			}
		}
	}
	res.peakSrc, _ = src.stop()
	res.peakDst, _ = dst.stop()
	if _, err := compareTrees(ctx, ds.dir, path); err != nil {
		res.verified = err
	}
	return res, nil
}

func errNote(s string) string {
	if s == "" {
		return ""
	}
	return ", last error: " + s
}

// rsyncBaseline times `rsync -a DIR/ rsync://127.0.0.1:PORT/bench/` into an
// empty module directory.
func rsyncBaseline(ctx context.Context, e *env, ds dataset, trial int) (toolRun, error) {
	var res toolRun
	dest := e.path(fmt.Sprintf("rsync-%s-%d", ds.name, trial))
	d, err := e.startRsyncd(ctx, ds.name, dest)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			d.p.Stop(5 * time.Second)
		}
	}()
	syscall.Sync()
	res.load = loadAvg()
	b0, _ := machineBusy()
	t0 := time.Now()
	_, ccpu, err := runRsync(ctx, "-a", ds.dir+"/", d.url(""))
	if err != nil {
		return res, err
	}
	res.elapsed = time.Since(t0)
	b1, _ := machineBusy()
	res.busy = b1 - b0
	// The daemon's CPU, with that of the children it forked for the
	// connection, is known once it has exited.
	d.p.Stop(5 * time.Second)
	stopped = true
	res.cpu = ccpu + d.p.CPU()
	if _, err := compareTrees(ctx, ds.dir, dest); err != nil {
		res.verified = err
	}
	return res, nil
}

// createCost creates n empty files in the new directory dir and returns the
// mean wall time per file in microseconds. The files stay until the
// dataset's cleanup (deleting them would slow the runs that follow).
func createCost(dir string, n int) (float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		f.Close()
	}
	return float64(time.Since(t0).Microseconds()) / float64(n), nil
}

// dropCaches empties the page cache when this process may (root), so that
// every run starts from the same memory state: on this VM, runs made while
// the page cache filled most of memory were up to twice as slow, for vigil
// more than for rsync. The dataset is read again afterwards (warm).
func dropCaches() {
	syscall.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}
