package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/mesh"
)

// defaultListen is where a new node listens unless --listen says otherwise.
var defaultListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

func newInitCmd() *cobra.Command {
	var (
		name   string
		listen []string
	)
	cmd := &cobra.Command{
		Use:   "init [--name N] [--listen MULTIADDR]...",
		Short: "Create the home directory, an Ed25519 identity and a commented vigil.yaml",
		Long: "init creates the home directory (mode 0700), the node's Ed25519 private key in identity.key\n" +
			"and a commented vigil.yaml, then prints the node's peer ID. It refuses to overwrite an\n" +
			"existing identity and never overwrites an existing vigil.yaml.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(globalsFrom(cmd), cmd.OutOrStdout(), name, listen)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "node name shown to peers (default: the host name)")
	cmd.Flags().StringSliceVar(&listen, "listen", nil, "`MULTIADDR` to listen on; repeat for several (default "+strings.Join(defaultListen, " and ")+")")
	return cmd
}

func runInit(g *globals, stdout io.Writer, name string, listen []string) error {
	home := g.Home()
	if name == "" {
		name = hostName()
	}
	if len(listen) == 0 {
		listen = defaultListen
	}
	cfgPath := filepath.Join(home, configFileName)
	// Check the flags with the config rules before creating anything.
	probe := &config.Config{Node: config.NodeConfig{Name: name, Listen: listen}, Home: home, File: cfgPath}
	probe.SetDefaults()
	if err := probe.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return usageErrorf("%s", initProblem(ce))
		}
		return err
	}

	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("create home directory: %w", err)
	}
	keyPath := probe.IdentityPath()
	if _, err := os.Lstat(keyPath); err == nil {
		return fmt.Errorf("%s: an identity already exists; refusing to overwrite it (`vigil id --home %s` shows its peer ID)", keyPath, home)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check identity: %w", err)
	}

	// vigil.yaml first: if creating the key fails, running init again works.
	wrote, err := writeNewFile(cfgPath, []byte(configTemplate(name, listen)), 0o600)
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if !wrote {
		fmt.Fprintf(g.stderr, "vigil: %s exists; left unchanged\n", cfgPath)
	}
	id, err := mesh.GenerateKey(keyPath)
	if err != nil {
		return err // a *mesh.KeyError, naming the file
	}
	_, err = fmt.Fprintln(stdout, id.String())
	return err
}

// initProblem describes a problem found in the probe config in terms of the
// init flag behind it.
func initProblem(ce *config.Error) string {
	msg := ce.Msg
	if ce.Value != "" {
		msg += fmt.Sprintf(" (value %q)", ce.Value)
	}
	switch {
	case ce.Field == "node.name":
		return "--name: " + msg
	case strings.HasPrefix(ce.Field, "node.listen"):
		return "--listen: " + msg
	default:
		return "--home: " + ce.Field + ": " + msg
	}
}

var nonNameChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// hostName returns the host name made into a valid node name, or "vigil".
func hostName() string {
	h, err := os.Hostname()
	if err != nil {
		return "vigil"
	}
	h = strings.Trim(nonNameChars.ReplaceAllString(h, "-"), "-")
	if len(h) > 64 {
		h = strings.Trim(h[:64], "-")
	}
	if h == "" || h == "." || h == ".." {
		return "vigil"
	}
	return h
}

// writeNewFile durably creates path with data unless it already exists; it
// reports whether it wrote the file. It never replaces an existing file: the
// data goes to a temporary file that is then hard-linked to path.
func writeNewFile(path string, data []byte, perm os.FileMode) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return true, err
		}
	}
	return true, nil
}

// yamlString quotes s as a YAML double-quoted scalar.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// configTemplate is the commented vigil.yaml written by init.
func configTemplate(name string, listen []string) string {
	var l strings.Builder
	for _, a := range listen {
		l.WriteString("    - " + yamlString(a) + "\n")
	}
	return `# vigil.yaml: configuration of the vigil node ` + yamlString(name) + `.
#
# Relative paths are relative to the directory of this file. Unknown fields are
# an error. Durations are written like 10ms, 1s, 24h. After editing, restart
# ` + "`vigil run`" + `. ` + "`vigil id`" + ` prints what other nodes put in their peers: list.

node:
  # This node's name, shown to peers and in ` + "`vigil lag`" + ` (letters, digits, . _ -).
  name: ` + yamlString(name) + `
  # Multiaddrs to listen on for peers.
  listen:
` + l.String() + `  # Journals, chunk store, index and the replicas kept for other peers.
  # data_dir: data
  # Control endpoint used by ` + "`vigil lag`" + ` and ` + "`vigil status`" + `: a unix socket path,
  # or 127.0.0.1:PORT / localhost:PORT / [::1]:PORT (loopback only).
  # control: vigil.sock
  # Prometheus /metrics endpoint; off unless set.
  # metrics: 127.0.0.1:9464
  # A changed file is captured once it has been quiet this long ...
  # quiet_period: 10ms
  # ... and at the latest this long after it started changing.
  # max_delay: 1s
  # When the journal is fsynced: group (appends batched), always (every
  # record) or none (left to the operating system).
  # journal_sync: group
  # Journal size (bytes) beyond which a backup peer that fell that far behind
  # is sent a fresh baseline instead of the journal.
  # journal_max_bytes: 4294967296
  # How often replicas kept for others are verified in the background; 0 disables.
  # scrub_interval: 24h

# The only peers this node talks to (an allow-list). For each, paste what
# ` + "`vigil id`" + ` prints on that peer.
peers:
#  - name: nas
#    id: 12D3KooW...
#    addrs: ["/ip4/192.168.1.5/tcp/4001"]

# Agent role: the folders this node protects. Each is sent to its backup_to
# peers, which must list this node and folder in their backup_for.
folders:
#  - id: docs                       # 1-64 letters, digits, . _ -
#    path: /home/me/Documents       # an existing directory
#    backup_to: [nas]               # peer names from peers:
#    ignore: ["*.tmp", ".cache/"]   # paths left out

# Target role: the folders this node keeps for others. A replica of folder F of
# peer P is written to <data_dir>/replicas/<P's peer ID>/<F>/.
backup_for:
#  - peer: laptop
#    folders: [docs]
#    retention: 720h                # history kept for ` + "`vigil restore --at`" + `; 0 keeps none
`
}
