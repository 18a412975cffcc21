package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// env is one benchmark run: a work directory, the vigil binary and every
// child process started. Close stops the processes and removes the
// directory.
type env struct {
	dir   string // work directory, removed by Close unless keep
	vigil string // vigil binary
	root  string // module root (for `go build`)
	keep  bool
	built bool // vigil was built from root by this run
	out   io.Writer

	mu    sync.Mutex
	procs []*proc
}

// newEnv creates the work directory and builds (or checks) the vigil binary.
func newEnv(ctx context.Context, c commonFlags, out io.Writer) (*env, error) {
	parent := c.dir
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("work directory parent %s: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, "vigil-bench-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	e := &env{dir: dir, keep: c.keep, out: out}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	e.root, _ = moduleRoot()
	if c.vigil != "" {
		abs, err := filepath.Abs(c.vigil)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--vigil: %w", err)
		}
		e.vigil = abs
	} else {
		if e.root == "" {
			return nil, errors.New("cannot find the vigil module root (go.mod) from the working directory; run from the repository or pass --vigil")
		}
		e.vigil = filepath.Join(dir, "bin", "vigil")
		e.built = true
		fmt.Fprintf(out, "building vigil: go build -o %s ./cmd/vigil\n", e.vigil)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.vigil, "./cmd/vigil")
		cmd.Dir = e.root
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/vigil: %w\n%s", err, b)
		}
	}
	ok = true
	return e, nil
}

// Close stops every process still running and removes the work directory.
func (e *env) Close() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(5 * time.Second)
	}
	if e.keep {
		fmt.Fprintf(e.out, "work directory kept: %s\n", e.dir)
		return
	}
	if err := os.RemoveAll(e.dir); err != nil {
		fmt.Fprintf(e.out, "warning: removing %s: %v\n", e.dir, err)
	}
}

// path joins elem to the work directory.
func (e *env) path(elem ...string) string {
	return filepath.Join(append([]string{e.dir}, elem...)...)
}

// moduleRoot walks up from the working directory to the directory holding
// the vigil go.mod.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/vigil-mesh/vigil\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("go.mod of github.com/vigil-mesh/vigil not found")
		}
		d = parent
	}
}

// proc is a child process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // valid once done is closed
}

// start runs bin with args as a child in its own process group, its
// stdout and stderr appended to logPath. The child is killed if this
// program dies (Pdeathsig) and stopped by env.Close otherwise.
func (e *env) start(name, logPath, bin string, args ...string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the forking thread exits: keep the fork on a
	// thread that lives as long as the process.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// Pid is the process ID.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// CPU is the user+system time of the exited process and of the children it
// waited for (0 while it runs).
func (p *proc) CPU() time.Duration {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// Stop sends SIGINT, waits up to grace, then kills the process group. It
// returns the process's exit error when it stopped on SIGINT.
func (p *proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s after SIGINT; killed", p.name, grace)
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *proc) PeakRSS() (int64, error) {
	return procStatusBytes(p.Pid(), "VmHWM:")
}

// procStatusBytes reads a "<key> N kB" line of /proc/PID/status.
func procStatusBytes(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			v, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return v * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s line", pid, key)
}

// procCPU returns the user+system CPU time of a process so far, plus that
// of its children that it has waited for.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, errors.New("short /proc stat")
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime (fields 14-17)
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clkTck, nil
}

// machineBusy returns the CPU time all CPUs of the machine have spent
// busy (user, nice, system, irq, softirq, steal) since boot, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	const clkTck = 100
	return time.Duration(ticks) * time.Second / clkTck, nil
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
//
// Ports come from below Linux's default ephemeral range (32768-60999): a
// port the kernel handed out could be handed out again as the local port
// of an outgoing connection (a node redialing a peer that is not up yet)
// before the node meant to listen on it starts. A port is never given
// twice by one process.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[p] = true
		return p, nil
	}
	return 0, errors.New("no free TCP port found in 20000-31999 on 127.0.0.1")
}

var (
	portsMu    sync.Mutex
	portsGiven = make(map[int]bool)
)

// waitTCP waits until something accepts connections on addr.
func waitTCP(ctx context.Context, addr string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
