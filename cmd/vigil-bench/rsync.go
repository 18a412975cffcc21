package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// rsyncd is an rsync daemon on 127.0.0.1 with one writable module, "bench".
type rsyncd struct {
	p    *proc
	port int
	dest string
}

// startRsyncd runs `rsync --daemon --no-detach` with a module pointing at
// dest (created empty if missing).
func (e *env) startRsyncd(ctx context.Context, name, dest string) (*rsyncd, error) {
	if _, err := exec.LookPath("rsync"); err != nil {
		return nil, fmt.Errorf("rsync not found in PATH: %w", err)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := e.path("rsyncd-" + name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# rsyncd.conf written by vigil-bench
pid file = %[1]s/rsyncd.pid
log file = %[1]s/rsyncd.log
address = 127.0.0.1
use chroot = no
max connections = 4
uid = %[2]d
gid = %[3]d

[bench]
    path = %[4]s
    read only = no
    list = yes
`, dir, os.Getuid(), os.Getgid(), dest)
	confPath := dir + "/rsyncd.conf"
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := e.start("rsync daemon "+name, dir+"/stdout.log", "rsync",
		"--daemon", "--no-detach", "--config="+confPath, "--address=127.0.0.1", "--port="+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	d := &rsyncd{p: p, port: port, dest: dest}
	if err := waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", port), p, 10*time.Second); err != nil {
		return nil, err
	}
	return d, nil
}

// url is the daemon URL of path inside the module.
func (d *rsyncd) url(path string) string {
	return fmt.Sprintf("rsync://127.0.0.1:%d/bench/%s", d.port, strings.TrimPrefix(path, "/"))
}

// runRsync runs the rsync client and returns its standard output and the
// CPU time it used.
func runRsync(ctx context.Context, args ...string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), 0, fmt.Errorf("rsync %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	st := cmd.ProcessState
	return out.String(), st.UserTime() + st.SystemTime(), nil
}

var rsyncStatRE = regexp.MustCompile(`(?m)^Total bytes (sent|received):\s*([0-9.,]+)`)

// parseRsyncStats returns "Total bytes sent" and "Total bytes received"
// from the output of rsync --stats.
func parseRsyncStats(out string) (sent, received int64, err error) {
	found := 0
	for _, m := range rsyncStatRE.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[2]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("rsync --stats: %q: %w", m[0], err)
		}
		if m[1] == "sent" {
			sent = v
		} else {
			received = v
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("rsync --stats: no Total bytes sent/received lines in %q", out)
	}
	return sent, received, nil
}

// rsyncVersion is the first line of `rsync --version`.
func rsyncVersion() string {
	b, err := exec.Command("rsync", "--version").Output()
	if err != nil {
		return "rsync: not found"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}
