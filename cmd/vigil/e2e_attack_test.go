package main

// The attack program: an allow-listed peer ("mallory") built from the
// project's own packages attacks real nodes. It has no role toward the
// source "laptop" and is the (compromised) source of a folder "evil" that
// the backup "nas" keeps. Each attack must leave the attacked node's RSS
// within 512 MiB of where it was, and replication of laptop/docs to nas
// must go on during it.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/wire"
)

// attackRSSBound is the most an attack may move a node's resident memory.
const attackRSSBound = 512 << 20

// rssOf returns the resident set size of process pid, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read RSS of %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS of %d: %q", pid, v)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// rssWatch samples a process's RSS until stopped and keeps the peak.
type rssWatch struct {
	before, peak int64
	stop         chan struct{}
	done         chan struct{}
}

func watchRSS(t *testing.T, pid int) *rssWatch {
	w := &rssWatch{before: rssOf(t, pid), stop: make(chan struct{}), done: make(chan struct{})}
	w.peak = w.before
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
				data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				if err != nil {
					continue
				}
				for _, l := range strings.Split(string(data), "\n") {
					if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						w.peak = max(w.peak, kb<<10)
					}
				}
			}
		}
	}()
	return w
}

// end stops the watch and checks the bound; it returns the figures.
func (w *rssWatch) end(t *testing.T, what string) string {
	t.Helper()
	close(w.stop)
	<-w.done
	fig := fmt.Sprintf("%s: RSS %.0f MiB before, peak %.0f MiB (+%.0f MiB)", what,
		float64(w.before)/(1<<20), float64(w.peak)/(1<<20), float64(w.peak-w.before)/(1<<20))
	t.Log(fig)
	if w.peak-w.before > attackRSSBound {
		t.Errorf("%s: RSS grew by %d MiB, more than %d MiB", what, (w.peak-w.before)>>20, attackRSSBound>>20)
	}
	return fig
}

// attacker is mallory's libp2p host, made with the mesh package.
type attacker struct {
	m  *mesh.Mesh
	id peer.ID
}

func newAttacker(t *testing.T, mal *e2eNode, targets ...*e2eNode) *attacker {
	t.Helper()
	key, id, err := mesh.LoadKey(filepath.Join(mal.home, config.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var peers []mesh.Peer
	for _, n := range targets {
		pid, err := peer.Decode(n.id)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, mesh.Peer{Name: n.name, ID: pid, Addrs: []multiaddr.Multiaddr{multiaddr.StringCast(n.listenAddr())}})
	}
	m, err := mesh.New(context.Background(), mesh.Config{Key: key, Peers: peers,
		Listen: []multiaddr.Multiaddr{multiaddr.StringCast(mal.listenAddr())}})
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{m: m, id: id}
	// mallory serves its folder "evil" as an empty source would
	m.Handle(mesh.ProtoSync, a.serve)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		m.Close()
		wg.Wait()
	})
	return a
}

// serve answers requests for "evil": an empty snapshot at head 0, and no
// records (the gap its published records leave never fills).
func (a *attacker) serve(_ peer.ID, s network.Stream) {
	defer s.Close()
	r := bufio.NewReader(s)
	w := bufio.NewWriter(s)
	for {
		typ, _, err := mesh.ReadFrame(r, wire.MaxRequestFrame)
		if err != nil {
			return
		}
		switch typ {
		case wire.SnapshotReq:
			mesh.WriteFrame(w, wire.SnapshotHead, wire.EncodeHead(wire.Head{}))
			mesh.WriteFrame(w, wire.End, wire.EncodeSeq(0))
		case wire.JournalReq:
			mesh.WriteFrame(w, wire.End, wire.EncodeSeq(0))
		case wire.PathReq:
			mesh.WriteFrame(w, wire.PathHead, wire.EncodeSeq(0))
			mesh.WriteFrame(w, wire.End, wire.EncodeSeq(0))
		default:
			mesh.WriteFrame(w, wire.Error, []byte("no"))
		}
		if w.Flush() != nil {
			return
		}
	}
}

