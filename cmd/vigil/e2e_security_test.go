package main

// End-to-end tests of the control endpoint's defences against other local
// users and web pages: a TCP endpoint needs the token of the node's home,
// the Host it was configured with, no Origin and JSON bodies; the unix
// socket is owner-only.

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startWithControl starts n as start does, with node.control set to ctl.
func (n *e2eNode) startWithControl(ctl string) {
	n.t.Helper()
	n.startEdited(func(yaml string) string {
		return strings.Replace(yaml, "  control: vigil.sock\n", "  control: "+yamlString(ctl)+"\n", 1)
	})
}

// startEdited starts n as start does, with its vigil.yaml passed through
// edit first.
func (n *e2eNode) startEdited(edit func(string) string) {
	t := n.t
	t.Helper()
	n.writeConfig()
	cfgPath := filepath.Join(n.home, "vigil.yaml")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(edit(string(data))), 0o600); err != nil {
		t.Fatal(err)
	}
	n.launch()
}

// launch runs `vigil run` with the vigil.yaml already in n's home and waits
// until `vigil status` answers (as start does, without writing the config).
func (n *e2eNode) launch() {
	t := n.t
	t.Helper()
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		t.Fatalf("%s: already running", n.name)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.mu.Unlock()
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: vigil run started at %s\n", n.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(n.m.bin, "run", "--home", n.home, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		t.Fatalf("%s: start vigil run: %v", n.name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			n.mu.Lock()
			err := n.err
			n.cmd = nil
			n.mu.Unlock()
			t.Fatalf("%s: vigil run exited while starting: %v", n.name, err)
		default:
		}
		code, _, errOut := n.m.vigil(10*time.Second, "status", "--home", n.home, "--json")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: control endpoint not answering after 30s; last `vigil status`: exit %d: %s", n.name, code, errOut)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// controlCall sends one request to a TCP control endpoint and returns the
// status code and body. hdr sets headers; "Host" sets the request's Host.
func controlCall(t *testing.T, addr, method, path string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readToken(t *testing.T, home string) string {
	t.Helper()
	p := filepath.Join(home, "control.token")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
		t.Fatalf("token file %s: mode %v, want a regular file of mode 0600", p, fi.Mode())
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(data))
	if b, err := hex.DecodeString(tok); err != nil || len(b) != 32 {
		t.Fatalf("token file %s holds %q; want 32 random bytes in hex", p, tok)
	}
	return tok
}

