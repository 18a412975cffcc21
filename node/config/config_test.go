package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func cfgTestPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// cfgTestValid returns a valid config with two peers, one protected folder
// (home/docs) and one backup_for entry.
func cfgTestValid(t *testing.T) *Config {
	t.Helper()
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	nas, laptop := cfgTestPeerID(t), cfgTestPeerID(t)
	c := &Config{
		Node: NodeConfig{Name: "desk", Listen: []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}},
		Peers: []PeerConfig{
			{Name: "nas", ID: nas.String(), Addrs: []string{"/ip4/192.168.1.5/tcp/4001", "/ip4/192.168.1.5/tcp/4002/p2p/" + nas.String()}},
			{Name: "laptop", ID: laptop.String()},
		},
		Folders:   []FolderConfig{{ID: "docs", Path: "docs", BackupTo: []string{"nas"}, Ignore: []string{"*.tmp", ".cache/"}}},
		BackupFor: []BackupForConfig{{Peer: "laptop", Folders: []string{"docs", "photos"}}},
		Home:      home,
		File:      filepath.Join(home, "vigil.yaml"),
	}
	c.SetDefaults()
	return c
}

func TestConfigValidAcceptsCompleteConfig(t *testing.T) {
	c := cfgTestValid(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestConfigSetDefaultsFillsUnsetFieldsOnly(t *testing.T) {
	c := &Config{BackupFor: []BackupForConfig{{Peer: "a"}, {Peer: "b", Retention: Duration(time.Hour)}}}
	c.SetDefaults()
	want := DefaultNodeConfig()
	if c.Node.DataDir != want.DataDir || c.Node.Control != "vigil.sock" || c.Node.DataDir != "data" {
		t.Errorf("data_dir/control = %q/%q, want data/vigil.sock", c.Node.DataDir, c.Node.Control)
	}
	if c.Node.QuietPeriod.D() != 10*time.Millisecond || c.Node.MaxDelay.D() != time.Second {
		t.Errorf("quiet_period/max_delay = %s/%s, want 10ms/1s", c.Node.QuietPeriod, c.Node.MaxDelay)
	}
	if c.Node.JournalSync != "group" || c.Node.JournalMaxBytes != 4<<30 {
		t.Errorf("journal_sync/journal_max_bytes = %q/%d, want group/4GiB", c.Node.JournalSync, c.Node.JournalMaxBytes)
	}
	if c.Node.ScrubInterval.D() != 24*time.Hour {
		t.Errorf("scrub_interval = %s, want 24h", c.Node.ScrubInterval)
	}
	if got := c.BackupFor[0].Retention.D(); got != 720*time.Hour {
		t.Errorf("unset retention = %s, want 720h", got)
	}
	if got := c.BackupFor[1].Retention.D(); got != time.Hour {
		t.Errorf("explicit retention = %s, want 1h kept", got)
	}
	c.Node.QuietPeriod = Duration(time.Second)
	c.Node.MaxDelay = Duration(5 * time.Second)
	c.SetDefaults()
	if c.Node.QuietPeriod.D() != time.Second || c.Node.MaxDelay.D() != 5*time.Second {
		t.Errorf("SetDefaults overwrote set durations: %s/%s", c.Node.QuietPeriod, c.Node.MaxDelay)
	}
}

// The decoder in cmd calls UnmarshalYAML(func(any) error); any decoder that
// honours TextUnmarshaler shows the same behaviour, so JSON stands in here.
func TestConfigExplicitZeroScrubAndRetentionSurviveSetDefaults(t *testing.T) {
	decodeWith := func(doc string) func(any) error {
		return func(v any) error { return json.Unmarshal([]byte(doc), v) }
	}
	var c Config
	if err := c.Node.UnmarshalYAML(decodeWith(`{"Name":"a","ScrubInterval":"0s"}`)); err != nil {
		t.Fatal(err)
	}
	var b0, b1 BackupForConfig
	if err := b0.UnmarshalYAML(decodeWith(`{"Peer":"p","Retention":"0"}`)); err != nil {
		t.Fatal(err)
	}
	if err := b1.UnmarshalYAML(decodeWith(`{"Peer":"p"}`)); err != nil {
		t.Fatal(err)
	}
	c.BackupFor = []BackupForConfig{b0, b1}
	c.SetDefaults()
	if c.Node.Name != "a" {
		t.Errorf("name = %q, want a", c.Node.Name)
	}
	if c.Node.ScrubInterval != 0 {
		t.Errorf("explicit scrub_interval 0 became %s, want 0 (disabled)", c.Node.ScrubInterval)
	}
	if c.BackupFor[0].Retention != 0 {
		t.Errorf("explicit retention 0 became %s, want 0", c.BackupFor[0].Retention)
	}
	if c.BackupFor[1].Retention.D() != 720*time.Hour {
		t.Errorf("absent retention = %s, want 720h", c.BackupFor[1].Retention)
	}

	var absent NodeConfig
	if err := absent.UnmarshalYAML(decodeWith(`{"Name":"a"}`)); err != nil {
		t.Fatal(err)
	}
	c2 := Config{Node: absent}
	c2.SetDefaults()
	if c2.Node.ScrubInterval.D() != 24*time.Hour {
		t.Errorf("absent scrub_interval = %s, want 24h", c2.Node.ScrubInterval)
	}
}

func TestConfigValidateNamesFieldAndValueOfFirstProblem(t *testing.T) {
	other := cfgTestPeerID(t).String()
	tests := []struct {
		name      string
		mutate    func(c *Config)
		field     string
		value     string
		msgSubstr string
	}{
		{"empty node name", func(c *Config) { c.Node.Name = "" }, "node.name", "", "must not be empty"},
		{"node name with slash", func(c *Config) { c.Node.Name = "a/b" }, "node.name", "a/b", "letters"},
		{"bad listen multiaddr", func(c *Config) { c.Node.Listen[1] = "/ip4/1.2.3/tcp/1" }, "node.listen[1]", "/ip4/1.2.3/tcp/1", "multiaddr"},
		{"listen address twice", func(c *Config) { c.Node.Listen[1] = c.Node.Listen[0] }, "node.listen[1]", "/ip4/127.0.0.1/tcp/4001", "listed twice (also node.listen[0])"},
		{"control on a public address", func(c *Config) { c.Node.Control = "0.0.0.0:7000" }, "node.control", "0.0.0.0:7000", "loopback"},
		{"control port not a number", func(c *Config) { c.Node.Control = "127.0.0.1:http" }, "node.control", "127.0.0.1:http", "port"},
		{"control socket path too long", func(c *Config) { c.Node.Control = strings.Repeat("s", 200) + ".sock" }, "node.control", strings.Repeat("s", 200) + ".sock", "too long"},
		{"metrics without port", func(c *Config) { c.Node.Metrics = "127.0.0.1" }, "node.metrics", "127.0.0.1", "host:port"},
		{"negative quiet period", func(c *Config) { c.Node.QuietPeriod = Duration(-time.Second) }, "node.quiet_period", "-1s", "negative"},
		{"max delay below quiet period", func(c *Config) { c.Node.QuietPeriod = Duration(2 * time.Second) }, "node.max_delay", "1s", "quiet_period"},
		{"negative scrub interval", func(c *Config) { c.Node.ScrubInterval = Duration(-time.Hour) }, "node.scrub_interval", "-1h0m0s", "negative"},
		{"unknown journal sync", func(c *Config) { c.Node.JournalSync = "sometimes" }, "node.journal_sync", "sometimes", `"group"`},
		{"negative journal max bytes", func(c *Config) { c.Node.JournalMaxBytes = -1 }, "node.journal_max_bytes", "-1", "negative"},
		{"duplicate peer name", func(c *Config) { c.Peers[1].Name = "nas" }, "peers[1].name", "nas", "duplicate"},
		{"bad peer id", func(c *Config) { c.Peers[1].ID = "12D3KooWnotapeer" }, "peers[1].id", "12D3KooWnotapeer", "not a valid peer ID"},
		{"duplicate peer id", func(c *Config) { c.Peers[1].ID = c.Peers[0].ID }, "peers[1].id", "", "duplicate peer ID"},
		{"bad peer addr", func(c *Config) { c.Peers[0].Addrs[0] = "192.168.1.5:4001" }, "peers[0].addrs[0]", "192.168.1.5:4001", "multiaddr"},
		{"peer addr naming another peer", func(c *Config) { c.Peers[0].Addrs[1] = "/ip4/10.0.0.1/tcp/1/p2p/" + other }, "peers[0].addrs[1]", "/ip4/10.0.0.1/tcp/1/p2p/" + other, "not the peer's id"},
		{"folder id dot-dot", func(c *Config) { c.Folders[0].ID = ".." }, "folders[0].id", "..", "letters"},
		{"folder id too long", func(c *Config) { c.Folders[0].ID = strings.Repeat("x", 65) }, "folders[0].id", strings.Repeat("x", 65), "1-64"},
		{"duplicate folder id", func(c *Config) {
			c.Folders = append(c.Folders, FolderConfig{ID: "docs", Path: "/", BackupTo: []string{"nas"}})
		}, "folders[1].id", "docs", "duplicate folder id"},
		{"folder path missing", func(c *Config) { c.Folders[0].Path = "nope" }, "folders[0].path", "nope", "does not exist"},
		{"folder path is a file", func(c *Config) {
			if err := os.WriteFile(filepath.Join(c.Home, "f"), nil, 0o644); err != nil {
				panic(err)
			}
			c.Folders[0].Path = "f"
		}, "folders[0].path", "f", "not a directory"},
		{"folder contains data dir", func(c *Config) { c.Folders[0].Path = "." }, "folders[0].path", ".", "data dir"},
		{"folders nest", func(c *Config) {
			if err := os.Mkdir(filepath.Join(c.Home, "docs", "sub"), 0o755); err != nil {
				panic(err)
			}
			c.Folders = append(c.Folders, FolderConfig{ID: "sub", Path: "docs/sub", BackupTo: []string{"nas"}})
		}, "folders[1].path", "docs/sub", "overlaps folders[0]"},
		{"no backup peers", func(c *Config) { c.Folders[0].BackupTo = nil }, "folders[0].backup_to", "", "at least one"},
		{"backup_to unknown peer", func(c *Config) { c.Folders[0].BackupTo = []string{"nas", "nas2"} }, "folders[0].backup_to[1]", "nas2", `peer "nas2" is not listed in peers`},
		{"empty ignore pattern", func(c *Config) { c.Folders[0].Ignore[1] = " " }, "folders[0].ignore[1]", " ", "empty"},
		{"malformed ignore pattern", func(c *Config) { c.Folders[0].Ignore[0] = "[a-" }, "folders[0].ignore[0]", "[a-", "pattern"},
		{"backup_for unknown peer", func(c *Config) { c.BackupFor[0].Peer = "ghost" }, "backup_for[0].peer", "ghost", "not listed in peers"},
		{"backup_for without folders", func(c *Config) { c.BackupFor[0].Folders = nil }, "backup_for[0].folders", "", "at least one"},
		{"backup_for bad folder id", func(c *Config) { c.BackupFor[0].Folders[1] = "a b" }, "backup_for[0].folders[1]", "a b", "folder id"},
		{"backup_for pair listed twice", func(c *Config) {
			c.BackupFor = append(c.BackupFor, BackupForConfig{Peer: "laptop", Folders: []string{"photos"}})
		}, "backup_for[1].folders[0]", "photos", "already listed in backup_for[0]"},
		{"negative retention", func(c *Config) { c.BackupFor[0].Retention = Duration(-time.Hour) }, "backup_for[0].retention", "-1h0m0s", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfgTestValid(t)
			tt.mutate(c)
			err := c.Validate()
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want *Error", err)
			}
			if ce.File != c.File {
				t.Errorf("File = %q, want %q", ce.File, c.File)
			}
			if ce.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", ce.Field, tt.field, err)
			}
			if tt.value != "" && ce.Value != tt.value {
				t.Errorf("Value = %q, want %q", ce.Value, tt.value)
			}
			if !strings.Contains(ce.Msg, tt.msgSubstr) {
				t.Errorf("Msg = %q, want it to contain %q", ce.Msg, tt.msgSubstr)
			}
			if !strings.HasPrefix(err.Error(), c.File+": "+tt.field+": ") {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), c.File+": "+tt.field+": ")
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "/h/vigil.yaml", Field: "folders[0].backup_to[1]", Value: "nas2", Msg: `peer "nas2" is not listed in peers`}
	if got, want := e.Error(), `/h/vigil.yaml: folders[0].backup_to[1]: peer "nas2" is not listed in peers (value "nas2")`; got != want {
		t.Errorf("Error() = %s\nwant       %s", got, want)
	}
	e = &Error{File: "/h/vigil.yaml", Line: 7, Field: "node.lisen", Msg: "unknown field"}
	if got, want := e.Error(), `/h/vigil.yaml:7: node.lisen: unknown field`; got != want {
		t.Errorf("Error() = %s, want %s", got, want)
	}
	cause := errors.New("boom")
	if !errors.Is(&Error{Msg: "x", Err: cause}, cause) {
		t.Error("Error does not unwrap to its cause")
	}
}

