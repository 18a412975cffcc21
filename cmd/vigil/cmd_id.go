package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/vigil-mesh/vigil/mesh"
)

func newIDCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id [--json]",
		Short: "Print this node's peer ID, name and listen addresses",
		Long: "id prints what another node puts in its peers: list: this node's name, peer ID and the\n" +
			"addresses it listens on (an unspecified address such as /ip4/0.0.0.0 is expanded to the\n" +
			"addresses of this machine's interfaces). Without --json the output is a peers: entry\n" +
			"ready to paste; --json prints {\"id\": ..., \"name\": ..., \"addrs\": [...]}.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runID(globalsFrom(cmd), cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {\"id\": ..., \"name\": ..., \"addrs\": [...]}")
	return cmd
}

func runID(g *globals, stdout io.Writer, asJSON bool) error {
	cfg, err := g.LoadConfig()
	if err != nil {
		return err
	}
	keyPath := cfg.IdentityPath()
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		return usageErrorf("%s: no such file; run `vigil init --home %s` first", keyPath, g.Home())
	}
	_, id, err := mesh.LoadKey(keyPath)
	if err != nil {
		return err // a *mesh.KeyError, naming the file
	}
	addrs, err := advertisedAddrs(cfg)
	if err != nil {
		return err
	}
	if asJSON {
		_, err = fmt.Fprintln(stdout, idJSON(id.String(), cfg.Node.Name, addrs))
		return err
	}
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = yamlString(a)
	}
	_, err = fmt.Fprintf(stdout, "- name: %s\n  id: %s\n  addrs: [%s]\n", yamlString(cfg.Node.Name), id, strings.Join(quoted, ", "))
	return err
}

// idJSON formats the output of `vigil id --json` exactly as documented:
// {"id": "...", "name": "...", "addrs": ["...", ...]}.
func idJSON(id, name string, addrs []string) string {
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = yamlString(a) // a JSON string
	}
	return fmt.Sprintf(`{"id": %s, "name": %s, "addrs": [%s]}`, yamlString(id), yamlString(name), strings.Join(quoted, ", "))
}

// advertisedAddrs returns the listen addresses with unspecified IPs
// (0.0.0.0, ::) replaced by this machine's interface addresses (link-local
// ones left out); an address that cannot be expanded is kept as written.
func advertisedAddrs(cfg *config.Config) ([]string, error) {
	listen, err := cfg.ListenAddrs()
	if err != nil {
		return nil, err
	}
	var ifaces []multiaddr.Multiaddr
	if all, err := manet.InterfaceMultiaddrs(); err == nil {
		for _, a := range all {
			if !manet.IsIP6LinkLocal(a) {
				ifaces = append(ifaces, a)
			}
		}
	}
	out := make([]string, 0, len(listen))
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, a := range listen {
		if !manet.IsIPUnspecified(a) {
			add(a.String())
			continue
		}
		resolved, err := manet.ResolveUnspecifiedAddress(a, ifaces)
		if err != nil {
			add(a.String())
			continue
		}
		for _, r := range resolved {
			add(r.String())
		}
	}
	return out, nil
}