func TestE2EControlOnTCPRefusesRequestsWithoutTokenForeignHostOriginOrNonJSONPost(t *testing.T) {
	m := newE2EMesh(t)
	n := m.node("solo")
	addr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	n.startWithControl(addr) // waits on `vigil status`: the CLI sends the token
	tok := readToken(t, n.home)
	good := map[string]string{"Authorization": "Bearer " + tok}

	if code, body := controlCall(t, addr, "GET", "/v1/status", good, ""); code != http.StatusOK {
		t.Fatalf("GET /v1/status with the token: %d %s", code, body)
	}
	for name, hdr := range map[string]map[string]string{
		"no token":      nil,
		"wrong token":   {"Authorization": "Bearer " + strings.Repeat("0", 64)},
		"not a bearer":  {"Authorization": "Basic " + tok},
		"token in path": {"X-Token": tok},
	} {
		if code, body := controlCall(t, addr, "GET", "/v1/status", hdr, ""); code != http.StatusUnauthorized {
			t.Errorf("GET /v1/status with %s: %d %s; want 401", name, code, body)
		}
	}
	// DNS rebinding: a page of evil.example whose name now resolves to
	// 127.0.0.1 sends its own Host.
	foreign := map[string]string{"Authorization": "Bearer " + tok, "Host": "evil.example:" + strings.Split(addr, ":")[1]}
	if code, body := controlCall(t, addr, "GET", "/v1/status", foreign, ""); code != http.StatusForbidden {
		t.Errorf("GET /v1/status with a foreign Host: %d %s; want 403", code, body)
	}
	// A browser says where a request comes from.
	origin := map[string]string{"Authorization": "Bearer " + tok, "Origin": "http://evil.example"}
	if code, body := controlCall(t, addr, "GET", "/v1/status", origin, ""); code != http.StatusForbidden {
		t.Errorf("GET /v1/status with an Origin: %d %s; want 403", code, body)
	}
	// A form POST of a web page is text/plain: it must not run a restore.
	to := filepath.Join(m.root, "restored")
	restoreBody := fmt.Sprintf(`{"source":%q,"folder":"docs","to":%q}`, n.id, to)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		hdr := map[string]string{"Authorization": "Bearer " + tok}
		if ct != "" {
			hdr["Content-Type"] = ct
		}
		if code, body := controlCall(t, addr, "POST", "/v1/restore", hdr, restoreBody); code != http.StatusUnsupportedMediaType {
			t.Errorf("POST /v1/restore as %q: %d %s; want 415", ct, code, body)
		}
		if code, body := controlCall(t, addr, "POST", "/v1/verify", hdr, ""); code != http.StatusUnsupportedMediaType {
			t.Errorf("POST /v1/verify as %q: %d %s; want 415", ct, code, body)
		}
	}
	if fileExists(to) {
		t.Errorf("a refused restore wrote %s", to)
	}
	json := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json; charset=utf-8"}
	if code, body := controlCall(t, addr, "POST", "/v1/verify", json, ""); code != http.StatusOK {
		t.Errorf("POST /v1/verify as JSON with the token: %d %s; want 200", code, body)
	}

	// The CLI: every command that talks to the node sends the token.
	for _, args := range [][]string{
		{"status"}, {"lag", "--json"}, {"lag", "--wait-synced", "10s"}, {"verify"}, {"repair"},
	} {
		code, out, errOut := m.vigil(30*time.Second, append(args, "--home", n.home)...)
		if code != 0 {
			t.Errorf("vigil %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
	}
	// history, points and restore reach the node too: refused for a
	// folder it does not keep, not for the token.
	for _, args := range [][]string{
		{"history", "--source", n.id, "--folder", "docs", "a.txt"},
		{"points", "--source", n.id, "--folder", "docs"},
		{"restore", "--source", n.id, "--folder", "docs", "--to", to},
	} {
		code, _, errOut := m.vigil(30*time.Second, append(args, "--home", n.home)...)
		if code != 2 || !strings.Contains(errOut, "keeps no folder") {
			t.Errorf("vigil %s: exit %d: %s; want exit 2 saying this node keeps no such folder", args[0], code, errOut)
		}
	}

	// A token file that is not the running node's: the error names it.
	tokPath := filepath.Join(n.home, "control.token")
	if err := os.WriteFile(tokPath, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := m.vigil(20*time.Second, "status", "--home", n.home)
	if code != 1 {
		t.Errorf("vigil status with a token that is not the node's: exit %d, want 1: %s", code, errOut)
	}
	assertOneErrorLine(t, errOut, "control endpoint "+addr+" refused the request: bad token", tokPath)
	if err := os.Remove(tokPath); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = m.vigil(20*time.Second, "lag", "--home", n.home)
	if code != 1 {
		t.Errorf("vigil lag without a token file: exit %d, want 1: %s", code, errOut)
	}
	assertOneErrorLine(t, errOut, "control endpoint "+addr+" refused the request: no token", tokPath)

	// The token is created once and kept: a restart keeps the file it finds.
	n.stop()
	if err := os.WriteFile(tokPath, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.launch()
	if got := readToken(t, n.home); got != tok {
		t.Errorf("token changed across a restart: %s, then %s", tok, got)
	}
	n.stop()

	// A token others can read is refused, naming the file.
	if err := os.Chmod(tokPath, 0o640); err != nil {
		t.Fatal(err)
	}
	code, line := runNodeUntilExit(t, n)
	if code != 1 {
		t.Errorf("vigil run with a token file of mode 0640: exit %d, want 1", code)
	}
	requireContains(t, line, tokPath, "0640", "chmod 600")
}

func TestE2EControlOnUnixSocketIsOwnerOnlyAndNeedsNoToken(t *testing.T) {
	m := newE2EMesh(t)
	n := m.node("solo")
	n.start() // unix socket (the default); `vigil status` answers with no token
	sock := filepath.Join(n.home, "vigil.sock")
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket %s: mode %v, want a socket of mode 0600", sock, fi.Mode())
	}
	if fileExists(filepath.Join(n.home, "control.token")) {
		t.Errorf("a node on a unix socket made a token file it does not use")
	}
	for _, args := range [][]string{{"status"}, {"lag"}, {"verify"}} {
		if code, _, errOut := m.vigil(20*time.Second, append(args, "--home", n.home)...); code != 0 {
			t.Errorf("vigil %s over the unix socket: exit %d: %s", args[0], code, errOut)
		}
	}
	n.stop()
}
