package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

type liveOpts struct {
	common   commonFlags
	duration time.Duration
	trials   int
	scale    float64
	parts    map[string]bool
}

func (o *liveOpts) check() error {
	if o.duration <= 0 {
		return fmt.Errorf("--duration: want a positive duration (got %s)", o.duration)
	}
	if o.trials < 1 {
		return fmt.Errorf("--trials: want at least 1 (got %d)", o.trials)
	}
	if !(o.scale > 0) {
		return fmt.Errorf("--scale: want a positive factor (got %v)", o.scale)
	}
	if len(o.parts) == 0 {
		return errors.New("--parts: nothing to run")
	}
	return nil
}

const (
	trialTimeout  = 10 * time.Second       // one latency trial
	pollEvery     = 200 * time.Microsecond // replica polling
	drainTarget   = 30 * time.Second       // lag must return to 0 within this after a load
	drainMax      = 10 * time.Minute       // then wait this long at most for a clean state
	filesPerSec   = 2000
	appendPerSec  = 50e6 // bytes per second (50 MB/s)
	lagSampleRate = 250 * time.Millisecond
	wireTarget    = 32 << 10
	counterSettle = 2500 * time.Millisecond // libp2p byte counters are swept once a second
	idleWindow    = 3 * time.Second
)

// liveRig is the pair of nodes of the live benchmark.
type liveRig struct {
	e        *env
	src, dst *vnode
	folder   string // protected folder on the source
	replica  string // its replica on the target
	w        io.Writer
}

func (r *liveRig) rel(p string) string       { return filepath.Join(r.folder, p) }
func (r *liveRig) replicaOf(p string) string { return filepath.Join(r.replica, p) }

func runLive(ctx context.Context, o liveOpts, w io.Writer) error {
	e, err := newEnv(ctx, o.common, w)
	if err != nil {
		return err
	}
	defer e.Close()
	header(w, "vigil-bench live: replication of live changes, 127.0.0.1")
	fmt.Fprint(w, machineInfo(e))
	var parts []string
	for _, p := range []string{"latency", "wire", "files", "stream"} {
		if o.parts[p] {
			parts = append(parts, p)
		}
	}
	fmt.Fprintf(w, "command:  vigil-bench live --duration %s --trials %d --scale %g --parts %s\n",
		o.duration, o.trials, o.scale, strings.Join(parts, ","))

	r := &liveRig{e: e, folder: e.path("live"), w: w}
	if err := r.setup(ctx); err != nil {
		return err
	}
	defer r.src.stop()
	defer r.dst.stop()
	if o.parts["latency"] {
		if err := r.latency(ctx, o.trials); err != nil {
			return err
		}
	}
	if o.parts["wire"] {
		if err := r.wire(ctx, o.scale); err != nil {
			return err
		}
	}
	if o.parts["files"] {
		if err := r.sustained(ctx, "files", o.duration); err != nil {
			return err
		}
	}
	if o.parts["stream"] {
		if err := r.sustained(ctx, "stream", o.duration); err != nil {
			return err
		}
	}
	header(w, "live: processes")
	cs, _ := procCPU(r.src.p.Pid())
	cd, _ := procCPU(r.dst.p.Pid())
	ps, _ := r.src.stop()
	pd, _ := r.dst.stop()
	fmt.Fprintf(w, "peak RSS: source %s, target %s; cpu over the whole run: source %.1f s, target %.1f s\n",
		fmtBytes(ps), fmtBytes(pd), cs.Seconds(), cd.Seconds())
	return nil
}