func TestConfigControlAddrResolvesSocketOrLoopbackTCP(t *testing.T) {
	tests := []struct {
		control, network, addr string
	}{
		{"", "unix", "/h/vigil.sock"},
		{"vigil.sock", "unix", "/h/vigil.sock"},
		{"run/ctl.sock", "unix", "/h/run/ctl.sock"},
		{"/var/run/vigil.sock", "unix", "/var/run/vigil.sock"},
		{"unix:c.sock", "unix", "/h/c.sock"},
		{"127.0.0.1:7001", "tcp", "127.0.0.1:7001"},
		{"localhost:7001", "tcp", "localhost:7001"},
		{"[::1]:7001", "tcp", "[::1]:7001"},
	}
	for _, tt := range tests {
		c := &Config{Home: "/h", Node: NodeConfig{Control: tt.control}}
		network, addr := c.ControlAddr()
		if network != tt.network || addr != tt.addr {
			t.Errorf("control %q: ControlAddr() = %s %s, want %s %s", tt.control, network, addr, tt.network, tt.addr)
		}
	}
}

func TestConfigPathsResolveAgainstHome(t *testing.T) {
	c := &Config{Home: "/h", Node: NodeConfig{DataDir: "d/../data2"}}
	if got := c.DataPath(); got != "/h/data2" {
		t.Errorf("DataPath() = %q, want /h/data2", got)
	}
	c.Node.DataDir = "/srv/vigil"
	if got := c.DataPath(); got != "/srv/vigil" {
		t.Errorf("DataPath() = %q, want /srv/vigil", got)
	}
	if got := c.IdentityPath(); got != "/h/identity.key" {
		t.Errorf("IdentityPath() = %q", got)
	}
	if got := c.FolderPath(FolderConfig{Path: "docs"}); got != "/h/docs" {
		t.Errorf("FolderPath() = %q, want /h/docs", got)
	}
	if got := (FolderConfig{Path: "a/../docs"}).AbsPath("/h"); got != "/h/docs" {
		t.Errorf("AbsPath() = %q, want /h/docs", got)
	}
	if got := (FolderConfig{Path: "/srv/docs/"}).AbsPath("/h"); got != "/srv/docs" {
		t.Errorf("AbsPath() = %q, want /srv/docs", got)
	}
	if h, err := os.UserHomeDir(); err == nil {
		if got := c.ResolvePath("~/x"); got != filepath.Join(h, "x") {
			t.Errorf("ResolvePath(~/x) = %q, want %q", got, filepath.Join(h, "x"))
		}
	}
}

