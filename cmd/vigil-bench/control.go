package main

import "github.com/vigil-mesh/vigil/node"

// The benchmark talks to each node's control endpoint (HTTP + JSON on its
// unix socket) with the node's own client, the one `vigil lag` and `vigil
// status` use.
type (
	controlClient = node.ControlClient
	lagReport     = node.LagReport
	lagPair       = node.LagPair
	statusReport  = node.StatusReport
	replicaReport = node.ReplicaReport
)

func newControlClient(sock string) *controlClient { return node.NewControlClient("unix", sock) }
