package control

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/restore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stubBackend answers every request with an empty report and counts the
// restores it was asked for.
type stubBackend struct{ restores atomic.Int64 }

var _ Backend = (*stubBackend)(nil)

func (b *stubBackend) Lag() LagReport { return LagReport{Node: "stub"} }
func (b *stubBackend) WaitSynced(ctx context.Context) (LagReport, bool) {
	return LagReport{Node: "stub"}, true
}
func (b *stubBackend) Status() StatusReport { return StatusReport{ID: "stub"} }
func (b *stubBackend) Restore(ctx context.Context, req restore.RestoreRequest, progress func(done, total int64)) (restore.RestoreResult, error) {
	b.restores.Add(1)
	return restore.RestoreResult{}, nil
}
func (b *stubBackend) Verify(ctx context.Context, source, folder string) ([]restore.VerifyReport, error) {
	return nil, nil
}
func (b *stubBackend) History(source, folder, p string) ([]history.Version, error) { return nil, nil }
func (b *stubBackend) Repair(ctx context.Context, source, folder string) ([]RepairReport, error) {
	return nil, nil
}

// serveTCP serves a stub on a free loopback port with token (none: "")
// until the test ends, and returns its address.
func serveTCP(t *testing.T, b Backend, token string) (string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if token != "" {
		ctx = ContextWithToken(ctx, token)
	}
	var g errgroup.Group
	if err := Serve(ctx, &g, "tcp", addr, b); err != nil {
		cancel()
		return "", err
	}
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	})
	return addr, nil
}

func TestLoadOrCreateTokenCreatesAPrivateTokenOnceAndKeepsIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), TokenFile)
	tok, err := LoadOrCreateToken(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Fatalf("token %q: want 64 hex digits", tok)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("token file mode %v, want -rw-------", fi.Mode())
	}
	again, err := LoadOrCreateToken(p)
	if err != nil || again != tok {
		t.Fatalf("second LoadOrCreateToken = %q, %v; want the same token %q", again, err, tok)
	}
	other, err := LoadOrCreateToken(filepath.Join(t.TempDir(), TokenFile))
	if err != nil || other == tok {
		t.Fatalf("token of another home = %q, %v; want a different one", other, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries after creating the token, want only %s", len(ents), TokenFile)
	}
}

func TestLoadOrCreateTokenRefusesAFileOthersMayReadOrThatIsNoTokenNamingIt(t *testing.T) {
	good := strings.Repeat("0a", 32) + "\n"
	for name, tc := range map[string]struct {
		make func(p string) error
		want string
	}{
		"group readable": {func(p string) error { return writeMode(p, good, 0o640) }, "mode 0640"},
		"world readable": {func(p string) error { return writeMode(p, good, 0o604) }, "mode 0604"},
		"symlink": {func(p string) error {
			target := p + ".real"
			if err := writeMode(target, good, 0o600); err != nil {
				return err
			}
			return os.Symlink(target, p)
		}, "symlink"},
		"directory":   {func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file"},
		"short token": {func(p string) error { return writeMode(p, "abcd\n", 0o600) }, "does not hold a token"},
		"not hex":     {func(p string) error { return writeMode(p, strings.Repeat("zz", 32), 0o600) }, "does not hold a token"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), TokenFile)
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateToken(p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadOrCreateToken = %v; want an error naming %s and saying %q", err, p, tc.want)
			}
		})
	}
}

