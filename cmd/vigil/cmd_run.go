package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-mesh/vigil/internal/buildinfo"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node"
	"github.com/vigil-mesh/vigil/node/control"
	"github.com/vigil-mesh/vigil/store"
)

func newRunCmd() *cobra.Command {
	var cpuProfile string
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the node in the foreground until SIGINT or SIGTERM",
		Long: "run starts the node described by vigil.yaml: it protects its folders, keeps the folders\n" +
			"it backs up for others and serves the control endpoint, until SIGINT or SIGTERM; then it\n" +
			"stops cleanly (journal flushed, state saved). A second signal during shutdown kills it.\n" +
			"SIGHUP makes it read vigil.yaml again (see `vigil reload`).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return usageErrorf("--cpuprofile: %v", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			return runNode(cmd.Context(), globalsFrom(cmd))
		},
	}
	c.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (for performance work)")
	return c
}

func runNode(ctx context.Context, g *globals) error {
	cfg, err := g.LoadConfig()
	if err != nil {
		return err
	}
	if network, _ := cfg.ControlAddr(); network != "unix" {
		// A control endpoint on TCP answers only to the token of this
		// home's control.token, made once and kept.
		tok, err := control.LoadOrCreateToken(controlTokenPath(cfg))
		if err != nil {
			return err
		}
		ctx = control.ContextWithToken(ctx, tok)
	}
	prog := startBaselineProgress(g.stderr, cfg) // nil unless stderr is a terminal
	defer prog.Close()
	if prog != nil {
		g.stderr = prog // log lines scroll above the progress bar
	}
	logger := g.Logger()
	slog.SetDefault(logger)
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	tuneGC(gcCtx)
	b := buildinfo.Read()
	logger.Info("starting node", "home", cfg.Home, "name", cfg.Node.Name,
		"version", b.Version, "commit", b.Commit, "go", b.GoVersion)
	// Errors of New and Run name their package ("node: ", "mesh: ",
	// "control: ", ...): returned as they are, with no prefix that would
	// repeat it ("start node: node: ...").
	n, err := node.New(cfg, node.WithLogger(logger), prog.Option(), node.WithConfigLoader(g.LoadConfig))
	if err != nil {
		return damagedIndexError(g.Home(), err)
	}
	stopHUP := reloadOnHUP(n, logger)
	defer stopHUP()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once stopping, restore the default signal handling: a second signal kills.
	context.AfterFunc(ctx, stop)

	// n.Run logs "node running" once it listens, with its peer ID and addresses.
	runErr := n.Run(ctx)
	stopHUP() // no reload while the node closes
	stopping := ctx.Err() != nil
	if stopping {
		logger.Info("stopping node")
	}
	closeErr := n.Close()
	if runErr != nil && !(stopping && errors.Is(runErr, context.Canceled)) {
		return damagedIndexError(g.Home(), runErr)
	}
	if closeErr != nil {
		return fmt.Errorf("stop node: %w", closeErr)
	}
	logger.Info("node stopped")
	return nil
}

// damagedIndexError tells what to do about a damaged index: the error
// already names the file.
func damagedIndexError(home string, err error) error {
	if !errors.Is(err, store.ErrDamaged) {
		return err
	}
	return fmt.Errorf("%w; run `vigil repair --rebuild-index --home %s` to set it aside, then start the node: it rebuilds the index from its folders and from the sources of its replicas", err, home)
}

// tuneGC trades memory for CPU: a node streams chunk buffers through the
// heap at hundreds of MB/s, and the default GOGC=100 spends a fifth of a
// baseline in the collector. A GOGC given in the environment wins. Unless
// GOMEMLIMIT is given, a soft memory limit follows the live heap (see
// memoryLimit), so that the heap does not grow to five times what is live
// when that is more than a node needs. It runs until ctx ends.
func tuneGC(ctx context.Context) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryLimit(0))
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				debug.SetMemoryLimit(memoryLimit(sample[0].Value.Uint64()))
			}
		}
	}()
}

// memoryLimitFloor is the least soft memory limit: what a node with a
// hundred thousand files at rest and a baseline under way needs.
const memoryLimitFloor = 160 << 20

// memoryLimit is the soft memory limit for a live heap of live bytes:
// twice the live heap and 32 MiB, at least memoryLimitFloor. Never below
// what is live (the collector would run without end); GOGC=400 governs
// below it.
func memoryLimit(live uint64) int64 {
	return max(memoryLimitFloor, int64(2*live)+32<<20)
}

// reloadOnHUP reloads the config of n on every SIGHUP until the returned
// func is called; a refused config is logged and the node goes on.
func reloadOnHUP(n *node.Node, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-hup:
				logger.Info("SIGHUP: reading the config again")
				if _, err := n.Reload(context.Background()); err != nil {
					logger.Error("reload", "err", err)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(done)
			<-finished
		})
	}
}
