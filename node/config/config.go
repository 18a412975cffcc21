package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// Config is the configuration of one node, as read from vigil.yaml by cmd/vigil.
//
// Build one by decoding YAML (only cmd reads YAML) or in Go, then call
// SetDefaults and Validate. Relative paths (data_dir, control, folder paths)
// are relative to Home, the directory of vigil.yaml; use the resolving
// accessors (DataPath, ControlAddr, FolderPath, ResolvePath) rather than the
// raw fields.
type Config struct {
	Node      NodeConfig        `yaml:"node"`
	Peers     []PeerConfig      `yaml:"peers"`
	Folders   []FolderConfig    `yaml:"folders"`
	BackupFor []BackupForConfig `yaml:"backup_for"`

	// Set by the loader, not from YAML:
	Home string `yaml:"-"` // directory of vigil.yaml (relative paths resolve against it)
	File string `yaml:"-"` // path of vigil.yaml, for error messages
}

// NodeConfig is the `node:` section: this node's own settings.
//
// ScrubInterval keeps an explicit zero: when decoded from YAML, an absent
// scrub_interval means the default (24h) and `scrub_interval: 0` disables the
// background verify. In Go, SetDefaults turns a zero ScrubInterval into the
// default; set it to 0 after SetDefaults to disable scrubbing.
type NodeConfig struct {
	Name            string   `yaml:"name"`
	Listen          []string `yaml:"listen"`            // multiaddrs to listen on
	DataDir         string   `yaml:"data_dir"`          // default "data"
	Control         string   `yaml:"control"`           // default "vigil.sock": a unix socket path, or 127.0.0.1:PORT / localhost:PORT / [::1]:PORT
	Metrics         string   `yaml:"metrics"`           // optional host:port serving Prometheus /metrics
	QuietPeriod     Duration `yaml:"quiet_period"`      // default 10ms: a changed file is captured once quiet this long
	MaxDelay        Duration `yaml:"max_delay"`         // default 1s: a changed file is captured after this long even if still changing
	JournalSync     string   `yaml:"journal_sync"`      // "group" (default), "always", "none"
	JournalMaxBytes int64    `yaml:"journal_max_bytes"` // default 4 GiB: beyond it a backup that is too far behind is re-baselined
	ScrubInterval   Duration `yaml:"scrub_interval"`    // default 24h; 0 disables background verify

	scrubSet bool // scrub_interval was given explicitly (so 0 means disabled)
}

// PeerConfig is one entry of `peers:`, the allow-list of peers this node talks to.
type PeerConfig struct {
	Name  string   `yaml:"name"`
	ID    string   `yaml:"id"`    // libp2p peer ID, e.g. 12D3KooW...
	Addrs []string `yaml:"addrs"` // multiaddrs to dial; may end in /p2p/<ID>
}

// FolderConfig is one entry of `folders:`, a folder this node protects (agent role).
type FolderConfig struct {
	ID       string   `yaml:"id"`
	Path     string   `yaml:"path"`      // relative to Config.Home; see Config.FolderPath
	BackupTo []string `yaml:"backup_to"` // designated backup peers, by name
	Ignore   []string `yaml:"ignore"`    // path patterns left out of protection
}

// BackupForConfig is one entry of `backup_for:`, folders this node keeps for a
// peer (target role).
//
// Retention keeps an explicit zero like NodeConfig.ScrubInterval: absent in
// YAML means the default (720h), `retention: 0` means no history is kept.
type BackupForConfig struct {
	Peer      string   `yaml:"peer"`      // a name from peers
	Folders   []string `yaml:"folders"`   // folder IDs of that peer
	Retention Duration `yaml:"retention"` // default 720h: history kept for point-in-time restore

	retentionSet bool // retention was given explicitly (so 0 means no history)
}

// Duration is a time.Duration written as "10ms", "1s", "720h" in the config.
// It implements encoding.TextUnmarshaler and encoding.TextMarshaler, which
// YAML and JSON decoders honour for scalars.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It accepts what
// time.ParseDuration accepts ("10ms", "1h30m", "0"); a bare number other than
// 0 is refused because its unit would be a guess.
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number with a unit, e.g. 10ms, 1s, 720h", s)
	}
	*d = Duration(v)
	return nil
}