func writeMode(p, data string, mode fs.FileMode) error {
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func TestServeOnTCPWithoutATokenRefusesToStart(t *testing.T) {
	_, err := serveTCP(t, &stubBackend{}, "")
	if err == nil || !strings.Contains(err.Error(), TokenFile) {
		t.Fatalf("Serve on TCP without a token: %v; want a refusal naming %s", err, TokenFile)
	}
}

func TestClientOnTCPSendsTheTokenOfItsFileAndRefusalsNameIt(t *testing.T) {
	dir := t.TempDir()
	tokPath := filepath.Join(dir, TokenFile)
	tok, err := LoadOrCreateToken(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	b := &stubBackend{}
	addr, err := serveTCP(t, b, tok)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c := NewClient("tcp", addr, WithTokenFile(tokPath))
	defer c.Close()
	if st, err := c.Status(ctx); err != nil || st.ID != "stub" {
		t.Fatalf("Status with the token: %+v, %v", st, err)
	}
	if _, err := c.Restore(ctx, restore.RestoreRequest{To: dir}, nil); err != nil {
		t.Fatalf("Restore with the token: %v", err)
	}
	if _, err := c.Verify(ctx, "", ""); err != nil {
		t.Fatalf("Verify (a POST with no body) with the token: %v", err)
	}
	if n := b.restores.Load(); n != 1 {
		t.Fatalf("backend ran %d restores, want 1", n)
	}

	wrong := filepath.Join(t.TempDir(), TokenFile)
	if _, err := LoadOrCreateToken(wrong); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		file string
		want string
	}{
		"another home's token": {wrong, "control endpoint " + addr + " refused the request: bad token; is " + wrong + " the running node's?"},
		"no token file":        {filepath.Join(dir, "nope", TokenFile), "refused the request: no token: " + filepath.Join(dir, "nope", TokenFile) + " does not exist"},
	} {
		t.Run(name, func(t *testing.T) {
			c := NewClient("tcp", addr, WithTokenFile(tc.file))
			defer c.Close()
			_, err := c.Lag(ctx)
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Lag: %v; want ErrUnauthorized saying %q", err, tc.want)
			}
			_, err = c.Restore(ctx, restore.RestoreRequest{To: dir}, nil)
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Restore: %v; want ErrUnauthorized saying %q", err, tc.want)
			}
		})
	}
	if n := b.restores.Load(); n != 1 {
		t.Fatalf("backend ran %d restores after refused ones, want still 1", n)
	}
}

func TestTCPGuardRefusesForeignHostOriginAndNonJSONPostEvenWithTheToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), TokenFile)
	tok, err := LoadOrCreateToken(p)
	if err != nil {
		t.Fatal(err)
	}
	b := &stubBackend{}
	addr, err := serveTCP(t, b, tok)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	for name, tc := range map[string]struct {
		method, path, host, origin, ctype string
		want                              int
	}{
		"the client's own request":       {"GET", "/v1/lag", addr, "", "", http.StatusOK},
		"rebound name as Host":           {"GET", "/v1/lag", "evil.example:" + port, "", "", http.StatusForbidden},
		"localhost for a 127.0.0.1 node": {"GET", "/v1/lag", "localhost:" + port, "", "", http.StatusForbidden},
		"Origin of a page":               {"GET", "/v1/lag", addr, "http://evil.example", "", http.StatusForbidden},
		"Origin of a sandboxed page":     {"GET", "/v1/lag", addr, "null", "", http.StatusForbidden},
		"form POST of a restore":         {"POST", "/v1/restore", addr, "", "text/plain", http.StatusUnsupportedMediaType},
		"urlencoded POST":                {"POST", "/v1/repair", addr, "", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		"POST without a type":            {"POST", "/v1/verify", addr, "", "", http.StatusUnsupportedMediaType},
		"JSON POST":                      {"POST", "/v1/verify", addr, "", "application/json", http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			var body *strings.Reader
			if tc.method == "POST" {
				body = strings.NewReader(`{"to":"/tmp/x"}`)
			} else {
				body = strings.NewReader("")
			}
			req, err := http.NewRequest(tc.method, "http://"+addr+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tc.host
			req.Header.Set("Authorization", "Bearer "+tok)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
	if n := b.restores.Load(); n != 0 {
		t.Errorf("backend ran %d restores for refused requests", n)
	}
}

func TestClientOnUnixSocketSendsNoTokenAndNeedsNone(t *testing.T) {
	dir, err := os.MkdirTemp("", "vctl") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	if err := Serve(ctx, &g, "unix", sock, &stubBackend{}); err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		g.Wait()
	}()
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v; want mode 0600", fi, err)
	}
	c := NewClient("unix", sock, WithTokenFile(filepath.Join(dir, "missing", TokenFile)))
	defer c.Close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if _, err := c.Status(rctx); err != nil {
		t.Fatalf("Status over the unix socket: %v", err)
	}
	if _, err := c.Verify(rctx, "", ""); err != nil {
		t.Fatalf("Verify over the unix socket: %v", err)
	}
}