func mustDecode(t *testing.T, id string) peer.ID {
	t.Helper()
	p, err := peer.Decode(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// metricValue reads one unlabelled series from a node's metrics endpoint.
func metricValue(t *testing.T, n *e2eNode, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	t.Fatalf("%s: no series %s", n.name, name)
	return 0
}

func TestE2EAttacksByAnAllowListedPeerKeepMemoryBoundedAndReplicationGoing(t *testing.T) {
	m := newE2EMesh(t)
	lap, nas, mal := m.node("laptop"), m.node("nas"), m.node("mallory")
	lap.allow(nas, mal)
	nas.allow(lap, mal)
	docs := m.dir("docs")
	lap.protect("docs", docs, nas)
	nas.keepFor(lap, "docs")
	nas.keepFor(mal, "evil")
	nas.metrics = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	for i := range 20 {
		mustWrite(t, filepath.Join(docs, fmt.Sprintf("f%02d", i)), []byte(strings.Repeat("x", 10000+i)), 0o644)
	}
	nas.start()
	lap.start()
	lap.waitSynced()
	att := newAttacker(t, mal, lap, nas)
	lapID, nasID := mustDecode(t, lap.id), mustDecode(t, nas.id)
	// The attacker's own sends (2,400 records at a fixed pace) bound the
	// run; on a loaded machine they take minutes, so only the test's own
	// deadline bounds them.
	deadline := time.Now().Add(15 * time.Minute)
	if dl, ok := t.Deadline(); ok {
		deadline = dl.Add(-time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var figures []string
	change := func(name string) {
		mustWrite(t, filepath.Join(docs, name), []byte("changed during an attack: "+name), 0o644)
		lap.waitSynced()
		requireSameTree(t, docs, nas.replicaDir(lap, "docs"))
	}

	// 1. Memory before authorization: streams announcing 80 MiB request
	// frames, as many as the source lets one peer open.
	t.Run("big frames and many streams at the source", func(t *testing.T) {
		w := watchRSS(t, lap.process().Pid)
		var streams []network.Stream
		refused := 0
		for range 3000 {
			s, err := att.m.Open(ctx, lapID, mesh.ProtoSync)
			if err != nil {
				refused++
				continue
			}
			hdr := binary.AppendUvarint(nil, 80<<20+1)
			hdr = append(hdr, wire.ChunksReq)
			if _, err := s.Write(append(hdr, make([]byte, 1024)...)); err != nil {
				refused++
				s.Reset()
				continue
			}
			streams = append(streams, s)
		}
		change("during-1")
		figures = append(figures, w.end(t, fmt.Sprintf("laptop, %d streams announcing 80 MiB frames (%d refused)", len(streams), refused)))
		if len(streams) > 64 {
			t.Errorf("laptop let one peer open %d sync streams", len(streams))
		}
		for _, s := range streams {
			s.Reset()
		}
	})

	// 2. Requests for a folder mallory does not back up: refused, and the
	// refusals logged at most once a minute.
	t.Run("foreign requests are refused and their logs limited", func(t *testing.T) {
		for range 200 {
			s, err := att.m.Open(ctx, lapID, mesh.ProtoSync)
			if err != nil {
				continue
			}
			mesh.WriteFrame(s, wire.SnapshotReq, wire.EncodeFolder("docs"))
			typ, _, err := mesh.ReadFrame(bufio.NewReader(s), wire.MaxFrame)
			if err == nil && typ != wire.Error {
				t.Fatalf("laptop answered a snapshot of docs to a peer that is not its backup (frame %#x)", typ)
			}
			s.Reset()
		}
		change("during-2")
		data, _ := os.ReadFile(lap.logPath)
		if n := strings.Count(string(data), `"msg":"refused request"`); n > 2 {
			t.Errorf("laptop logged %d refused requests for 200 refusals, want at most 2", n)
		}
	})

	// 3. A compromised source: a heartbeat claiming head 2^64-1, then
	// 2400 records of 256 KiB (the largest a message carries; 600 MB in
	// all) beyond a gap that never fills.
	t.Run("records beyond a gap and a huge head from a source", func(t *testing.T) {
		topic, err := att.m.JoinFolder(att.id, "evil", []peer.ID{nasID})
		if err != nil {
			t.Fatal(err)
		}
		defer topic.Close()
		pollUntil(t, 60*time.Second, "nas to finish the baseline of mallory/evil", func() bool {
			for _, r := range nas.status().Replicas {
				if r.Folder == "evil" && r.State == "live" {
					return true
				}
			}
			return false
		})
		if err := topic.Publish(ctx, wire.EncodeHeartbeat(math.MaxUint64)); err != nil {
			t.Fatal(err)
		}
		w := watchRSS(t, nas.process().Pid)
		payload := make([]byte, wire.MaxPubInline)
		pace := time.NewTicker(2500 * time.Microsecond) // a steady 100 MB/s flood gossipsub does not drop at our side
		defer pace.Stop()
		for i := range 2400 {
			<-pace.C
			rec := wire.Record{Seq: 1000 + uint64(i), Time: time.Now(), Payload: payload}
			if err := topic.Publish(ctx, wire.AppendRecord([]byte{wire.PubRecord}, rec)); err != nil {
				t.Fatal(err)
			}
		}
		pollUntil(t, 60*time.Second, "nas to drop records beyond its buffer", func() bool {
			return metricValue(t, nas, "vigil_node_records_out_of_order_dropped_total") > 0
		})
		change("during-3")
		figures = append(figures, w.end(t, "nas, 2400 records of 256 KiB (600 MB) beyond a gap"))
		for _, p := range nas.lag().Pairs {
			if p.Folder == "evil" && p.HeadSeq > 1000+2400 {
				t.Errorf("nas shows head_seq %d for mallory/evil after a heartbeat claiming 2^64-1", p.HeadSeq)
			}
		}
	})
	t.Logf("attack figures:\n%s", strings.Join(figures, "\n"))
}
