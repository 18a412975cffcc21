package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/restore"
)

// Backend is what the control endpoint serves: the running node.
type Backend interface {
	Lag() LagReport
	// WaitSynced captures what the watchers have pending, then waits until
	// every pair is live with nothing to apply or ctx ends.
	WaitSynced(ctx context.Context) (LagReport, bool)
	Status() StatusReport
	Restore(ctx context.Context, req restore.RestoreRequest, progress func(done, total int64)) (restore.RestoreResult, error)
	Verify(ctx context.Context, source, folder string) ([]restore.VerifyReport, error)
	History(source, folder, p string) ([]history.Version, error)
	Repair(ctx context.Context, source, folder string) ([]RepairReport, error)
}

// Serve listens on (network, addr) and serves b on g until ctx ends; the
// unix socket is removed then. It refuses to start when another node
// answers on the socket.
//
// The unix socket is made mode 0600: only the node's user may connect.
// A TCP endpoint is open to every local user and to the pages of local
// browsers, so it needs the token ctx carries (ContextWithToken) and
// refuses to start without one; see tcpGuard for what each request must
// show.
func Serve(ctx context.Context, g *errgroup.Group, network, addr string, b Backend) (err error) {
	var ln net.Listener
	token := tokenFrom(ctx)
	if network != "unix" && token == "" {
		return fmt.Errorf("control: endpoint %s: a control endpoint on TCP needs a token (%s)", addr, TokenFile)
	}
	if network == "unix" {
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// A socket left by a node that did not stop cleanly: refuse if
			// something still answers on it.
			if c, err := net.DialTimeout("unix", addr, 200*time.Millisecond); err == nil {
				c.Close()
				return fmt.Errorf("control: socket %s: another vigil node is running", addr)
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
		return fmt.Errorf("control: endpoint %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/lag", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, b.Lag())
	})
	mux.HandleFunc("POST /v1/wait-synced", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil || d <= 0 {
			http.Error(w, "timeout: want a positive duration such as 60s", http.StatusBadRequest)
			return
		}
		wctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		rep, ok := b.WaitSynced(wctx)
		rep.Synced = &ok
		writeJSON(w, rep)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, b.Status())
	})
	registerHistoryHandlers(mux, b)
	registerRepairHandlers(mux, b)
	registerReloadHandlers(mux, b)
	var h http.Handler = mux
	if network != "unix" {
		hosts := []string{addr}
		if a := ln.Addr().String(); !strings.EqualFold(a, addr) {
			hosts = append(hosts, a) // port 0 in the config: the port it got
		}
		h = tcpGuard(mux, hosts, token)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("control: endpoint %s: %w", addr, err)
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
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
