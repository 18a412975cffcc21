package main

// End-to-end tests with a live workload running against real `vigil` nodes.

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/internal/workload"
)

// seedTree writes a small starting tree for the live tests.
func seedTree(t *testing.T, dir string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i < 40; i++ {
		mustWrite(t, filepath.Join(dir, fmt.Sprintf("s%d/seed-%02d.bin", i%4, i)), workload.Bytes(rng, rng.IntN(100000)), 0o644)
	}
}

func TestE2ELiveWorkloadConverges(t *testing.T) {
	const seed, ops = 20261125, 600
	t.Logf("workload seed %d, %d operations", seed, ops)
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	seedTree(t, dir, seed)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))

	begin := time.Now()
	var done atomic.Int64
	workload.Random(dir, seed, ops, &done, nil)
	t.Logf("workload: %d operations in %v", done.Load(), time.Since(begin).Round(time.Millisecond))
	if done.Load() < ops/2 {
		t.Fatalf("workload ran only %d operations", done.Load())
	}
	src.waitSynced()
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
}

func TestE2ETargetKilledMidStreamConverges(t *testing.T) {
	const seed, ops = 977, 900
	t.Logf("workload seed %d, %d operations", seed, ops)
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	seedTree(t, dir, seed)
	src, dst := twoNodes(t, m, dir)
	dst.start()
	src.start()
	src.waitSynced()

	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		workload.Random(dir, seed, ops, &done, stop)
	}()
	finished := false
	t.Cleanup(func() {
		if !finished {
			close(stop)
			wg.Wait()
		}
	})

	workDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(workDone)
	}()
	pollUntil(t, 60*time.Second, "a fifth of the workload", func() bool { return done.Load() >= ops/5 })
	// Put a large file in flight and kill the target while it is fetching it.
	before := dst.replicaStatus(src, "docs").ChunksFetched
	mustWrite(t, filepath.Join(dir, "in-flight-16MiB.bin"), workload.Bytes(rand.New(rand.NewPCG(seed, 1)), 16<<20), 0o644)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := dst.replicaStatus(src, "docs").ChunksFetched
		if got >= before+20 {
			t.Logf("killing the target with SIGKILL after it fetched %d chunks since the large write", got-before)
			break
		}
		if time.Now().After(deadline) {
			t.Logf("target fetched only %d chunks of the large file in 20s; killing it anyway", got-before)
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	dst.kill()
	killedAt := done.Load()

	// The workload goes on while the target is down.
	pollUntil(t, 60*time.Second, "150 more operations or the end of the workload", func() bool {
		select {
		case <-workDone:
			return true
		default:
			return done.Load() >= killedAt+150
		}
	})
	t.Logf("target down while operations %d..%d ran; restarting it", killedAt, done.Load())
	dst.start()
	<-workDone
	finished = true
	t.Logf("workload done: %d operations", done.Load())
	src.waitSynced()
	dst.waitSynced()
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
}