// durationUnset marks a Duration that the YAML document did not set while a
// section is being decoded; no document can spell it.
const durationUnset = Duration(math.MinInt64)

// UnmarshalYAML lets a YAML decoder (go.yaml.in/yaml/v3 and v2 call this
// signature) record whether scrub_interval was present, so that an explicit 0
// survives SetDefaults. It needs no YAML import.
func (n *NodeConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain NodeConfig // no methods: no recursion
	p := plain{ScrubInterval: durationUnset}
	if err := unmarshal(&p); err != nil {
		return err
	}
	p.scrubSet = p.ScrubInterval != durationUnset
	if !p.scrubSet {
		p.ScrubInterval = 0
	}
	*n = NodeConfig(p)
	return nil
}

// UnmarshalYAML records whether retention was present; see NodeConfig.UnmarshalYAML.
func (b *BackupForConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain BackupForConfig
	p := plain{Retention: durationUnset}
	if err := unmarshal(&p); err != nil {
		return err
	}
	p.retentionSet = p.Retention != durationUnset
	if !p.retentionSet {
		p.Retention = 0
	}
	*b = BackupForConfig(p)
	return nil
}

// Defaults. JournalSync values are "group", "always" and "none".
const (
	cfgDefaultDataDir         = "data"
	cfgDefaultControl         = "vigil.sock"
	cfgDefaultQuietPeriod     = 10 * time.Millisecond
	cfgDefaultMaxDelay        = time.Second
	cfgDefaultJournalSync     = "group"
	cfgDefaultJournalMaxBytes = 4 << 30
	cfgDefaultScrubInterval   = 24 * time.Hour
	cfgDefaultRetention       = 720 * time.Hour
	cfgIdentityFile           = KeyFile
)

// DefaultNodeConfig returns a NodeConfig holding every default (no name, no
// listen addresses).
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{
		DataDir:         cfgDefaultDataDir,
		Control:         cfgDefaultControl,
		QuietPeriod:     Duration(cfgDefaultQuietPeriod),
		MaxDelay:        Duration(cfgDefaultMaxDelay),
		JournalSync:     cfgDefaultJournalSync,
		JournalMaxBytes: cfgDefaultJournalMaxBytes,
		ScrubInterval:   Duration(cfgDefaultScrubInterval),
	}
}

// SetDefaults fills every unset field with its default. It keeps a zero
// scrub_interval or retention that the YAML document gave explicitly.
func (c *Config) SetDefaults() {
	n := &c.Node
	if n.DataDir == "" {
		n.DataDir = cfgDefaultDataDir
	}
	if n.Control == "" {
		n.Control = cfgDefaultControl
	}
	if n.QuietPeriod == 0 {
		n.QuietPeriod = Duration(cfgDefaultQuietPeriod)
	}
	if n.MaxDelay == 0 {
		n.MaxDelay = Duration(cfgDefaultMaxDelay)
	}
	if n.JournalSync == "" {
		n.JournalSync = cfgDefaultJournalSync
	}
	if n.JournalMaxBytes == 0 {
		n.JournalMaxBytes = cfgDefaultJournalMaxBytes
	}
	if n.ScrubInterval == 0 && !n.scrubSet {
		n.ScrubInterval = Duration(cfgDefaultScrubInterval)
	}
	for i := range c.BackupFor {
		b := &c.BackupFor[i]
		if b.Retention == 0 && !b.retentionSet {
			b.Retention = Duration(cfgDefaultRetention)
		}
	}
}

// Error reports the first problem found in a configuration: the file,
// the field at fault (e.g. "folders[0].backup_to[1]"), the offending value and
// what is wrong with it. Line is the line in File when known (0 otherwise);
// Err is the underlying cause, if any.
type Error struct {
	File  string
	Line  int
	Field string
	Value string
	Msg   string
	Err   error
}

