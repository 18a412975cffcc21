package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMain lets a test run this binary as the vigil command: with
// VIGIL_TEST_RUN_MAIN=1 it runs main() instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIL_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func newPeerID(t *testing.T) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// newHome returns a home directory with a "docs" folder and, when doc is not
// empty, a vigil.yaml holding doc with {{ID}} replaced by a valid peer ID.
func newHome(t *testing.T, doc string) string {
	t.Helper()
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if doc != "" {
		doc = strings.ReplaceAll(doc, "{{ID}}", newPeerID(t))
		if err := os.WriteFile(filepath.Join(home, "vigil.yaml"), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

// runVigil runs the command line in-process and returns the exit code,
// stdout and stderr.
func runVigil(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// assertOneErrorLine checks that stderr is exactly one "vigil: ..." line
// containing each of wants.
func assertOneErrorLine(t *testing.T, stderr string, wants ...string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "vigil: ") || !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("stderr = %q, want one line starting with \"vigil: \"", stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr = %q, want it to contain %q", stderr, w)
		}
	}
}

const validDoc = `node:
  name: desk
  listen: ["/ip4/127.0.0.1/tcp/4001"]
peers:
  - name: nas
    id: {{ID}}
    addrs: ["/ip4/127.0.0.1/tcp/4002"]
folders:
  - id: docs
    path: docs
    backup_to: [nas]
backup_for:
  - peer: nas
    folders: [music]
`

func TestLoadConfigAcceptsValidFileAndResolvesPaths(t *testing.T) {
	home := newHome(t, validDoc)
	cfg, err := loadConfig(home)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if cfg.File != filepath.Join(home, "vigil.yaml") || cfg.Home != home {
		t.Errorf("File, Home = %q, %q", cfg.File, cfg.Home)
	}
	if got := cfg.FolderPath(cfg.Folders[0]); got != filepath.Join(home, "docs") {
		t.Errorf("folder path = %q, want %q", got, filepath.Join(home, "docs"))
	}
	if got := cfg.DataPath(); got != filepath.Join(home, "data") {
		t.Errorf("DataPath = %q", got)
	}
	if cfg.Node.ScrubInterval.D() != 24*time.Hour || cfg.BackupFor[0].Retention.D() != 720*time.Hour {
		t.Errorf("defaults not applied: scrub %s retention %s", cfg.Node.ScrubInterval, cfg.BackupFor[0].Retention)
	}
}

func TestLoadConfigKeepsExplicitZeroScrubAndRetention(t *testing.T) {
	doc := strings.Replace(validDoc, "  name: desk\n", "  name: desk\n  scrub_interval: 0\n  quiet_period: 50ms\n", 1)
	doc = strings.Replace(doc, "folders: [music]\n", "folders: [music]\n    retention: 0s\n", 1)
	cfg, err := loadConfig(newHome(t, doc))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if cfg.Node.ScrubInterval != 0 {
		t.Errorf("scrub_interval: 0 became %s", cfg.Node.ScrubInterval)
	}
	if cfg.BackupFor[0].Retention != 0 {
		t.Errorf("retention: 0s became %s", cfg.BackupFor[0].Retention)
	}
	if cfg.Node.QuietPeriod.D() != 50*time.Millisecond || cfg.Node.MaxDelay.D() != time.Second {
		t.Errorf("quiet_period, max_delay = %s, %s, want 50ms, 1s", cfg.Node.QuietPeriod, cfg.Node.MaxDelay)
	}
}

func TestLoadConfigErrorsNameFileLineFieldAndValue(t *testing.T) {
	tests := []struct {
		name  string
		doc   string // validDoc with one change
		line  int    // -1: any line (the YAML parser decides which)
		field string
		value string
		msg   string
	}{
		{
			name: "unknown field",
			doc:  strings.Replace(validDoc, "  listen:", "  lisen:", 1),
			line: 3, field: "node.lisen", msg: "unknown field",
		},
		{
			name: "unknown field in a list entry",
			doc:  strings.Replace(validDoc, "    backup_to: [nas]\n", "    backup_to: [nas]\n    backupto: [nas]\n", 1),
			line: 12, field: "folders[0].backupto", msg: "unknown field",
		},
		{
			name: "bad listen multiaddr",
			doc:  strings.Replace(validDoc, "/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0/tcp/4001", 1),
			line: 3, field: "node.listen[0]", value: "/ip4/127.0.0/tcp/4001", msg: "not a valid multiaddr",
		},
		{
			name: "bad peer addr",
			doc:  strings.Replace(validDoc, "/ip4/127.0.0.1/tcp/4002", "127.0.0.1:4002", 1),
			line: 7, field: "peers[0].addrs[0]", value: "127.0.0.1:4002", msg: "not a valid multiaddr",
		},
		{
			name: "backup_to names an unknown peer",
			doc:  strings.Replace(validDoc, "backup_to: [nas]", "backup_to: [nas, nas2]", 1),
			line: 11, field: "folders[0].backup_to[1]", value: "nas2", msg: `peer "nas2" is not listed in peers`,
		},
		{
			name: "folder path does not exist",
			doc:  strings.Replace(validDoc, "path: docs", "path: no-such-dir", 1),
			line: 10, field: "folders[0].path", value: "no-such-dir", msg: "does not exist",
		},
		{
			name: "duplicate folder id",
			doc:  strings.Replace(validDoc, "backup_for:", "  - id: docs\n    path: /\n    backup_to: [nas]\nbackup_for:", 1),
			line: 12, field: "folders[1].id", value: "docs", msg: "duplicate folder id",
		},
		{
			name: "bad peer id",
			doc:  strings.Replace(validDoc, "id: {{ID}}", "id: 12D3KooWnotapeerid", 1),
			line: 6, field: "peers[0].id", value: "12D3KooWnotapeerid", msg: "not a valid peer ID",
		},
		{
			name: "duration without unit",
			doc:  strings.Replace(validDoc, "  name: desk\n", "  name: desk\n  max_delay: 5\n", 1),
			line: 3, field: "node.max_delay", value: "5", msg: "invalid duration",
		},
		{
			name: "list given as a single value",
			doc:  strings.Replace(validDoc, "backup_to: [nas]", "backup_to: nas", 1),
			line: 11, field: "folders[0].backup_to", value: "nas", msg: "must be a list",
		},
		{
			name: "yaml syntax error",
			doc:  strings.Replace(validDoc, `listen: ["/ip4/127.0.0.1/tcp/4001"]`, `listen: ["/ip4/127.0.0.1/tcp/4001"`, 1),
			line: -1, msg: "did not find expected",
		},
		{
			name: "empty file",
			doc:  "# nothing here\n",
			msg:  "empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := newHome(t, tt.doc)
			file := filepath.Join(home, "vigil.yaml")
			_, err := loadConfig(home)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("loadConfig = %v, want *config.Error", err)
			}
			if tt.line == -1 && ce.Line > 0 {
				tt.line = ce.Line
			}
			if ce.File != file || ce.Line != tt.line || ce.Field != tt.field || ce.Value != tt.value {
				t.Errorf("got File %q Line %d Field %q Value %q\nwant File %q Line %d Field %q Value %q",
					ce.File, ce.Line, ce.Field, ce.Value, file, tt.line, tt.field, tt.value)
			}
			if !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", ce.Msg, tt.msg)
			}
			if got := exitCode(err); got != exitUsage {
				t.Errorf("exitCode = %d, want %d", got, exitUsage)
			}

			// The same through the command line: exit 2, one line naming
			// file, line, field and value.
			code, stdout, stderr := runVigil(t, "id", "--home", home)
			if code != 2 || stdout != "" {
				t.Errorf("vigil id: exit %d stdout %q, want exit 2 and no output", code, stdout)
			}
			want := []string{file}
			if tt.line > 0 {
				want = []string{fmt.Sprintf("%s:%d: ", file, tt.line)}
			}
			if tt.field != "" {
				want = append(want, tt.field+": ")
			}
			if tt.value != "" {
				want = append(want, fmt.Sprintf("(value %q)", tt.value))
			}
			assertOneErrorLine(t, stderr, want...)
		})
	}
}

