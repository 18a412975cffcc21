package main

import (
	"path/filepath"

	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/node/control"
)

// newControlClient returns a client for the control endpoint of the node
// whose config is cfg: over TCP it sends the token in the home's
// control.token (made by `vigil run`).
func newControlClient(cfg *config.Config) *control.Client {
	network, addr := cfg.ControlAddr()
	return control.NewClient(network, addr, control.WithTokenFile(controlTokenPath(cfg)))
}

// controlTokenPath is where the home keeps the control token.
func controlTokenPath(cfg *config.Config) string { return filepath.Join(cfg.Home, control.TokenFile) }