// setup writes the small folder, starts both nodes and waits for the
// baseline.
func (r *liveRig) setup(ctx context.Context) error {
	rng := newRand(7)
	for i := 0; i < 100; i++ {
		d := r.rel(fmt.Sprintf("small/d%d", i%10))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		b := make([]byte, 4096)
		rng.Read(b)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.dat", i)), b, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"new", "wire", "stream"} {
		if err := os.MkdirAll(r.rel(d), 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < 100; i++ {
		if err := os.MkdirAll(r.rel(fmt.Sprintf("load/d%02d", i)), 0o755); err != nil {
			return err
		}
	}
	if err := writeRandomFile(ctx, r.rel("append.dat"), 4096, 8); err != nil {
		return err
	}
	if err := writeRandomFile(ctx, r.rel("overwrite.dat"), 1<<20, 9); err != nil {
		return err
	}
	var err error
	if r.src, err = r.e.initNode(ctx, "src"); err != nil {
		return err
	}
	if r.dst, err = r.e.initNode(ctx, "dst"); err != nil {
		return err
	}
	pairNodes(r.src, r.dst, "live", r.folder)
	if err := r.dst.run(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	if err := r.src.run(ctx); err != nil {
		return err
	}
	if err := r.src.waitSynced(ctx, 5*time.Minute); err != nil {
		return fmt.Errorf("baseline of the live folder: %w", err)
	}
	rep, err := r.dst.replica(ctx)
	if err != nil {
		return err
	}
	r.replica = rep.Path
	if _, err := compareTrees(ctx, r.folder, r.replica); err != nil {
		return fmt.Errorf("replica after the baseline: %w", err)
	}
	fmt.Fprintf(r.w, "\nlive folder: %d files, %s; baseline synced %.2f s after the source started\n",
		rep.Files, fmtBytes(rep.Bytes), time.Since(t0).Seconds())
	return nil
}

// waitReplica polls until ok reports the replica holds the change, every
// pollEvery, for at most timeout. It returns the time from t0.
func (r *liveRig) waitReplica(ctx context.Context, t0 time.Time, timeout time.Duration, ok func() bool) (time.Duration, error) {
	for i := 0; ; i++ {
		if ok() {
			return time.Since(t0), nil
		}
		if i%256 == 0 {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if err := errors.Join(r.src.alive(), r.dst.alive()); err != nil {
				return 0, err
			}
		}
		if time.Since(t0) > timeout {
			return 0, fmt.Errorf("replica not updated after %s", timeout)
		}
		time.Sleep(pollEvery)
	}
}

// regionIs reports whether the file at path has size wantSize and holds
// want at offset off.
func regionIs(path string, wantSize, off int64, want, buf []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != wantSize {
		return false
	}
	n, err := f.ReadAt(buf[:len(want)], off)
	return n == len(want) && bytes.Equal(buf[:n], want) && (err == nil || err == io.EOF)
}

// latency measures write-to-replica latency for three kinds of change.
func (r *liveRig) latency(ctx context.Context, trials int) error {
	header(r.w, fmt.Sprintf("live latency: write(2)+close returned -> replica holds the new content (%d trials per kind, polled every %s)", trials, pollEvery))
	rng := newRand(11)
	pick := rand.New(newRand(12))
	block := make([]byte, 4096)
	buf := make([]byte, 4096)
	appendSize := int64(4096)
	type kind struct {
		name  string
		write func(i int) (check func() bool, err error)
		file  string // verified in full after the trials ("" for new files)
	}
	kinds := []kind{
		{"append 4 KiB to an existing file", func(int) (func() bool, error) {
			f, err := os.OpenFile(r.rel("append.dat"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return nil, err
			}
			_, err = f.Write(block)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			appendSize += 4096
			size := appendSize
			rp := r.replicaOf("append.dat")
			return func() bool { return regionIs(rp, size, size-4096, block, buf) }, err
		}, "append.dat"},
		{"overwrite 4 KiB in place in a 1 MiB file", func(int) (func() bool, error) {
			off := int64(pick.IntN(256)) * 4096
			f, err := os.OpenFile(r.rel("overwrite.dat"), os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			_, err = f.WriteAt(block, off)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			rp := r.replicaOf("overwrite.dat")
			return func() bool { return regionIs(rp, 1<<20, off, block, buf) }, err
		}, "overwrite.dat"},
		{"new 4 KiB file", func(i int) (func() bool, error) {
			name := fmt.Sprintf("new/n%05d.dat", i)
			err := os.WriteFile(r.rel(name), block, 0o644)
			rp := r.replicaOf(name)
			return func() bool { return regionIs(rp, 4096, 0, block, buf) }, err
		}, ""},
	}
	fmt.Fprintf(r.w, "%-44s %9s %9s %9s %9s  %s\n", "kind", "p50", "p99", "max", "timeouts", "target p50<=20ms p99<=60ms")
	for _, k := range kinds {
		var lat []time.Duration
		timeouts := 0
		for i := 0; i < trials; i++ {
			rng.Read(block)
			check, err := k.write(i)
			if err != nil {
				return fmt.Errorf("latency %s: %w", k.name, err)
			}
			t0 := time.Now()
			d, err := r.waitReplica(ctx, t0, trialTimeout, check)
			switch {
			case err == nil:
				lat = append(lat, d)
			case ctx.Err() != nil:
				return ctx.Err()
			case r.src.alive() != nil || r.dst.alive() != nil:
				return errors.Join(r.src.alive(), r.dst.alive())
			default:
				timeouts++
			}
		}
		p50, p99, mx := percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
		ok := timeouts == 0 && p50 <= 20*time.Millisecond && p99 <= 60*time.Millisecond
		fmt.Fprintf(r.w, "%-44s %9s %9s %9s %9d  %s\n", k.name, ms(p50), ms(p99), ms(mx), timeouts, verdict(ok))
	}
	// Everything must have arrived intact.
	if err := r.src.waitSynced(ctx, time.Minute); err != nil {
		return err
	}
	for _, k := range kinds {
		if k.file != "" {
			if err := sameFile(r.rel(k.file), r.replicaOf(k.file)); err != nil {
				fmt.Fprintf(r.w, "REPLICA WRONG after the trials: %v\n", err)
			}
		}
	}
	if n, err := compareTrees(ctx, r.rel("new"), r.replicaOf("new")); err != nil {
		fmt.Fprintf(r.w, "REPLICA WRONG after the trials: %v\n", err)
	} else {
		fmt.Fprintf(r.w, "replica verified after the trials (append.dat, overwrite.dat, %d new files)\n", n)
	}
	return nil
}

// wire measures the bytes on the wire for small changes to big files,
// vigil (source's stream byte counters) against rsync --no-whole-file to a
// daemon that holds the old version.
func (r *liveRig) wire(ctx context.Context, scale float64) error {
	bigSize := max(int64(256*(1<<20)*scale), 1<<20)
	insSize := max(int64(64*(1<<20)*scale), 1<<20)
	header(r.w, fmt.Sprintf("live wire bytes: 4 KiB overwrite in the middle of a %s file; 100-byte insert at the start of a %s file",
		fmtBytes(bigSize), fmtBytes(insSize)))
	big, ins := "wire/big.dat", "wire/ins.dat"
	if err := writeRandomFile(ctx, r.rel(big), bigSize, 21); err != nil {
		return err
	}
	if err := writeRandomFile(ctx, r.rel(ins), insSize, 22); err != nil {
		return err
	}
	t0 := time.Now()
	if err := r.src.waitSynced(ctx, 10*time.Minute); err != nil {
		return fmt.Errorf("wire files: %w", err)
	}
	fmt.Fprintf(r.w, "new files %s + %s synced in %.2f s\n", fmtBytes(bigSize), fmtBytes(insSize), time.Since(t0).Seconds())
	for _, f := range []string{big, ins} {
		if err := sameFile(r.rel(f), r.replicaOf(f)); err != nil {
			return fmt.Errorf("replica of %s: %w", f, err)
		}
	}
	d, err := r.e.startRsyncd(ctx, "wire", r.e.path("rsync-wire"))
	if err != nil {
		return err
	}
	defer d.p.Stop(5 * time.Second)
	if _, _, err := runRsync(ctx, "-a", r.rel(big), r.rel(ins), d.url("")); err != nil {
		return err
	}

	rng := newRand(23)
	type wcase struct {
		name   string
		file   string
		change func() (check func() bool, err error)
	}
	buf := make([]byte, 8192)
	cases := []wcase{
		{"4 KiB overwrite, middle of " + fmtBytes(bigSize), big, func() (func() bool, error) {
			block := make([]byte, 4096)
			rng.Read(block)
			off := bigSize / 2
			f, err := os.OpenFile(r.rel(big), os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			_, err = f.WriteAt(block, off)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			rp := r.replicaOf(big)
			return func() bool { return regionIs(rp, bigSize, off, block, buf) }, err
		}},
		{"100-byte insert at the start of " + fmtBytes(insSize), ins, func() (func() bool, error) {
			old, err := os.ReadFile(r.rel(ins))
			if err != nil {
				return nil, err
			}
			nb := make([]byte, 100, 100+len(old))
			rng.Read(nb)
			nb = append(nb, old...)
			// Rewritten in place from offset 0, as a program saving the
			// whole file does (no temporary file, no rename).
			f, err := os.OpenFile(r.rel(ins), os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			_, err = f.WriteAt(nb, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			head := nb[:4196]
			size := int64(len(nb))
			rp := r.replicaOf(ins)
			return func() bool { return regionIs(rp, size, 0, head, buf) }, err
		}},
	}
	fmt.Fprintf(r.w, "%-40s %12s %12s %10s  %s\n", "change", "vigil bytes", "rsync bytes", "vigil lat", "target <= 32 KiB each")
	var details []string
	for _, c := range cases {
		// libp2p's byte counters are brought up to date once a second:
		// let earlier traffic settle, then measure the background traffic
		// (gossipsub heartbeats, acks, pings) over a quiet window.
		if err := sleepCtx(ctx, counterSettle); err != nil {
			return err
		}
		i0, err := scrapeStreamBytes(ctx, r.src.metrics)
		if err != nil {
			return err
		}
		if err := sleepCtx(ctx, idleWindow); err != nil {
			return err
		}
		m0, err := scrapeStreamBytes(ctx, r.src.metrics)
		if err != nil {
			return err
		}
		_, idleBytes := m0.sub(i0)
		idle := idleBytes / idleWindow.Seconds()
		check, err := c.change()
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		t0 := time.Now()
		lat, err := r.waitReplica(ctx, t0, 2*time.Minute, check)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := r.src.waitSynced(ctx, 2*time.Minute); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := sleepCtx(ctx, counterSettle); err != nil {
			return err
		}
		span := time.Since(t0)
		m1, err := scrapeStreamBytes(ctx, r.src.metrics)
		if err != nil {
			return err
		}
		delta, vbytes := m1.sub(m0)
		if err := sameFile(r.rel(c.file), r.replicaOf(c.file)); err != nil {
			fmt.Fprintf(r.w, "REPLICA WRONG: %v\n", err)
		}
		out, _, err := runRsync(ctx, "-a", "--no-whole-file", "--stats", r.rel(c.file), d.url(""))
		if err != nil {
			return err
		}
		sent, recv, err := parseRsyncStats(out)
		if err != nil {
			return err
		}
		rbytes := sent + recv
		net := vbytes - idle*span.Seconds()
		fmt.Fprintf(r.w, "%-40s %12.0f %12d %10s  vigil %s, rsync %s\n", c.name, vbytes, rbytes, ms(lat),
			verdict(vbytes <= wireTarget), verdict(rbytes <= wireTarget))
		details = append(details, fmt.Sprintf("  %s: vigil over %.2f s: %s; background %.0f B/s (%.0f B over the window, so ~%.0f B for the change); rsync sent %d + received %d",
			c.name, span.Seconds(), delta, idle, idle*span.Seconds(), net, sent, recv))
	}
	for _, s := range details {
		fmt.Fprintln(r.w, s)
	}
	fmt.Fprintln(r.w, "  vigil bytes: source's vigil_mesh_stream_bytes_total (all libp2p streams incl. gossipsub, in+out, payload above yamux/TLS)")
	fmt.Fprintln(r.w, "  rsync bytes: rsync --stats Total bytes sent + received, rsync -a --no-whole-file to a daemon holding the old version")
	return nil
}

// lagSampler polls a node's lag report.
type lagSampler struct {
	n *vnode

	mu       sync.Mutex
	samples  int
	errs     int
	maxSeq   uint64
	maxSecs  float64
	maxBytes int64
	states   map[string]int
	start    time.Time
	last     string   // states of the previous sample
	changes  []string // "t=1.25s live -> catching-up"
}

func (s *lagSampler) run(ctx context.Context) {
	t := time.NewTicker(lagSampleRate)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep, err := s.n.ctl.Lag(cctx)
		cancel()
		s.mu.Lock()
		if err != nil {
			s.errs++
		} else {
			s.samples++
			var st []string
			for _, p := range rep.Pairs {
				st = append(st, p.State)
				s.maxSeq = max(s.maxSeq, p.LagSeq)
				s.maxSecs = max(s.maxSecs, p.LagSeconds)
				s.maxBytes = max(s.maxBytes, p.LagBytes)
				s.states[p.State]++
			}
			if cur := strings.Join(st, ","); cur != s.last {
				if s.last != "" && len(s.changes) < 20 {
					s.changes = append(s.changes, fmt.Sprintf("t=%.2fs %s -> %s", time.Since(s.start).Seconds(), s.last, cur))
				}
				s.last = cur
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sustained runs a rate-limited load for d while sampling the source's lag,
// then measures how long the lag takes to return to 0.
func (r *liveRig) sustained(ctx context.Context, kind string, d time.Duration) error {
	var title string
	if kind == "files" {
		title = fmt.Sprintf("live sustained load: %d new 4 KiB files per second over 100 directories for %s", filesPerSec, d)
	} else {
		title = fmt.Sprintf("live sustained load: %.0f MB/s append stream to one file for %s", appendPerSec/1e6, d)
	}
	header(r.w, title)
	s := &lagSampler{n: r.src, states: map[string]int{}, start: time.Now()}
	sctx, stopSampler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.run(sctx) }()
	defer func() { stopSampler(); wg.Wait() }()

	cpuS0, _ := procCPU(r.src.p.Pid())
	cpuD0, _ := procCPU(r.dst.p.Pid())
	start := time.Now()
	var count int
	var written int64
	var err error
	var check string // path under the folder to verify afterwards
	if kind == "files" {
		count, written, err = r.writeFiles(ctx, d)
		check = "load"
	} else {
		written, err = r.appendStream(ctx, d)
		check = "stream"
	}
	if err != nil {
		return err
	}
	loadTime := time.Since(start)
	cpuS1, _ := procCPU(r.src.p.Pid())
	cpuD1, _ := procCPU(r.dst.p.Pid())
	s.mu.Lock()
	maxSeqLoad, maxSecsLoad, maxBytesLoad := s.maxSeq, s.maxSecs, s.maxBytes
	s.mu.Unlock()

	// Lag back to 0: wait-synced captures what the watchers still hold,
	// then waits for every pair to be live with lag_seq 0.
	stopped := time.Now()
	drained := r.src.waitSynced(ctx, drainTarget) == nil
	drainTime := time.Since(stopped)
	if !drained {
		if err := r.src.waitSynced(ctx, drainMax); err != nil {
			fmt.Fprintf(r.w, "NOT SYNCED %s after the load stopped: %v\n", drainMax, err)
		}
		drainTime = time.Since(stopped)
	}
	stopSampler()
	wg.Wait()

	if kind == "files" {
		fmt.Fprintf(r.w, "written: %d files, %s in %.1f s (%.0f files/s achieved)\n",
			count, fmtBytes(written), loadTime.Seconds(), float64(count)/loadTime.Seconds())
	} else {
		fmt.Fprintf(r.w, "written: %s in %.1f s (%.1f MB/s achieved)\n",
			fmtBytes(written), loadTime.Seconds(), float64(written)/1e6/loadTime.Seconds())
	}
	fmt.Fprintf(r.w, "source lag during the load (%d samples every %s, %d failed): max lag_seq %d, max lag_seconds %.2f, max lag_bytes %s\n",
		s.samples, lagSampleRate, s.errs, maxSeqLoad, maxSecsLoad, fmtBytes(maxBytesLoad))
	fmt.Fprintf(r.w, "including the drain: max lag_seq %d, max lag_seconds %.2f; pair states seen: %s\n",
		s.maxSeq, s.maxSecs, fmtStates(s.states))
	if len(s.changes) > 0 {
		fmt.Fprintf(r.w, "pair state changes (t from the load start): %s\n", strings.Join(s.changes, "; "))
	}
	if drained {
		fmt.Fprintf(r.w, "lag back to 0 %.2f s after the load stopped: within %s: met\n", drainTime.Seconds(), drainTarget)
	} else {
		fmt.Fprintf(r.w, "lag back to 0 %.2f s after the load stopped: within %s: MISSED\n", drainTime.Seconds(), drainTarget)
	}
	fmt.Fprintf(r.w, "cpu during the load: source %.0f%%, target %.0f%% of one core\n",
		100*(cpuS1-cpuS0).Seconds()/loadTime.Seconds(), 100*(cpuD1-cpuD0).Seconds()/loadTime.Seconds())
	if st, err := r.src.ctl.Status(ctx); err == nil {
		fmt.Fprintf(r.w, "source journal now: %s\n", fmtBytes(st.JournalBytes))
	}
	if n, err := compareTrees(ctx, r.rel(check), r.replicaOf(check)); err != nil {
		fmt.Fprintf(r.w, "REPLICA WRONG: %v\n", err)
	} else {
		fmt.Fprintf(r.w, "replica verified (%d files)\n", n)
	}
	return nil
}

func fmtStates(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b []string
	for _, k := range ks {
		b = append(b, fmt.Sprintf("%s x%d", k, m[k]))
	}
	return strings.Join(b, ", ")
}

// writeFiles writes filesPerSec new 4 KiB files per second for d, spread
// over load/d00..d99, each with unique content.
func (r *liveRig) writeFiles(ctx context.Context, d time.Duration) (int, int64, error) {
	pool := make([]byte, 1<<20)
	newRand(31).Read(pool)
	buf := make([]byte, 4096)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	n := 0
	for {
		el := time.Since(start)
		if el >= d {
			return n, int64(n) * 4096, nil
		}
		due := int(el.Seconds() * filesPerSec)
		for ; n < due; n++ {
			off := (n * 4099) % (len(pool) - len(buf))
			copy(buf, pool[off:])
			copy(buf, fmt.Sprintf("%016x", n))
			p := r.rel(fmt.Sprintf("load/d%02d/f%07d.dat", n%100, n))
			if err := os.WriteFile(p, buf, 0o644); err != nil {
				return n, int64(n) * 4096, err
			}
		}
		if n%2000 == 0 {
			if err := errors.Join(r.src.alive(), r.dst.alive()); err != nil {
				return n, int64(n) * 4096, err
			}
		}
		select {
		case <-ctx.Done():
			return n, int64(n) * 4096, ctx.Err()
		case <-t.C:
		}
	}
}

// appendStream appends appendPerSec random bytes per second to
// stream/stream.dat for d, through one open descriptor (as a logger does),
// and closes it at the end.
func (r *liveRig) appendStream(ctx context.Context, d time.Duration) (int64, error) {
	f, err := os.OpenFile(r.rel("stream/stream.dat"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rng := newRand(41)
	buf := make([]byte, 1<<20)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	var n int64
	for {
		el := time.Since(start)
		if el >= d {
			break
		}
		due := int64(el.Seconds() * appendPerSec)
		for n < due {
			k := int(min(due-n, int64(len(buf))))
			rng.Read(buf[:k])
			if _, err := f.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		if err := errors.Join(r.src.alive(), r.dst.alive()); err != nil {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-t.C:
		}
	}
	return n, f.Close()
}
