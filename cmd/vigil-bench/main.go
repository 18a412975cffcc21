// Command vigil-bench measures vigil against rsync on loopback, running real
// vigil processes the way a user would: `vigil init`, a hand-written
// vigil.yaml, `vigil run`, and the node's control endpoint (what `vigil lag`
// and `vigil status` read) to know when a replica is complete.
//
// Usage:
//
//	vigil-bench baseline [--dataset A|B|C|both] [--scale 1.0] [--trials 2] [--compare OTHER_VIGIL]
//	vigil-bench live [--duration 60s] [--trials 200] [--parts latency,wire,files,stream]
//
// Common flags: --dir DIR (parent of the temporary work directory; default
// $VIGIL_BENCH_DIR, else the system temp dir), --vigil PATH (use this
// binary instead of building ./cmd/vigil), --keep (leave the work
// directory for inspection).
//
// baseline generates dataset A (20,000 files of 1-64 KiB in 1,000 nested
// directories), dataset B (4 files of 256 MiB) or dataset C (20,000 files
// of 100 B-4 KiB, what costs per file), reads each once so that
// both tools see warm data, then times the initial copy by vigil (from the
// source's start until the target reports the replica live and complete)
// and by `rsync -a` into an rsync daemon, both on 127.0.0.1.
//
// live measures, after the baseline of a small folder, the write-to-replica
// latency of small changes, the bytes on the wire for small changes to big
// files (vigil's stream byte counters against rsync --stats), and the lag
// under sustained load.
//
// Every process started is killed and the work directory removed on exit,
// including on error and on SIGINT/SIGTERM. All traffic stays on 127.0.0.1.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  vigil-bench baseline [--dataset A|B|C|both] [--scale 1.0] [--trials 2] [--compare OTHER_VIGIL] [common flags]
  vigil-bench live [--duration 60s] [--trials 200] [--parts latency,wire,files,stream] [common flags]
  vigil-bench restore [--scale 1.0]   (restore of dataset B vs cp -a of the replica)
common flags: --dir DIR, --vigil PATH, --keep
`

// commonFlags are the flags every subcommand takes.
type commonFlags struct {
	dir   string
	vigil string
	keep  bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("VIGIL_BENCH_DIR")
	fs.StringVar(&c.dir, "dir", def, "parent `DIR` of the temporary work directory (default $VIGIL_BENCH_DIR, else the system temp dir)")
	fs.StringVar(&c.vigil, "vigil", "", "use this vigil `BINARY` instead of building ./cmd/vigil")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (processes are still stopped)")
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "baseline":
		var o baselineOpts
		fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
		fs.SetOutput(stderr)
		o.common.register(fs)
		fs.IntVar(&o.trials, "trials", 2, "runs of each tool, alternating which goes first; the best counts")
		fs.StringVar(&o.dataset, "dataset", "both", "dataset to run: A (many small files), B (4 large files) or both")
		fs.Float64Var(&o.scale, "scale", 1.0, "shrink (or grow) both datasets by this factor, e.g. 0.05 for a quick run")
		fs.StringVar(&o.compare, "compare", "", "also run this other vigil `BINARY` in every trial, alternating with the first, and compare the two")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := o.check(); err != nil {
			fmt.Fprintf(stderr, "vigil-bench: %v\n", err)
			return 2
		}
		err = runBaseline(ctx, o, stdout)
	case "live":
		var o liveOpts
		fs := flag.NewFlagSet("live", flag.ContinueOnError)
		fs.SetOutput(stderr)
		o.common.register(fs)
		fs.DurationVar(&o.duration, "duration", 60*time.Second, "length of each sustained-load run")
		fs.IntVar(&o.trials, "trials", 200, "latency trials per kind of change")
		parts := fs.String("parts", "latency,wire,files,stream", "comma-separated parts to run: latency, wire, files, stream")
		fs.Float64Var(&o.scale, "scale", 1.0, "shrink the big files of the wire part (256 MiB and 64 MiB at 1.0)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		o.parts = map[string]bool{}
		for _, p := range strings.Split(*parts, ",") {
			p = strings.TrimSpace(p)
			switch p {
			case "latency", "wire", "files", "stream":
				o.parts[p] = true
			case "":
			default:
				fmt.Fprintf(stderr, "vigil-bench: --parts: unknown part %q (want latency, wire, files, stream)\n", p)
				return 2
			}
		}
		if err := o.check(); err != nil {
			fmt.Fprintf(stderr, "vigil-bench: %v\n", err)
			return 2
		}
		err = runLive(ctx, o, stdout)
	case "restore":
		err = runRestoreBench(args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vigil-bench: unknown subcommand %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if ctx.Err() != nil { // interrupted: whatever failed, failed because of it
			fmt.Fprintln(stderr, "vigil-bench: interrupted; cleaned up")
			return 130
		}
		fmt.Fprintf(stderr, "vigil-bench: %v\n", err)
		return 1
	}
	return 0
}