func TestLoadConfigMissingFileTellsToRunInit(t *testing.T) {
	home := t.TempDir()
	_, err := loadConfig(home)
	var ce *config.Error
	if !errors.As(err, &ce) || exitCode(err) != exitUsage {
		t.Fatalf("loadConfig = %v, want a ConfigError (exit 2)", err)
	}
	want := filepath.Join(home, "vigil.yaml") + ": no such file; run `vigil init --home " + home + "` first"
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err.Error(), want)
	}
}

func TestExitCodeMapsUsageAndConfigErrorsTo2AndOthersTo1(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("disk on fire"), 1},
		{fmt.Errorf("run node: %w", os.ErrPermission), 1},
		{usageErrorf("--name: bad"), 2},
		{fmt.Errorf("wrapped: %w", usageErrorf("--x")), 2},
		{&config.Error{File: "f", Msg: "m"}, 2},
		{fmt.Errorf("start node: %w", &config.Error{File: "f", Msg: "m"}), 2},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestBadUsageExitsTwoWithOneLine(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"init", "--home", home, "--nme", "x"}, "init: unknown flag: --nme"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"id", "--home", home, "extra"}, `"extra"`},
		{[]string{"id", "--home", home, "--log-format", "xml"}, "--log-format"},
		{[]string{"id", "--home", home, "--log-level", "loud"}, "--log-level"},
		{[]string{"init", "--home", home, "--name", "a b"}, `--name: `},
		{[]string{"init", "--home", home, "--listen", "/ip4/1.2.3.4/tcp"}, `--listen: `},
	}
	for _, tt := range tests {
		code, _, stderr := runVigil(t, tt.args...)
		if code != 2 {
			t.Errorf("vigil %v: exit %d, want 2 (stderr %q)", tt.args, code, stderr)
			continue
		}
		assertOneErrorLine(t, stderr, tt.want)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("rejected commands left files in home: %v", entries)
	}
}