// Error formats the problem as
// `<file>[:<line>]: <field>: <msg> (value "<value>")`; parts that are empty
// are left out.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	if e.Value != "" {
		fmt.Fprintf(&b, " (value %q)", e.Value)
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

var (
	cfgNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// cfgValidName reports whether s is a simple name: 1-64 of [A-Za-z0-9._-],
// not "." or "..". Node names, peer names and folder IDs are simple names.
func cfgValidName(s string) bool {
	return cfgNameRE.MatchString(s) && s != "." && s != ".."
}

// Validate checks the configuration and returns a *Error describing the
// first problem, or nil. It reads the file system only to check that each
// folder path is an existing directory. Call SetDefaults first; unset fields
// that have a default are accepted.
func (c *Config) Validate() error {
	fail := func(field, value, format string, args ...any) error {
		return &Error{File: c.File, Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
	}
	failErr := func(field, value, msg string, err error) error {
		return &Error{File: c.File, Field: field, Value: value, Msg: msg + ": " + err.Error(), Err: err}
	}
	n := &c.Node

	// node
	if n.Name == "" {
		return fail("node.name", "", "must not be empty")
	}
	if !cfgValidName(n.Name) {
		return fail("node.name", n.Name, "must be 1-64 letters, digits, '.', '_' or '-'")
	}
	listenSeen := make(map[string]int, len(n.Listen))
	for i, s := range n.Listen {
		m, err := cfgParseMultiaddr(s)
		if err != nil {
			return failErr(fmt.Sprintf("node.listen[%d]", i), s, "not a valid multiaddr", err)
		}
		// The node listens exclusively: a second listener on the same
		// address would fail as "address already in use".
		if j, dup := listenSeen[m.String()]; dup {
			return fail(fmt.Sprintf("node.listen[%d]", i), s, "listed twice (also node.listen[%d])", j)
		}
		listenSeen[m.String()] = i
	}
	if n.Control != "" {
		if network, addr, err := c.controlAddr(); err != nil {
			return fail("node.control", n.Control, "%v", err)
		} else if network == "unix" && len(addr) > cfgMaxUnixPath() {
			return fail("node.control", n.Control, "unix socket path %q is too long (%d bytes, at most %d); use a shorter path or 127.0.0.1:PORT", addr, len(addr), cfgMaxUnixPath())
		}
	}
	if n.Metrics != "" {
		if _, port, err := net.SplitHostPort(n.Metrics); err != nil {
			return fail("node.metrics", n.Metrics, "must be host:port, e.g. 127.0.0.1:9464")
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fail("node.metrics", n.Metrics, "port must be a number from 0 to 65535")
		}
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{
		{"node.quiet_period", n.QuietPeriod},
		{"node.max_delay", n.MaxDelay},
		{"node.scrub_interval", n.ScrubInterval},
	} {
		if d.v < 0 {
			return fail(d.field, d.v.String(), "must not be negative")
		}
	}
	if n.QuietPeriod > 0 && n.MaxDelay > 0 && n.MaxDelay < n.QuietPeriod {
		return fail("node.max_delay", n.MaxDelay.String(), "must be at least node.quiet_period (%s)", n.QuietPeriod)
	}
	switch n.JournalSync {
	case "", "group", "always", "none":
	default:
		return fail("node.journal_sync", n.JournalSync, `must be "group", "always" or "none"`)
	}
	if n.JournalMaxBytes < 0 {
		return fail("node.journal_max_bytes", strconv.FormatInt(n.JournalMaxBytes, 10), "must not be negative")
	}

	// peers
	peerNames := make(map[string]int, len(c.Peers))
	peerIDs := make(map[peer.ID]int, len(c.Peers))
	for i, p := range c.Peers {
		f := fmt.Sprintf("peers[%d]", i)
		if p.Name == "" {
			return fail(f+".name", "", "must not be empty")
		}
		if !cfgValidName(p.Name) {
			return fail(f+".name", p.Name, "must be 1-64 letters, digits, '.', '_' or '-'")
		}
		if j, dup := peerNames[p.Name]; dup {
			return fail(f+".name", p.Name, "duplicate peer name (also peers[%d])", j)
		}
		peerNames[p.Name] = i
		if p.ID == "" {
			return fail(f+".id", "", "must not be empty: put the output of `vigil id` of that peer here")
		}
		id, err := peer.Decode(p.ID)
		if err != nil {
			return failErr(f+".id", p.ID, "not a valid peer ID", err)
		}
		if j, dup := peerIDs[id]; dup {
			return fail(f+".id", p.ID, "duplicate peer ID (also peers[%d])", j)
		}
		peerIDs[id] = i
		for k, s := range p.Addrs {
			af := fmt.Sprintf("%s.addrs[%d]", f, k)
			m, err := cfgParseMultiaddr(s)
			if err != nil {
				return failErr(af, s, "not a valid multiaddr", err)
			}
			if _, aid := peer.SplitAddr(m); aid != "" && aid != id {
				return fail(af, s, "its /p2p/ part names %s, not the peer's id %s", aid, id)
			}
		}
	}

	// folders
	folderIDs := make(map[string]int, len(c.Folders))
	type seenPath struct {
		index int
		path  string
	}
	var paths []seenPath
	dataPath := fsutil.RealPath(c.DataPath())
	for i, fc := range c.Folders {
		f := fmt.Sprintf("folders[%d]", i)
		if fc.ID == "" {
			return fail(f+".id", "", "must not be empty")
		}
		if !cfgValidName(fc.ID) {
			return fail(f+".id", fc.ID, "must be 1-64 letters, digits, '.', '_' or '-' and not '.' or '..'")
		}
		if j, dup := folderIDs[fc.ID]; dup {
			return fail(f+".id", fc.ID, "duplicate folder id (also folders[%d])", j)
		}
		folderIDs[fc.ID] = i
		if fc.Path == "" {
			return fail(f+".path", "", "must not be empty")
		}
		abs := c.ResolvePath(fc.Path)
		if !filepath.IsAbs(abs) {
			return fail(f+".path", fc.Path, "cannot be made absolute")
		}
		st, err := os.Stat(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fail(f+".path", fc.Path, "directory %s does not exist", abs)
		case err != nil:
			return failErr(f+".path", fc.Path, "cannot stat "+abs, err)
		case !st.IsDir():
			return fail(f+".path", fc.Path, "%s is not a directory", abs)
		}
		target := abs // symlinks resolved, for the overlap checks
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			target = r
		}
		if fsutil.Within(dataPath, target) || fsutil.Within(dataPath, abs) {
			return fail(f+".path", fc.Path, "contains the node's data dir %s; move data_dir out of protected folders", dataPath)
		}
		if fsutil.Within(target, dataPath) || fsutil.Within(abs, dataPath) {
			return fail(f+".path", fc.Path, "is inside the node's data dir %s", dataPath)
		}
		for _, sp := range paths {
			if fsutil.Within(target, sp.path) || fsutil.Within(sp.path, target) {
				return fail(f+".path", fc.Path, "overlaps folders[%d] (%s); protected folders must not nest", sp.index, sp.path)
			}
		}
		paths = append(paths, seenPath{i, target})
		if len(fc.BackupTo) == 0 {
			return fail(f+".backup_to", "", "must name at least one backup peer from peers")
		}
		seenTo := make(map[string]bool, len(fc.BackupTo))
		for k, name := range fc.BackupTo {
			bf := fmt.Sprintf("%s.backup_to[%d]", f, k)
			if _, ok := peerNames[name]; !ok {
				return fail(bf, name, "peer %q is not listed in peers", name)
			}
			if seenTo[name] {
				return fail(bf, name, "peer %q is listed twice", name)
			}
			seenTo[name] = true
		}
		for k, pat := range fc.Ignore {
			gf := fmt.Sprintf("%s.ignore[%d]", f, k)
			if strings.TrimSpace(pat) == "" {
				return fail(gf, pat, "must not be empty")
			}
			if _, err := filepath.Match(pat, ""); err != nil {
				return failErr(gf, pat, "not a valid pattern", err)
			}
		}
	}

	// backup_for
	type pairKey struct{ peer, folder string }
	pairs := make(map[pairKey]int)
	for i, b := range c.BackupFor {
		f := fmt.Sprintf("backup_for[%d]", i)
		if b.Peer == "" {
			return fail(f+".peer", "", "must name a peer from peers")
		}
		if _, ok := peerNames[b.Peer]; !ok {
			return fail(f+".peer", b.Peer, "peer %q is not listed in peers", b.Peer)
		}
		if len(b.Folders) == 0 {
			return fail(f+".folders", "", "must list at least one folder id of peer %q", b.Peer)
		}
		for k, id := range b.Folders {
			ff := fmt.Sprintf("%s.folders[%d]", f, k)
			if !cfgValidName(id) {
				return fail(ff, id, "must be a folder id: 1-64 letters, digits, '.', '_' or '-' and not '.' or '..'")
			}
			key := pairKey{b.Peer, id}
			if j, dup := pairs[key]; dup {
				return fail(ff, id, "folder %q of peer %q is already listed in backup_for[%d]", id, b.Peer, j)
			}
			pairs[key] = i
		}
		if b.Retention < 0 {
			return fail(f+".retention", b.Retention.String(), "must not be negative")
		}
	}
	return nil
}

// ResolvePath returns p as an absolute, clean path: a leading "~/" is the
// user's home directory, and a relative path is relative to c.Home (or to the
// working directory when Home is empty).
func (c *Config) ResolvePath(p string) string {
	p = cfgExpandTilde(p)
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if c.Home != "" {
		home := c.Home
		if !filepath.IsAbs(home) {
			if a, err := filepath.Abs(home); err == nil {
				home = a
			}
		}
		return filepath.Join(home, p)
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// DataPath returns the absolute data directory (node.data_dir resolved
// against Home; the default when unset).
func (c *Config) DataPath() string {
	d := c.Node.DataDir
	if d == "" {
		d = cfgDefaultDataDir
	}
	return c.ResolvePath(d)
}

// IdentityPath returns the path of the node's private key file, identity.key
// in Home.
func (c *Config) IdentityPath() string { return c.ResolvePath(cfgIdentityFile) }

// FolderPath returns the absolute path of a folder (its path resolved against Home).
func (c *Config) FolderPath(f FolderConfig) string { return c.ResolvePath(f.Path) }

// AbsPath returns the folder's path made absolute: "~/" expanded, a relative
// path joined to home (the config's Home).
func (f FolderConfig) AbsPath(home string) string {
	return (&Config{Home: home}).ResolvePath(f.Path)
}

// ControlAddr returns where the control endpoint listens: ("unix", absolute
// socket path) or ("tcp", "host:port") with a loopback host. An invalid
// control value (refused by Validate) falls back to the default socket.
func (c *Config) ControlAddr() (network, addr string) {
	network, addr, err := c.controlAddr()
	if err != nil {
		return "unix", c.ResolvePath(cfgDefaultControl)
	}
	return network, addr
}

// controlAddr parses node.control. A value with a "unix:" prefix, a '/' or no
// ':' is a socket path; anything else must be host:port with a loopback host.
func (c *Config) controlAddr() (network, addr string, err error) {
	s := c.Node.Control
	if s == "" {
		s = cfgDefaultControl
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		if rest == "" {
			return "", "", errors.New("empty unix socket path")
		}
		return "unix", c.ResolvePath(rest), nil
	}
	if strings.ContainsRune(s, '/') || strings.HasPrefix(s, "~") || !strings.ContainsRune(s, ':') {
		return "unix", c.ResolvePath(s), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", errors.New("must be a unix socket path or 127.0.0.1:PORT, localhost:PORT or [::1]:PORT")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", "", errors.New("port must be a number from 0 to 65535")
	}
	if !strings.EqualFold(host, "localhost") {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return "", "", fmt.Errorf("host %q is not a loopback address: the control endpoint has no authentication, use 127.0.0.1, localhost or [::1]", host)
		}
	}
	return "tcp", s, nil
}

// ListenAddrs returns node.listen parsed.
func (c *Config) ListenAddrs() ([]multiaddr.Multiaddr, error) {
	out := make([]multiaddr.Multiaddr, 0, len(c.Node.Listen))
	for i, s := range c.Node.Listen {
		m, err := cfgParseMultiaddr(s)
		if err != nil {
			return nil, &Error{File: c.File, Field: fmt.Sprintf("node.listen[%d]", i), Value: s, Msg: "not a valid multiaddr: " + err.Error(), Err: err}
		}
		out = append(out, m)
	}
	return out, nil
}

// PeerByName returns the peer with that name.
func (c *Config) PeerByName(name string) (PeerConfig, bool) {
	for _, p := range c.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return PeerConfig{}, false
}

// PeerByID returns the peer with that peer ID.
func (c *Config) PeerByID(id peer.ID) (PeerConfig, bool) {
	for _, p := range c.Peers {
		if pid, err := peer.Decode(p.ID); err == nil && pid == id {
			return p, true
		}
	}
	return PeerConfig{}, false
}

// PeerID returns the peer's ID parsed.
func (p PeerConfig) PeerID() (peer.ID, error) {
	id, err := peer.Decode(p.ID)
	if err != nil {
		return "", fmt.Errorf("node: peer %q: invalid peer ID %q: %w", p.Name, p.ID, err)
	}
	return id, nil
}

// AddrInfo returns the peer's ID and addresses parsed, with any /p2p/ suffix
// removed from the addresses.
func (p PeerConfig) AddrInfo() (peer.AddrInfo, error) {
	id, err := p.PeerID()
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai := peer.AddrInfo{ID: id, Addrs: make([]multiaddr.Multiaddr, 0, len(p.Addrs))}
	for _, s := range p.Addrs {
		m, err := cfgParseMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("node: peer %q: invalid address %q: %w", p.Name, s, err)
		}
		if t, _ := peer.SplitAddr(m); t != nil {
			ai.Addrs = append(ai.Addrs, t)
		}
	}
	return ai, nil
}

// PeerAddrInfos returns the ID and addresses of every configured peer, in
// config order (the allow-list for the connection gater and the dial list).
func (c *Config) PeerAddrInfos() ([]peer.AddrInfo, error) {
	out := make([]peer.AddrInfo, 0, len(c.Peers))
	for _, p := range c.Peers {
		ai, err := p.AddrInfo()
		if err != nil {
			return nil, err
		}
		out = append(out, ai)
	}
	return out, nil
}

// FolderByID returns the protected folder with that id (Path as written; see FolderPath).
func (c *Config) FolderByID(id string) (FolderConfig, bool) {
	for _, f := range c.Folders {
		if f.ID == id {
			return f, true
		}
	}
	return FolderConfig{}, false
}

// BackupRetention reports whether this node keeps folder folderID of the peer
// named peerName (some backup_for entry names both) and for how long it keeps
// that folder's history.
func (c *Config) BackupRetention(peerName, folderID string) (time.Duration, bool) {
	for _, b := range c.BackupFor {
		if b.Peer != peerName {
			continue
		}
		for _, f := range b.Folders {
			if f == folderID {
				r := b.Retention
				if r == 0 && !b.retentionSet {
					r = Duration(cfgDefaultRetention)
				}
				return r.D(), true
			}
		}
	}
	return 0, false
}

func cfgParseMultiaddr(s string) (multiaddr.Multiaddr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty address")
	}
	m, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, errors.New("empty address")
	}
	return m, nil
}

// cfgExpandTilde replaces a leading "~" or "~/" with the user's home directory.
func cfgExpandTilde(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	h, err := os.UserHomeDir()
	if err != nil || h == "" {
		return p
	}
	return filepath.Join(h, p[1:])
}

// cfgMaxUnixPath is the longest unix socket path the OS accepts.
func cfgMaxUnixPath() int {
	switch runtime.GOOS {
	case "linux", "android":
		return 107
	default:
		return 103
	}
}

// KeyFile is the name of the node's private key file inside its home.
const KeyFile = "identity.key"