func TestConfigPeerLookupsAndAddrInfosStripP2PSuffix(t *testing.T) {
	c := cfgTestValid(t)
	nas, ok := c.PeerByName("nas")
	if !ok || nas.Name != "nas" {
		t.Fatalf("PeerByName(nas) = %v, %v", nas, ok)
	}
	if _, ok := c.PeerByName("ghost"); ok {
		t.Error("PeerByName(ghost) found a peer")
	}
	infos, err := c.PeerAddrInfos()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].ID.String() != nas.ID || len(infos[0].Addrs) != 2 || len(infos[1].Addrs) != 0 {
		t.Fatalf("PeerAddrInfos() = %v", infos)
	}
	if got := infos[0].Addrs[1].String(); got != "/ip4/192.168.1.5/tcp/4002" {
		t.Errorf("addr with /p2p/ suffix = %s, want /ip4/192.168.1.5/tcp/4002", got)
	}
	byID, ok := c.PeerByID(infos[1].ID)
	if !ok || byID.Name != "laptop" {
		t.Errorf("PeerByID = %v, %v, want laptop", byID, ok)
	}
	addrs, err := c.ListenAddrs()
	if err != nil || len(addrs) != 2 || addrs[0].String() != "/ip4/127.0.0.1/tcp/4001" {
		t.Errorf("ListenAddrs() = %v, %v", addrs, err)
	}
	c.Node.Listen = append(c.Node.Listen, "nonsense")
	var ce *Error
	if _, err := c.ListenAddrs(); !errors.As(err, &ce) || ce.Field != "node.listen[2]" {
		t.Errorf("ListenAddrs() on a bad address = %v, want Error for node.listen[2]", err)
	}
}

