package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/vigil-mesh/vigil/mesh"
)

// The tests in this file run nodes in-process with `vigil run` (through
// run()) on loopback, each in a home of its own with a vigil.yaml written
// here, and query them with `vigil lag` and `vigil status`.

// lagNode is one node of a lagCluster.
type lagNode struct {
	t           *testing.T
	name        string
	home        string
	id          peer.ID
	port        int
	metricsPort int      // 0: no metrics endpoint
	backupTo    []string // names of the backups of folder "docs" (empty: no folder)
	keepFor     []string // names of the sources whose "docs" this node keeps
	peers       []*lagNode

	mu     sync.Mutex
	logs   bytes.Buffer
	cancel context.CancelFunc
	done   chan int // exit code of `vigil run`
}

type lagCluster struct {
	t     *testing.T
	nodes map[string]*lagNode
}

// lagLeakOptions ignore what ran before the test and libp2p's process-wide
// bandwidth sweeper.
func lagLeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	}
}

// newLagCluster creates homes (keys, a "docs" folder) for nodes that all
// know each other as peers. Nodes still running at the end are stopped,
// then the test checks that no goroutine is left.
func newLagCluster(t *testing.T, names ...string) *lagCluster {
	t.Helper()
	leak := lagLeakOptions()
	t.Cleanup(func() {
		if !t.Failed() {
			goleak.VerifyNone(t, leak...)
		}
	})
	c := &lagCluster{t: t, nodes: make(map[string]*lagNode)}
	for _, name := range names {
		home, err := os.MkdirTemp("", "vgl") // short: unix socket paths are limited
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(home) })
		id, err := mesh.GenerateKey(filepath.Join(home, config.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(home, "docs"), 0o755); err != nil {
			t.Fatal(err)
		}
		c.nodes[name] = &lagNode{t: t, name: name, home: home, id: id, port: lagFreePort(t)}
	}
	for _, n := range c.nodes {
		for _, o := range c.nodes {
			if o != n {
				n.peers = append(n.peers, o)
			}
		}
		slices.SortFunc(n.peers, func(a, b *lagNode) int { return strings.Compare(a.name, b.name) })
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
	})
	return c
}

// protect makes src protect its "docs" folder with the given backups, and
// each backup keep it.
func (c *lagCluster) protect(src string, backups ...string) {
	c.nodes[src].backupTo = append(c.nodes[src].backupTo, backups...)
	for _, b := range backups {
		c.nodes[b].keepFor = append(c.nodes[b].keepFor, src)
	}
}

func lagFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeConfig writes n's vigil.yaml.
func (n *lagNode) writeConfig() {
	n.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "node:\n  name: %s\n  listen: [\"/ip4/127.0.0.1/tcp/%d\"]\n  scrub_interval: 0\n", n.name, n.port)
	if n.metricsPort != 0 {
		fmt.Fprintf(&b, "  metrics: 127.0.0.1:%d\n", n.metricsPort)
	}
	b.WriteString("peers:\n")
	for _, p := range n.peers {
		fmt.Fprintf(&b, "  - name: %s\n    id: %s\n    addrs: [\"/ip4/127.0.0.1/tcp/%d\"]\n", p.name, p.id, p.port)
	}
	if len(n.backupTo) > 0 {
		fmt.Fprintf(&b, "folders:\n  - id: docs\n    path: docs\n    backup_to: [%s]\n", strings.Join(n.backupTo, ", "))
	}
	if len(n.keepFor) > 0 {
		b.WriteString("backup_for:\n")
		for _, s := range n.keepFor {
			fmt.Fprintf(&b, "  - peer: %s\n    folders: [docs]\n", s)
		}
	}
	if err := os.WriteFile(filepath.Join(n.home, "vigil.yaml"), []byte(b.String()), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// Write collects the node's log output (it is shown when a test fails).
func (n *lagNode) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.Write(p)
}

// start runs `vigil run --home` in the background and waits until the
// node's control endpoint answers.
func (n *lagNode) start() {
	t := n.t
	t.Helper()
	n.writeConfig()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	n.cancel, n.done = cancel, done
	go func() { done <- run(ctx, []string{"run", "--home", n.home, "--log-level", "debug"}, io.Discard, n) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case code := <-done:
			n.cancel, n.done = nil, nil
			cancel()
			t.Fatalf("%s: vigil run exited with %d while starting:\n%s", n.name, code, n.logTail())
		default:
		}
		if code, _, _ := lagVigil("status", "--home", n.home, "--json"); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: control endpoint not answering after 30s:\n%s", n.name, n.logTail())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// stop cancels `vigil run` (as SIGINT would) and checks that it exits 0.
func (n *lagNode) stop() {
	n.t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case code := <-n.done:
		if code != 0 {
			n.t.Errorf("%s: vigil run exited with %d:\n%s", n.name, code, n.logTail())
		}
	case <-time.After(30 * time.Second):
		n.t.Errorf("%s: vigil run did not stop within 30s", n.name)
	}
	n.cancel, n.done = nil, nil
}

