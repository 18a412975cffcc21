package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// The control endpoint speaks HTTP + JSON on the node's `control:` address
// (a unix socket of mode 0600 by default):
//
//	GET  /v1/lag                       LagReport
//	POST /v1/wait-synced?timeout=60s   LagReport with "synced"
//	GET  /v1/status                    StatusReport

func (n *Node) startControl(ctx context.Context, g *errgroup.Group) (io interface{ Close() error }, err error) {
	network, addr := n.cfg.ControlAddr()
	var ln net.Listener
	if network == "unix" {
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// A socket left by a node that did not stop cleanly: refuse if
			// something still answers on it.
			if c, err := net.DialTimeout("unix", addr, 200*time.Millisecond); err == nil {
				c.Close()
				return nil, fmt.Errorf("node: control socket %s: another vigil node is running", addr)
			}
			os.Remove(addr)
		}
		old := umask(0o177)
		ln, err = net.Listen("unix", addr)
		umask(old)
		if err == nil {
			err = os.Chmod(addr, 0o600)
		}
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("node: control endpoint %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/lag", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, n.Lag())
	})
	mux.HandleFunc("POST /v1/wait-synced", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil || d <= 0 {
			http.Error(w, "timeout: want a positive duration such as 60s", http.StatusBadRequest)
			return
		}
		wctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		rep, ok := n.WaitSynced(wctx)
		rep.Synced = &ok
		writeJSON(w, rep)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, n.Status())
	})
	n.registerHistoryHandlers(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("node: control endpoint %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		if network == "unix" {
			os.Remove(addr)
		}
		return nil
	})
	return ln, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// startMetrics serves Prometheus metrics on the `metrics:` address, if set.
func (n *Node) startMetrics(ctx context.Context, g *errgroup.Group) error {
	if n.opts.registerer != nil {
		// registered once per node
		if err := n.opts.registerer.Register(newLagCollector(n)); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	addr := n.cfg.Node.Metrics
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: metrics endpoint %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.opts.gatherer, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("node: metrics endpoint %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return nil
}

// ErrNotRunning is returned by the control client when no node answers.
var ErrNotRunning = errors.New("node: not running")

// ControlClient talks to a running node's control endpoint.
type ControlClient struct {
	addr string
	hc   *http.Client
}

// NewControlClient returns a client for the control endpoint at
// (network, addr), as given by Config.ControlAddr.
func NewControlClient(network, addr string) *ControlClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return &ControlClient{addr: addr, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *ControlClient) Close() { c.hc.CloseIdleConnections() }

func (c *ControlClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return fmt.Errorf("%w: nothing answers on %s (is `vigil run` started?)", ErrNotRunning, c.addr)
		}
		return fmt.Errorf("node: control endpoint %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b [512]byte
		k, _ := resp.Body.Read(b[:])
		return fmt.Errorf("node: control endpoint %s: %s: %s", c.addr, resp.Status, b[:k])
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Lag fetches the node's lag report.
func (c *ControlClient) Lag(ctx context.Context) (LagReport, error) {
	var r LagReport
	err := c.do(ctx, http.MethodGet, "/v1/lag", &r)
	return r, err
}

// WaitSynced asks the node to capture pending changes and wait up to d
// for every pair to be live with nothing left to apply.
func (c *ControlClient) WaitSynced(ctx context.Context, d time.Duration) (LagReport, bool, error) {
	var r LagReport
	err := c.do(ctx, http.MethodPost, "/v1/wait-synced?timeout="+d.String(), &r)
	return r, r.Synced != nil && *r.Synced, err
}

// Status fetches the node's status report.
func (c *ControlClient) Status(ctx context.Context) (StatusReport, error) {
	var r StatusReport
	err := c.do(ctx, http.MethodGet, "/v1/status", &r)
	return r, err
}