func TestConfigBackupRetentionOnlyForListedPairs(t *testing.T) {
	c := cfgTestValid(t)
	if r, ok := c.BackupRetention("laptop", "photos"); !ok || r != 720*time.Hour {
		t.Errorf("BackupRetention(laptop, photos) = %s, %v, want 720h, true", r, ok)
	}
	if _, ok := c.BackupRetention("laptop", "music"); ok {
		t.Error("BackupRetention accepted a folder not listed")
	}
	if _, ok := c.BackupRetention("nas", "docs"); ok {
		t.Error("BackupRetention accepted a peer not listed in backup_for")
	}
	if f, ok := c.FolderByID("docs"); !ok || f.Path != "docs" {
		t.Errorf("FolderByID(docs) = %v, %v", f, ok)
	}
}

func TestDurationTextRoundTripAndUnitlessNumbersRefused(t *testing.T) {
	var d Duration
	for _, s := range []string{"10ms", "1h30m0s", "720h0m0s", "0s"} {
		if err := d.UnmarshalText([]byte(s)); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", s, err)
		}
		b, _ := d.MarshalText()
		if string(b) != s {
			t.Errorf("round trip %q -> %q", s, b)
		}
	}
	if err := d.UnmarshalText([]byte("0")); err != nil || d != 0 {
		t.Errorf("UnmarshalText(0) = %v, %s", err, d)
	}
	for _, s := range []string{"10", "ten seconds", ""} {
		if err := d.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", s)
		}
	}
}