func TestInitCreatesIdentityAndLoadableConfig(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	code, stdout, stderr := runVigil(t, "init", "--home", home, "--name", "laptop", "--listen", "/ip4/127.0.0.1/tcp/4101", "--listen", "/ip4/127.0.0.1/udp/4101/quic-v1")
	if code != 0 {
		t.Fatalf("init: exit %d, stderr %q", code, stderr)
	}
	id, err := peer.Decode(strings.TrimSpace(stdout))
	if err != nil || stdout != id.String()+"\n" {
		t.Fatalf("init stdout = %q, want the peer ID on one line (%v)", stdout, err)
	}
	if st, err := os.Stat(home); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("home mode = %v, %v, want 0700", st.Mode().Perm(), err)
	}
	cfg, err := loadConfig(home)
	if err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
	if cfg.Node.Name != "laptop" || strings.Join(cfg.Node.Listen, " ") != "/ip4/127.0.0.1/tcp/4101 /ip4/127.0.0.1/udp/4101/quic-v1" {
		t.Errorf("generated config: name %q listen %v", cfg.Node.Name, cfg.Node.Listen)
	}
	if len(cfg.Peers)+len(cfg.Folders)+len(cfg.BackupFor) != 0 {
		t.Errorf("generated config has entries: %+v", cfg)
	}
	raw, _ := os.ReadFile(filepath.Join(home, "vigil.yaml"))
	for _, section := range []string{"peers:", "folders:", "backup_for:", "# data_dir:", "retention:", "# control:"} {
		if !bytes.Contains(raw, []byte(section)) {
			t.Errorf("generated vigil.yaml does not explain %q", section)
		}
	}
}

func TestInitDefaultsToHostNameAndStandardListenAddrs(t *testing.T) {
	home := t.TempDir()
	if code, _, stderr := runVigil(t, "init", "--home", home); code != 0 {
		t.Fatalf("init: exit %d, stderr %q", code, stderr)
	}
	cfg, err := loadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != hostName() {
		t.Errorf("name = %q, want %q", cfg.Node.Name, hostName())
	}
	if got := strings.Join(cfg.Node.Listen, " "); got != "/ip4/0.0.0.0/tcp/4001 /ip4/0.0.0.0/udp/4001/quic-v1" {
		t.Errorf("listen = %s", got)
	}
}

func TestInitRefusesExistingIdentityAndLeavesFilesAlone(t *testing.T) {
	home := t.TempDir()
	if code, _, stderr := runVigil(t, "init", "--home", home, "--name", "a"); code != 0 {
		t.Fatalf("first init: exit %d, stderr %q", code, stderr)
	}
	keyPath := filepath.Join(home, "identity.key")
	key, _ := os.ReadFile(keyPath)
	cfgBefore, _ := os.ReadFile(filepath.Join(home, "vigil.yaml"))

	code, stdout, stderr := runVigil(t, "init", "--home", home, "--name", "b")
	if code != 1 || stdout != "" {
		t.Errorf("second init: exit %d stdout %q, want exit 1 and no output", code, stdout)
	}
	assertOneErrorLine(t, stderr, keyPath, "refusing to overwrite")
	if after, _ := os.ReadFile(keyPath); !bytes.Equal(after, key) {
		t.Error("second init changed identity.key")
	}
	if after, _ := os.ReadFile(filepath.Join(home, "vigil.yaml")); !bytes.Equal(after, cfgBefore) {
		t.Error("second init changed vigil.yaml")
	}
}

