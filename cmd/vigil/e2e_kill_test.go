package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/internal/workload"
	"github.com/vigil-mesh/vigil/node/control"
)

// writeKillTree writes 20,000 small files (1-8 KiB) in 400 directories and
// three large ones (128 MiB), and returns the tree's bytes (about 490 MB).
func writeKillTree(t *testing.T, dir string) int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(2026, 12))
	var total int64
	for i := range 20000 {
		data := workload.Bytes(rng, 1<<10+rng.IntN(7<<10))
		mustWrite(t, filepath.Join(dir, fmt.Sprintf("d%02d/e%02d/f%05d", i%20, (i/20)%20, i)), data, 0o644)
		total += int64(len(data))
	}
	for i := range 3 {
		data := workload.Bytes(rng, 128<<20)
		mustWrite(t, filepath.Join(dir, fmt.Sprintf("large/%d.bin", i)), data, 0o644)
		total += int64(len(data))
	}
	return total
}

// chunkBytesSent reads vigil_node_chunk_bytes_sent_total from n's /metrics.
func chunkBytesSent(t *testing.T, n *e2eNode) int64 {
	t.Helper()
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		t.Fatalf("%s: /metrics: %v", n.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "vigil_node_chunk_bytes_sent_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: /metrics: %q: %v", n.name, sc.Text(), err)
			}
			return int64(f)
		}
	}
	t.Fatalf("%s: no vigil_node_chunk_bytes_sent_total in /metrics", n.name)
	return 0
}

// A baseline of 20,000 small files and three large ones, during which the
// backup and the source are each killed (SIGKILL) three times, converges,
// and the source sends at most 1.1x the tree's bytes in all: progress is
// durable (committed groups, salvaged staged files), little is in flight.
func TestE2EBaselineSurvivesSixKillsAndSendsAtMost1point1xTheTree(t *testing.T) {
	m := newE2EMesh(t)
	dir := m.dir("laptop-docs")
	total := writeKillTree(t, dir)
	src, dst := twoNodes(t, m, dir)
	src.metrics = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	dst.start()
	src.start()

	var sent int64 // chunk bytes sent by source processes that were killed
	var last int64 // backup progress at the last kill
	const kills = 6
	for k := 1; k <= kills; k++ {
		// kill once the backup has k/8 of the tree in place and has moved
		// on by a twentieth of it since the last kill, and at most a third
		// of the way through what is left (so that a kill that came late
		// leaves room for the others). Progress is read over the control
		// socket from here: a `vigil status` process per poll takes up to
		// a second on a loaded machine, in which the baseline moves on by
		// a sixth of the tree.
		want := min(max(total*int64(k)/8, last+total/20), last+(total-last)/3)
		var r control.ReplicaReport
		pollUntil(t, 120*time.Second, fmt.Sprintf("baseline progress %d of %d bytes", want, total), func() bool {
			r = dst.replicaStatusNow(src, "docs")
			if r.State == "live" || r.State == "catching-up" {
				t.Fatalf("the baseline finished before kill %d: make the tree bigger", k)
			}
			return r.BaselineDoneBytes >= want
		})
		victim := dst
		if k%2 == 0 {
			victim = src
		}
		last = r.BaselineDoneBytes
		t.Logf("kill %d: %s, backup progress %d (>= %d) of %d bytes", k, victim.name, r.BaselineDoneBytes, want, total)
		if victim == src {
			// read just before the kill: what the source sends between the
			// two (a millisecond) is the only part not counted
			sent += chunkBytesSent(t, src)
		}
		victim.kill()
		victim.start()
	}
	src.waitSynced()
	sent += chunkBytesSent(t, src)
	requireSameTree(t, dir, dst.replicaDir(src, "docs"))
	ratio := float64(sent) / float64(total)
	t.Logf("tree %d bytes; the source sent %d chunk bytes over %d kills: %.3fx", total, sent, kills, ratio)
	if ratio > 1.1 {
		t.Fatalf("the source sent %.3fx the tree's bytes over %d kills, want at most 1.1x", ratio, kills)
	}
}

// replicaStatusNow is replicaStatus read over n's control socket from the
// test process (a millisecond, where running `vigil status` takes up to a
// second under load); an error or a node not answering yet (restarting)
// reads as no progress.
func (n *e2eNode) replicaStatusNow(src *e2eNode, folder string) control.ReplicaReport {
	n.t.Helper()
	cfg, err := loadConfig(n.home)
	if err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := newControlClient(cfg).Status(ctx)
	if err != nil {
		return control.ReplicaReport{}
	}
	for _, r := range s.Replicas {
		if r.Source == src.id && r.Folder == folder {
			return r
		}
	}
	return control.ReplicaReport{}
}
