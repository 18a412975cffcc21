package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	vbuild "github.com/vigil-mesh/vigil/internal/buildinfo"
)

// runBinary runs the vigil binary with args, in this process's environment
// (without HOME and VIGIL_HOME when noHome is set), and returns its exit
// code, stdout and stderr.
func runBinary(t *testing.T, noHome bool, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBinary(t), args...)
	cmd.Dir = t.TempDir()
	if noHome {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "VIGIL_HOME=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("vigil %v: %v (stderr %q)", args, err, stderr.String())
	return 0, "", ""
}

// binaryBuild is what the go command stamped into the vigil binary under
// test, as `vigil version` must report it.
func binaryBuild(t *testing.T) vbuild.Build {
	t.Helper()
	bi, err := buildinfo.ReadFile(vigilBinary(t))
	if err != nil {
		t.Fatalf("read build information of the vigil binary: %v", err)
	}
	return vbuild.Of(bi)
}

func TestE2EVersionJSONReportsTheBinarysBuildInformation(t *testing.T) {
	want := binaryBuild(t)
	code, stdout, stderr := runBinary(t, true, "version", "--json")
	if code != 0 {
		t.Fatalf("vigil version --json: exit %d, stderr %q", code, stderr)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(stdout), &fields); err != nil {
		t.Fatalf("vigil version --json printed %q: %v", stdout, err)
	}
	wantFields := map[string]any{"version": want.Version, "commit": want.Commit, "go": want.GoVersion}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Errorf("vigil version --json = %v, want %v", fields, wantFields)
	}
	// laid out like `vigil id --json`
	if exact := `{"version": "` + want.Version + `", "commit": "` + want.Commit + `", "go": "` + want.GoVersion + "\"}\n"; stdout != exact {
		t.Errorf("vigil version --json printed %q, want %q", stdout, exact)
	}
	if want.GoVersion != runtime.Version() {
		t.Errorf("binary built with %s, test with %s: the build used another toolchain", want.GoVersion, runtime.Version())
	}
}

func TestE2EVersionTextAndVersionFlagPrintTheSame(t *testing.T) {
	b := binaryBuild(t)
	code, text, stderr := runBinary(t, true, "version")
	if code != 0 {
		t.Fatalf("vigil version: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"vigil " + b.Version + "\n", "commit: " + b.Commit + "\n", "go: " + b.GoVersion + " "} {
		if !strings.Contains(text, want) {
			t.Errorf("vigil version = %q, want it to contain %q", text, want)
		}
	}
	code, flag, stderr := runBinary(t, true, "--version")
	if code != 0 {
		t.Fatalf("vigil --version: exit %d, stderr %q", code, stderr)
	}
	if flag != text {
		t.Errorf("vigil --version = %q, want what vigil version prints, %q", flag, text)
	}
}

func TestE2ECompletionIsListedInHelpAndNeedsNoHome(t *testing.T) {
	code, help, stderr := runBinary(t, true, "--help")
	if code != 0 {
		t.Fatalf("vigil --help: exit %d, stderr %q", code, stderr)
	}
	for _, cmd := range []string{"completion", "version"} {
		if !strings.Contains(help, "\n  "+cmd+" ") {
			t.Errorf("vigil --help does not list %q:\n%s", cmd, help)
		}
	}
	for shell, marker := range map[string]string{
		"bash": "__start_vigil",
		"zsh":  "#compdef vigil",
		"fish": "complete -c vigil",
	} {
		code, script, stderr := runBinary(t, true, "completion", shell)
		if code != 0 || stderr != "" {
			t.Errorf("vigil completion %s without HOME or VIGIL_HOME: exit %d, stderr %q", shell, code, stderr)
			continue
		}
		if !strings.Contains(script, marker) {
			t.Errorf("vigil completion %s: output lacks %q", shell, marker)
		}
	}
}

func TestMemoryLimitFollowsTheLiveHeap(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, memoryLimitFloor},
		{50 << 20, memoryLimitFloor},
		{100 << 20, 232 << 20},
		{1 << 30, 2<<30 + 32<<20},
	} {
		if got := memoryLimit(c.live); got != c.want {
			t.Errorf("memoryLimit(%d MiB) = %d MiB, want %d MiB", c.live>>20, got>>20, c.want>>20)
		}
		if got := memoryLimit(c.live); got <= int64(c.live) {
			t.Errorf("memoryLimit(%d) = %d: not above the live heap", c.live, got)
		}
	}
}