func TestInitNeverOverwritesExistingConfig(t *testing.T) {
	home := newHome(t, validDoc)
	before, _ := os.ReadFile(filepath.Join(home, "vigil.yaml"))
	code, stdout, stderr := runVigil(t, "init", "--home", home, "--name", "other")
	if code != 0 {
		t.Fatalf("init: exit %d, stderr %q", code, stderr)
	}
	if _, err := peer.Decode(strings.TrimSpace(stdout)); err != nil {
		t.Errorf("init stdout = %q, want a peer ID", stdout)
	}
	if after, _ := os.ReadFile(filepath.Join(home, "vigil.yaml")); !bytes.Equal(after, before) {
		t.Error("init overwrote an existing vigil.yaml")
	}
	if !strings.Contains(stderr, "left unchanged") {
		t.Errorf("stderr = %q, want a note that vigil.yaml was kept", stderr)
	}
}

func TestHomeDefaultsToVIGIL_HOME(t *testing.T) {
	home := filepath.Join(t.TempDir(), "from-env")
	t.Setenv("VIGIL_HOME", home)
	if code, _, stderr := runVigil(t, "init", "--name", "envnode"); code != 0 {
		t.Fatalf("init: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "identity.key")); err != nil {
		t.Errorf("identity not created under $VIGIL_HOME: %v", err)
	}
}

var idJSONLine = regexp.MustCompile(`^\{"id": "[^"]+", "name": "[^"]+", "addrs": \[("[^"]+"(, "[^"]+")*)?\]\}\n$`)

func TestIDJSONPrintsExactlyIDNameAndAddrs(t *testing.T) {
	home := t.TempDir()
	code, initOut, stderr := runVigil(t, "init", "--home", home, "--name", "laptop", "--listen", "/ip4/127.0.0.1/tcp/4101")
	if code != 0 {
		t.Fatalf("init: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := runVigil(t, "id", "--home", home, "--json")
	if code != 0 {
		t.Fatalf("id --json: exit %d, stderr %q", code, stderr)
	}
	if !idJSONLine.MatchString(stdout) {
		t.Errorf("id --json = %q, want {\"id\": ..., \"name\": ..., \"addrs\": [...]}", stdout)
	}
	var got struct {
		ID    string   `json:"id"`
		Name  string   `json:"name"`
		Addrs []string `json:"addrs"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("id --json is not the documented JSON: %v", err)
	}
	if got.ID != strings.TrimSpace(initOut) || got.Name != "laptop" || strings.Join(got.Addrs, " ") != "/ip4/127.0.0.1/tcp/4101" {
		t.Errorf("id --json = %+v, want id %s name laptop addrs [/ip4/127.0.0.1/tcp/4101]", got, strings.TrimSpace(initOut))
	}

	// The text form is a peers: entry that another node can paste.
	code, text, _ := runVigil(t, "id", "--home", home)
	if code != 0 {
		t.Fatalf("id: exit %d", code)
	}
	other := newHome(t, "")
	doc := "node: {name: other}\npeers:\n" + indent(text, "  ")
	if err := os.WriteFile(filepath.Join(other, "vigil.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(other)
	if err != nil {
		t.Fatalf("pasted `vigil id` output does not load: %v\n%s", err, doc)
	}
	if p, ok := cfg.PeerByName("laptop"); !ok || p.ID != got.ID || strings.Join(p.Addrs, " ") != "/ip4/127.0.0.1/tcp/4101" {
		t.Errorf("pasted peer = %+v, %v", p, ok)
	}
}

func TestIDExpandsUnspecifiedListenAddrs(t *testing.T) {
	home := t.TempDir()
	if code, _, stderr := runVigil(t, "init", "--home", home, "--listen", "/ip4/0.0.0.0/tcp/4102"); code != 0 {
		t.Fatalf("init: exit %d, stderr %q", code, stderr)
	}
	cfg, err := loadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := advertisedAddrs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 {
		t.Fatal("no addresses")
	}
	for _, a := range addrs {
		if strings.Contains(a, "0.0.0.0") || !strings.HasSuffix(a, "/tcp/4102") {
			t.Errorf("advertised %q, want an interface address with /tcp/4102", a)
		}
	}
}

func TestIDWithoutIdentityTellsToRunInit(t *testing.T) {
	home := newHome(t, validDoc)
	code, _, stderr := runVigil(t, "id", "--home", home)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	assertOneErrorLine(t, stderr, filepath.Join(home, "identity.key"), "vigil init")
}

// TestBinaryExitsTwoOnBadConfig runs this test binary as the vigil command,
// so that main's exit status and output are what a shell sees.
func TestBinaryExitsTwoOnBadConfig(t *testing.T) {
	home := newHome(t, strings.Replace(validDoc, "  listen:", "  lisen:", 1))
	cmd := exec.Command(os.Args[0], "id", "--home", home)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_RUN_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want exit status 2 (stderr %q)", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
	assertOneErrorLine(t, stderr.String(), filepath.Join(home, "vigil.yaml")+":3: node.lisen: unknown field")
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}
