package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// controlClient speaks to a node's control endpoint (HTTP + JSON on its
// unix socket), the endpoint `vigil lag` and `vigil status` use:
//
//	GET  /v1/lag                       lag report (the JSON of `vigil lag --json`)
//	POST /v1/wait-synced?timeout=60s   lag report with "synced" (`vigil lag --wait-synced`)
//	GET  /v1/status                    status report (`vigil status --json`)
//
// It is kept apart from package node so that the benchmark decodes the
// documented JSON only and builds against any vigil binary given by --vigil.
type controlClient struct {
	sock string
	hc   *http.Client
}

func newControlClient(sock string) *controlClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &controlClient{sock: sock, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *controlClient) Close() { c.hc.CloseIdleConnections() }

func (c *controlClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control endpoint %s: %w", c.sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b [512]byte
		k, _ := resp.Body.Read(b[:])
		return fmt.Errorf("control endpoint %s %s: %s: %s", method, path, resp.Status, b[:k])
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// lagReport is the JSON of `vigil lag --json` (fields the benchmark reads).
type lagReport struct {
	Node   string    `json:"node"`
	Pairs  []lagPair `json:"pairs"`
	Synced *bool     `json:"synced,omitempty"`
}

type lagPair struct {
	SourceName         string  `json:"source_name"`
	Folder             string  `json:"folder"`
	TargetName         string  `json:"target_name"`
	State              string  `json:"state"`
	HeadSeq            uint64  `json:"head_seq"`
	AppliedSeq         uint64  `json:"applied_seq"`
	LagSeq             uint64  `json:"lag_seq"`
	LagBytes           int64   `json:"lag_bytes"`
	LagSeconds         float64 `json:"lag_seconds"`
	BaselineDoneBytes  int64   `json:"baseline_done_bytes"`
	BaselineTotalBytes int64   `json:"baseline_total_bytes"`
}

// statusReport is the JSON of `vigil status --json` (fields the benchmark reads).
type statusReport struct {
	ID           string          `json:"id"`
	Replicas     []replicaReport `json:"replicas"`
	JournalBytes int64           `json:"journal_bytes"`
}

type replicaReport struct {
	Path               string `json:"path"`
	State              string `json:"state"`
	Files              int    `json:"files"`
	Bytes              int64  `json:"bytes"`
	AppliedSeq         uint64 `json:"applied_seq"`
	HeadSeq            uint64 `json:"head_seq"`
	BaselineDoneBytes  int64  `json:"baseline_done_bytes"`
	BaselineTotalBytes int64  `json:"baseline_total_bytes"`
	ChunksFetched      int64  `json:"chunks_fetched"`
	LastError          string `json:"last_error,omitempty"`
}

// Lag fetches the lag report.
func (c *controlClient) Lag(ctx context.Context) (lagReport, error) {
	var r lagReport
	err := c.do(ctx, http.MethodGet, "/v1/lag", &r)
	return r, err
}

// Status fetches the status report.
func (c *controlClient) Status(ctx context.Context) (statusReport, error) {
	var r statusReport
	err := c.do(ctx, http.MethodGet, "/v1/status", &r)
	return r, err
}

// WaitSynced asks the node to capture pending changes and wait up to d for
// every pair to be live with lag_seq 0.
func (c *controlClient) WaitSynced(ctx context.Context, d time.Duration) (lagReport, bool, error) {
	var r lagReport
	err := c.do(ctx, http.MethodPost, "/v1/wait-synced?timeout="+d.String(), &r)
	return r, r.Synced != nil && *r.Synced, err
}
