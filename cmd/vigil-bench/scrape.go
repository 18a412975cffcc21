package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// streamBytes are the source node's libp2p stream byte counters
// (vigil_mesh_stream_bytes_total), keyed by "protocol direction".
type streamBytes map[string]float64

// scrapeStreamBytes reads vigil_mesh_stream_bytes_total from a node's
// Prometheus endpoint.
func scrapeStreamBytes(ctx context.Context, addr string) (streamBytes, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics %s: %s", addr, resp.Status)
	}
	return parseStreamBytes(resp.Body)
}

// parseStreamBytes extracts vigil_mesh_stream_bytes_total samples from the
// Prometheus text format.
func parseStreamBytes(r io.Reader) (streamBytes, error) {
	const name = "vigil_mesh_stream_bytes_total{"
	out := streamBytes{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("metrics: bad line %q", line)
		}
		labels := parseLabels(rest[:end])
		fields := strings.Fields(rest[end+1:])
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out[labels["protocol"]+" "+labels["direction"]] += v
	}
	return out, sc.Err()
}

// parseLabels parses `a="x",b="y"` (values without escaped quotes).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=\"")
		if !ok {
			break
		}
		v, rest, _ := strings.Cut(rest, "\"")
		m[strings.TrimSpace(k)] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return m
}

// sub returns the per-key difference after - before (keys with no change
// are left out) and the total.
func (after streamBytes) sub(before streamBytes) (streamBytes, float64) {
	d := streamBytes{}
	var total float64
	for k, v := range after {
		if x := v - before[k]; x != 0 {
			d[k] = x
			total += x
		}
	}
	return d, total
}

// String lists the counters, largest first.
func (s streamBytes) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return s[keys[i]] > s[keys[j]] })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%.0f", k, s[k])
	}
	return b.String()
}