func (n *lagNode) logTail() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.logs.String()
	if len(s) > 6000 {
		s = "..." + s[len(s)-6000:]
	}
	return s
}

// lagVigil runs a vigil command line in-process: exit code, stdout, stderr.
func lagVigil(args ...string) (int, string, string) {
	return lagVigilCtx(context.Background(), args...)
}

func lagVigilCtx(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// lagJSON runs `vigil lag --json` on n and decodes the report.
func (n *lagNode) lagJSON() control.LagReport {
	n.t.Helper()
	code, out, errOut := lagVigil("lag", "--home", n.home, "--json")
	if code != 0 {
		n.t.Fatalf("%s: vigil lag --json: exit %d: %s", n.name, code, errOut)
	}
	var rep control.LagReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		n.t.Fatalf("%s: vigil lag --json: %v\n%s", n.name, err, out)
	}
	return rep
}

// waitLag polls `vigil lag --json` on n until cond holds for its report,
// failing after timeout. It returns the report that satisfied cond.
func (n *lagNode) waitLag(what string, timeout time.Duration, cond func(control.LagReport) bool) control.LagReport {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rep := n.lagJSON()
		if cond(rep) {
			return rep
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: %s: not reached after %v; last report: %+v\n%s", n.name, what, timeout, rep.Pairs, n.logTail())
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// waitSynced runs `vigil lag --wait-synced 60s` on n and expects exit 0.
func (n *lagNode) waitSynced() {
	n.t.Helper()
	code, out, errOut := lagVigil("lag", "--home", n.home, "--wait-synced", "60s")
	if code != 0 {
		n.t.Fatalf("%s: vigil lag --wait-synced 60s: exit %d\nstdout: %s\nstderr: %s\n%s", n.name, code, out, errOut, n.logTail())
	}
}

// The keys of `vigil lag --json`, from the contract, with their JSON types.
var (
	lagReportKeys = map[string]string{"node": "string", "time": "string", "pairs": "array"}
	lagPairKeys   = map[string]string{
		"source": "string", "source_name": "string", "folder": "string",
		"target": "string", "target_name": "string", "state": "string",
		"head_seq": "number", "applied_seq": "number", "lag_seq": "number",
		"lag_bytes": "number", "lag_seconds": "number",
		"baseline_done_bytes": "number", "baseline_total_bytes": "number",
		"last_applied": "string|null",
		// an addition of the contract: what keeps the pair from being
		// backed up, [] when nothing does
		"errors": "array",
	}
)

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// checkKeys checks that obj has exactly the keys of want, each of one of
// the JSON types listed ("string|null").
func checkKeys(t *testing.T, where string, obj map[string]any, want map[string]string) {
	t.Helper()
	for k, types := range want {
		v, ok := obj[k]
		if !ok {
			t.Errorf("%s: key %q missing", where, k)
			continue
		}
		if !slices.Contains(strings.Split(types, "|"), jsonType(v)) {
			t.Errorf("%s: %q is a JSON %s (%v), want %s", where, k, jsonType(v), v, types)
		}
	}
	for k := range obj {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected key %q", where, k)
		}
	}
}

// decodeLagJSON checks the schema of a `vigil lag --json` output and returns
// its pairs as maps.
func decodeLagJSON(t *testing.T, out string, extraTop map[string]string) []map[string]any {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatalf("lag --json is not a JSON object: %v\n%s", err, out)
	}
	want := maps(lagReportKeys, extraTop)
	checkKeys(t, "report", top, want)
	if s, ok := top["time"].(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			t.Errorf("time %q is not RFC 3339: %v", s, err)
		}
	}
	raw, _ := top["pairs"].([]any)
	var pairs []map[string]any
	for i, p := range raw {
		m, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("pairs[%d] is a JSON %s, want object", i, jsonType(p))
		}
		checkKeys(t, fmt.Sprintf("pairs[%d]", i), m, lagPairKeys)
		if s, ok := m["last_applied"].(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				t.Errorf("pairs[%d].last_applied %q is not RFC 3339: %v", i, s, err)
			}
		}
		pairs = append(pairs, m)
	}
	return pairs
}

func maps(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestLagAndStatusOnSyncedCluster runs a source protecting "docs" to two
// backups and checks every output of lag and status against it.
func TestLagAndStatusOnSyncedCluster(t *testing.T) {
	c := newLagCluster(t, "laptop", "nas", "cloud")
	c.protect("laptop", "nas", "cloud")
	laptop, nas, cloud := c.nodes["laptop"], c.nodes["nas"], c.nodes["cloud"]
	laptop.metricsPort = lagFreePort(t)
	if err := os.WriteFile(filepath.Join(laptop.home, "docs", "a.txt"), bytes.Repeat([]byte("vigil "), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*lagNode{laptop, nas, cloud} {
		n.start()
	}
	laptop.waitSynced()

	t.Run("json has exactly the contract keys and one pair per backup on the source", func(t *testing.T) {
		code, out, errOut := lagVigil("lag", "--home", laptop.home, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		pairs := decodeLagJSON(t, out, nil)
		if len(pairs) != 2 {
			t.Fatalf("source reports %d pairs, want 2 (one per backup):\n%s", len(pairs), out)
		}
		targets := map[string]string{}
		for _, p := range pairs {
			if p["source"] != laptop.id.String() || p["source_name"] != "laptop" || p["folder"] != "docs" {
				t.Errorf("pair %v: want source laptop (%s), folder docs", p, laptop.id)
			}
			if p["state"] != control.StateLive || p["lag_seq"] != 0.0 || p["lag_seconds"] != 0.0 || p["lag_bytes"] != 0.0 {
				t.Errorf("pair %v: want live with no lag after wait-synced", p)
			}
			if p["head_seq"] != p["applied_seq"] {
				t.Errorf("pair %v: head_seq != applied_seq while live", p)
			}
			targets[p["target_name"].(string)] = p["target"].(string)
		}
		if targets["nas"] != nas.id.String() || targets["cloud"] != cloud.id.String() {
			t.Errorf("targets = %v, want nas=%s cloud=%s", targets, nas.id, cloud.id)
		}
		if !strings.Contains(out, `"node": "`+laptop.id.String()+`"`) {
			t.Errorf("report node is not laptop's ID:\n%s", out)
		}
	})

	t.Run("json on a backup has one pair per replica held", func(t *testing.T) {
		for _, n := range []*lagNode{nas, cloud} {
			code, out, errOut := lagVigil("lag", "--home", n.home, "--json")
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", n.name, code, errOut)
			}
			pairs := decodeLagJSON(t, out, nil)
			if len(pairs) != 1 {
				t.Fatalf("%s reports %d pairs, want 1 (its replica):\n%s", n.name, len(pairs), out)
			}
			p := pairs[0]
			if p["source"] != laptop.id.String() || p["target"] != n.id.String() || p["target_name"] != n.name ||
				p["folder"] != "docs" || p["state"] != control.StateLive {
				t.Errorf("%s: pair %v: want laptop/docs -> %s, live", n.name, p, n.name)
			}
			if p["baseline_total_bytes"] != 30000.0 || p["baseline_done_bytes"] != 30000.0 {
				t.Errorf("%s: baseline bytes %v/%v, want 30000/30000", n.name, p["baseline_done_bytes"], p["baseline_total_bytes"])
			}
			if p["last_applied"] == nil {
				t.Errorf("%s: last_applied is null after the baseline", n.name)
			}
		}
	})

	t.Run("wait-synced json adds synced true and exits 0", func(t *testing.T) {
		code, out, errOut := lagVigil("lag", "--home", laptop.home, "--json", "--wait-synced", "30s")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		decodeLagJSON(t, out, map[string]string{"synced": "bool"})
		if !strings.Contains(out, `"synced": true`) {
			t.Errorf("want \"synced\": true in:\n%s", out)
		}
	})

	t.Run("table has the header and one sorted row per pair", func(t *testing.T) {
		code, out, errOut := lagVigil("lag", "--home", laptop.home)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("want a header and 2 rows, got:\n%s", out)
		}
		if f := strings.Join(strings.Fields(lines[0]), " "); f != "SOURCE FOLDER BACKUP STATE SEQ LAG BYTES SECONDS LAST APPLIED" {
			t.Errorf("header = %q", lines[0])
		}
		row := regexp.MustCompile(`^laptop +docs +(\w+) +live +0 \((\d+)/(\d+)\) +0 B +0 +(now|\d+s ago)$`)
		var backups []string
		for _, l := range lines[1:] {
			m := row.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("row %q does not match %v", l, row)
				continue
			}
			if m[2] != m[3] {
				t.Errorf("row %q: applied != head", l)
			}
			backups = append(backups, m[1])
		}
		if !slices.Equal(backups, []string{"cloud", "nas"}) {
			t.Errorf("backups in order %v, want [cloud nas]", backups)
		}
	})

	t.Run("watch prints one table per refresh until interrupted and exits 0", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &syncBuffer{}
		done := make(chan int, 1)
		go func() {
			var errOut bytes.Buffer
			done <- run(ctx, []string{"lag", "--home", laptop.home, "--watch"}, out, &errOut)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(out.String(), "SOURCE") < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than 3 refreshes after 20s:\n%s", out.String())
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d after interrupt", code)
		}
		s := out.String()
		if strings.Contains(s, "\x1b") {
			t.Errorf("ANSI codes written to a non-terminal:\n%q", s)
		}
		frames := strings.Split(strings.TrimRight(s, "\n"), "\n\n")
		for i, f := range frames {
			if !strings.HasPrefix(f, "SOURCE") || strings.Count(f, "\n") != 2 {
				t.Errorf("frame %d is not a table of 2 pairs:\n%s", i, f)
			}
		}
	})

	t.Run("status table shows the node, peers, folders and replicas", func(t *testing.T) {
		code, out, errOut := lagVigil("status", "--home", laptop.home)
		if code != 0 {
			t.Fatalf("laptop: exit %d: %s", code, errOut)
		}
		for _, want := range []string{"laptop (" + laptop.id.String() + ")", "PEERS", "FOLDERS", "REPLICAS", "none held"} {
			if !strings.Contains(out, want) {
				t.Errorf("laptop status lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`(?m)^nas +12D3KooW\.\.\.\S+ +yes +/ip4/127\.0\.0\.1/tcp/\d+`).MatchString(out) {
			t.Errorf("laptop status: no connected row for nas:\n%s", out)
		}
		if !regexp.MustCompile(`(?m)^docs +\S+/docs +1 +29\.3 KiB +(\d+\.\.\d+|-) +\d.* +nas, cloud$`).MatchString(out) {
			t.Errorf("laptop status: no row for folder docs:\n%s", out)
		}
		code, out, errOut = lagVigil("status", "--home", nas.home)
		if code != 0 {
			t.Fatalf("nas: exit %d: %s", code, errOut)
		}
		if !regexp.MustCompile(`(?m)^laptop +docs +live +1 +29\.3 KiB +(\d+)/(\d+) +100% +\d+ +-$`).MatchString(out) {
			t.Errorf("nas status: no live replica row for laptop/docs:\n%s", out)
		}
	})

	t.Run("status json decodes into the report", func(t *testing.T) {
		code, out, errOut := lagVigil("status", "--home", nas.home, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var st control.StatusReport
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if st.ID != nas.id.String() || st.Name != "nas" || len(st.Peers) != 2 || len(st.Folders) != 0 || len(st.Replicas) != 1 {
			t.Fatalf("status = %+v", st)
		}
		if r := st.Replicas[0]; r.Source != laptop.id.String() || r.Folder != "docs" || r.State != control.StateLive || r.Files != 1 || r.Bytes != 30000 {
			t.Errorf("replica = %+v", r)
		}
	})

	t.Run("metrics have per-pair lag series and journal series", func(t *testing.T) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", laptop.metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		text := string(body)
		for _, name := range []string{"vigil_lag_seq", "vigil_lag_bytes", "vigil_lag_seconds"} {
			for _, target := range []string{"cloud", "nas"} {
				want := fmt.Sprintf(`%s{folder="docs",source="laptop",target="%s"} 0`, name, target)
				if !strings.Contains(text, want+"\n") {
					t.Errorf("no line %q in /metrics", want)
				}
			}
		}
		if !regexp.MustCompile(`(?m)^vigil_journal_\w+(\{[^}]*folder="docs"[^}]*\})? `).MatchString(text) {
			t.Errorf("no vigil_journal_* series in /metrics:\n%s", grepLines(text, "vigil_"))
		}
	})
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLagSecondsGrowWhileBackupOfflineAndAreZeroOnceSynced stops the backup,
// changes the folder, watches the source's lag grow, restarts the backup
// and waits for sync.
func TestLagSecondsGrowWhileBackupOfflineAndAreZeroOnceSynced(t *testing.T) {
	c := newLagCluster(t, "laptop", "nas")
	c.protect("laptop", "nas")
	laptop, nas := c.nodes["laptop"], c.nodes["nas"]
	if err := os.WriteFile(filepath.Join(laptop.home, "docs", "first.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	laptop.start()
	nas.start()
	laptop.waitSynced()

	nas.stop()
	laptop.waitLag("backup seen offline", 30*time.Second, func(r control.LagReport) bool {
		return len(r.Pairs) == 1 && r.Pairs[0].State == control.StateOffline
	})
	const size = 20000
	data := bytes.Repeat([]byte("0123456789abcdefghij"), size/20)
	if err := os.WriteFile(filepath.Join(laptop.home, "docs", "offline.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	first := laptop.waitLag("change captured", 30*time.Second, func(r control.LagReport) bool {
		return len(r.Pairs) == 1 && r.Pairs[0].LagSeq >= 1
	}).Pairs[0]
	later := laptop.waitLag("lag_seconds growing", 30*time.Second, func(r control.LagReport) bool {
		return len(r.Pairs) == 1 && r.Pairs[0].LagSeconds > first.LagSeconds
	}).Pairs[0]
	for _, p := range []control.LagPair{first, later} {
		if p.State != control.StateOffline || p.LagSeq < 1 || p.LagBytes < size || p.LagSeconds <= 0 {
			t.Errorf("while nas is offline: %+v; want state offline, lag_seq >= 1, lag_bytes >= %d, lag_seconds > 0", p, size)
		}
		if p.HeadSeq-p.AppliedSeq != p.LagSeq {
			t.Errorf("lag_seq %d != head_seq %d - applied_seq %d", p.LagSeq, p.HeadSeq, p.AppliedSeq)
		}
	}

	code, out, errOut := lagVigil("lag", "--home", laptop.home, "--wait-synced", "1s")
	if code != 1 || errOut != "vigil: not synced after 1s: 1 pair(s) behind\n" {
		t.Errorf("wait-synced 1s with the backup offline: exit %d, stderr %q; want 1 and the not-synced line", code, errOut)
	}
	if !regexp.MustCompile(`(?m)^laptop +docs +nas +offline +[1-9]`).MatchString(out) {
		t.Errorf("wait-synced 1s: stdout lacks the offline pair:\n%s", out)
	}

	nas.start()
	code, out, errOut = lagVigil("lag", "--home", laptop.home, "--wait-synced", "60s", "--json")
	if code != 0 {
		t.Fatalf("wait-synced 60s after restarting nas: exit %d\n%s\n%s\n%s", code, errOut, out, laptop.logTail())
	}
	p := laptop.lagJSON().Pairs[0]
	if p.State != control.StateLive || p.LagSeq != 0 || p.LagSeconds != 0 || p.LagBytes != 0 || p.AppliedSeq != p.HeadSeq {
		t.Errorf("after wait-synced: %+v; want live with no lag", p)
	}
	if p.HeadSeq <= first.AppliedSeq {
		t.Errorf("head_seq %d did not move past %d", p.HeadSeq, first.AppliedSeq)
	}
	got, err := os.ReadFile(filepath.Join(nas.home, "data", "replicas", laptop.id.String(), "docs", "offline.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("replica of offline.bin: %d bytes, err %v; want the %d bytes written", len(got), err, len(data))
	}
}

// TestLagAndStatusSayNodeNotRunningInOneLine checks the message and exit
// code of every form when nothing answers on the control socket.
func TestLagAndStatusSayNodeNotRunningInOneLine(t *testing.T) {
	c := newLagCluster(t, "laptop", "nas")
	c.protect("laptop", "nas")
	laptop := c.nodes["laptop"]
	laptop.writeConfig()
	want := "vigil: node not running: nothing answers on " + filepath.Join(laptop.home, "vigil.sock") + "\n"
	for _, args := range [][]string{
		{"lag"}, {"lag", "--json"}, {"lag", "--watch"}, {"lag", "--wait-synced", "5s"},
		{"status"}, {"status", "--json"},
	} {
		code, out, errOut := lagVigil(append(args, "--home", laptop.home)...)
		if code != 1 || errOut != want || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, out, errOut, want)
		}
	}
}

func TestLagRejectsBadWaitSyncedAsUsage(t *testing.T) {
	c := newLagCluster(t, "laptop")
	laptop := c.nodes["laptop"]
	laptop.writeConfig()
	for _, args := range [][]string{
		{"lag", "--wait-synced", "soon"},
		{"lag", "--wait-synced", "-5s"},
		{"lag", "--wait-synced", "5s", "--watch"},
	} {
		code, _, errOut := lagVigil(append(args, "--home", laptop.home)...)
		if code != 2 || !strings.HasPrefix(errOut, "vigil: lag: --") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming the flag", args, code, errOut)
		}
	}
}
